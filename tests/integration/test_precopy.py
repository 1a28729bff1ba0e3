#!/usr/bin/env python3
"""Precopy migration matrix for one memory backend: transports (tcp, unix) x workloads
(idle, seq, random with a 64 MiB working set; sparse, random writes over the whole guest,
on request). Each case migrates a fresh guest and checks the source ends postmigrate,
the destination runs, ram.total and downtime are reported, and the destination's
integrity sweep checks every 4 KiB unit with 0 failures.

    test_precopy.py BACKEND [--size 128M] [--transport tcp ...] [--workload idle ...]
                    [--clean-exit] [--dirty-log WORKLOAD ...] [CASE-SUBSTRING ...]

BACKEND is anon, memfd, hugetlb (2 MiB pages) or anon-thp (anon on transparent huge
pages, migd --mem-thp, both sides). With anon-thp the source's guest must be on huge
pages before the migration (else the case skips, saying so), and a writing workload
must have split some of them: its writes hit write-protected huge pages between passes
and up to the stop, and every unit still checks. --clean-exit ends both migd with QMP
quit and requires exit status 0 (used by the sanitizer run: leaks show up at exit).
--dirty-log WORKLOAD adds a tcp case of that workload whose source tracks writes with
sync uffd-wp faults (migd --dirty-log): the guest writes through every pass and at the
stop, the source's log must say that tracker ran, and every unit must check.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

WORKLOADS = {"idle": "idle", "seq": "seq", "random": "random,wss=64M",
             # about 4000 units a second anywhere in the guest: most writes land in a
             # 2 MiB region not written since the tracker armed
             "sparse": "random,rate=16M"}


def run_thp(size, transport, workload, clean_exit):
    """anon-thp: migrate_pair's steps, looking at the source's huge pages before and after."""
    nbytes = h.parse_size(size)
    args = h.guest_args(size, "anon") + ["--mem-thp"]
    incoming = "tcp:127.0.0.1:0" if transport == "tcp" else "unix:{tmpdir}/mig.sock"
    with h.Migd("src", args + ["--workload", WORKLOADS[workload]]) as src, \
         h.Migd("dst", args + ["--incoming", incoming]) as dst:
        before = h.require_thp(src, nbytes)
        for m in (src, dst):
            m.set_caps({"events": True})
        src.set_params(h.FAST_PARAMS)
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=120)
        # at once: once the tracker is gone khugepaged may collapse split regions again
        after = h.anon_huge_bytes(src)
        h.check_migrated(src, dst, info, size=nbytes)
        print("source AnonHugePages: %d MiB before, %d MiB after" % (before // h.MiB, after // h.MiB))
        if workload != "idle":
            h.check(after < before, "%s wrote during the migration but no huge page was split (%d MiB before, "
                    "%d MiB after): the writes did not hit write-protected huge pages" % (workload, before // h.MiB,
                                                                                          after // h.MiB))
        if clean_exit:
            for m in (dst, src):
                rc = m.quit()
                h.check(rc == 0, "migd %s exited with status %s after quit" % (m.name, rc))


def make_case(backend, size, transport, workload, clean_exit, dirty_log=False):
    def run():
        nbytes = h.parse_size(size)
        if backend == "anon-thp":
            return run_thp(size, transport, workload, clean_exit)
        if backend == "hugetlb":
            # source and destination at once
            h.require_hugepages(2 * (nbytes // (2 * h.MiB)))
        src = h.guest_args(size, backend, workload=WORKLOADS[workload])
        dst = h.guest_args(size, backend)
        if dirty_log:
            src += ["--dirty-log"]
        with h.migrate_pair(src, dst, transport=transport) as p:
            h.check_migrated(p, size=nbytes)
            if dirty_log:
                with open(p.src.stderr_path, errors="replace") as f:
                    log = f.read()
                h.check("dirty tracking by uffd-wp-log" in log,
                        "the source did not report tracking by uffd-wp-log:\n" + log[-2000:])
                h.check(p.info["ram"]["dirty-sync-count"] >= 2,
                        "no live sync before the final one: %s" % p.info["ram"])
            if clean_exit:
                for m in (p.dst, p.src):
                    rc = m.quit()
                    h.check(rc == 0, "migd %s exited with status %s after quit" % (m.name, rc))
    return ("%s/%s/%s/%s%s" % (backend, size, transport, workload, "/dirty-log" if dirty_log else ""), run)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backend", choices=["anon", "memfd", "hugetlb", "anon-thp"])
    # twice random's working set (64 MiB): a 4K guest's time goes with its size
    # (populating it, moving it, the integrity sweep), and no check is about the size
    ap.add_argument("--size", default="128M")
    ap.add_argument("--transport", action="append", choices=["tcp", "unix"])
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    ap.add_argument("--clean-exit", action="store_true")
    ap.add_argument("--dirty-log", action="append", choices=sorted(WORKLOADS), default=[])
    ap.add_argument("only", nargs="*")
    a = ap.parse_args()
    cases = [make_case(a.backend, a.size, t, w, a.clean_exit)
             for t in a.transport or ["tcp", "unix"]
             for w in a.workload or ["idle", "seq", "random"]]
    cases += [make_case(a.backend, a.size, "tcp", w, a.clean_exit, dirty_log=True) for w in a.dirty_log]
    h.main(cases, a.only)


if __name__ == "__main__":
    main()
