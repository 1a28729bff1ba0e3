#!/usr/bin/env python3
"""Postcopy, with and without the preempt channel and multifd.

- anon, memfd and hugetlb-2M guests move by postcopy (migrate-start-postcopy while the
  source's seq workload keeps precopy from converging); the destination runs seq or
  random right after the switchover; integrity has zero failures and every request
  the destination made was answered by exactly one placement it timed.
- x-postcopy-after-passes switches by itself.
- A request storm from 8 destination vCPUs loses and duplicates nothing.
- postcopy-preempt without postcopy-ram is refused on either side; so is
  migrate-start-postcopy without the capability, and migrate_cancel once in postcopy."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 256 * h.MiB


def caps(preempt, multifd):
    c = {"postcopy-ram": True, "events": True}
    if preempt:
        c["postcopy-preempt"] = True
    if multifd:
        c["multifd"] = True
    return c


def postcopy_run(backend, preempt, multifd, dst_workload, vcpus=2, auto=False):
    if backend == "hugetlb":
        h.require_hugepages(2 * SIZE // (2 * h.MiB))
    with h.Migd("src", h.guest_args("256M", backend=backend, workload="seq", vcpus=2)) as src, \
         h.Migd("dst", h.guest_args("256M", backend=backend, workload=dst_workload, vcpus=vcpus,
                                    incoming="tcp:127.0.0.1:0")) as dst:
        for m in (src, dst):
            m.set_caps(caps(preempt, multifd))
            if multifd:
                m.set_params({"multifd-channels": multifd})
        # slow enough that precopy cannot finish by itself: postcopy must take over
        params = {"max-bandwidth": 64 * h.MiB, "downtime-limit": 1}
        if auto:
            params["x-postcopy-after-passes"] = 1
        src.set_params(params)
        src.cmd("migrate", uri=dst.listen_uri())
        if not auto:
            src.wait_status("active", timeout=30)
            time.sleep(0.3)
            src.cmd("migrate-start-postcopy")
        src.wait_status(["postcopy-active", "completed"], timeout=60)
        try:
            src.cmd("migrate_cancel")
            cancelled = src.query_migrate()["status"] != "completed"
            h.check(not cancelled, "migrate_cancel was accepted in postcopy")
        except h.QmpError as e:
            h.check("Postcopy" in e.desc, "unexpected cancel error %s" % e.desc)
        src.set_params({"max-bandwidth": 0})
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=SIZE)
        d = dst.query_migrate()
        lat = d.get("x-postcopy-latency") or {}
        timed = sum(v["count"] for v in lat.values())
        reqs = d.get("x-postcopy-requests", -1)
        h.check(reqs == timed, "%d requests but %d timed placements: a request was lost or doubled" % (reqs, timed))
        h.check(len(d.get("postcopy-latency-dist", [])) == 24, "postcopy-latency-dist must have 24 buckets")
        h.check(info["ram"]["postcopy-requests"] == reqs,
                "source served %s requests, destination made %d" % (info["ram"]["postcopy-requests"], reqs))
        print("%s preempt=%s multifd=%s dst=%s: downtime %s ms, %d requests, latency %s"
              % (backend, preempt, multifd, dst_workload, info.get("downtime"), reqs, lat))
        return reqs


def make(backend, preempt, multifd, dst_workload):
    name = "%s-%s-mf%d-%s" % (backend, "preempt" if preempt else "plain", multifd, dst_workload)
    return (name, lambda: postcopy_run(backend, preempt, multifd, dst_workload))


CASES = [make(b, p, m, w) for b in ("anon", "memfd", "hugetlb")
         for (p, m, w) in ((False, 0, "random"), (True, 0, "random"), (True, 4, "seq"), (False, 4, "seq"))]


def case_auto_switch():
    postcopy_run("anon", True, 0, "random", auto=True)


def case_request_storm():
    reqs = postcopy_run("anon", True, 0, "random,rate=0", vcpus=8)
    h.check(reqs > 0, "the storm made no requests")


def case_preempt_needs_postcopy():
    with h.Migd("src", h.guest_args("64M")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        for m in (src, dst):
            try:
                m.set_caps({"postcopy-preempt": True})
                h.check(False, "postcopy-preempt without postcopy-ram was accepted on %s" % m.name)
            except h.QmpError as e:
                h.check(e.cls == "GenericError" and "postcopy-ram" in e.desc, "error: %s" % e.desc)
        try:
            src.cmd("migrate-start-postcopy")
            h.check(False, "migrate-start-postcopy accepted without postcopy-ram")
        except h.QmpError as e:
            print("refused: %s" % e.desc)


if __name__ == "__main__":
    h.main(CASES + [case_auto_switch, case_request_storm, case_preempt_needs_postcopy])
