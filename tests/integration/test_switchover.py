#!/usr/bin/env python3
"""The switchover never lets two guests run, whatever message of it is lost.

A proxy (mig_harness.Proxy) forwards the main channel and cuts both directions right
after one message of the switchover: COMPLETE, RP_READY, GO, RP_RUNNING in precopy;
PC_RUN, RP_READY, GO, RP_RUNNING in postcopy. For each cut point both sides must end
where docs/design.md (Switchover) says, and at no moment may both report a running
guest:

- before GO left the source (COMPLETE / PC_RUN cut): the source fails and runs its
  guest; the destination fails with its guest stopped and says the outcome is unknown;
- RP_READY cut (GO sent into the cut link): both stay stopped; each says why; the
  operator's `cont` on the source then runs exactly one guest, whole (x-guest-check),
  in postcopy too, where the source waits paused (it once refused `cont` there, and
  the destination refused to recover: the guest was lost, found by a random-moment
  fault script); in precopy the operator may pick the destination instead, whose guest
  then runs whole (every unit checked);
- GO cut (GO arrived): the destination runs; the source stays stopped and says the
  destination may be running;
- RP_RUNNING cut: precopy completes on both sides.

A black hole instead of a cut (the link stays up, nothing gets through) after COMPLETE
and after PC_RUN shows every wait of the switchover is bounded by x-channel-timeout
(2000 ms there): both sides end within timeout * 2 + 3 s. A cut is seen at once (EOF);
those cases keep x-channel-timeout at 10 s, so that a loaded host working through the
stream is not taken for a dead peer, and must settle within that bound too."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

HOLE_TIMEOUT_MS, CUT_TIMEOUT_MS = 2000, 10000


def bound(timeout_ms):
    return h.scaled(timeout_ms / 1000 * 2 + 3)
SIZE = "32M"
END = ["failed", "completed", "postcopy-paused"]


def running(m):
    return m.query_status().get("running") is True


def watch_until_settled(src, dst, settled, timeout):
    """Polls both sides until settled(src_info, dst_info) holds; at every poll at most one
    guest may run. Returns the last (src, dst) query-migrate."""
    deadline = h.Deadline(h.scaled(timeout))
    while True:
        both = running(src) and running(dst)
        h.check(not both, "both guests run: src %s, dst %s"
                % (src.query_status(), dst.query_status()))
        si, di = src.query_migrate(), dst.query_migrate()
        if settled(si, di):
            return si, di
        if deadline.expired():
            raise h.HarnessError("not settled after %.0f s: src %s (%s), dst %s (%s)"
                                 % (deadline.seconds, si.get("status"), si.get("error-desc"),
                                    di.get("status"), di.get("error-desc")))
        time.sleep(0.05)


def start_pair(postcopy, timeout_ms):
    # a loaded host may take a while to start one
    src = h.Migd("src", h.guest_args(SIZE, workload="seq"), start_timeout=30)
    dst = h.Migd("dst", h.guest_args(SIZE, incoming="tcp:127.0.0.1:0"), start_timeout=30)
    caps = {"events": True}
    if postcopy:
        caps["postcopy-ram"] = True
    for m in (src, dst):
        m.set_caps(caps)
        m.set_params({"x-channel-timeout": timeout_ms})
    params = dict(h.FAST_PARAMS)
    if postcopy:
        params["x-postcopy-after-passes"] = 1
    src.set_params(params)
    return src, dst


def stays(m, want_running, seconds=0.3):
    """m's guest keeps its run state for a while (nothing flips it later)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        h.check(running(m) is want_running, "%s: running flipped to %s" % (m.name, not want_running))
        time.sleep(0.1)


def run_cut(postcopy, cut_after, then, mode="cut"):
    """Migrates through a proxy cutting after cut_after, waits until both sides ended,
    then calls then(src, dst, si, di, s_run, d_run, name) with both still up."""
    name = "%s %s after %s" % ("postcopy" if postcopy else "precopy", mode, h.FRAME_NAMES[cut_after])
    timeout_ms = HOLE_TIMEOUT_MS if mode == "blackhole" else CUT_TIMEOUT_MS
    src, dst = start_pair(postcopy, timeout_ms)
    with src, dst, h.Proxy(dst.listen_uri(), cut_after, mode) as proxy:
        t0 = time.monotonic()
        src.cmd("migrate", uri=proxy.uri)
        proxy.wait_cut(60)
        t_cut = time.monotonic()

        def settled(si, di):
            return si.get("status") in END and di.get("status") in END
        si, di = watch_until_settled(src, dst, settled, bound(timeout_ms) + 5)
        took = time.monotonic() - t_cut
        s_run, d_run = running(src), running(dst)
        print("%s: frames %s; src %s running=%s (%s); dst %s running=%s (%s); settled %.1f s after the cut, "
              "%.1f s in all" % (name, proxy.names(), si["status"], s_run, si.get("error-desc"), di["status"],
                                 d_run, di.get("error-desc"), took, time.monotonic() - t0))
        h.check(not (s_run and d_run), "%s: both guests run" % name)
        h.check(took <= bound(timeout_ms), "%s: took %.1f s to settle, more than %.1f s"
                % (name, took, bound(timeout_ms)))
        then(src, dst, si, di, s_run, d_run, name)


