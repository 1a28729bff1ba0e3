#!/usr/bin/env python3
"""A migration driven with exactly the QMP a QEMU user sends: a 1 GiB guest on 2 MiB
hugetlb pages running the seq workload. On each side qmp_capabilities and
migrate-set-capabilities (events); on the source migrate-set-parameters (max-bandwidth,
downtime-limit) and migrate; then query-migrate until completed, and query-status on both
sides. The destination's integrity sweep must then report 0 failed units."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 1 * h.GiB
GUEST = ["-m", "1G", "--mem-backend", "hugetlb", "--hugepage-size", "2M"]


def case_qemu_style_1g_hugetlb():
    h.require_hugepages(2 * SIZE // (2 * h.MiB))
    with h.Migd("src", GUEST + ["--workload", "seq"], negotiate=False) as src, \
            h.Migd("dst", GUEST + ["--incoming", "tcp:127.0.0.1:0"], negotiate=False) as dst:
        s, d = src.qmp, dst.qmp
        for q in (s, d):
            q.cmd("qmp_capabilities")
            q.cmd("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
        s.cmd("migrate-set-parameters", {"max-bandwidth": 10 * h.GiB, "downtime-limit": 300})

        dst_info = d.cmd("query-migrate")
        h.check(dst_info.get("socket-address"), "destination reports no socket-address: %s" % dst_info)
        uri = h.uri_of(dst_info["socket-address"][0])
        s.cmd("migrate", {"uri": uri})

        deadline = h.Deadline(h.scaled(240))
        last_print = 0.0
        while True:
            info = s.cmd("query-migrate")
            st = info.get("status")
            if st == "completed":
                break
            h.check(st not in ("failed", "cancelled"), "migration %s: %s" % (st, info.get("error-desc")))
            h.check(not deadline.expired(), "not completed after %.0f s: %s" % (deadline.seconds, json.dumps(info)))
            if time.monotonic() - last_print >= 1.0:
                ram = info.get("ram") or {}
                print("%s: transferred %s remaining %s mbps %s passes %s" % (
                    st, ram.get("transferred"), ram.get("remaining"), ram.get("mbps"),
                    ram.get("dirty-sync-count")))
                last_print = time.monotonic()
            time.sleep(0.1)

        ram = info["ram"]
        h.check(ram.get("total") == SIZE, "ram.total %r" % ram.get("total"))
        h.check(ram.get("page-size") in (4096, 2 * h.MiB), "ram.page-size %r" % ram.get("page-size"))
        for k in ("total-time", "downtime", "setup-time"):
            h.check(isinstance(info.get(k), int), "%s missing: %s" % (k, json.dumps(info)))
        mibs = ram["transferred"] / h.MiB / max(info["total-time"] / 1000.0, 0.001)
        print("completed: total-time %d ms, downtime %d ms, %.0f MiB/s, %d passes"
              % (info["total-time"], info["downtime"], mibs, ram.get("dirty-sync-count", 0)))

        # The events a QEMU user sees on the way.
        s.wait_event("MIGRATION", 10, lambda e: e.get("status") == "completed")
        h.check(s.take_events("MIGRATION_PASS"), "no MIGRATION_PASS event on the source")
        s.wait_event("STOP", 10)
        d.wait_event("RESUME", 10)

        st_dst = dst.wait_running(True)
        h.check(st_dst.get("status") == "running", "destination query-status %s" % st_dst)
        st_src = s.cmd("query-status")
        h.check(st_src.get("status") == "postmigrate" and st_src.get("running") is False,
                "source query-status %s" % st_src)

        integ = dst.wait_integrity(180)
        print("integrity: %d units checked, %d failed" % (integ["checked"], integ["failed"]))
        h.check(integ["failed"] == 0, "integrity failures: %s" % integ)
        h.check(integ["total"] == SIZE // h.UNIT, "x-integrity total %r" % integ["total"])


if __name__ == "__main__":
    h.main([case_qemu_style_1g_hugetlb])
