#!/usr/bin/env python3
"""The fault matrix's CI subset (the whole matrix is `migbench faults`, docs/benchmarks.md):
cells the other tests do not cover, each asserting where both sides end, with every
bound derived from x-channel-timeout (2000 ms here).

- reset_setup: every connection RST right after the SETUP frame -> the source `failed`
  with its guest running and intact, the destination `failed`, never started.
- kill_destination_precopy: the destination SIGKILLed in precopy -> the same for the
  source.
- reset_switchover: every connection RST right after PC_RUN reached the destination
  (it answered RP_READY, the source never got it) -> the source runs on, the
  destination failed with its guest stopped: one guest.
- malformed_postcopy: a main-channel frame with an unknown type in postcopy-active ->
  both `postcopy-paused`, the destination's vCPUs wait and read nothing wrong; then
  recovered, completed, intact.
- kill_source_postcopy: the source SIGKILLed in postcopy-active -> the destination
  pauses and stays paused (nothing can bring its missing pages), its vCPUs waiting,
  no unit read wrong; quit ends it.
- stop_source_recover: the source SIGSTOPped in postcopy-recover (just after its
  PC_RECOVER reached the destination) -> the destination pauses again by itself;
  continued, the source pauses too; the next recovery completes, intact.
Never two running guests: both sides' query-status at every look.
- migbench_cell: `migbench faults` itself runs one cell (reset@setup) in its netns bed
  and reports it PASS in its table and its JSON (skipped where no bed can be built)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402
from test_recovery import check_paused, recover  # noqa: E402

TIMEOUT_MS = 2000
# a side notices within the timeout of its peer's last progress, which the socket
# buffers may delay (a stopped destination: until they are full); twice the timeout
# + 3 s, scaled for sanitizers, leaves room for that and a loaded host (the issue's
# timeout + 1 s is test_deadpeer.py's bound_* cases'); the waits give another 10 s
# before failing
BOUND = h.scaled(TIMEOUT_MS / 1000 * 2 + 3)
SIZE = 64 * h.MiB
F_SETUP = 1


def pair(postcopy):
    src = h.Migd("src", h.guest_args("64M", workload="seq", vcpus=2), start_timeout=30)
    dst = h.Migd("dst", h.guest_args("64M", workload="random", vcpus=2, incoming="tcp:127.0.0.1:0"),
                 start_timeout=30)
    caps = {"events": True, "postcopy-ram": postcopy, "postcopy-preempt": postcopy}
    for m in (src, dst):
        m.set_caps(caps)
        m.set_params({"x-channel-timeout": TIMEOUT_MS})
    if postcopy:
        # postcopy after one pass, its push slow enough to be under way at the fault
        src.set_params({"downtime-limit": 1, "x-postcopy-after-passes": 1, "max-postcopy-bandwidth": 8 * h.MiB})
    else:
        # 64 MiB at 16 MiB/s: precopy still runs at the fault
        src.set_params({"max-bandwidth": 16 * h.MiB, "downtime-limit": 300})
    return src, dst


def one_guest(src, dst):
    running = [m.query_status().get("running") for m in (src, dst) if m.alive() and m.qmp]
    h.check(running.count(True) <= 1, "two running guests")


def noticed(m, want, since, what):
    """Polls m until its status is want; checks it came within BOUND of since."""
    deadline = h.Deadline(BOUND + h.scaled(10))
    while True:
        info = m.query_migrate()
        st = info.get("status")
        if st == want:
            break
        h.check(st not in ("completed", "cancelled") and (st != "failed" or want == "failed"),
                "%s: %s ended %s, not %s (%s)" % (what, m.name, st, want, info.get("error-desc")))
        if deadline.expired():
            raise h.HarnessError("%s: %s still %s after %.0f s, not %s" % (what, m.name, st, deadline.seconds, want))
        time.sleep(0.05)
    took = time.monotonic() - since
    print("%s: %s %s in %.1f s: %s" % (what, m.name, want, took, info.get("error-desc")))
    h.check(took <= BOUND, "%s: %s took %.1f s to notice, more than %.1f s" % (what, m.name, took, BOUND))
    return info


def source_runs(src, dst, since, what):
    """Before the switchover: the source fails and runs on, intact; the destination
    fails (if it lives) and never ran."""
    noticed(src, "failed", since, what)
    one_guest(src, dst)
    if dst.alive():
        noticed(dst, "failed", since, what)
        h.check(dst.query_status().get("running") is False, "%s: the destination's guest runs" % what)
    src.wait_running(True)
    chk = src.cmd("x-guest-check", timeout=120)
    h.check(chk.get("failed") == 0 and chk.get("checked", 0) > 0, "%s: source guest check %s" % (what, chk))


def start_postcopy(src, uri, dst):
    src.cmd("migrate", uri=uri)
    src.wait_status("postcopy-active", timeout=60)
    dst.wait_status("postcopy-active", timeout=30)
    time.sleep(0.5)     # the destination's vCPUs fault on missing pages meanwhile


def reset_after(frame, postcopy, what, bound):
    """Every connection RST right after frame went through: the source runs on."""
    src, dst = pair(postcopy)
    with src, dst, h.Proxy(dst.listen_uri(), cut_after=frame, mode="reset") as proxy:
        dst.expect_exit()
        src.cmd("migrate", uri=proxy.uri)
        proxy.wait_cut(bound)
        source_runs(src, dst, time.monotonic(), what)


def case_reset_setup():
    reset_after(F_SETUP, False, "reset after SETUP", 30)


def case_kill_destination_precopy():
    src, dst = pair(False)
    with src, dst:
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("active", timeout=30)
        time.sleep(0.5)
        h.check(src.query_migrate()["status"] == "active", "precopy ended before the fault")
        dst.kill()
        source_runs(src, dst, time.monotonic(), "destination killed in precopy")


def case_reset_switchover():
    reset_after(h.F_PC_RUN, True, "reset after PC_RUN", 60)


def case_malformed_postcopy():
    src, dst = pair(True)
    with src, dst, h.Proxy(dst.listen_uri()) as proxy:
        start_postcopy(src, proxy.uri, dst)
        proxy.corrupt_next()
        proxy.wait_corrupted(10)
        t0 = time.monotonic()
        for m in (dst, src):
            noticed(m, "postcopy-paused", t0, "malformed frame in postcopy")
        check_paused(src, dst)
        desc = dst.query_migrate().get("error-desc", "")
        h.check("%#x" % h.F_BAD_TYPE in desc or "%d" % h.F_BAD_TYPE in desc,
                "the destination's error-desc does not name the bad frame type: %r" % desc)
        proxy.close()
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=SIZE)


def case_kill_source_postcopy():
    src, dst = pair(True)
    with src, dst:
        start_postcopy(src, dst.listen_uri(), dst)
        src.kill()
        t0 = time.monotonic()
        noticed(dst, "postcopy-paused", t0, "source killed in postcopy")
        time.sleep(2)       # the vCPUs keep touching missing pages: they must wait
        info = dst.query_migrate()
        h.check(info["status"] == "postcopy-paused", "the destination left postcopy-paused: %s" % info["status"])
        integ = info.get("x-integrity") or {}
        h.check(integ.get("failed", 0) == 0 and integ.get("checked", 0) > 0, "paused destination read %s" % integ)
        h.check(dst.query_status().get("status") == "running", "the destination's vCPUs were stopped")
        h.check(dst.quit(timeout=BOUND) == 0, "the paused destination did not quit cleanly")


def case_stop_source_recover():
    src, dst = pair(True)
    with src, dst:
        start_postcopy(src, dst.listen_uri(), dst)
        src.cmd("migrate-pause")
        check_paused(src, dst, paused_by=src)
        dst.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
        with h.Proxy(dst.listen_uri(), cut_after=h.F_PC_RECOVER, mode="hold") as proxy:
            src.cmd("migrate", uri=proxy.uri, resume=True)
            proxy.wait_cut(30)
            os.kill(src.pid(), signal.SIGSTOP)
            try:
                proxy.release()
                t0 = time.monotonic()
                noticed(dst, "postcopy-paused", t0, "source stopped in postcopy-recover")
            finally:
                os.kill(src.pid(), signal.SIGCONT)
            noticed(src, "postcopy-paused", t0, "source stopped in postcopy-recover, continued")
        check_paused(src, dst)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=SIZE)


def case_migbench_cell():
    with tempfile.TemporaryDirectory(prefix="mig-faults-", dir=h._tmp_base()) as d:
        path = os.path.join(d, "faults.json")
        p = subprocess.run([h.tool("migbench"), "faults", "--quick", "--cells", "reset@setup", "--json", path],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=h.scaled(120), preexec_fn=h._set_pdeathsig)
        print(p.stdout)
        if p.returncode != 0 and "needs the netns bed" in p.stdout:
            raise h.Skip("no netns bed here")
        h.check(p.returncode == 0, "migbench faults exited with %d" % p.returncode)
        h.check("1 of 1 cells PASS" in p.stdout, "the table does not say the cell passed")
        with open(path) as f:
            top = json.load(f)
    h.check(top["scenario"] == "faults" and top["channel_timeout_ms"] > 0, "JSON head %s" % top["scenario"])
    cells = top["cells"]
    h.check(len(cells) == 1, "%d cells, not 1" % len(cells))
    c = cells[0]
    h.check((c["fault"], c["phase"], c["result"], c["error"]) == ("reset", "setup", "PASS", None), "cell %s" % c)
    h.check(c["units_failed"] == 0 and c["units_checked"] > 0, "cell's guest check %s" % c)
    h.check(c["detect_src_ms"] is not None and c["detect_src_ms"] <= top["bound_ms"], "cell's time %s" % c)


if __name__ == "__main__":
    h.main([case_reset_setup, case_kill_destination_precopy, case_reset_switchover, case_malformed_postcopy,
            case_kill_source_postcopy, case_stop_source_recover, case_migbench_cell])
