#!/usr/bin/env python3
"""The integrity check must be able to fail: the source is told to lose three pages of
its first pass (x-debug-drop-pages) on an idle guest, so nothing re-sends them. The
destination must find exactly those units wrong, report failed with the unit in
error-desc, and keep answering QMP."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402


def case_lost_pages_are_caught():
    with h.Migd("src", h.guest_args("64M", workload="idle")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        src.set_params(dict(h.FAST_PARAMS, **{"x-debug-drop-pages": 3}))
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("completed", timeout=60)
        info = dst.wait_status("failed", timeout=60)
        h.wait_until(lambda: (dst.query_migrate().get("x-integrity") or {}).get("checked")
                     == (64 * h.MiB) // h.UNIT, 60, "the sweep to finish")
        integ = dst.query_migrate()["x-integrity"]
        h.check(integ["failed"] == 3, "expected exactly 3 lost units, got %s" % integ)
        h.check("integrity check failed at unit" in info.get("error-desc", ""),
                "error-desc does not name the unit: %r" % info.get("error-desc"))
        h.check(dst.query_status().get("status") is not None, "destination stopped answering")


if __name__ == "__main__":
    h.main([case_lost_pages_are_caught])
