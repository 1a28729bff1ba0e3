"""Integration-test harness for mig (Python 3 standard library only).

It starts migd processes in temporary directories, speaks QMP to them, knows the channel
hello of the migration port, and runs the cases of a test file with clear output:

    import mig_harness as h

    def case_tcp():
        with h.migrate_pair(h.guest_args("256M", workload="seq"), h.guest_args("256M")) as p:
            h.check_migrated(p, 256 * h.MiB)

    if __name__ == "__main__":
        h.main([case_tcp])

Exit status: 0 all cases passed, 1 something failed (a missing migd is a failure),
77 (meson's skip) when nothing failed but a case skipped; a skipping case prints
"SKIP-REASON: kernel lacks <feature>" so that CI can tell a missing kernel feature from a
test that skips for no good reason.

Environment: MIG_BUILD (build directory holding tools/migd; default <repo>/build),
MIG_TIMEOUT_SCALE (multiplies every timeout, for sanitizer builds), MIG_KEEP_TMP=1 (keep
the temporary directories of failed cases), MIG_TMPDIR (where they go; default /tmp).
Every wait in here is bounded in time, and every loop in count or time.
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
UNIT = 4 * KiB                  # x-integrity and x-guest-check count 4 KiB units
SKIP_EXIT = 77
TIMEOUT_SCALE = float(os.environ.get("MIG_TIMEOUT_SCALE", "1") or "1")

# Migration parameters for tests that want a migration to converge quickly: QEMU's default
# bandwidth limit (128 MiB/s) would make every test slow.
FAST_PARAMS = {"downtime-limit": 300, "max-bandwidth": 10 * GiB}

# The wire's numbers, as channels/wire.h has them (Python cannot include it): each NAME
# here that wire.h has as MIG_NAME must equal it, which tests/integration/test_wire_consts.py
# checks. Layouts in channels/wire.h; struct formats are big-endian (">").
HELLO_MAGIC = 0x4D494743        # "MIGC"
HELLO_REPLY = 0x4D494741        # "MIGA"
HELLO_FMT = ">IHHII16s"         # magic, version, type, index, flags, session: 32 bytes
HELLO_LEN = struct.calcsize(HELLO_FMT)
HELLO_REPLY_HDR_LEN = 10        # be32 magic, be32 status, be16 message length
FRAME_HDR_LEN = 8               # be32 payload length, be16 type, be16 flags
CHAN_MAIN, CHAN_MULTIFD, CHAN_PREEMPT = 1, 2, 3
PROTO_VERSION = 2

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


class HarnessError(Exception):
    """Something a test waited for did not happen (timeouts, bad replies, dead migd)."""


class MigdError(HarnessError):
    """A migd could not be started, or died."""


class QmpClosed(HarnessError):
    """migd closed the QMP connection."""


class QmpError(Exception):
    """An error reply: {"error": {"class": cls, "desc": desc}}."""

    def __init__(self, cls, desc):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc


class Skip(Exception):
    """Raise with the reason, e.g. Skip("kernel lacks free 2M huge pages")."""


class Deadline:
    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def wait_until(pred, timeout, what, interval=0.05):
    """Calls pred() until it returns something true (returned) or timeout seconds pass."""
    deadline = Deadline(scaled(timeout))
    while True:
        v = pred()
        if v:
            return v
        if deadline.expired():
            raise HarnessError("timed out after %.0f s waiting for %s" % (deadline.seconds, what))
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# Locations

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("MIG_BUILD") or os.path.join(repo_root(), "build")


def tool(name):
    """Path of build/tools/NAME; a clear HarnessError when it was not built."""
    path = os.path.join(build_dir(), "tools", name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise HarnessError("%s not found at %s (MIG_BUILD=%s): build the engine first "
                           "(ninja -C %s)" % (name, path, os.environ.get("MIG_BUILD", "unset"),
                                              build_dir()))
    return path


def _tmp_base():
    return os.environ.get("MIG_TMPDIR") or "/tmp"   # short: unix socket paths max 107 bytes


# --------------------------------------------------------------------------------------
# QMP client

class Qmp:
    """One QMP connection. Reads the greeting on connect and, unless negotiate=False,
    sends qmp_capabilities. Events that arrive while waiting for replies are kept in
    self.events; replies to nothing we asked in self.stray."""

    MAX_BUFFER = 64 * MiB
    MAX_MESSAGES = 100000       # per wait: bounds every read loop in count as well

    def __init__(self, path, timeout=10.0, negotiate=True):
        self.path = path
        self.buf = b""
        self.events = []
        self.stray = []
        self._next_id = 0
        self._decoder = json.JSONDecoder()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.greeting = self.read_message(timeout)
            if "QMP" not in self.greeting:
                raise HarnessError("no QMP greeting from %s: %r" % (path, self.greeting))
            if negotiate:
                self.cmd("qmp_capabilities")
        except BaseException:
            self.sock.close()
            raise

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw transport
    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.001, deadline.left()))
        try:
            chunk = self.sock.recv(256 * KiB)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError) as e:
            raise QmpClosed("QMP connection to %s reset: %s" % (self.path, e)) from None
        if not chunk:
            raise QmpClosed("migd closed the QMP connection %s" % self.path)
        self.buf += chunk
        if len(self.buf) > self.MAX_BUFFER:
            raise HarnessError("more than %d bytes of unparsable QMP output" % self.MAX_BUFFER)

    def _parse_one(self):
        """The next complete message in the buffer, or None if it needs more bytes."""
        text = self.buf.decode("utf-8", "surrogateescape")
        i = 0
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i == len(text):
            self.buf = b""
            return None
        try:
            msg, end = self._decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            # Incomplete, unless a line end follows: QMP messages are one line each.
            if "\n" in text[i:]:
                raise HarnessError("migd sent invalid JSON: %r" % text[i:i + 300]) from None
            return None
        self.buf = text[end:].encode("utf-8", "surrogateescape")
        if not isinstance(msg, dict):
            raise HarnessError("migd sent a QMP message that is not an object: %r" % (msg,))
        return msg

    def read_message(self, timeout=10.0):
        """The next message of any kind (reply, event, greeting)."""
        deadline = Deadline(timeout)
        for _ in range(self.MAX_MESSAGES):
            msg = self._parse_one()
            if msg is not None:
                return msg
            if deadline.expired():
                raise HarnessError("no QMP message from %s within %.1f s" % (self.path, timeout))
            self._fill(deadline)
        raise HarnessError("QMP read loop bound reached")

    def pump(self, timeout=0.0):
        """Reads what arrives within timeout; events go to self.events, replies to stray."""
        deadline = Deadline(timeout)
        for _ in range(self.MAX_MESSAGES):
            msg = self._parse_one()
            if msg is None:
                if deadline.expired():
                    return
                self._fill(deadline)
                continue
            (self.events if "event" in msg else self.stray).append(msg)

    # -- commands
    def execute(self, name, args=None, timeout=30.0):
        """Sends a command and returns the raw reply ({"return":..} or {"error":..})."""
        self._next_id += 1
        cid = "h%d" % self._next_id
        msg = {"execute": name, "id": cid}
        if args is not None:
            msg["arguments"] = args
        self.send_raw(json.dumps(msg).encode() + b"\r\n")
        return self.wait_reply(cid, timeout)

    def wait_reply(self, cid, timeout=30.0):
        deadline = Deadline(scaled(timeout))
        for _ in range(self.MAX_MESSAGES):
            msg = self.read_message(max(0.001, deadline.left()))
            if "event" in msg:
                self.events.append(msg)
            elif ("return" in msg or "error" in msg) and msg.get("id", cid) == cid:
                return msg      # a reply without id can only answer our one command
            else:
                self.stray.append(msg)
        raise HarnessError("QMP read loop bound reached")

    def cmd(self, name, args=None, timeout=30.0, **kwargs):
        """Runs a command; returns its "return" value or raises QmpError. Arguments come
        as a dict (QMP names have dashes) and/or keyword arguments."""
        a = dict(args or {})
        a.update(kwargs)
        reply = self.execute(name, a if (args is not None or kwargs) else None, timeout)
        if "error" in reply:
            err = reply["error"] if isinstance(reply["error"], dict) else {}
            raise QmpError(err.get("class"), err.get("desc"))
        return reply["return"]

    # -- events
    def take_events(self, name=None):
        """Removes and returns the events received so far (all, or those called name)."""
        self.pump(0.0)
        got = [e for e in self.events if name is None or e.get("event") == name]
        self.events = [e for e in self.events if not (name is None or e.get("event") == name)]
        return got

    def wait_event(self, name, timeout=10.0, match=None):
        """Waits for event name whose data satisfies match(data) (or any); removes and
        returns it."""
        deadline = Deadline(scaled(timeout))
        for _ in range(self.MAX_MESSAGES):
            for i, e in enumerate(self.events):
                if e.get("event") == name and (match is None or match(e.get("data") or {})):
                    return self.events.pop(i)
            if deadline.expired():
                seen = [(e.get("event"), e.get("data")) for e in self.events]
                raise HarnessError("no %s event within %.0f s; have %r" % (name, deadline.seconds, seen))
            self.pump(min(0.2, deadline.left()))
        raise HarnessError("event loop bound reached")


# --------------------------------------------------------------------------------------
# migd processes

_instances = []          # every Migd started by the running case (the runner cleans up)


def _set_pdeathsig():
    # In the child: die with the test, even when the test itself is SIGKILLed.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:   # noqa: BLE001 - best effort
        pass


def guest_args(size="256M", backend="anon", workload=None, hugepage_size=None, vcpus=None,
               seed=None, incoming=None):
    """migd command-line arguments for a guest."""
    args = ["-m", size, "--mem-backend", backend]
    if backend == "hugetlb":
        args += ["--hugepage-size", hugepage_size or "2M"]
    if vcpus is not None:
        args += ["--vcpus", str(vcpus)]
    if workload:
        args += ["--workload", workload]
    if seed is not None:
        args += ["--seed", str(seed)]
    if incoming:
        args += ["--incoming", incoming]
    return args


class Migd:
    """A migd process in a temporary directory of its own, with a QMP connection
    (self.qmp). "{tmpdir}" in args is replaced by that directory. Use as a context
    manager: the process is always killed and reaped."""

    def __init__(self, name, args=(), negotiate=True, start_timeout=30.0):
        binary = tool("migd")
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix="mig-%s-" % name, dir=_tmp_base())
        self.qmp_path = os.path.join(self.tmpdir, "qmp.sock")
        self.args = [a.replace("{tmpdir}", self.tmpdir) for a in args]
        self.argv = [binary, "--name", name, "--qmp", "unix:" + self.qmp_path] + self.args
        self.stdout_path = os.path.join(self.tmpdir, "stdout.log")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.qmp = None
        self.exit_ok = False            # set when the test expects this migd to exit
        self.unexpected_exit = None     # exit status if it died before we ended it
        self.killed = False             # we sent SIGKILL
        self.proc = None                # until Popen succeeds (a bad binary path raises)
        _instances.append(self)
        print("[harness] start %s: %s" % (name, " ".join(self.argv)), flush=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.tmpdir, preexec_fn=_set_pdeathsig)
        try:
            self._connect(negotiate, scaled(start_timeout))
        except BaseException:
            self.kill()
            raise

    def _connect(self, negotiate, timeout):
        deadline = Deadline(timeout)
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.unexpected_exit = rc
                raise MigdError("migd %s exited with status %s while starting\n%s"
                                % (self.name, rc, self.log_tail()))
            if os.path.exists(self.qmp_path):
                try:
                    self.qmp = Qmp(self.qmp_path, timeout=max(1.0, deadline.left()),
                                   negotiate=negotiate)
                    return
                except (ConnectionRefusedError, FileNotFoundError, QmpClosed) as e:
                    last = e
            if deadline.expired():
                raise MigdError("migd %s: QMP socket %s not answering after %.0f s (%s)\n%s"
                                % (self.name, self.qmp_path, timeout, last, self.log_tail()))
            time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def __repr__(self):
        return "Migd(%s, pid %s)" % (self.name, self.proc.pid)

    # -- lifecycle
    def alive(self):
        return self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def kill(self):
        """SIGKILL and reap (idempotent). Notes an exit that happened on its own."""
        if self.qmp:
            self.qmp.close()
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None:
            if not (self.killed or self.exit_ok) and self.unexpected_exit is None:
                self.unexpected_exit = rc
            return rc
        self.killed = True
        self.proc.kill()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise MigdError("migd %s (pid %d) not reaped 30 s after SIGKILL"
                            % (self.name, self.proc.pid)) from None

    def quit(self, timeout=10.0):
        """Clean shutdown with QMP quit; returns the exit status (killed if it hangs)."""
        self.exit_ok = True
        try:
            self.qmp.cmd("quit")
        except QmpClosed:
            pass
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise MigdError("migd %s did not exit within %.0f s of quit" % (self.name, timeout)) from None

    def expect_exit(self):
        """This migd may exit on its own (e.g. a destination whose migration failed)."""
        self.exit_ok = True

    def cleanup(self):
        self.kill()
        if os.path.isdir(self.tmpdir):
            for f in os.listdir(self.tmpdir):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.tmpdir, f))
            with contextlib.suppress(OSError):
                os.rmdir(self.tmpdir)

    # -- logs
    def _read_log(self, path, limit=None):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        if limit is not None:
            lines = text.splitlines()
            if len(lines) > limit:
                text = "\n".join(["... (%d lines before)" % (len(lines) - limit)] + lines[-limit:])
        return text

    def log_tail(self, lines=80):
        out = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = self._read_log(path, lines)
            if text.strip():
                out.append("----- migd %s %s (%s) -----\n%s" % (self.name, label, path, text.rstrip()))
        return "\n".join(out) if out else "(migd %s wrote nothing)" % self.name

    def sanitizer_report(self):
        """Lines of the logs that show a sanitizer finding."""
        found = []
        for path in (self.stdout_path, self.stderr_path):
            for line in self._read_log(path).splitlines():
                if any(m in line for m in SANITIZER_MARKERS):
                    found.append(line.strip())
        return found

    # -- QMP conveniences
    def _check_alive(self):
        if not self.alive():
            rc = self.proc.poll()
            if not self.exit_ok:
                self.unexpected_exit = rc
            raise MigdError("migd %s died (exit status %s)\n%s" % (self.name, rc, self.log_tail()))

    def cmd(self, name, args=None, timeout=30.0, **kwargs):
        self._check_alive()
        try:
            return self.qmp.cmd(name, args, timeout, **kwargs)
        except (QmpClosed, HarnessError):
            self._check_alive()
            raise

    def connect(self, negotiate=True, timeout=10.0):
        """A further QMP connection."""
        self._check_alive()
        return Qmp(self.qmp_path, timeout=scaled(timeout), negotiate=negotiate)

    def query_status(self):
        return self.cmd("query-status")

    def query_migrate(self):
        return self.cmd("query-migrate")

    def set_caps(self, caps):
        """caps: {"events": True, ...}"""
        if caps:
            self.cmd("migrate-set-capabilities",
                     capabilities=[{"capability": k, "state": bool(v)} for k, v in caps.items()])

    def set_params(self, params):
        if params:
            self.cmd("migrate-set-parameters", params)

    def wait_status(self, statuses, timeout=60.0, interval=0.05):
        """Polls query-migrate until its status is one of statuses (a name or a list);
        returns that query-migrate. A "failed" migration raises unless asked for."""
        if isinstance(statuses, str):
            statuses = [statuses]
        deadline = Deadline(scaled(timeout))
        info = {}
        while True:
            info = self.query_migrate()
            st = info.get("status")
            if st in statuses:
                return info
            if st == "failed":
                raise HarnessError("migration on %s failed: %s" % (self.name, info.get("error-desc")))
            if deadline.expired():
                raise HarnessError("migd %s: migration status %r, not %s, after %.0f s; query-migrate: %s"
                                   % (self.name, st, "/".join(statuses), deadline.seconds,
                                      json.dumps(info)))
            time.sleep(interval)

    def wait_running(self, running=True, timeout=10.0):
        """Polls query-status until "running" is as asked; returns query-status."""
        last = {}

        def check():
            nonlocal last
            last = self.query_status()
            return last if last.get("running") is running else None
        try:
            return wait_until(check, timeout, "%s running=%s" % (self.name, running))
        except HarnessError as e:
            raise HarnessError("%s; last query-status: %s" % (e, json.dumps(last))) from None

    def listen_uri(self, timeout=10.0):
        """The URI a destination listens on, from query-migrate's socket-address."""
        last = {}

        def check():
            nonlocal last
            last = self.query_migrate()
            addrs = last.get("socket-address") or []
            return uri_of(addrs[0]) if addrs else None
        try:
            return wait_until(check, timeout, "%s to report its socket-address" % self.name)
        except HarnessError as e:
            raise HarnessError("%s; last query-migrate: %s" % (e, json.dumps(last))) from None

    def wait_integrity(self, timeout=120.0):
        """Destination: waits until x-integrity has checked every unit; returns it."""
        last = {}

        def check():
            nonlocal last
            last = self.query_migrate().get("x-integrity") or {}
            total = last.get("total", 0)
            return last if total > 0 and last.get("checked", 0) >= total else None
        try:
            return wait_until(check, timeout, "%s's integrity sweep" % self.name, interval=0.1)
        except HarnessError as e:
            raise HarnessError("%s; last x-integrity: %s" % (e, json.dumps(last))) from None


