"""The shaped-network test bed for integration tests (Python 3 standard library only).

The same bed as migbench's (tools/bench/netns.c; keep the two in step): two network
namespaces, mig-src-<pid> and mig-dst-<pid>, joined by a veth pair whose ends are created
inside them, so nothing ever appears in the host's namespace. The ends have the
link-local addresses 169.254.77.1/30 (src) and 169.254.77.2/30 (dst), loopback is up in
each, and each end's egress is shaped with tbf (this kernel has no netem):

    with netbed.NetBed() as bed:
        with netbed.NsMigd(bed, "dst", "dst", h.guest_args(..., incoming=bed.uri("dst", 4444))) as dst:
            ...
        subprocess.run(bed.exec_argv("src", ["mig-rawxfer", ...]))

migd's QMP socket is a unix path in the test's temporary directory, reachable from
outside the namespaces.

The bed is removed on every exit path we can see: the context manager, atexit, and the
harness's SIGTERM handler (which raises SystemExit through the with blocks). A bed whose
process was SIGKILLed is left behind, so every new bed first deletes the namespaces named
mig-WORD-PID whose PID is gone (reap_stale). Every ip/tc command has a timeout. Needs
root, ip and tc (iproute2); NetBed raises Skip-worthy BedUnavailable otherwise.
"""

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import tempfile

import mig_harness as h

NETNS_DIR = "/var/run/netns"       # where ip(8) keeps named namespaces
RATE = "1gbit"
RATE_BPS = 1e9
SHAPING = ["tbf", "rate", RATE, "burst", "256kb", "latency", "20ms"]
ADDR = {"src": "169.254.77.1", "dst": "169.254.77.2"}
PREFIX = "/30"
CMD_TIMEOUT = 10.0                 # one ip/tc command; they take milliseconds
STALE_MAX = 1000                   # namespaces looked at per reap
_STALE_RE = re.compile(r"^mig-[A-Za-z0-9]+-([0-9]+)$")


class BedUnavailable(Exception):
    """The host cannot build the bed (not root, no iproute2)."""


def _run(argv, check=True):
    """Runs an ip/tc command with a timeout; raises HarnessError with its output."""
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise h.HarnessError("%s: no answer in %.0f s" % (" ".join(argv), CMD_TIMEOUT)) from None
    if check and r.returncode != 0:
        raise h.HarnessError("%s: exit status %d: %s" % (" ".join(argv), r.returncode,
                                                         r.stdout.decode(errors="replace").strip()))
    return r


def namespaces():
    """Names of the named network namespaces on this host."""
    try:
        return sorted(os.listdir(NETNS_DIR))[:STALE_MAX]
    except FileNotFoundError:
        return []


def _pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_stale():
    """Deletes every mig-WORD-PID namespace whose PID no longer exists; returns their names."""
    ip = shutil.which("ip")
    reaped = []
    if not ip:
        return reaped
    for name in namespaces():
        m = _STALE_RE.match(name)
        if m and _pid_gone(int(m.group(1))):
            r = _run([ip, "netns", "del", name], check=False)
            if r.returncode == 0:
                print("[netbed] deleted the stale network namespace %s (its process is gone)" % name,
                      flush=True)
                reaped.append(name)
            else:
                print("[netbed] could not delete the stale namespace %s: %s"
                      % (name, r.stdout.decode(errors="replace").strip()), flush=True)
    return reaped


