#!/usr/bin/env python3
"""Lost pages must be caught: the source is told to lose three pages of its first pass
(x-debug-drop-pages) on an idle guest, so nothing re-sends them. The destination must
refuse COMPLETE (its received bitmap is short of exactly 3 pages), say so in
error-desc, not start its guest, and tell the source, which fails and keeps its guest
running; both keep answering QMP."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402


def case_lost_pages_are_caught():
    with h.Migd("src", h.guest_args("64M", workload="idle")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        src.set_params(dict(h.FAST_PARAMS, **{"x-debug-drop-pages": 3}))
        src.cmd("migrate", uri=dst.listen_uri())
        info = dst.wait_status("failed", timeout=60)
        desc = info.get("error-desc", "")
        h.check("3 of %d guest pages never arrived" % ((64 * h.MiB) // h.UNIT) in desc,
                "error-desc does not count the missing pages: %r" % desc)
        sinfo = src.wait_status("failed", timeout=60)
        h.check("never arrived" in sinfo.get("error-desc", ""),
                "the source was not told why: %r" % sinfo.get("error-desc"))
        h.check(src.query_status().get("status") == "running", "the source's guest does not run")
        h.check(dst.query_status().get("status") != "running", "the destination started its guest")


if __name__ == "__main__":
    h.main([case_lost_pages_are_caught])