def expect_source_keeps(postcopy, cut_after, mode="cut"):
    """Cut before GO left: the source fails and runs; the destination fails, stopped,
    and says the outcome is unknown."""
    def then(src, dst, si, di, s_run, d_run, name):
        h.check(si["status"] == "failed" and s_run, "%s: source %s running=%s" % (name, si["status"], s_run))
        h.check(di["status"] == "failed" and not d_run, "%s: destination %s running=%s" % (name, di["status"], d_run))
        h.check("outcome unknown" in (di.get("error-desc") or ""), "%s: destination says %r"
                % (name, di.get("error-desc")))
        stays(src, True)
        stays(dst, False)
    run_cut(postcopy, cut_after, then, mode)


def expect_both_stopped(postcopy):
    """RP_READY cut: GO went into the cut link. Neither side may run; the operator
    decides: `cont` on the source runs exactly one guest."""
    def then(src, dst, si, di, s_run, d_run, name):
        h.check(not s_run and not d_run, "%s: running src=%s dst=%s" % (name, s_run, d_run))
        h.check(si["status"] in ("failed", "postcopy-paused"), "%s: source %s" % (name, si["status"]))
        h.check(di["status"] == "failed", "%s: destination %s" % (name, di["status"]))
        h.check("may be running" in (si.get("error-desc") or "") or si["status"] == "postcopy-paused",
                "%s: source says %r" % (name, si.get("error-desc")))
        h.check("outcome unknown" in (di.get("error-desc") or ""), "%s: destination says %r"
                % (name, di.get("error-desc")))
        stays(src, False)
        stays(dst, False)
        src.cmd("cont")
        src.wait_running(True)
        stays(dst, False)
        h.check(running(src) and not running(dst), "%s: after cont on the source" % name)
        after = src.query_migrate()
        h.check(after["status"] == "failed", "%s: source %s after cont" % (name, after["status"]))
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0 and chk.get("checked", 0) > 0, "%s: source guest check %s" % (name, chk))
    run_cut(postcopy, h.F_RP_READY, then)


def expect_destination_chosen():
    """Precopy, RP_READY cut: both stopped, and every page and the state are on the
    destination, so the operator may pick it instead: `cont` there runs exactly one
    guest, and it is the whole guest (its integrity sweep checks every unit)."""
    def then(src, dst, si, di, s_run, d_run, name):
        h.check(not s_run and not d_run, "%s: running src=%s dst=%s" % (name, s_run, d_run))
        h.check(di["status"] == "failed", "%s: destination %s" % (name, di["status"]))
        dst.cmd("cont")
        dst.wait_running(True)
        stays(src, False)
        integ = dst.wait_integrity(60)
        h.check(integ.get("failed") == 0, "%s: integrity %s" % (name, integ))
        h.check(running(dst) and not running(src), "%s: after cont on the destination" % name)
    run_cut(False, h.F_RP_READY, then)


def expect_destination_runs(postcopy, cut_after):
    """GO arrived (GO or RP_RUNNING cut): the destination's guest runs, the source's
    never again."""
    def then(src, dst, si, di, s_run, d_run, name):
        h.check(not s_run, "%s: the source runs after GO" % name)
        if not postcopy and cut_after == h.F_RP_RUNNING:
            h.check(si["status"] == "completed" and di["status"] == "completed",
                    "%s: src %s dst %s" % (name, si["status"], di["status"]))
        elif not postcopy:
            h.check(si["status"] == "failed" and "may be running" in (si.get("error-desc") or ""),
                    "%s: source %s %r" % (name, si["status"], si.get("error-desc")))
            h.check(di["status"] == "completed", "%s: destination %s" % (name, di["status"]))
        else:
            h.check(si["status"] in ("failed", "postcopy-paused"), "%s: source %s" % (name, si["status"]))
        if not postcopy:
            h.check(d_run, "%s: the destination does not run" % name)
            integ = dst.wait_integrity(60)
            h.check(integ.get("failed") == 0, "%s: integrity %s" % (name, integ))
        stays(src, False)
    run_cut(postcopy, cut_after, then)


def case_precopy_cut_complete():
    expect_source_keeps(False, h.F_COMPLETE)


def case_precopy_cut_ready():
    expect_both_stopped(False)


def case_precopy_cut_ready_cont_destination():
    expect_destination_chosen()


def case_precopy_cut_go():
    expect_destination_runs(False, h.F_GO)


def case_precopy_cut_running():
    expect_destination_runs(False, h.F_RP_RUNNING)


def case_precopy_blackhole_complete():
    expect_source_keeps(False, h.F_COMPLETE, mode="blackhole")


def case_postcopy_cut_run():
    expect_source_keeps(True, h.F_PC_RUN)


def case_postcopy_cut_ready():
    expect_both_stopped(True)


def case_postcopy_cut_go():
    expect_destination_runs(True, h.F_GO)


def case_postcopy_cut_running():
    expect_destination_runs(True, h.F_RP_RUNNING)


def case_postcopy_blackhole_run():
    expect_source_keeps(True, h.F_PC_RUN, mode="blackhole")


if __name__ == "__main__":
    h.main([case_precopy_cut_complete, case_precopy_cut_ready, case_precopy_cut_ready_cont_destination,
            case_precopy_cut_go,
            case_precopy_cut_running, case_precopy_blackhole_complete,
            case_postcopy_cut_run, case_postcopy_cut_ready, case_postcopy_cut_go,
            case_postcopy_cut_running, case_postcopy_blackhole_run])
