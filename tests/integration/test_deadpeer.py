#!/usr/bin/env python3
"""Dead peers are noticed: within x-channel-timeout * 2 + 3 s (2000 ms here) where the
buffers in between take their time, and within the issue's timeout + 1 s (plus a margin
for a loaded host, less than the timeout) where nothing does.

- The destination is SIGSTOPped while precopy runs: its kernel still acknowledges, but
  nothing drains the socket; the source's writes stop making progress once the socket
  buffers are full, its send timeout fires, and it ends `failed` with its guest running.
- The source is SIGSTOPped while precopy runs: its heartbeat (NOP every quarter of the
  timeout, at least every second) stops; the destination's bounded read notices, and it
  ends `failed` with its guest not started. Once continued, the source finds the
  channel dead, fails too, and its guest runs on: it never stopped for the switchover.
- The destination is SIGSTOPped in postcopy, its push paced slower than the socket
  buffers can fill within the bound: the return path stops beating (RP_NOP) and the
  source pauses within the bound, its guest stopped; continued, the destination pauses
  too, and a recovery completes intact.
The bound of the issue, with an 8000 ms timeout: the bound is the timeout + 1 s + half
the timeout of margin (13 s), where the reads that counted the timeout from the start of
a frame instead of from the last byte took twice the timeout (16 s) and failed it:
- bound_stopped_source_postcopy: the source is SIGSTOPped in postcopy while its paced
  push is half way through frames and the destination's guest is idle (no fault, no
  page request): the destination pauses within the bound with its guest running;
  continued, the source pauses too, and a recovery completes intact.
- bound_cut_link_precopy: the link of the netns bed is cut in precopy (nothing
  crosses, no reset): the source fails within the bound, its guest running and
  intact; the destination fails too, its guest never started.
- bound_cut_link_postcopy: the same in postcopy: both sides pause within the bound,
  by themselves; mended, a recovery completes intact.
The bed's cases are skipped where it cannot be built (not root).
The destination's waits for bytes that other channels bring, while its loader reads
nothing (x-channel-timeout 1500 ms, bound twice that + 3 s from the moment the proxy
muted the channel; a proxy mutes the channel: the destination sees it open and silent,
the main channel flowing on, its NOPs included):
- silent_multifd_sync: precopy's sync barrier, every multifd channel muted at its first
  SYNC: the destination fails naming the sync point; the source fails on its answer,
  its guest running and intact.
- silent_device_chunks: DEV_END's wait for the devices' chunks (the lane on multifd),
  every multifd channel muted at its first device chunk: the destination fails naming
  the device; the source fails, its guest running.
- silent_preempt_at_end: postcopy's wait after PC_END for the urgent pages still on the
  preempt channel, which the proxy swallows: the destination pauses (never runs on the
  missing pages, its vCPUs wait), the source too, and a recovery completes intact.
The socket options themselves (keepalive, TCP_USER_TIMEOUT, send timeout) are checked
by the unit test channels-io; the switchover's bounded waits by test_switchover.py."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

TIMEOUT_MS = 2000
BOUND = h.scaled(TIMEOUT_MS / 1000 * 2 + 3)
# slow enough that precopy is still running when the peer stops: 64 MiB at 16 MiB/s
PARAMS = {"max-bandwidth": 16 * h.MiB, "downtime-limit": 300, "x-channel-timeout": TIMEOUT_MS}


# the bound: the timeout + 1 s, and half the timeout for a loaded host (scaled
# for sanitizers), which stays under the twice the timeout that reads restarting their
# timeout in the middle of a frame took
TIGHT_MS = 8000
TIGHT_BOUND = TIGHT_MS / 1000 + 1 + h.scaled(TIGHT_MS / 1000 / 2)


def new_migd(name, args):
    return h.Migd(name, args, start_timeout=30)


def pair(postcopy=False, timeout_ms=TIMEOUT_MS, src_new=None, dst_new=None):
    # a loaded host may take a while to start one
    src = (src_new or new_migd)("src", h.guest_args("64M", workload="seq"))
    dst = (dst_new or new_migd)("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0"))
    for m in (src, dst):
        m.set_caps({"events": True, "postcopy-ram": postcopy})
        m.set_params({"x-channel-timeout": timeout_ms})
    src.set_params(dict(PARAMS, **{"x-channel-timeout": timeout_ms}))
    if postcopy:
        # postcopy at once, and a push slow enough to be under way when the peer stops
        src.set_params({"x-postcopy-after-passes": 1, "max-postcopy-bandwidth": 8 * h.MiB})
    return src, dst


def wait_paused(ms, since, bound, what):
    """Polls every side in ms until each left postcopy-active; checks each paused
    within bound seconds of since (first seen)."""
    deadline = h.Deadline(bound + h.scaled(10))
    took = {}
    while len(took) < len(ms) and not deadline.expired():
        for m in ms:
            if m.name not in took and m.query_migrate().get("status") != "postcopy-active":
                took[m.name] = time.monotonic() - since
        time.sleep(0.05)
    for m in ms:
        info = m.query_migrate()
        t = took.get(m.name)
        print("%s: %s left postcopy-active in %s s (bound %.1f s): %s (%s)"
              % (what, m.name, "%.2f" % t if t is not None else "more than %.0f" % deadline.seconds, bound,
                 info.get("status"), info.get("error-desc")))
        h.check(info.get("status") == "postcopy-paused", "%s: %s status %s" % (what, m.name, info.get("status")))
        h.check(t is not None and t <= bound, "%s: %s took more than %.1f s" % (what, m.name, bound))


def wait_failed(m, since, what):
    """Polls m until its migration failed; returns (query-migrate, seconds since)."""
    deadline = h.Deadline(BOUND + h.scaled(10))
    while True:
        info = m.query_migrate()
        if info.get("status") == "failed":
            return info, time.monotonic() - since
        h.check(info.get("status") != "completed", "%s: migration completed" % what)
        if deadline.expired():
            raise h.HarnessError("%s: %s still %s after %.0f s" % (what, m.name, info.get("status"),
                                                                    deadline.seconds))
        time.sleep(0.05)


def start(src, dst):
    src.cmd("migrate", uri=dst.listen_uri())
    src.wait_status("active", timeout=30)
    time.sleep(0.5)
    h.check(src.query_migrate()["status"] == "active", "precopy ended before the peer stopped")


def stop_and_notice(stopped, watcher, what):
    """SIGSTOPs stopped while precopy runs; watcher's migration must fail within BOUND
    with its guest as it was (source running, destination not started)."""
    start(*((watcher, stopped) if watcher.name == "src" else (stopped, watcher)))
    os.kill(stopped.pid(), signal.SIGSTOP)
    try:
        info, took = wait_failed(watcher, time.monotonic(), what)
        print("%s noticed in %.1f s: %s" % (what, took, info.get("error-desc")))
        h.check(took <= BOUND, "%s: took %.1f s, more than %.1f s" % (what, took, BOUND))
        h.check(watcher.query_status().get("running") is (watcher.name == "src"),
                "%s: %s's guest running=%s" % (what, watcher.name, watcher.query_status().get("running")))
    finally:
        os.kill(stopped.pid(), signal.SIGCONT)


def case_destination_stopped():
    src, dst = pair()
    with src, dst:
        stop_and_notice(dst, src, "destination stopped")
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged by the failed migration: %s" % chk)
        src.wait_running(True)


def case_source_stopped():
    src, dst = pair()
    with src, dst:
        stop_and_notice(src, dst, "source stopped")
        info, _ = wait_failed(src, time.monotonic(), "source continued")
        print("continued source: %s" % info.get("error-desc"))
        src.wait_running(True)
        h.check(dst.query_status().get("running") is False, "destination guest runs")


def case_destination_stopped_postcopy():
    """A destination silent in postcopy (SIGSTOP; its guest idle, so no page request is
    pending, and the push paced so slowly that the source's writes take long to stall):
    the source notices that the return path stopped beating and pauses within the
    bound, its guest stopped; continued, the destination finds its channels cut and
    pauses too (its vCPUs wait, nothing read wrong); a recovery completes intact."""
    from test_recovery import recover
    src, dst = pair(postcopy=True)
    with src, dst:
        # 1 MiB/s: the socket buffers between take longer than the bound to fill, so
        # only the return path's silence can tell
        src.set_params({"max-postcopy-bandwidth": 1 * h.MiB})
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("postcopy-active", timeout=60)
        dst.wait_status("postcopy-active", timeout=30)
        os.kill(dst.pid(), signal.SIGSTOP)
        try:
            wait_paused([src], time.monotonic(), BOUND, "destination stopped")
            h.check(src.query_status().get("running") is False, "source guest runs again after GO")
        finally:
            os.kill(dst.pid(), signal.SIGCONT)
        info = dst.wait_status("postcopy-paused", timeout=BOUND + h.scaled(10))
        print("continued destination: %s (%s)" % (info.get("status"), info.get("error-desc")))
        h.check(dst.query_status().get("status") == "running", "the destination's guest stopped")
        integ = dst.query_migrate().get("x-integrity") or {}
        h.check(integ.get("failed", 0) == 0, "a unit read wrong while paused: %s" % integ)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=64 * h.MiB)


def case_bound_stopped_source_postcopy():
    """A source silent in postcopy while the destination's guest touches no page it
    lacks (idle guest: no fault, no request): the destination still notices within the
    issue's bound and pauses, its guest running; once continued, the source pauses too,
    and a recovery completes intact."""
    from test_recovery import recover
    src, dst = pair(postcopy=True, timeout_ms=TIGHT_MS)
    with src, dst:
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("postcopy-active", timeout=60)
        dst.wait_status("postcopy-active", timeout=30)
        time.sleep(0.5)     # the paced push is under way: the destination reads a frame
        os.kill(src.pid(), signal.SIGSTOP)
        try:
            wait_paused([dst], time.monotonic(), TIGHT_BOUND, "source stopped")
            h.check(dst.query_status().get("status") == "running", "the destination's guest stopped")
        finally:
            os.kill(src.pid(), signal.SIGCONT)
        src.wait_status("postcopy-paused", timeout=TIGHT_BOUND + h.scaled(10))
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=64 * h.MiB)


WAIT_MS = 1500
WAIT_BOUND = h.scaled(WAIT_MS / 1000 * 2 + 3)


def waits_pair(dst_workload="idle", extra=()):
    src = new_migd("src", h.guest_args("64M", workload="seq") + list(extra))
    dst = new_migd("dst", h.guest_args("64M", workload=dst_workload, incoming="tcp:127.0.0.1:0") + list(extra))
    for m in (src, dst):
        m.set_params({"x-channel-timeout": WAIT_MS})
    return src, dst


def failed_in_wait(src, dst, proxy, since, what, text):
    """The destination fails within WAIT_BOUND of since, its error naming text and
    x-channel-timeout, its guest not started; the source fails too, its guest running."""
    info, took = wait_failed(dst, since, what)
    why = info.get("error-desc", "")
    print("%s: the destination failed in %.2f s (bound %.1f s): %s" % (what, took, WAIT_BOUND, why))
    h.check(took <= WAIT_BOUND, "%s: the destination took %.2f s" % (what, took))
    h.check(text in why and "x-channel-timeout" in why, "%s: error-desc %r" % (what, why))
    h.check(dst.query_status().get("running") is False, "%s: the destination's guest runs" % what)
    info, _ = wait_failed(src, since, what)
    print("%s: the source failed: %s" % (what, info.get("error-desc")))
    src.wait_running(True)


def case_silent_multifd_sync():
    src, dst = waits_pair()
    with src, dst:
        for m in (src, dst):
            m.set_caps({"events": True, "multifd": True})
            m.set_params({"multifd-channels": 2})
        with h.Proxy(dst.listen_uri(), mute=(h.CHAN_MULTIFD, lambda t, n: t == h.F_MF_SYNC)) as proxy:
            src.cmd("migrate", uri=proxy.uri)
            h.check(proxy.muted.wait(h.scaled(60)), "no multifd channel sent its SYNC")
            failed_in_wait(src, dst, proxy, time.monotonic(), "multifd sync silent",
                           "multifd channels reached the sync point")
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged by the failed migration: %s" % chk)


def case_silent_device_chunks():
    # one device without a pre-copy part: its chunks come only in stop-copy, after
    # the last pass's pages, so the first one muted is behind every SYNC but DEV_END's
    dev = ["--device", "sim,id=dev0,size=4M,seed=11"]
    src, dst = waits_pair(extra=dev)
    with src, dst:
        for m in (src, dst):
            m.set_caps({"events": True, "multifd": True, "x-device-state-lane": True})
            m.set_params({"multifd-channels": 2})
        with h.Proxy(dst.listen_uri(), mute=(h.CHAN_MULTIFD, lambda t, n: t == h.F_MF_DEV)) as proxy:
            src.cmd("migrate", uri=proxy.uri)
            h.check(proxy.muted.wait(h.scaled(60)), "no device chunk on a multifd channel")
            failed_in_wait(src, dst, proxy, time.monotonic(), "device chunks silent", "device 'dev0'")


def case_silent_preempt_at_end():
    from test_recovery import check_paused, recover
    src, dst = waits_pair(dst_workload="random")
    with src, dst:
        for m in (src, dst):
            m.set_caps({"events": True, "postcopy-ram": True, "postcopy-preempt": True})
        # the first pass slow enough that the source's guest dirties much of it again, the
        # push slow enough that the destination's vCPUs fault on pages still missing (the
        # source answers those on the preempt channel)
        src.set_params({"x-postcopy-after-passes": 1, "max-bandwidth": 32 * h.MiB,
                        "max-postcopy-bandwidth": 16 * h.MiB})
        with h.Proxy(dst.listen_uri(), mute=(h.CHAN_PREEMPT, lambda t, n: True)) as proxy:
            src.cmd("migrate", uri=proxy.uri)
            h.wait_until(lambda: h.F_PC_END in proxy.seen_at, 60, "PC_END through the proxy")
            h.check(proxy.muted.is_set(), "no urgent page on the preempt channel before PC_END")
            info = dst.wait_status("postcopy-paused", timeout=WAIT_BOUND + 10)
            took = time.monotonic() - proxy.seen_at[h.F_PC_END]
            why = info.get("error-desc", "")
            print("preempt silent after PC_END: the destination paused in %.2f s (bound %.1f s): %s"
                  % (took, WAIT_BOUND, why))
            h.check(took <= WAIT_BOUND, "the destination took %.2f s to pause" % took)
            h.check("postcopy ended with" in why and "x-channel-timeout" in why, "error-desc %r" % why)
            check_paused(src, dst)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=64 * h.MiB)


def bed_or_skip():
    import netbed
    try:
        return netbed.NetBed()
    except netbed.BedUnavailable as e:
        raise h.Skip(str(e)) from None


def bed_pair(bed, postcopy):
    """A pair in the netns bed (the source in its source namespace, the destination
    listening on its address) with the tight timeout."""
    import netbed
    return pair(postcopy=postcopy, timeout_ms=TIGHT_MS,
                src_new=lambda name, args: netbed.NsMigd(bed, "src", name, args, start_timeout=30),
                dst_new=lambda name, args: netbed.NsMigd(
                    bed, "dst", name, [a.replace("tcp:127.0.0.1:0", bed.uri("dst", 0)) for a in args],
                    start_timeout=30))


def case_bound_cut_link_precopy():
    """The link cut in precopy: the source notices within the issue's bound and fails
    with its guest running and intact; the destination notices too and fails, its guest
    never started."""
    with bed_or_skip() as bed:
        src, dst = bed_pair(bed, postcopy=False)
        with src, dst:
            start(src, dst)
            bed.link("src", False)
            t0 = time.monotonic()
            for m in (src, dst):
                info, took = wait_failed(m, t0, "link cut in precopy")
                print("link cut in precopy: %s failed in %.2f s (bound %.1f s): %s"
                      % (m.name, took, TIGHT_BOUND, info.get("error-desc")))
                h.check(took <= TIGHT_BOUND, "link cut in precopy: %s took %.2f s" % (m.name, took))
            h.check(dst.query_status().get("running") is False, "the destination's guest runs")
            src.wait_running(True)
            chk = src.cmd("x-guest-check", timeout=120)
            h.check(chk.get("failed") == 0 and chk.get("checked", 0) > 0, "source guest check %s" % chk)


def case_bound_cut_link_postcopy():
    """The link cut in postcopy (the netns bed: nothing crosses, nothing is reset):
    both sides pause by themselves within the issue's bound; mended, a recovery over
    the bed completes intact."""
    from test_recovery import recover
    with bed_or_skip() as bed:
        src, dst = bed_pair(bed, postcopy=True)
        with src, dst:
            src.cmd("migrate", uri=dst.listen_uri())
            src.wait_status("postcopy-active", timeout=60)
            dst.wait_status("postcopy-active", timeout=30)
            time.sleep(0.5)
            bed.link("src", False)
            t0 = time.monotonic()
            wait_paused([dst, src], t0, TIGHT_BOUND, "link cut")
            h.check(dst.query_status().get("status") == "running", "the destination's guest stopped")
            h.check(src.query_status().get("running") is False, "the source's guest runs again")
            bed.link("src", True)
            info = recover(src, dst, listen=bed.uri("dst", 0))
            h.check_migrated(src, dst, info, size=64 * h.MiB)


if __name__ == "__main__":
    h.main([case_destination_stopped, case_source_stopped, case_destination_stopped_postcopy,
            case_bound_stopped_source_postcopy, case_bound_cut_link_precopy, case_bound_cut_link_postcopy,
            case_silent_multifd_sync, case_silent_device_chunks, case_silent_preempt_at_end])
