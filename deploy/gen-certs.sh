#!/usr/bin/env bash
# Makes what a SWARR deployment needs to be secure (docs/deploy.md "Security"), with openssl:
#   OUT/tokens/<role>.token   a random token per role (rollout, learner, coordinator, operator)
#   OUT/tls/ca.pem, ca.key    a private CA (ca.key: keep it safe; the services never need it)
#   OUT/tls/server.pem, .key  one certificate + key for every service, signed by the CA, for
#                             server and client use (mTLS), naming the compose and Kubernetes
#                             service names, localhost and 127.0.0.1 (more: SWARR_CERT_NAMES)
# Usage: deploy/gen-certs.sh [OUT]   (OUT default deploy/secrets, ignored by git)
#   SWARR_CERT_NAMES="a.example.org b"  extra DNS names for the certificate
#   SWARR_CERT_DAYS=365                 validity of the certificates
# Existing tokens and certificates are kept (run it again after deleting OUT to rotate them).
# Then compose: docker compose -f deploy/docker-compose.yml up (it mounts deploy/secrets);
# Kubernetes: the two Secrets, e.g. in namespace swarr:
#   kubectl -n swarr create secret generic swarr-tokens --from-file=OUT/tokens/
#   kubectl -n swarr create secret generic swarr-tls --from-file=tls.crt=OUT/tls/server.pem \
#     --from-file=tls.key=OUT/tls/server.key --from-file=ca.crt=OUT/tls/ca.pem
set -euo pipefail
OUT=${1:-$(cd "$(dirname "$0")" && pwd)/secrets}
DAYS=${SWARR_CERT_DAYS:-365}
command -v openssl > /dev/null || { echo "gen-certs.sh: openssl is missing" >&2; exit 1; }
umask 077
mkdir -p "$OUT/tokens" "$OUT/tls"

for role in rollout learner coordinator operator; do
  f=$OUT/tokens/$role.token
  [ -s "$f" ] || openssl rand -hex 32 > "$f"
done

T=$OUT/tls
if [ ! -s "$T/ca.pem" ] || [ ! -s "$T/ca.key" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days "$DAYS" -subj "/CN=swarr-ca" \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2> /dev/null
  rm -f "$T/server.pem" "$T/server.key"
fi
if [ ! -s "$T/server.pem" ] || [ ! -s "$T/server.key" ]; then
  names="localhost coordinator learner rollout"
  for svc in swarr-coordinator swarr-learner swarr-rollout; do
    names="$names $svc $svc.swarr $svc.swarr.svc $svc.swarr.svc.cluster.local"
  done
  names="$names ${SWARR_CERT_NAMES:-}"
  san="IP:127.0.0.1"
  for n in $names; do san="$san,DNS:$n"; done
  openssl req -newkey rsa:3072 -nodes -subj "/CN=swarr" -keyout "$T/server.key" -out "$T/server.csr" 2> /dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$san" > "$T/server.ext"
  openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days "$DAYS" \
    -extfile "$T/server.ext" -out "$T/server.pem" 2> /dev/null
  rm -f "$T/server.csr" "$T/server.ext" "$T/ca.srl"
fi
openssl verify -CAfile "$T/ca.pem" "$T/server.pem" > /dev/null
echo "gen-certs.sh: tokens in $OUT/tokens, CA and certificate in $OUT/tls ($(openssl x509 -in "$T/server.pem" -noout -enddate))"
