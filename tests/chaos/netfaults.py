"""Network faults on loopback for the chaos harness (docs/reliability.md "Chaos").

Everything here acts on the network namespace of the calling process. chaos.py runs itself, and so
`swarr launch` and every service, in a namespace of its own (`unshare -n`), so the rules below touch
no other process on the machine.

This kernel (Debian 12 VM, 6.18, no loadable modules) has no sch_netem (CONFIG_NET_SCH_NETEM is not
set) and no nft `queue` expression, so the faults are built from what it has:
  - delay: an iptables NFQUEUE rule sends the matching packets to `Delayer`, which holds each one
    for the fault's delay before it accepts it (the kernel's nfnetlink_queue, spoken over a raw
    netlink socket: no library needed). `--queue-bypass` lets packets through when no one listens.
  - loss: an iptables `statistic --mode random` DROP rule (TCP retransmits what is lost).
  - a dropped connection: `ss -K` destroys the matching established sockets (CONFIG_INET_DIAG_DESTROY:
    both ends see a reset / ECONNABORTED), and an iptables REJECT --reject-with tcp-reset rule refuses
    new connections to the port for the fault's length.
Rules go in one chain of our own, SWARR_CHAOS, jumped to from OUTPUT (on loopback every packet
passes OUTPUT once).
"""
import os
import select
import socket
import struct
import subprocess
import threading
import time

CHAIN = "SWARR_CHAOS"
QUEUE = 7

# nfnetlink_queue (linux/netfilter/nfnetlink_queue.h)
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_ACCEPT = 1
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4


def run(*argv, check=True):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stdout.strip()}")
    return r


def _attr(kind, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def _message(kind, flags, seq, res_id, attrs):
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, res_id) + b"".join(_attr(k, d) for k, d in attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def _messages(buf):
    """(type, payload after nlmsghdr) for each netlink message in buf."""
    off = 0
    while off + 16 <= len(buf):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        yield kind, buf[off + 16:off + length]
        off += (length + 3) & ~3


def _attrs(payload):
    off = 4  # nfgenmsg
    while off + 4 <= len(payload):
        n, kind = struct.unpack_from("=HH", payload, off)
        if n < 4:
            break
        yield kind & 0x3FFF, payload[off + 4:off + n]
        off += (n + 3) & ~3


class Delayer:
    """Holds every packet that reaches NFQUEUE `queue` for `delay` seconds, then accepts it.

    The delay is constant while a fault lasts, so packets leave in the order they came (no
    reordering). Counts what it held (`packets`)."""

    def __init__(self, queue=QUEUE):
        self.queue = queue
        self.delay = 0.0
        self.packets = 0
        self._stop = False
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind((0, 0))
        self._config(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET), 1)
        self._config(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META), 2)
        self._config(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536), 3)
        self._thread = threading.Thread(target=self._loop, name="delayer", daemon=True)
        self._thread.start()

    def _config(self, attr, data, seq):
        self._sock.send(_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, self.queue, [(attr, data)]))
        for kind, payload in _messages(self._sock.recv(65536)):
            if kind == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", payload, 0)
                if err != 0:
                    raise OSError(-err, f"nfnetlink_queue config {attr}: {os.strerror(-err)}")

    def _verdict(self, packet_id):
        self._sock.send(_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, self.queue,
                                 [(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))]))

    def _loop(self):
        held = []  # (release time, packet id), in arrival order
        while not self._stop or held:
            timeout = 0.05 if not held else max(0.0, min(0.05, held[0][0] - time.monotonic()))
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if readable:
                try:
                    buf = self._sock.recv(1 << 20)
                except OSError:  # ENOBUFS: the kernel dropped queue messages; they count as loss
                    buf = b""
                now = time.monotonic()
                for kind, payload in _messages(buf):
                    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        continue
                    for a, data in _attrs(payload):
                        if a == NFQA_PACKET_HDR:
                            held.append((now + self.delay, struct.unpack_from("!I", data, 0)[0]))
                            self.packets += 1
            now = time.monotonic()
            while held and (held[0][0] <= now or self._stop):
                self._verdict(held.pop(0)[1])

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self._sock.close()


