#!/bin/bash
# Sets up podman on a Debian 12 machine as ../shared/docs/CONTAINERS.md measured it, idempotently:
#   1. the packages (podman runc crun fuse-overlayfs slirp4netns uidmap debootstrap docker-compose,
#      catatonit for the pods' pause image, python3-yaml jq curl for the test);
#   2. /etc/containers/containers.conf with the two VM quirks (nofile/nproc ulimits, runc +
#      cgroupfs) - only when the file has no [engine] runtime yet (an existing config is kept);
#   3. the base image localhost/debian:bookworm from debootstrap (kept: `podman image exists`
#      skips it next time; about 3 minutes the first time).
# Needs root and apt. Exit 2: this machine cannot run podman (not root, no apt) - callers skip.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "podman_setup: needs root" >&2; exit 2; }
command -v apt-get >/dev/null || { echo "podman_setup: needs apt-get (Debian)" >&2; exit 2; }
PKGS="podman runc crun fuse-overlayfs slirp4netns uidmap debootstrap docker-compose catatonit python3-yaml jq curl"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "podman_setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; } \
    || { echo "podman_setup: apt-get install$missing failed" >&2; exit 2; }
fi
CONF=/etc/containers/containers.conf
if ! grep -qs '^runtime *= *"runc"' "$CONF"; then
  mkdir -p /etc/containers
  [ -f "$CONF" ] && cp "$CONF" "$CONF.swarr-bak"
  cat > "$CONF" <<'CONF'
# Written by SWARR tests/deploy/podman_setup.sh (CONTAINERS.md): crun cannot raise RLIMIT_NOFILE
# past the VM's hard limit (20000) nor run in cgroup hybrid mode, so runc with cgroupfs.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
BASE=${SWARR_BASE_IMAGE:-localhost/debian:bookworm}
if ! podman image exists "$BASE"; then
  # The mirror apt already uses (deb822 URIs: or one-line `deb URL suite`).
  MIRROR=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$MIRROR" ] || MIRROR=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -1)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  ROOTFS=$(mktemp -d /tmp/swarr-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  echo "podman_setup: debootstrap bookworm from $MIRROR (a few minutes, once)"
  t0=$(date +%s)
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/tmp/swarr-debootstrap.log 2>&1 \
    || { tail -20 /tmp/swarr-debootstrap.log >&2; echo "podman_setup: debootstrap failed (mirror unreachable?)" >&2; exit 2; }
  # apt inside images built from it: same mirror as the host
  tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  echo "podman_setup: $BASE imported in $(( $(date +%s) - t0 )) s"
fi
echo "podman_setup: ready ($(podman --version), base $BASE)"
