#!/usr/bin/env python3
"""migbench's smoke test: `migbench precopy-throughput --quick --runs 1 --guest-mib 64`
against the built tree, the smallest run it accepts (six rows, each a raw baseline, a
migration and a cache-hot baseline of 64 MiB).

- It exits 0 and its JSON has the six rows --quick makes, in order.
- Every row completed with every page verified, its samples moved the guest's size,
  and its figures are sane: positive, finite speeds and ratios, a total time that
  covers the setup time. The one exception is a hugetlb row "skipped" because the host
  has no 2M huge pages to give: that is the host, not mig.

Speeds are never compared with a target: they are benchmark figures, not assertions.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

GUEST_MIB = 64
TIMEOUT = 300.0
# the rows --quick makes, in order: (backend, channels); "main" is multifd off
ROWS = [("anon", "main"), ("anon", 1), ("anon", 4), ("hugetlb", "main"), ("hugetlb", 1), ("hugetlb", 4)]


def run_migbench(path):
    cmd = [h.tool("migbench"), "precopy-throughput", "--quick", "--runs", "1", "--guest-mib", str(GUEST_MIB),
           "--json", path]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=h.scaled(TIMEOUT), preexec_fn=h._set_pdeathsig)
    h.check(p.returncode == 0, "migbench exited with %d:\n%s" % (p.returncode, p.stdout))
    with open(path) as f:
        return json.load(f)


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def check_raw(what, raw, memory, guest):
    h.check(raw["memory"] == memory, "%s: baseline memory %s, not %s" % (what, raw["memory"], memory))
    h.check(len(raw["samples"]) == 1, "%s: %d samples" % (what, len(raw["samples"])))
    for s in raw["samples"]:
        h.check(s["bytes"] == guest, "%s: moved %d of %d bytes" % (what, s["bytes"], guest))
        h.check(positive(s["seconds"]) and positive(s["gbps"]), "%s: figures %s" % (what, s))
    h.check(positive(raw["median_gbps"]), "%s: median %s" % (what, raw["median_gbps"]))


def check_mig(what, mig, guest):
    h.check(len(mig["samples"]) == 1, "%s: %d migrations" % (what, len(mig["samples"])))
    for s in mig["samples"]:
        integ = s["integrity"]
        h.check(s["status"] == "completed", "%s: %s" % (what, s["status"]))
        h.check(s["ram_total"] == guest, "%s: ram_total %d, not %d" % (what, s["ram_total"], guest))
        h.check(integ["failed"] == 0 and integ["total"] > 0 and integ["checked"] == integ["total"],
                "%s: integrity %s" % (what, integ))
        h.check(positive(s["gbps"]), "%s: %s GB/s" % (what, s["gbps"]))
        h.check(0 <= s["setup_time_ms"] < s["total_time_ms"], "%s: setup %d of total %d ms"
                % (what, s["setup_time_ms"], s["total_time_ms"]))
        h.check(s["downtime_ms"] >= 0, "%s: downtime %d ms" % (what, s["downtime_ms"]))
        h.check(positive(s["migration_thread_cpu_ms"]) or s["migration_thread_cpu_ms"] == 0,
                "%s: migration thread CPU %s ms" % (what, s["migration_thread_cpu_ms"]))
    h.check(positive(mig["median_gbps"]), "%s: median %s" % (what, mig["median_gbps"]))


def check_row(row, want, guest):
    backend, channels = want
    what = "%s/%s" % want
    h.check((row["backend"], row["channels"]) == want, "row %s/%s, not %s" % (row["backend"], row["channels"], what))
    h.check(row["multifd"] == (channels != "main"), "%s: multifd %s" % (what, row["multifd"]))
    if row["status"] == "skipped" and backend == "hugetlb":
        print("%s: skipped: %s" % (what, row["error"]))
        return
    h.check(row["status"] == "ok", "%s: %s: %s" % (what, row["status"], row["error"]))
    check_raw(what + " raw", row["raw"], "distinct-2m" if backend == "hugetlb" else "distinct-4k", guest)
    check_raw(what + " raw-hot", row["raw_hot"], "hot", guest)
    check_mig(what, row["mig"], guest)
    for k in ("ratio", "ratio_paired", "ratio_hot"):
        h.check(positive(row[k]), "%s: %s %s" % (what, k, row[k]))


def case_quick():
    with tempfile.TemporaryDirectory(prefix="mig-migbench-", dir=h._tmp_base()) as d:
        top = run_migbench(os.path.join(d, "quick.json"))
        # migbench plots its JSON beside it (tools/bench/plot, gnuplot from lib-setup)
        svg = os.path.join(d, "quick-throughput.svg")
        h.check(os.path.exists(svg) and os.path.getsize(svg) > 0, "no plot %s beside the JSON" % svg)
    guest = GUEST_MIB * h.MiB
    h.check(top["scenario"] == "precopy-throughput" and top["quick"] is True and top["runs"] == 1,
            "scenario/quick/runs: %s %s %s" % (top["scenario"], top["quick"], top["runs"]))
    h.check(top["guest_bytes"] == guest, "guest_bytes %d, not %d" % (top["guest_bytes"], guest))
    h.check(len(top["rows"]) == len(ROWS), "%d rows, not %d" % (len(top["rows"]), len(ROWS)))
    for row, want in zip(top["rows"], ROWS):
        check_row(row, want, guest)


if __name__ == "__main__":
    h.main([case_quick])
