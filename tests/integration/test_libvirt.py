#!/usr/bin/env python3
"""libvirt's migration conversation with migd, replayed command by command.

Written from libvirt's qemu driver (src/qemu/qemu_migration.c, qemu_migration_params.c,
qemu_monitor_json.c), not from mig's documentation: the monitor speaks as libvirt's does
(CRLF lines, "libvirt-N" ids, file descriptors with SCM_RIGHTS), every capability libvirt
knows and the process lists gets an explicit state, and every query-migrate reply goes
through libvirt's parser rules (qemuMonitorJSONGetMigrationStatsReply), where a reply
that would make libvirt abort fails the case.

The phases, as libvirt runs them for `virsh migrate --live [--postcopy ...]`:
  process start (both): query-status, query-migrate-capabilities, events on;
  Begin (source):       query-migrate for blocked-reasons;
  Prepare (dest, -S, -incoming defer): save parameters, set capabilities
                        (late-block-activate on), set parameters, migrate-incoming;
  Perform (source):     save parameters, set capabilities (pause-before-switchover on),
                        set parameters, migrate; migrate-start-postcopy at the second
                        MIGRATION_PASS; migrate-continue at pre-switchover; wait for
                        postcopy-active or completed, then STOP; query-migrate;
  Finish (dest):        wait for postcopy-active/completed, cont, wait for completed,
                        reset capabilities and parameters;
  Confirm (source):     wait for completed, reset.
Cases: -S (prelaunch); precopy; postcopy + preempt + multifd; cancel (while active,
and in pre-switchover); fd: (a socketpair passed with getfd to both sides); a second
migrate-incoming after a failed one; exit-on-error true and false; migrate_cancel on the
destination; postcopy recovery (virsh migrate --postcopy-resume); the same precopy
conversation through QEMU's own qemu.qmp library (QEMU 7.2's, fetched from Debian's qemu
source package by the test setup).
"""
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402
from test_recovery import check_paused, check_recovery_events  # noqa: E402

GUEST = ["-m", "32M", "--mem-backend", "anon"]
SIZE = 32 * h.MiB

# libvirt's qemuMigrationCapability names (the ones it may put in a
# migrate-set-capabilities); it only ever sends those the process listed.
LIBVIRT_CAPS = ("xbzrle", "auto-converge", "rdma-pin-all", "events", "postcopy-ram",
                "compress", "pause-before-switchover", "late-block-activate", "multifd",
                "dirty-bitmaps", "return-path", "zero-copy-send", "postcopy-preempt",
                "switchover-ack", "mapped-ram")
# qemuMigrationParam names libvirt saves in Prepare/Perform and restores at the end.
LIBVIRT_PARAMS = ("compress-level", "compress-threads", "decompress-threads",
                  "cpu-throttle-initial", "cpu-throttle-increment", "tls-creds",
                  "tls-hostname", "max-bandwidth", "downtime-limit", "block-incremental",
                  "xbzrle-cache-size", "max-postcopy-bandwidth", "multifd-channels",
                  "multifd-compression", "multifd-zlib-level", "multifd-zstd-level",
                  "avail-switchover-bandwidth")
# qemuMonitorMigrationStatus: a status outside this list fails the call.
LIBVIRT_STATUSES = ("inactive", "setup", "active", "pre-switchover", "device",
                    "postcopy-active", "postcopy-paused", "postcopy-recover-setup",
                    "postcopy-recover", "completed", "failed", "cancelling", "cancelled",
                    "wait-unplug")
# the statuses in which libvirt reads ram and then requires its three members
LIBVIRT_RAM_STATUSES = ("active", "postcopy-active", "postcopy-paused", "postcopy-recover",
                        "completed", "cancelling", "pre-switchover", "device")
UNLIMITED = 9223372036853727232     # libvirt's "unlimited" max-bandwidth (INT64_MAX rounded to MiB)


def libvirt_parse_migrate(reply, where):
    """qemuMonitorJSONGetMigrationStatsReply: raises where libvirt would fail the call."""
    h.check(isinstance(reply, dict), "%s: query-migrate reply is not an object" % where)
    status = reply.get("status")
    if status is None:
        return "inactive"           # no status at all means no migration
    h.check(status in LIBVIRT_STATUSES, "%s: unexpected migration status %r" % (where, status))
    if status in LIBVIRT_RAM_STATUSES and "ram" in reply:
        for k in ("transferred", "remaining", "total"):
            v = reply["ram"].get(k)
            h.check(isinstance(v, int) and v >= 0,
                    "%s: migration was %s, but RAM '%s' data was missing: %s"
                    % (where, status, k, json.dumps(reply)))
        if "mbps" in reply["ram"]:
            h.check(isinstance(reply["ram"]["mbps"], (int, float)), "%s: ram.mbps %r" % (where, reply["ram"]["mbps"]))
    for k in ("total-time", "downtime", "setup-time", "expected-downtime"):
        if k in reply:
            h.check(isinstance(reply[k], int), "%s: %s is %r" % (where, k, reply[k]))
    blocked = reply.get("blocked-reasons")
    h.check(blocked is None or (isinstance(blocked, list) and blocked),
            "%s: blocked-reasons %r (QEMU omits it when empty)" % (where, blocked))
    return status


