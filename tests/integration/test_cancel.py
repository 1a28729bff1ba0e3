#!/usr/bin/env python3
"""Cancel in the middle of a migration: a 256 MiB guest throttled to 32 MiB/s is
cancelled while pages flow. The source must reach "cancelled", keep running, and its
guest must be intact (x-guest-check: 0 failed over every unit); a second migration of
the same source to a fresh destination must then complete."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 256 * h.MiB


def case_cancel_then_migrate():
    dst_args = h.guest_args("256M", incoming="tcp:127.0.0.1:0")
    with h.Migd("src", h.guest_args("256M", workload="seq")) as src:
        src.set_caps({"events": True})
        src.set_params({"downtime-limit": 300, "max-bandwidth": 32 * h.MiB})

        with h.Migd("dst1", dst_args) as dst1:
            dst1.expect_exit()      # a destination whose source went away may end
            src.cmd("migrate", uri=dst1.listen_uri())
            src.wait_status("active", timeout=30)
            h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("transferred", 0) >= 8 * h.MiB,
                         30, "8 MiB to be sent")
            info = src.query_migrate()
            h.check(info.get("status") == "active",
                    "expected the throttled migration to still be active, got %r" % info.get("status"))
            src.cmd("migrate_cancel")
            info = src.wait_status("cancelled", timeout=30)
            print("cancelled after %s bytes" % (info.get("ram") or {}).get("transferred"))

        src.qmp.wait_event("MIGRATION", timeout=5, match=lambda d: d.get("status") == "cancelled")
        st = src.query_status()
        h.check(st.get("running") is True and st.get("status") == "running",
                "source after cancel: %s" % st)
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged by the cancelled migration: %s" % chk)
        h.check(chk.get("checked") == SIZE // h.UNIT,
                "x-guest-check checked %r of %d units" % (chk.get("checked"), SIZE // h.UNIT))

        # The same source migrates again, unthrottled, to a fresh destination.
        with h.Migd("dst2", dst_args) as dst2:
            dst2.set_caps({"events": True})
            src.set_params(h.FAST_PARAMS)
            src.cmd("migrate", uri=dst2.listen_uri())
            info = src.wait_status("completed", timeout=120)
            h.check_migrated(src, dst2, info, size=SIZE)


if __name__ == "__main__":
    h.main([case_cancel_then_migrate])