def uri_of(addr):
    """A SocketAddress of query-migrate's socket-address as a migration URI."""
    if addr.get("type") == "inet":
        host = addr["host"]
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        return "tcp:%s:%s" % (host, addr["port"])
    if addr.get("type") == "unix":
        return "unix:%s" % addr["path"]
    raise HarnessError("unknown socket-address %r" % (addr,))


def tcp_port(uri):
    host, _, port = uri[len("tcp:"):].rpartition(":")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------------------
# Migrations

class Pair:
    def __init__(self, src, dst, uri, info):
        self.src, self.dst, self.uri, self.info = src, dst, uri, info


@contextlib.contextmanager
def migrate_pair(src_args, dst_args, caps=None, params=None, transport="tcp", timeout=120.0,
                 names=("src", "dst")):
    """Starts a source and a destination, sets capabilities (both sides; default: events)
    and parameters (source; default FAST_PARAMS), migrates and waits for "completed".
    Yields a Pair (src, dst, uri, info = the source's completed query-migrate). The
    destination listens on tcp:127.0.0.1:0 or a unix socket in its directory unless
    dst_args has --incoming. Both processes are killed on the way out."""
    caps = {"events": True} if caps is None else caps
    params = FAST_PARAMS if params is None else params
    dst_args = list(dst_args)
    if "--incoming" not in dst_args:
        if transport == "tcp":
            dst_args += ["--incoming", "tcp:127.0.0.1:0"]
        elif transport == "unix":
            dst_args += ["--incoming", "unix:{tmpdir}/mig.sock"]
        else:
            raise ValueError("transport %r" % transport)
    with Migd(names[0], src_args) as src, Migd(names[1], dst_args) as dst:
        src.set_caps(caps)
        dst.set_caps(caps)
        src.set_params(params)
        uri = dst.listen_uri()
        src.cmd("migrate", uri=uri)
        info = src.wait_status("completed", timeout)
        yield Pair(src, dst, uri, info)