def reply_shape(reply):
    """What a reply says without its figures: the error, or the members (and ram's, and
    status), so two implementations' replies compare."""
    if "error" in reply:
        return "error"
    r = reply.get("return")
    if not isinstance(r, dict):
        return type(r).__name__
    parts = sorted(k for k in r if not k.startswith("x-"))
    if isinstance(r.get("ram"), dict):
        parts.append("ram{%s}" % ",".join(sorted(k for k in r["ram"] if not k.startswith("x-"))))
    if "status" in r:
        parts.append("status=%s" % r["status"])
    return " ".join(parts)


class Monitor:
    """libvirt's QMP monitor (qemu_monitor.c / qemu_monitor_json.c): reads lines split
    on CRLF, ignores the greeting, sends qmp_capabilities without arguments, numbers its
    commands "libvirt-N", queues events while it waits for a reply."""

    def __init__(self, path, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(h.scaled(10))
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.serial = 0
        self.events = []
        self.sent = []              # every command, for the log of a failure
        self.transcript = []        # (command, the reply's shape): tools/libvirt-qemu-control
        greeting = self._read_line(10)
        h.check("QMP" in greeting, "%s: no QMP greeting: %r" % (name, greeting))
        self.cmd("qmp_capabilities")

    def close(self):
        self.sock.close()

    def _read_line(self, timeout):
        deadline = h.Deadline(h.scaled(timeout))
        while b"\r\n" not in self.buf:
            h.check(not deadline.expired(), "%s: nothing from the monitor in %.0f s" % (self.name, timeout))
            self.sock.settimeout(max(0.01, deadline.left()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            h.check(chunk, "%s: monitor closed" % self.name)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return json.loads(line)

    def execute(self, name, args=None, fds=None, timeout=30):
        """The raw reply; fds go with the command's bytes, as libvirt's qemuMonitorIOWrite
        sends them with sendmsg."""
        self.serial += 1
        cid = "libvirt-%d" % self.serial
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        msg["id"] = cid
        data = json.dumps(msg, separators=(",", ":")).encode() + b"\r\n"
        self.sent.append(data)
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)
        deadline = h.Deadline(h.scaled(timeout))
        for _ in range(100000):
            h.check(not deadline.expired(), "%s: no reply to %s" % (self.name, name))
            m = self._read_line(max(0.1, deadline.left()))
            if "event" in m:
                h.check(isinstance(m.get("timestamp"), dict)
                        and set(m["timestamp"]) == {"seconds", "microseconds"},
                        "%s: event without QEMU's timestamp: %r" % (self.name, m))
                self.events.append(m)
            elif m.get("id") == cid:
                self.transcript.append((name, reply_shape(m)))
                return m
        raise h.HarnessError("monitor loop bound")

    def cmd(self, name, args=None, fds=None, timeout=30):
        r = self.execute(name, args, fds, timeout)
        if "error" in r:
            raise h.QmpError(r["error"].get("class"), "%s: %s: %s" % (self.name, name, r["error"].get("desc")))
        return r["return"]

    def pump(self, timeout):
        """Reads events for up to timeout seconds."""
        deadline = h.Deadline(timeout)
        while not deadline.expired():
            if b"\r\n" in self.buf:
                m = self._read_line(1)
                if "event" in m:
                    self.events.append(m)
                continue
            self.sock.settimeout(max(0.01, deadline.left()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return
            if not chunk:
                self.eof = True         # what came before it is still read
                return
            self.buf += chunk

    def take(self, name, match=None):
        for i, e in enumerate(self.events):
            if e["event"] == name and (match is None or match(e.get("data") or {})):
                return self.events.pop(i)
        return None

    def wait_event(self, name, timeout=30, match=None):
        deadline = h.Deadline(h.scaled(timeout))
        while True:
            e = self.take(name, match)
            if e:
                return e
            h.check(not deadline.expired() and not self.eof, "%s: no %s event in %.0f s%s; have %s"
                    % (self.name, name, timeout, " (monitor closed)" if self.eof else "",
                       [(x["event"], x.get("data")) for x in self.events]))
            self.pump(0.2)

    def query_migrate(self):
        r = self.cmd("query-migrate")
        libvirt_parse_migrate(r, self.name)
        return r


def process_start(mon, want_runstate):
    """qemuProcessLaunch + qemuMigrationCapsCheck: run state, capabilities, events on."""
    st = mon.cmd("query-status")
    h.check(st["status"] == want_runstate and st["running"] is (want_runstate == "running"),
            "%s: query-status %s, expected %s" % (mon.name, st, want_runstate))
    listed = [c["capability"] for c in mon.cmd("query-migrate-capabilities")]
    mon.cmd("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
    return listed


def set_caps(mon, listed, on):
    """qemuMigrationParamsApply: every capability libvirt knows and the process listed,
    each with its state (events stays on: libvirt keeps it on always); refusing any of
    them aborts the migration."""
    on = set(on) | {"events"}
    caps = [{"capability": c, "state": c in on} for c in LIBVIRT_CAPS if c in listed]
    mon.cmd("migrate-set-capabilities", {"capabilities": caps})


def saved_params(mon):
    params = mon.cmd("query-migrate-parameters")
    return {k: v for k, v in params.items() if k in LIBVIRT_PARAMS}


def reset(mon, listed, saved):
    """qemuMigrationParamsReset: the capabilities as they were when the process started
    (events alone on), the saved parameters back."""
    set_caps(mon, listed, ())
    mon.cmd("migrate-set-parameters", saved)


class Conversation:
    """One source and one destination driven as libvirt does."""

    def __init__(self, src, dst, caps=(), params=None, uri=None, size=SIZE):
        self.src, self.dst = src, dst
        self.size = size            # the guest's RAM, when known exactly
        self.caps = set(caps)
        self.params = params or {}
        self.uri = uri
        self.ms = Monitor(src.qmp_path, "src")
        self.md = Monitor(dst.qmp_path, "dst")
        self.src_caps = process_start(self.ms, "running")
        self.dst_caps = process_start(self.md, "inmigrate")

    def begin(self):
        info = self.ms.query_migrate()
        h.check("blocked-reasons" not in info, "source blocked: %s" % info.get("blocked-reasons"))

    def prepare(self, incoming="tcp:127.0.0.1:0", fds=None):
        md = self.md
        self.dst_saved = saved_params(md)
        set_caps(md, self.dst_caps, self.caps | {"late-block-activate"})
        md.cmd("migrate-set-parameters", dict({"tls-creds": "", "tls-hostname": ""}, **self.params))
        if fds:
            md.cmd("getfd", {"fdname": "migrate"}, fds=fds)
        md.cmd("migrate-incoming", {"uri": incoming})
        if self.uri is None:
            info = md.query_migrate()
            # QEMU 7.2 has no status until the source connects, later ones say setup
            h.check(info.get("status") in (None, "setup"), "destination after migrate-incoming: %s" % info)
            # libvirt picks the port itself; port 0 and socket-address keep tests apart
            self.uri = h.uri_of(info["socket-address"][0])
        st = md.cmd("query-status")
        h.check(st["status"] == "inmigrate", "destination run state %s" % st)

    def perform(self, postcopy=False, cancel_at=None, fds=None):
        """Returns the status Perform ended in (postcopy-active, completed, cancelled)."""
        ms = self.ms
        self.src_saved = saved_params(ms)
        set_caps(ms, self.src_caps, self.caps | {"pause-before-switchover"})
        ms.cmd("migrate-set-parameters",
               dict({"tls-creds": "", "tls-hostname": "", "max-bandwidth": UNLIMITED}, **self.params))
        if fds:
            ms.cmd("getfd", {"fdname": "migrate"}, fds=fds)
        ms.cmd("migrate", {"detach": True, "resume": False, "uri": self.uri})
        started_postcopy = False
        seen = []
        deadline = h.Deadline(h.scaled(60))
        while True:
            h.check(not deadline.expired(), "Perform did not end in 60 s; statuses %s" % seen)
            ev = ms.take("MIGRATION")
            if ev is None:
                p = ms.take("MIGRATION_PASS")
                if p and postcopy and not started_postcopy and p["data"]["pass"] >= 2:
                    ms.cmd("migrate-start-postcopy")
                    started_postcopy = True
                if p is None:
                    ms.pump(0.2)
                    ms.query_migrate()          # libvirt's job-info polling
                continue
            st = ev["data"]["status"]
            seen.append(st)
            if cancel_at and st == cancel_at:
                ms.cmd("migrate_cancel")
                cancel_at = None
            elif st == "pre-switchover":
                info = ms.query_migrate()
                h.check(info["status"] in ("pre-switchover", "cancelling"), "pre-switchover query: %s" % info)
                run = ms.cmd("query-status")
                h.check(not run["running"], "source runs in pre-switchover: %s" % run)
                ms.cmd("migrate-continue", {"state": "pre-switchover"})
            elif st in ("postcopy-active", "completed", "cancelled"):
                break
            h.check(st != "failed", "migration failed: %s" % ms.query_migrate().get("error-desc"))
        if st != "cancelled":
            ms.wait_event("STOP")
            h.check(seen.index("device") > seen.index("pre-switchover"),
                    "statuses out of QEMU's order: %s" % seen)
        if postcopy and st == "postcopy-active":
            h.check(started_postcopy, "postcopy without migrate-start-postcopy: %s" % seen)
        info = ms.query_migrate()
        h.check(info["status"] in (st, "completed"), "Perform ended in %s, query says %s" % (st, info))
        print("Perform: statuses %s" % seen)
        return st

    def finish(self, postcopy=False):
        md = self.md
        md.wait_event("MIGRATION", 60, lambda d: d["status"] in ("postcopy-active", "completed"))
        info = md.query_migrate()
        h.check("ram" not in info, "QEMU's destination reports no ram: %s" % info)
        st = md.cmd("query-status")
        # -S: the guest waits for libvirt's cont, in postcopy too
        h.check(st["status"] == "paused" and st["running"] is False, "destination before cont: %s" % st)
        h.check(md.take("RESUME") is None, "destination resumed by itself")
        md.cmd("cont")
        md.wait_event("RESUME")
        if postcopy:
            md.wait_event("MIGRATION", 60, lambda d: d["status"] == "completed")
        h.check(md.query_migrate()["status"] == "completed", "destination not completed")
        reset(md, self.dst_caps, self.dst_saved)

    def confirm(self):
        ms = self.ms
        deadline = h.Deadline(h.scaled(60))
        while ms.query_migrate()["status"] != "completed":
            h.check(not deadline.expired(), "source not completed")
            ms.pump(0.1)
        info = ms.query_migrate()
        for k in ("total-time", "downtime", "setup-time"):
            h.check(isinstance(info.get(k), int), "completed source lacks %s: %s" % (k, info))
        h.check(info["ram"]["total"] == (self.size or info["ram"]["total"]) and info["ram"]["remaining"] == 0,
                "completed ram: %s" % info["ram"])
        st = ms.cmd("query-status")
        h.check(st["status"] == "postmigrate", "source after migration: %s" % st)
        reset(ms, self.src_caps, self.src_saved)
        for mon, listed in ((self.ms, self.src_caps), (self.md, self.dst_caps)):
            caps = {c["capability"]: c["state"] for c in mon.cmd("query-migrate-capabilities")}
            h.check(not any(caps[c] for c in LIBVIRT_CAPS if c in caps and c != "events"),
                    "%s: caps after reset %s" % (mon.name, caps))

    def close(self):
        self.ms.close()
        self.md.close()


def check_caps_listed(listed):
    # libvirt turns these on by itself when listed: listing them is a promise
    for c in ("late-block-activate", "pause-before-switchover", "events", "return-path"):
        h.check(c in listed, "%s not listed: %s" % (c, listed))
    # what mig cannot do must not be listed, or libvirt may ask for it
    # (mapped-ram is implemented for file: URIs; libvirt turns it on only for a save to file)
    for c in ("xbzrle", "switchover-ack", "zero-copy-send", "rdma-pin-all"):
        h.check(c not in listed, "%s listed but not implemented" % c)


def check_integrity(dst):
    integ = dst.wait_integrity(60)
    h.check(integ["failed"] == 0 and integ["checked"] == SIZE // h.UNIT, "integrity %s" % integ)


def migds(src_workload="seq"):
    src = h.Migd("src", GUEST + ["--workload", src_workload])
    dst = h.Migd("dst", GUEST + ["-S", "--incoming", "defer"])
    return src, dst


def case_precopy():
    src, dst = migds()
    c = Conversation(src, dst, caps={"return-path"})
    check_caps_listed(c.src_caps)
    c.begin()
    c.prepare()
    h.check(c.perform() == "completed", "precopy did not complete")
    c.finish()
    c.confirm()
    c.close()
    check_integrity(dst)


def case_postcopy_preempt_multifd():
    """migrate-start-postcopy at the second MIGRATION_PASS. Whether it is taken is the
    engine's call, as in QEMU: a pass that finds almost nothing dirty (a starved vCPU on
    a loaded machine) completes in precopy, and libvirt's Perform returns at completed
    just as well. That run is checked too, then the case tries again: it needs one run
    through postcopy, out of three."""
    caps = {"return-path", "postcopy-ram", "postcopy-preempt", "multifd"}
    for attempt in range(3):
        src, dst = migds()
        # `virsh migrate --bandwidth 24 ...` and `migrate-setmaxdowntime 1`: below the
        # guest's dirty rate precopy alone does not finish; postcopy's own bandwidth is
        # unlimited
        c = Conversation(src, dst, caps=caps,
                         params={"multifd-channels": 2, "downtime-limit": 1, "max-bandwidth": 24 * h.MiB})
        c.begin()
        c.prepare()
        ended = c.perform(postcopy=True)
        c.finish(postcopy=ended == "postcopy-active")
        c.confirm()
        c.close()
        check_integrity(dst)
        if ended == "postcopy-active":
            return
        print("attempt %d converged in precopy; again" % (attempt + 1))
        src.kill()
        dst.kill()
    raise AssertionError("three migrations completed in precopy: postcopy never ran")


def case_cancel():
    """migrate_cancel while active (a bandwidth cap keeps it there), then in
    pre-switchover where both guests are stopped: each time the source runs again."""
    for where in ("active", "pre-switchover"):
        src, dst = migds()
        params = {"max-bandwidth": 8 * h.MiB} if where == "active" else {}
        c = Conversation(src, dst, caps={"return-path"})
        c.begin()
        c.prepare()
        # libvirt's Prepare leaves exit-on-error at QEMU's default: the destination
        # ends once the source cancels, and libvirt's Finish reaps it
        dst.expect_exit()
        c.params = params
        ms = c.ms
        c.src_saved = saved_params(ms)
        set_caps(ms, c.src_caps, {"return-path", "pause-before-switchover"})
        ms.cmd("migrate-set-parameters", dict({"tls-creds": "", "tls-hostname": ""},
                                              **(params or {"max-bandwidth": UNLIMITED})))
        ms.cmd("migrate", {"detach": True, "resume": False, "uri": c.uri})
        ms.wait_event("MIGRATION", 30, lambda d, w=where: d["status"] == w)
        ms.cmd("migrate_cancel")
        ms.wait_event("MIGRATION", 30, lambda d: d["status"] == "cancelled")
        info = ms.query_migrate()
        h.check(info["status"] == "cancelled" and "ram" not in info, "after cancel: %s" % info)
        # libvirt: cont if the guest is paused; mig resumed it already
        st = ms.cmd("query-status")
        if not st["running"]:
            ms.cmd("cont")
        h.wait_until(lambda: ms.cmd("query-status")["running"], 10, "source running after cancel")
        if where == "pre-switchover":
            ms.wait_event("RESUME")
        reset(ms, c.src_caps, c.src_saved)
        # the guest kept its memory intact through all of it
        check = src.cmd("x-guest-check")
        h.check(check["failed"] == 0, "source guest after cancel: %s" % check)
        try:
            rc = dst.proc.wait(timeout=h.scaled(15))
        except subprocess.TimeoutExpired:
            raise AssertionError("the destination still runs 15 s after the source cancelled")
        h.check(rc == 1, "the destination exited with %r after the source cancelled, QEMU's is 1" % rc)
        c.close()
        src.kill()
        dst.kill()


def case_fd():
    """virsh migrate --live without postcopy or parallel: the connection is made outside
    and passed with getfd; here a socketpair, one end to each side (fd:NAME on both)."""
    src, dst = migds()
    c = Conversation(src, dst, caps={"return-path"})
    ms, md = c.ms, c.md
    # getfd without a descriptor, closefd of a name nobody gave: QEMU's errors
    r = ms.execute("getfd", {"fdname": "x"})
    h.check("No file descriptor supplied" in r.get("error", {}).get("desc", ""), "getfd without fd: %s" % r)
    r = ms.execute("closefd", {"fdname": "x"})
    h.check("not found" in r.get("error", {}).get("desc", ""), "closefd unknown: %s" % r)
    a, b = socket.socketpair()
    ms.cmd("getfd", {"fdname": "spare"}, fds=[a.fileno()])
    ms.cmd("closefd", {"fdname": "spare"})
    a.close()
    b.close()
    r = ms.execute("migrate", {"uri": "fd:spare"})
    h.check("error" in r, "migrate to a closed fd name: %s" % r)

    a, b = socket.socketpair()
    c.begin()
    c.uri = "fd:migrate"
    c.prepare(incoming="fd:migrate", fds=[b.fileno()])
    h.check("socket-address" not in md.query_migrate(), "fd: destination lists a socket-address")
    b.close()
    h.check(c.perform(fds=[a.fileno()]) == "completed", "fd: migration did not complete")
    a.close()
    c.finish()
    c.confirm()
    c.close()
    check_integrity(dst)


def listening_destination(**incoming):
    """A -S/defer destination after libvirt's process start and Prepare's capabilities,
    listening (migrate-incoming plus the given arguments): (migd, monitor, caps, uri)."""
    dst = h.Migd("dst", GUEST + ["-S", "--incoming", "defer"])
    md = Monitor(dst.qmp_path, "dst")
    dst_caps = process_start(md, "inmigrate")
    set_caps(md, dst_caps, {"late-block-activate"})
    md.cmd("migrate-incoming", dict({"uri": "tcp:127.0.0.1:0"}, **incoming))
    return dst, md, dst_caps, h.uri_of(md.query_migrate()["socket-address"][0])


def case_incoming_again():
    """A destination whose incoming migration failed (its source died mid-stream) is
    reset and takes migrate-incoming again, as QEMU with exit-on-error false; the second
    migration must leave nothing of the first in guest memory."""
    dst, md, dst_caps, uri = listening_destination(**{"exit-on-error": False})
    saved = saved_params(md)
    first = h.Migd("src1", GUEST + ["--workload", "seq", "--seed", "7"])
    first.set_params({"max-bandwidth": 16 * h.MiB})
    first.cmd("migrate", uri=uri)
    # killed with a good part of its memory (another seed's data) in the destination
    h.wait_until(lambda: (first.query_migrate().get("ram") or {}).get("transferred", 0) >= 12 * h.MiB,
                 30, "the first source to send 12 MiB")
    first.kill()
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "failed")
    info = md.query_migrate()
    h.check(info.get("error-desc"), "failed destination without error-desc: %s" % info)
    reset(md, dst_caps, saved)           # libvirt's cleanup works on a failed side too
    st = md.cmd("query-status")
    h.check(st["status"] == "inmigrate", "destination after the failure: %s" % st)

    # half its units zero: sent as zero pages, which must not find the first's data
    set_caps(md, dst_caps, {"late-block-activate"})
    second_incoming(dst, md, {"exit-on-error": False})


def second_incoming(dst, md, incoming):
    """migrate-incoming again after a failed or cancelled one, from a source whose half
    zero units, sent as zero pages, must not find the first one's data."""
    second = h.Migd("src2", GUEST + ["--workload", "idle,zero=0.5"])
    md.cmd("migrate-incoming", dict({"uri": "tcp:127.0.0.1:0"}, **incoming))
    info = md.query_migrate()
    h.check(info.get("status") == "setup" and "error-desc" not in info, "second incoming: %s" % info)
    second.set_params(h.FAST_PARAMS)
    second.cmd("migrate", uri=h.uri_of(info["socket-address"][0]))
    second.wait_status("completed", 60)
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "completed")
    md.cmd("cont")
    check_integrity(dst)
    md.close()


def case_incoming_cancel():
    """migrate_cancel on the destination, first in setup (the listener goes), then while
    the migration is active, stops it for real:
    cancelling then cancelled, the guest never started (inmigrate), the channels closed
    (nothing to yank, the listener gone), the source told (failed, its guest running and
    intact); then migrate-incoming again takes a second source, whose zero pages must not
    find the first one's data."""
    dst, md, dst_caps, uri = listening_destination()
    # in setup, nothing connected yet: the listener goes, and migrate-incoming again
    md.cmd("migrate_cancel")
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "cancelled")
    h.expect_listener_closed(uri)
    md.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
    uri = h.uri_of(md.query_migrate()["socket-address"][0])
    first = h.Migd("src1", GUEST + ["--workload", "seq", "--seed", "7"])
    first.set_caps({"events": True})
    # 28 MiB still to go at 4 MiB/s when the cancel comes: it cannot complete first
    first.set_params({"max-bandwidth": 4 * h.MiB})
    first.cmd("migrate", uri=uri)
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "active")
    h.wait_until(lambda: (first.query_migrate().get("ram") or {}).get("transferred", 0) >= 4 * h.MiB,
                 30, "the source to send 4 MiB")
    md.cmd("migrate_cancel")
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "cancelling")
    md.wait_event("MIGRATION", 30, lambda d: d["status"] == "cancelled")
    info = md.query_migrate()
    h.check(info["status"] == "cancelled" and "socket-address" not in info, "after cancel: %s" % info)
    h.check(md.cmd("query-status")["status"] == "inmigrate", "the guest left inmigrate")
    h.check(md.take("RESUME") is None, "the destination's guest started")
    h.check(md.cmd("query-yank") == [], "channels still open after the cancel")
    h.expect_listener_closed(uri)
    why = first.wait_status("failed", 30).get("error-desc", "")
    # RP_ERROR names the cancel; a send that meets the closed channel first may win
    h.check(why, "the source failed without an error-desc")
    first.wait_running(True)
    check = first.cmd("x-guest-check")
    h.check(check["failed"] == 0, "source guest after the destination's cancel: %s" % check)
    print("cancelled: source says %r" % why)
    first.kill()
    second_incoming(dst, md, {})


def garbage_source(uri):
    """A source that opens the main channel properly and then sends a frame of no known
    type: the incoming migration fails."""
    peer = socket.create_connection(h.tcp_port(uri), timeout=h.scaled(10))
    peer.sendall(h.hello(session=os.urandom(16)))
    reply = h.read_hello_reply(peer)
    h.check(reply is not None and reply[1] == 0, "main channel refused: %r" % (reply,))
    peer.sendall(struct.pack(">IHH", 0, 0x7777, 0))
    return peer


def case_exit_on_error():
    """migrate-incoming's exit-on-error with QEMU's meaning. Default (true): the failed
    incoming migration is reported (MIGRATION failed, the error on stderr) and the process
    exits with an error status, as QEMU's does. False: it stays up in failed with the
    error in error-desc, its guest in inmigrate, and takes migrate-incoming again."""
    for eoe in (None, False):
        dst, md, dst_caps, uri = listening_destination(**({} if eoe is None else {"exit-on-error": eoe}))
        if eoe is None:
            dst.expect_exit()
        peer = garbage_source(uri)
        md.wait_event("MIGRATION", 30, lambda d: d["status"] == "failed")
        if eoe is None:
            try:
                rc = dst.proc.wait(timeout=h.scaled(15))
            except subprocess.TimeoutExpired:
                raise AssertionError("destination still runs 15 s after its failed incoming migration")
            log = dst._read_log(dst.stderr_path)
            h.check(rc == 1, "destination exited with %r after the failure, QEMU's is 1" % rc)
            h.check("load of migration failed" in log and "unknown frame type" in log,
                    "the exit does not report the failure:\n%s" % dst.log_tail(20))
            print("exit-on-error true: exited with status %d" % rc)
        else:
            info = md.query_migrate()
            h.check(info["status"] == "failed" and info.get("error-desc"), "exit-on-error false: %s" % info)
            h.check(md.cmd("query-status")["status"] == "inmigrate", "guest left inmigrate")
            md.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:0", "exit-on-error": False})
            h.check(md.query_migrate().get("status") == "setup", "no second incoming migration")
            h.check(dst.alive(), "destination exited with exit-on-error false")
            print("exit-on-error false: stayed up: %s" % info["error-desc"])
        peer.close()
        md.close()
        dst.kill()


def case_prelaunch():
    """migd -S: QEMU's prelaunch until cont; and migrating such a guest keeps it
    from ever running on the source."""
    with h.Migd("src", GUEST + ["-S"]) as src:
        m = Monitor(src.qmp_path, "src")
        process_start(m, "prelaunch")
        m.cmd("cont")
        m.wait_event("RESUME")
        st = m.cmd("query-status")
        h.check(st["status"] == "running" and st["running"], "after cont: %s" % st)
        m.cmd("stop")
        m.wait_event("STOP")
        h.check(m.cmd("query-status")["status"] == "paused", "after stop")
        m.close()


def statuses_until(mon, final, timeout=60):
    """The MIGRATION statuses mon announces, in order, up to one of final."""
    seen = []
    deadline = h.Deadline(h.scaled(timeout))
    while True:
        e = mon.take("MIGRATION")
        if e:
            seen.append(e["data"]["status"])
            if seen[-1] in final:
                return seen
            continue
        h.check(not deadline.expired() and not mon.eof, "%s: no %s in %.0f s; statuses %s"
                % (mon.name, final, timeout, seen))
        mon.pump(0.2)


def case_postcopy_recovery():
    """virsh migrate --postcopy; the link broken in postcopy-active (virsh domjobabort
    --postcopy: migrate-pause on the source); then virsh migrate --postcopy
    --postcopy-resume as libvirt runs it (qemuMigrationSrcBeginResume,
    qemuMigrationDstPrepareResume, qemuMigrationSrcPerformResume): query-migrate on both
    sides must say postcopy-paused (parsed with libvirt's rules), migrate-recover on the
    destination, migrate {detach, resume: true, uri} on the source, both back in
    postcopy-active with the recovery's events, Finish and Confirm, integrity intact.
    The pages trickle (--postcopy-bandwidth) so that the pause finds most of them
    missing; before the resume `virsh migrate-setspeed --postcopy 0` lets them go."""
    src, dst = migds()
    # scaffolding, not libvirt's: postcopy after the fourth pass at the latest, so the
    # case never ends in precopy (libvirt's migrate-start-postcopy at the second pass
    # comes first, with a whole pass to spare for a starved test loop)
    src.set_params({"x-postcopy-after-passes": 4})
    c = Conversation(src, dst, caps={"return-path", "postcopy-ram", "postcopy-preempt"},
                     params={"downtime-limit": 1, "max-bandwidth": 24 * h.MiB,
                             "max-postcopy-bandwidth": 256 * h.KiB})
    ms, md = c.ms, c.md
    c.begin()
    c.prepare()
    h.check(c.perform(postcopy=True) == "postcopy-active", "no postcopy to break")
    md.wait_event("MIGRATION", 60, lambda d: d["status"] == "postcopy-active")
    md.cmd("cont")              # Finish began: the guest runs on the destination
    md.wait_event("RESUME")
    ms.cmd("migrate-pause")     # virsh domjobabort --postcopy
    for mon in (ms, md):
        statuses_until(mon, ("postcopy-paused",), 30)
    check_paused(src, dst, paused_by=src)

    # qemuMigrationSrcBeginResume: the source must be paused
    h.check(ms.query_migrate()["status"] == "postcopy-paused", "source not paused")
    # qemuMigrationDstPrepareResume: paused, then migrate-recover on the new address
    h.check(md.query_migrate()["status"] == "postcopy-paused", "destination not paused")
    md.cmd("migrate-recover", {"uri": "tcp:127.0.0.1:0"})
    info = md.query_migrate()
    h.check(info["status"] == "postcopy-recover-setup", "destination after migrate-recover: %s" % info)
    uri = h.uri_of(info["socket-address"][0])
    # qemuMigrationSrcPerformResume, the pages no longer held back (the rate a
    # postcopy's channels take when they open)
    ms.cmd("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
    ms.cmd("migrate", {"detach": True, "resume": True, "uri": uri})
    src_seen = statuses_until(ms, ("postcopy-active", "completed"))
    dst_seen = statuses_until(md, ("postcopy-active", "completed"))
    check_recovery_events("src", src_seen + ["postcopy-active"] * (src_seen[-1] == "completed"))
    check_recovery_events("dst", dst_seen + ["postcopy-active"] * (dst_seen[-1] == "completed"))
    print("recovered: source %s, destination %s" % (src_seen, dst_seen))

    # Finish (the guest already runs) and Confirm
    if dst_seen[-1] != "completed":
        statuses_until(md, ("completed",))
    h.check(md.query_migrate()["status"] == "completed", "destination not completed")
    reset(md, c.dst_caps, c.dst_saved)
    c.confirm()
    c.close()
    check_integrity(dst)


async def qemu_qmp_conversation(qmp_mod, src, dst):
    """The precopy conversation through QEMU's own client library."""
    s, d = qmp_mod.QMPClient("src"), qmp_mod.QMPClient("dst")
    await s.connect(src.qmp_path)
    await d.connect(dst.qmp_path)
    try:
        for q, want in ((s, "running"), (d, "inmigrate")):
            st = await q.execute("query-status")
            h.check(st["status"] == want, "qemu.qmp: query-status %s" % st)
            await q.execute("migrate-set-capabilities",
                            {"capabilities": [{"capability": "events", "state": True}]})
        listed = [c["capability"] for c in await s.execute("query-migrate-capabilities")]
        caps = [{"capability": c, "state": c in ("events", "pause-before-switchover", "late-block-activate")}
                for c in LIBVIRT_CAPS if c in listed]
        await d.execute("migrate-set-capabilities", {"capabilities": caps})
        await s.execute("migrate-set-capabilities", {"capabilities": caps})
        await d.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
        info = await d.execute("query-migrate")
        uri = h.uri_of(info["socket-address"][0])
        await s.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        with s.listener() as events:
            await s.execute("migrate", {"uri": uri})
            async def drive():
                async for ev in events:
                    if ev["event"] != "MIGRATION":
                        continue
                    st = ev["data"]["status"]
                    if st == "pre-switchover":
                        await s.execute("migrate-continue", {"state": "pre-switchover"})
                    elif st in ("completed", "failed", "cancelled"):
                        return st
            st = await asyncio.wait_for(drive(), h.scaled(60))
        h.check(st == "completed", "qemu.qmp migration ended %s" % st)
        libvirt_parse_migrate(await s.execute("query-migrate"), "qemu.qmp src")
        for _ in range(int(h.scaled(600))):
            if (await d.execute("query-migrate")).get("status") == "completed":
                break
            await asyncio.sleep(0.1)
        await d.execute("cont")
        for q in (s, d):
            await q.execute("migrate-set-capabilities",
                            {"capabilities": [dict(c, state=c["capability"] == "events") for c in caps]})
    finally:
        await s.disconnect()
        await d.disconnect()


# Where tools/lib-setup.sh's mig_fetch_qemu_qmp extracts QEMU's python/qemu/qmp.
QEMU_QMP_DIR = os.environ.get("MIG_QEMU_QMP_DIR") or "/var/cache/mig/qemu-qmp"


def import_qemu_qmp():
    """QEMU's library: installed, or fetched by the test setup from Debian's qemu source
    package. Missing is a failure naming the setup step, never a skip."""
    try:
        import qemu.qmp as qmp_mod
        return qmp_mod
    except ImportError:
        pass
    h.check(os.path.isfile(os.path.join(QEMU_QMP_DIR, "qemu", "qmp", "__init__.py")),
            "qemu.qmp is not importable and not in %s: the test setup fetches it from Debian's qemu "
            "source package (tools/lib-setup.sh, mig_fetch_qemu_qmp, run by tools/run-tests); "
            "it failed or did not run" % QEMU_QMP_DIR)
    sys.path.insert(0, QEMU_QMP_DIR)
    import qemu.qmp as qmp_mod
    return qmp_mod


def case_qemu_qmp():
    qmp_mod = import_qemu_qmp()
    src, dst = migds()
    asyncio.run(qemu_qmp_conversation(qmp_mod, src, dst))
    check_integrity(dst)


def cases():
    return [case_prelaunch, case_precopy, case_postcopy_preempt_multifd, case_cancel, case_fd,
            case_incoming_again, case_exit_on_error, case_incoming_cancel, case_postcopy_recovery,
            case_qemu_qmp]


if __name__ == "__main__":
    h.main(cases())