class NetBed:
    """The bed of this process: at most one at a time (the names carry our pid)."""

    def __init__(self):
        self.ip = shutil.which("ip")
        self.tc = shutil.which("tc")
        if os.geteuid() != 0 or not self.ip or not self.tc:
            raise BedUnavailable("the netns bed needs root, ip and tc (iproute2)")
        reap_stale()
        pid = os.getpid()
        self.ns = {side: "mig-%s-%d" % (side, pid) for side in ("src", "dst")}
        self.dev = {side: "mig-%s" % side for side in ("src", "dst")}
        self.addr = dict(ADDR)
        self._made = []
        self._closed = False
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        for side in ("src", "dst"):
            # an old bed with our pid can only be from a dead process that had it
            if self.ns[side] in namespaces():
                _run([self.ip, "netns", "del", self.ns[side]])
        for side in ("src", "dst"):
            _run([self.ip, "netns", "add", self.ns[side]])
            self._made.append(self.ns[side])
        # both ends are born inside their namespaces: the host's never sees them
        _run([self.ip, "link", "add", self.dev["src"], "netns", self.ns["src"], "type", "veth",
              "peer", "name", self.dev["dst"], "netns", self.ns["dst"]])
        for side in ("src", "dst"):
            ns, dev = self.ns[side], self.dev[side]
            _run([self.ip, "-n", ns, "link", "set", "lo", "up"])
            _run([self.ip, "-n", ns, "addr", "add", self.addr[side] + PREFIX, "dev", dev])
            _run([self.tc, "-n", ns, "qdisc", "add", "dev", dev, "root"] + SHAPING)
            _run([self.ip, "-n", ns, "link", "set", dev, "up"])
        print("[netbed] %s <-> %s, veth %s/%s, %s, each end: %s"
              % (self.ns["src"], self.ns["dst"], self.addr["src"], self.addr["dst"], PREFIX,
                 " ".join(SHAPING)), flush=True)

    def close(self):
        """Deletes the namespaces (the veth pair goes with them). Idempotent. Kill the
        processes inside first: a namespace lives on while a process is in it."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        for name in self._made:
            r = _run([self.ip, "netns", "del", name], check=False)
            if r.returncode != 0:
                print("[netbed] could not delete %s: %s" % (name, r.stdout.decode(errors="replace").strip()),
                      flush=True)
        self._made = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exec_argv(self, side, argv):
        """argv run inside side's namespace ("src" or "dst")."""
        return [self.ip, "netns", "exec", self.ns[side]] + list(argv)

    def uri(self, side, port):
        return "tcp:%s:%d" % (self.addr[side], port)

    def link(self, side, up):
        """Cuts (up False) or mends the link at side's veth end: its peer loses its
        carrier too, so nothing crosses either way and no socket is reset; the
        addresses and the shaping stay (migbench's postcopy-recovery does the same)."""
        _run([self.ip, "-n", self.ns[side], "link", "set", self.dev[side], "up" if up else "down"])

    def qdisc(self, side):
        """tc's view of side's root qdisc, for checks."""
        return _run([self.tc, "-n", self.ns[side], "qdisc", "show", "dev", self.dev[side]]).stdout.decode()

    def addresses(self, side):
        """Every IPv4 address (with prefix) in side's namespace."""
        out = _run([self.ip, "-n", self.ns[side], "-4", "-o", "addr", "show"]).stdout.decode()
        return re.findall(r"inet (\S+)", out)


class NsMigd(h.Migd):
    """A migd started inside one side of the bed, otherwise a harness Migd: temporary
    directory, QMP connection, killed and reaped on the way out. (ip netns exec execs migd
    in place, so the pid, PR_SET_PDEATHSIG and kill() are migd's own.)"""

    def __init__(self, bed, side, name, args=(), start_timeout=10.0):
        binary = h.tool("migd")
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix="mig-%s-" % name, dir=h._tmp_base())
        self.qmp_path = os.path.join(self.tmpdir, "qmp.sock")
        self.args = [a.replace("{tmpdir}", self.tmpdir) for a in args]
        self.argv = bed.exec_argv(side, [binary, "--name", name, "--qmp", "unix:" + self.qmp_path]
                                  + self.args)
        self.stdout_path = os.path.join(self.tmpdir, "stdout.log")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.qmp = None
        self.exit_ok = False
        self.unexpected_exit = None
        self.killed = False
        h._instances.append(self)
        print("[netbed] start %s in %s: %s" % (name, bed.ns[side], " ".join(self.argv)), flush=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.tmpdir, preexec_fn=h._set_pdeathsig)
        try:
            self._connect(True, h.scaled(start_timeout))
        except BaseException:
            self.kill()
            raise