def migrate_via_postcopy(src, dst, settle=0.3):
    """Migrates src to dst slowly enough that precopy cannot finish by itself (64 MiB/s,
    downtime-limit 1 ms), switches to postcopy after settle seconds, then lifts the
    bandwidth cap. postcopy-ram must be set on both sides. Returns the source's completed
    query-migrate."""
    src.set_params({"max-bandwidth": 64 * MiB, "downtime-limit": 1})
    src.cmd("migrate", uri=dst.listen_uri())
    src.wait_status("active", timeout=30)
    time.sleep(settle)
    src.cmd("migrate-start-postcopy")
    src.wait_status(["postcopy-active", "completed"], timeout=60)
    src.set_params({"max-bandwidth": 0})
    return src.wait_status("completed", timeout=120)


def anon_huge_bytes(m):
    """AnonHugePages of migd m: its guest's memory on transparent huge pages (--mem-thp)."""
    with open("/proc/%d/smaps_rollup" % m.pid()) as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * KiB
    raise AssertionError("no AnonHugePages in /proc/%d/smaps_rollup" % m.pid())


def require_thp(m, nbytes):
    """Skips when the kernel offers no transparent huge pages to madvise (a missing
    kernel feature); otherwise at least a quarter of m's guest of nbytes must be on
    them (MADV_HUGEPAGE compacts on fault, so a shortfall is a failure, not a skip).
    Returns the bytes that are."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            mode = f.read()
    except OSError:
        mode = ""
    if "[always]" not in mode and "[madvise]" not in mode:
        raise Skip("kernel lacks transparent huge pages for madvise "
                   "(/sys/kernel/mm/transparent_hugepage/enabled: %r)" % mode.strip())
    huge = anon_huge_bytes(m)
    check(huge >= nbytes // 4, "only %d MiB of the %d MiB guest is on transparent huge pages "
          "(MADV_HUGEPAGE; memory too fragmented?)" % (huge // MiB, nbytes // MiB))
    return huge


def check_migrated(pair_or_src, dst=None, info=None, size=None, integrity_timeout=120.0):
    """The checks every successful migration must pass: source completed and
    postmigrate, destination running, ram.total == size, downtime reported, and the
    destination's integrity sweep complete with 0 failures. Returns x-integrity."""
    if isinstance(pair_or_src, Pair):
        src, dst, info = pair_or_src.src, pair_or_src.dst, pair_or_src.info
    else:
        src = pair_or_src
    check(info.get("status") == "completed", "source status %r" % info.get("status"))
    ram = info.get("ram") or {}
    if size is not None:
        check(ram.get("total") == size, "ram.total %r != %d" % (ram.get("total"), size))
    check(isinstance(info.get("downtime"), int) and info["downtime"] >= 0,
          "downtime missing from completed query-migrate: %s" % json.dumps(info))
    dst_status = dst.wait_running(True)
    check(dst_status.get("status") == "running", "destination status %r" % dst_status.get("status"))
    src_status = src.wait_running(False)
    check(src_status.get("status") == "postmigrate", "source status %r" % src_status.get("status"))
    integ = dst.wait_integrity(integrity_timeout)
    check(integ.get("failed") == 0, "destination integrity: %s" % json.dumps(integ))
    check(integ.get("checked") == integ.get("total"), "x-integrity %s" % json.dumps(integ))
    if size is not None:
        check(integ.get("total") == size // UNIT,
              "x-integrity total %r != %d units of 4 KiB" % (integ.get("total"), size // UNIT))
    print("[harness] migrated: total-time %s ms, downtime %s ms, transferred %s, integrity %s"
          % (info.get("total-time"), info.get("downtime"), ram.get("transferred"),
             json.dumps(integ)), flush=True)
    return integ


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def parse_size(s):
    units = {"K": KiB, "M": MiB, "G": GiB}
    s = s.strip().upper()
    if s and s[-1] in units:
        return int(s[:-1]) * units[s[-1]]
    return int(s)


# --------------------------------------------------------------------------------------
# Host

def require_hugepages(count, size_kb=2048):
    """Makes sure count free huge pages of size_kb exist (raising vm.nr_hugepages if
    needed); raises Skip("kernel lacks free 2M huge pages") otherwise."""
    label = "%dM" % (size_kb // 1024) if size_kb < 1 << 20 else "%dG" % (size_kb >> 20)
    d = "/sys/kernel/mm/hugepages/hugepages-%dkB" % size_kb
    if not os.path.isdir(d):
        raise Skip("kernel lacks %s huge pages" % label)

    def read(name):
        with open(os.path.join(d, name)) as f:
            return int(f.read())

    def avail():
        return read("free_hugepages") - read("resv_hugepages")
    have = avail()
    if have < count:
        with contextlib.suppress(OSError):
            with open("/proc/sys/vm/compact_memory", "w") as f:
                f.write("1")
        with contextlib.suppress(OSError):
            with open(os.path.join(d, "nr_hugepages"), "w") as f:
                f.write(str(read("nr_hugepages") + count - have))
        have = avail()
    if have < count:
        raise Skip("kernel lacks free %s huge pages (need %d, have %d)" % (label, count, have))


# --------------------------------------------------------------------------------------
# Migration-port peers

def hello(magic=HELLO_MAGIC, version=PROTO_VERSION, chan_type=CHAN_MAIN, index=0, flags=0,
          session=b"\0" * 16):
    return struct.pack(HELLO_FMT, magic, version, chan_type, index, flags, session)


def read_hello_reply(sock, timeout=5.0):
    """Reads a hello reply: (magic, status, message); None if the peer closed (or reset)
    without sending anything. Partial replies raise."""
    deadline = Deadline(scaled(timeout))
    data = b""
    while True:
        if len(data) >= HELLO_REPLY_HDR_LEN:
            magic, status, msglen = struct.unpack(">IIH", data[:HELLO_REPLY_HDR_LEN])
            if len(data) >= HELLO_REPLY_HDR_LEN + msglen:
                return magic, status, data[HELLO_REPLY_HDR_LEN:HELLO_REPLY_HDR_LEN + msglen].decode("utf-8", "replace")
        if deadline.expired():
            raise HarnessError("incomplete hello reply after %.0f s: %r" % (deadline.seconds, data))
        sock.settimeout(max(0.001, deadline.left()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if not data:
                return None
            raise HarnessError("connection closed in the middle of a hello reply: %r" % data)
        data += chunk


def expect_hello_refused(uri, hello_bytes, want, what):
    """Sends one hello to a destination's tcp URI and checks the reply's status."""
    with socket.create_connection(tcp_port(uri), timeout=scaled(5)) as s:
        s.sendall(hello_bytes)
        reply = read_hello_reply(s)
    check(reply is not None, "%s: closed without a reply" % what)
    check(reply[1] == want, "%s: status %d (%s), expected %d" % (what, reply[1], reply[2], want))
    print("%s: refused with status %d (%s)" % (what, reply[1], reply[2]))


def expect_listener_closed(uri, timeout=10):
    """A destination closes its listener once every channel of the bound session is in:
    a connection to uri must be refused (bounded wait)."""
    def refused():
        try:
            socket.create_connection(tcp_port(uri), timeout=scaled(2)).close()
            return False
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # caught in the backlog of a listener that closed meanwhile: look again
            return False
    wait_until(refused, timeout, "the listener on %s to close once every channel is in" % uri)


# --------------------------------------------------------------------------------------
# The proxy the tests break migrations with

F_COMPLETE, F_PC_RUN, F_PC_RECOVER, F_NOP, F_GO = 6, 10, 12, 14, 15
F_PC_END, F_MF_SYNC, F_MF_DEV = 11, 0x11, 0x13
F_RP_RUNNING, F_RP_READY = 0x41, 0x4D
F_BAD_TYPE = 0x7E7E     # what a corrupted frame's type becomes: no frame has it (as migbench's
                        # FPROXY_BAD_TYPE, tools/bench/faultproxy.h)
FRAME_NAMES = {F_COMPLETE: "COMPLETE", F_PC_RUN: "PC_RUN", F_PC_RECOVER: "PC_RECOVER", F_GO: "GO",
               F_RP_RUNNING: "RP_RUNNING", F_RP_READY: "RP_READY"}


class Proxy:
    """A TCP proxy between a source and a destination's migration port. Every
    connection is forwarded and known by its hello's (type, index), so that one channel
    can be cut alone (cut_channel). The main channel (the first connection whose hello
    says type 1) is parsed frame by frame in both directions; right after the whole
    frame of type cut_after has gone through (either direction) the proxy acts on it, by
    mode:
      "cut": nothing more is forwarded either way, both peers get a FIN, and what they
             send after it is read and dropped (a cut link loses what is sent into it);
      "blackhole": nothing more is forwarded, both connections stay open and silent (a
             peer that stopped);
      "reset": every connection ends at once with a RST both ways (reset() does it now);
      "hold": nothing more is forwarded on any connection until release() (a fault
             goes in meanwhile at an exact moment), then everything flows on.
    corrupt_at: the main channel's frame of that type from the source goes on with an
    unknown type (a malformed frame); corrupt_next() does that to its next frame.
    self.cut is set once the proxy acted, self.corrupted once a frame was corrupted;
    self.seen lists the frame types forwarded on the main channel, in order.
    raw: forward bytes only, reading nothing (channels inside TLS, whose hellos and
    frames the proxy cannot see); close() still cuts every connection.
    mute=(ctype, pred): every channel of that type is parsed frame by frame from the
    source; from the first frame for which pred(ftype, counts) is true (counts: frame
    type -> how many went through on that channel) nothing more reaches the destination,
    not even the source's FIN: what the source sends is read and dropped, so it never
    blocks, and the destination sees a live connection go silent (a peer stopped on that
    channel alone). self.muted is set then; self.seen_at[ftype] is when the main
    channel's first frame of that type went through (time.monotonic()).
    Bounded: every socket has a timeout or is shut down by close(), and close() joins
    the threads. A socket is always shut down before it is closed: close() alone
    neither wakes a thread blocked in recv on it nor ends the connection."""

    def __init__(self, upstream_uri, cut_after=None, mode="cut", corrupt_at=None, raw=False, mute=None):
        import threading
        self.threading = threading
        self.raw = raw
        self.upstream = tcp_port(upstream_uri)
        self.cut_after = cut_after
        self.mode = mode
        self.corrupt_at = corrupt_at
        self.mute = mute
        self.muted = threading.Event()
        self.seen_at = {}
        self._corrupt_next = False
        self.flowing = threading.Event()    # cleared while the proxy holds
        self.flowing.set()
        self.lock = threading.Lock()
        self.cut = threading.Event()
        self.corrupted = threading.Event()
        self.closed = threading.Event()
        self.seen = []
        self.socks = []           # under socks_lock (self.lock is held across sends)
        self.socks_lock = threading.Lock()
        self.main_taken = False
        self.conns = {}           # (type, index) -> (client, upstream), the last of each
        self.threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(32)
        self.lsock.settimeout(0.2)
        self.uri = "tcp:127.0.0.1:%d" % self.lsock.getsockname()[1]
        self._spawn(self._accept_loop)

    def _spawn(self, fn, *args):
        t = self.threading.Thread(target=fn, args=args, name="proxy", daemon=True)
        t.start()
        self.threads.append(t)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        with self.socks_lock:
            self.closed.set()
            socks = list(self.socks)
        with contextlib.suppress(OSError):
            self.lsock.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        i = 0
        while i < len(self.threads):    # an opener may have started pumps meanwhile; none after
            self.threads[i].join(timeout=5)
            i += 1

    def cut_channel(self, ctype, index):
        """Ends one connection both ways with a FIN, the others forwarded on."""
        with self.lock:
            c, u = self.conns[(ctype, index)]
        for s in (c, u):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)    # a pump may have shut it already

    def reset(self):
        """Every connection ends now with a RST both ways."""
        with self.lock:
            self._rst_all()

    def release(self):
        self.flowing.set()

    def _wait_flowing(self):
        while not self.flowing.wait(0.1):
            if self.closed.is_set():
                return

    def corrupt_next(self):
        with self.lock:
            self._corrupt_next = True

    def wait_cut(self, timeout):
        if not self.cut.wait(scaled(timeout)):
            raise HarnessError("the proxy never saw %s (saw %s)"
                               % (FRAME_NAMES.get(self.cut_after, self.cut_after), self.names()))

    def wait_corrupted(self, timeout):
        if not self.corrupted.wait(scaled(timeout)):
            raise HarnessError("the proxy corrupted no frame (saw %s)" % self.names())

    def names(self):
        return [FRAME_NAMES[t] for t in self.seen if t in FRAME_NAMES]

    def _keep(self, s):
        """Registers a socket for close(); FALSE (and closes it) once the proxy closed."""
        with self.socks_lock:
            if not self.closed.is_set():
                self.socks.append(s)
                return True
        with contextlib.suppress(OSError):
            s.close()
        return False

    def _accept_loop(self):
        while not self.closed.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._keep(c):
                # each connection's hello on its own thread: a source may say hello on
                # one channel only once another is answered (a recovery's channels wait
                # for the main one's), so a hello not yet sent holds up no accept
                self._spawn(self._open, c)

    def _open(self, c):
        try:
            u = socket.create_connection(self.upstream, timeout=scaled(5))
        except OSError:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            return
        if not self._keep(u):
            return
        for s in (c, u):
            s.settimeout(None)      # close() shuts them down
        if self.raw:
            self._spawn(self._raw, c, u)
            self._spawn(self._raw, u, c)
            return
        hello_bytes = self._read_exact(c, HELLO_LEN)
        if hello_bytes is None:
            return
        with contextlib.suppress(OSError):
            u.sendall(hello_bytes)
        _, _, ctype, index, _, _ = struct.unpack(HELLO_FMT, hello_bytes)
        with self.lock:
            self.conns[(ctype, index)] = (c, u)
            is_main = ctype == CHAN_MAIN and not self.main_taken
            self.main_taken = self.main_taken or is_main
        if is_main:
            self._spawn(self._frames, c, u, 0, True)       # source -> destination
            self._spawn(self._frames, u, c, 10, False)     # the reply, then the return path
        elif self.mute and ctype == self.mute[0]:
            self._spawn(self._muting, c, u, self.mute[1])
            self._spawn(self._raw, u, c)
        else:
            self._spawn(self._raw, c, u)
            self._spawn(self._raw, u, c)

    def _muting(self, a, b, pred):
        counts = {}
        while True:
            hdr = self._read_exact(a, FRAME_HDR_LEN)
            if hdr is None:
                return
            length, ftype, _ = struct.unpack(">IHH", hdr)
            if pred(ftype, counts):
                self.muted.set()
                self._drop(a)       # b stays open and hears nothing more
                return
            parts, left = [hdr], length
            while left > 0:
                chunk = self._read_exact(a, min(left, 256 * KiB))
                if chunk is None:
                    return
                parts.append(chunk)
                left -= len(chunk)
            try:
                b.sendall(b"".join(parts))
            except OSError:
                return
            counts[ftype] = counts.get(ftype, 0) + 1

    @staticmethod
    def _read_exact(s, n):
        data = b""
        while len(data) < n:
            try:
                chunk = s.recv(n - len(data))
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _raw(self, a, b):
        while True:
            try:
                chunk = a.recv(256 * KiB)
                if not chunk:
                    b.shutdown(socket.SHUT_WR)
                    return
                self._wait_flowing()
                b.sendall(chunk)
            except OSError:
                return

    def _drop(self, a):
        while True:
            try:
                if not a.recv(256 * KiB):
                    return
            except OSError:
                return

    def _rst_all(self):
        # under self.lock. SHUT_RD sends nothing but wakes the socket's pump; a close
        # with a zero linger then sends the RST
        for s in list(self.socks):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RD)
            with contextlib.suppress(OSError):
                s.close()

    def _do_cut(self, a, b):
        # under self.lock: nothing is forwarded from here on, either way
        self.cut.set()
        if self.mode == "cut":
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
        elif self.mode == "reset":
            self._rst_all()
        elif self.mode == "hold":
            self.flowing.clear()

    def _frames(self, a, b, skip, to_dst):
        if skip:    # the hello reply: its head + its message
            head = self._read_exact(a, HELLO_REPLY_HDR_LEN)
            if head is None:
                return
            rest = self._read_exact(a, struct.unpack(">IIH", head)[2])
            if rest is None:
                return
            with contextlib.suppress(OSError):
                b.sendall(head + rest)
        while True:
            hdr = self._read_exact(a, FRAME_HDR_LEN)
            if hdr is None:
                break
            length, ftype, _ = struct.unpack(">IHH", hdr)
            with self.lock:
                bad = to_dst and (self._corrupt_next or ftype == self.corrupt_at)
                self._corrupt_next = self._corrupt_next and not bad
            if bad:
                hdr = hdr[:4] + struct.pack(">H", F_BAD_TYPE) + hdr[6:]
            parts = [hdr]
            left = length
            while left > 0:
                try:
                    chunk = a.recv(min(left, 256 * KiB))
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                parts.append(chunk)
                left -= len(chunk)
            self._wait_flowing()
            with self.lock:
                if self.cut.is_set() and self.mode != "hold":
                    break
                try:
                    b.sendall(b"".join(parts))
                except OSError:
                    break
                if bad:
                    self.corrupted.set()
                if left:
                    break
                self.seen.append(ftype)
                self.seen_at.setdefault(ftype, time.monotonic())
                if ftype == self.cut_after and not self.cut.is_set():
                    self._do_cut(a, b)
                    if self.mode != "hold":
                        break
        if self.cut.is_set() and self.mode != "hold":
            self._drop(a)       # a cut link loses what is sent into it
        else:
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------------------------
# Runner

def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)     # unwinds: context managers kill their migd


def _cleanup_all(dump_logs):
    global _instances
    problems = []
    for m in _instances:
        try:
            m.kill()
        except Exception as e:   # noqa: BLE001
            problems.append(str(e))
        if m.unexpected_exit is not None:
            problems.append("migd %s exited on its own with status %s" % (m.name, m.unexpected_exit))
        san = m.sanitizer_report()
        if san:
            problems.append("migd %s: sanitizer report:\n  %s" % (m.name, "\n  ".join(san[:20])))
    if problems or dump_logs:
        for m in _instances:
            print(m.log_tail(200), flush=True)
    keep = (problems or dump_logs) and os.environ.get("MIG_KEEP_TMP") == "1"
    for m in _instances:
        if keep:
            print("[harness] kept %s" % m.tmpdir)
        else:
            m.cleanup()
    _instances = []
    return problems


def main(cases, argv=None):
    """Runs the cases (functions, or (name, function) pairs) in order and exits. argv
    (default sys.argv[1:]) may name substrings of case names to run only those."""
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    argv = sys.argv[1:] if argv is None else argv
    named = []
    for c in cases:
        if isinstance(c, tuple):
            named.append(c)
        else:
            named.append((c.__name__[5:] if c.__name__.startswith("case_") else c.__name__, c))
    if argv:
        named = [(n, f) for n, f in named if any(a in n for a in argv)]

    try:
        tool("migd")
    except HarnessError as e:
        print("FAIL: %s" % e, flush=True)
        print("0 passed, %d failed" % len(named), flush=True)
        sys.exit(1)

    passed, failed, skipped = [], [], []
    for name, fn in named:
        print("=== %s" % name, flush=True)
        t0 = time.monotonic()
        outcome, detail = "PASS", None
        try:
            fn()
        except Skip as s:
            outcome, detail = "SKIP", str(s)
        except (Exception, SystemExit, KeyboardInterrupt) as e:   # noqa: BLE001
            outcome, detail = "FAIL", traceback.format_exc()
            if isinstance(e, (SystemExit, KeyboardInterrupt)):
                _cleanup_all(True)
                print("--- FAIL %s: interrupted\n%s" % (name, detail), flush=True)
                raise
        problems = _cleanup_all(outcome == "FAIL")
        if problems and outcome != "FAIL":
            outcome, detail = "FAIL", "\n".join(problems)
        elif problems:
            detail += "\n" + "\n".join(problems)
        dt = time.monotonic() - t0
        if outcome == "PASS":
            passed.append(name)
            print("--- PASS %s (%.1f s)" % (name, dt), flush=True)
        elif outcome == "SKIP":
            skipped.append(name)
            print("--- SKIP %s (%.1f s)\nSKIP-REASON: %s" % (name, dt, detail), flush=True)
        else:
            failed.append(name)
            print("--- FAIL %s (%.1f s)\n%s" % (name, dt, detail), flush=True)

    line = "%d passed, %d failed" % (len(passed), len(failed))
    if skipped:
        line += ", %d skipped" % len(skipped)
    print(line, flush=True)
    if failed:
        print("failed: " + ", ".join(failed), flush=True)
        sys.exit(1)
    if not named:
        print("no case matched", flush=True)
        sys.exit(1)
    sys.exit(SKIP_EXIT if skipped else 0)