def _port_rules(ports, target):
    """iptables rule specs matching TCP to or from each port (both directions of a connection)."""
    rules = []
    for p in sorted(ports):
        for side in ("--dport", "--sport"):
            rules.append(["-p", "tcp", side, str(p)] + target)
    return rules


class NetFaults:
    """Sets up the namespace's loopback and the SWARR_CHAOS chain; applies one fault at a time."""

    def __init__(self):
        run("ip", "link", "set", "lo", "up")
        if run("iptables", "-w", "-S", CHAIN, check=False).returncode != 0:
            run("iptables", "-w", "-N", CHAIN)
        run("iptables", "-w", "-F", CHAIN)
        if run("iptables", "-w", "-C", "OUTPUT", "-o", "lo", "-j", CHAIN, check=False).returncode != 0:
            run("iptables", "-w", "-I", "OUTPUT", "-o", "lo", "-j", CHAIN)
        self.delayer = Delayer()
        self.rules = []

    def _add(self, rules):
        for r in rules:
            run("iptables", "-w", "-A", CHAIN, *r)
            self.rules.append(r)

    def clear(self):
        run("iptables", "-w", "-F", CHAIN)
        self.rules = []

    def delay(self, ports, seconds):
        self.delayer.delay = seconds
        self._add(_port_rules(ports, ["-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"]))

    def loss(self, ports, probability):
        self._add(_port_rules(ports, []))  # counting rules: the packets seen
        self._add(_port_rules(ports, ["-m", "statistic", "--mode", "random", "--probability",
                                      f"{probability:.3f}", "-j", "DROP"]))

    def counted(self):
        """Packets matched so far by the chain's rules, by target ("" for counting rules)."""
        out = {}
        for line in run("iptables", "-w", "-S", CHAIN, "-v").stdout.splitlines():
            f = line.split()
            if not f or f[0] != "-A" or "-c" not in f:
                continue
            target = f[f.index("-j") + 1] if "-j" in f else ""
            out[target] = out.get(target, 0) + int(f[f.index("-c") + 1])
        return out

    def drop(self, ports, listen_port=None):
        """Destroys the established connections on `ports`; refuses new ones to `listen_port` (with a
        TCP reset) until clear(). Returns how many sockets were destroyed (both ends count)."""
        before = established(ports)
        if listen_port:
            self._add([["-p", "tcp", "--dport", str(listen_port), "--tcp-flags", "SYN,ACK,RST", "SYN",
                        "-j", "REJECT", "--reject-with", "tcp-reset"]])
        expr = " or ".join(f"sport = :{p} or dport = :{p}" for p in sorted(ports))
        run("ss", "-K", "-tn", "state", "established", f"( {expr} )")
        return before - established(ports)

    def close(self):
        self.clear()
        self.delayer.close()


def established(ports):
    """Number of established TCP sockets (ends) with a local or remote port in `ports`."""
    n = 0
    for line in read_proc_tcp():
        local, remote, state, _ = line
        if state == 1 and (local in ports or remote in ports):
            n += 1
    return n


def read_proc_tcp():
    """(local port, remote port, state, inode) for each IPv4 and IPv6 TCP socket of this namespace."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10:
                continue
            out.append((int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16), int(f[3], 16), int(f[9])))
    return out


def local_ports_of(pid):
    """The local ports of the established TCP connections that process `pid` holds."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        return set()
    return {local for local, _, state, inode in read_proc_tcp() if state == 1 and inode in inodes}


def probe():
    """Why network faults cannot run here, or "" when they can (call inside the namespace)."""
    for tool in ("ip", "iptables", "ss"):
        if run("sh", "-c", f"command -v {tool}", check=False).returncode != 0:
            return f"{tool} is missing (apt-get install iproute2 iptables)"
    try:
        nf = NetFaults()
        nf.close()
        run("iptables", "-w", "-D", "OUTPUT", "-o", "lo", "-j", CHAIN)
        run("iptables", "-w", "-X", CHAIN)
    except (OSError, RuntimeError) as e:
        return str(e)
    return ""
