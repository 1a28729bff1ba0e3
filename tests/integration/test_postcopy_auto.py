#!/usr/bin/env python3
"""x-postcopy-auto: the engine decides when precopy will not converge.

- A guest that keeps writing (with a device whose state alone is over the limit) over
  a link capped below what precopy needs switches to postcopy by itself (no migrate-start-postcopy): query-migrate names the pass and the
  reason, and the migration completes with integrity intact. Its vCPUs dirty faster
  than the cap, so the verdict may come inside the bulk pass (a probe: the pass is cut
  where it is, and what it never reached goes in postcopy), or after it; then only
  because the guest dirtied as fast as the pass sent, nearly all its RAM was dirty
  again, or precopy's further passes would take longer than postcopy. The same with
  multifd, whose pass takes its pages in another loop.
- An idle guest converges: precopy completes, and the destination never enters
  postcopy.
- Without postcopy-ram, migrate refuses x-postcopy-auto and the source keeps running."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 128 * h.MiB
# The busy guest's bulk pass is probed at each eighth of it: at 256 MiB an eighth is
# two 16 MiB groups of the dirty bitmap's summary (engine/bitmap.h), so a probe falls
# where the pass has left a group behind, whose pages written again must still be
# discarded on the destination (at 128 MiB every probe fell on a group's edge).
BUSY_SIZE = 256 * h.MiB


def pair(src_workload, device=(), size="128M"):
    return (h.Migd("src", h.guest_args(size, workload=src_workload, vcpus=2) + list(device)),
            h.Migd("dst", h.guest_args(size, workload="random", incoming="tcp:127.0.0.1:0") + list(device)))


def busy_guest_switches(multifd):
    # A vCPU starved by a loaded host may dirty nothing for a short pass; the 4 MiB
    # device (125 ms at the cap) keeps even such a pass over the 1 ms limit, so
    # precopy can never finish on its own and the verdict cannot depend on the
    # scheduler.
    s, d = pair("seq", ["--device", "sim,id=dev0,size=4M"], size="256M")
    with s as src, d as dst:
        for m in (src, dst):
            m.set_caps({"postcopy-ram": True, "events": True, "multifd": multifd})
            if multifd:
                m.set_params({"multifd-channels": 2})
        # a 1 ms limit no pass can meet at 32 MiB/s: precopy alone would run forever,
        # so only the judge can end it
        src.set_params({"max-bandwidth": 32 * h.MiB, "downtime-limit": 1, "x-postcopy-auto": True})
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status(["postcopy-active", "completed"], timeout=90)
        q = src.query_migrate()
        auto = q.get("x-postcopy-auto")
        h.check(isinstance(auto, dict), "switched without x-postcopy-auto in query-migrate: %s" % sorted(q))
        h.check(auto["pass"] >= 1, "switched at pass %r" % auto["pass"])
        # "pass N:" after a pass, "pass 1 at P %:" from a probe inside the first
        h.check(re.match(r"pass %d( at \d+ %%)?: " % auto["pass"], auto["reason"]) is not None,
                "reason %r does not name pass %d" % (auto["reason"], auto["pass"]))
        if auto["pass"] == 1:
            # the bulk pass decides alone on a rest of 90 % of the RAM or more, or on a
            # rest whose further passes would take longer than postcopy moving it once;
            # a probe inside it on a guest dirtying as fast as the pass sends, or on
            # that cost, and never at its end (the pass's end judges there)
            reason = auto["reason"]
            share = re.search(r"dirtied (\d+) % of its RAM during the first pass", reason)
            at = re.match(r"pass 1 at (\d+) %: ", reason)
            rate = re.search(r"dirties ([\d.]+) MB/s, as fast as the pass's ([\d.]+) MB/s", reason)
            cost = re.search(r"about (\d+) ms, postcopy about (\d+) ms", reason)
            # precopy's figure is printed rounded to the ms: over 1.5 x, less half a ms
            costlier = cost is not None and int(cost.group(1)) > 1.5 * int(cost.group(2)) - 0.5
            if at:
                h.check(int(at.group(1)) < 100, "a probe at the pass's end: %r" % reason)
                h.check((rate is not None and float(rate.group(1)) >= float(rate.group(2))) or costlier,
                        "a probe's verdict on a guest slower than the pass and no costlier precopy: %r" % reason)
            else:
                h.check(share is not None and (int(share.group(1)) >= 90 or costlier),
                        "a pass-1 verdict without nearly all the RAM dirty or a costlier precopy: %r" % reason)
        src.set_params({"max-bandwidth": 0})
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=BUSY_SIZE)
        h.check(info.get("x-postcopy-auto") == auto, "the verdict changed after the switch: %r" % info.get("x-postcopy-auto"))
        h.check(info["ram"]["postcopy-bytes"] > 0, "no postcopy bytes after the switch")
        print("switched at pass %d: %s" % (auto["pass"], auto["reason"]))


def case_busy_guest_switches():
    busy_guest_switches(False)


def case_busy_guest_switches_multifd():
    busy_guest_switches(True)


def case_idle_guest_converges():
    s, d = pair("idle")
    with s as src, d as dst:
        for m in (src, dst):
            m.set_caps({"postcopy-ram": True, "events": True})
        src.set_params({"max-bandwidth": 0, "downtime-limit": 2000, "x-postcopy-auto": True})
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=90)
        h.check_migrated(src, dst, info, size=SIZE)
        h.check("x-postcopy-auto" not in info, "an idle guest was switched: %r" % info.get("x-postcopy-auto"))
        h.check(info["ram"]["postcopy-bytes"] == 0, "postcopy bytes %d for a converging guest"
                % info["ram"]["postcopy-bytes"])
        h.check("x-postcopy-requests" not in dst.query_migrate(), "the destination entered postcopy")


def case_needs_postcopy_ram():
    s, d = pair("seq")
    with s as src, d as dst:
        src.set_params({"x-postcopy-auto": True})
        try:
            src.cmd("migrate", uri=dst.listen_uri())
            h.check(False, "x-postcopy-auto without postcopy-ram was accepted")
        except h.QmpError as e:
            h.check("x-postcopy-auto requires the postcopy-ram capability" in e.desc, "refused with %r" % e.desc)
        h.check(src.cmd("query-status")["status"] == "running", "the source guest stopped after the refusal")


if __name__ == "__main__":
    h.main([case_busy_guest_switches, case_busy_guest_switches_multifd, case_idle_guest_converges, case_needs_postcopy_ram])
