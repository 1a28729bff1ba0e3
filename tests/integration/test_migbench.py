#!/usr/bin/env python3
"""migbench's smoke tests against the built tree.

quick: `migbench precopy-throughput --quick --runs 1 --guest-mib 64`, the smallest run
it accepts (six rows, each a raw baseline, a migration and a cache-hot baseline of 64 MiB).

- It exits 0 and its JSON has the six rows --quick makes, in order.
- Every row completed with every page verified, its samples moved the guest's size,
  and its figures are sane: positive, finite speeds and ratios, a total time that
  covers the setup time. The one exception is a hugetlb row "skipped" because the host
  has no 2M huge pages to give: that is the host, not mig.

device_downtime: `migbench device-downtime --quick --runs 1` (1 and 4 devices of 100 MiB,
lane and serial, 4 channels).

- It exits 0, every row is ok (migbench counts a run only if every device's bytes were
  verified on the destination), and each device took at least the load time its
  load-rate asks for, inside the downtime.
- Each lane row has its floor from the same run: a raw transfer of exactly its devices'
  bytes, the floor the larger of that and the 1-device row's load time, the ratio to
  it as the downtime says; serial rows have none. The 4-device target's verdict in the
  JSON and the table agrees with its ratio.

file_lazy: `migbench file --lazy-only --guest-mib 64 --runs 1` (a lazy restore of a
file in /var/tmp, every unit verified).

- It exits 0 and its lazy restore is ok: the guest ran, faulted, and every page came in.
- The guest's progress is read from one counter: the units written 0.5, 1 and 2 s
  after it ran never go down, it wrote some by 2 s, and the figure when every page was
  in lies where that moment lies among them. The faults' waits summed are positive.

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


def run_migbench(path, args=("precopy-throughput", "--quick", "--runs", "1", "--guest-mib", str(GUEST_MIB))):
    """migbench ARGS --json PATH: its JSON and its output."""
    cmd = [h.tool("migbench")] + list(args) + ["--json", path]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=h.scaled(TIMEOUT), preexec_fn=h._set_pdeathsig)
    h.check(p.returncode == 0, "migbench exited with %d:\n%s" % (p.returncode, p.stdout))
    with open(path) as f:
        return json.load(f), p.stdout


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
        top, _ = run_migbench(os.path.join(d, "quick.json"))
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


DD_ROWS = [("lane", 4, 1), ("lane", 4, 4), ("serial", 4, 1), ("serial", 4, 4)]
DD_DEVICE_BYTES = 100 * h.MiB
DD_LOAD_MS = 97   # 100 MiB at load-rate=1G (2^30 bytes/s): 97.7 ms of device time at least


def close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def case_device_downtime():
    with tempfile.TemporaryDirectory(prefix="mig-migbench-", dir=h._tmp_base()) as d:
        top, out = run_migbench(os.path.join(d, "dd.json"), ("device-downtime", "--quick", "--runs", "1"))
    print(out)
    h.check(top["scenario"] == "device-downtime" and top["quick"] is True and top["runs"] == 1,
            "scenario/quick/runs: %s %s %s" % (top["scenario"], top["quick"], top["runs"]))
    h.check(top["device_bytes"] == DD_DEVICE_BYTES, "device_bytes %s" % top["device_bytes"])
    rows = {(r["arm"], r["channels"], r["devices"]): r for r in top["rows"]}
    h.check(sorted(rows) == sorted(DD_ROWS), "rows %s, not %s" % (sorted(rows), sorted(DD_ROWS)))
    for key, r in rows.items():
        h.check(r["status"] == "ok", "%s: %s: %s" % (key, r["status"], r["error"]))
        h.check(len(r["samples"]) == 1, "%s: %d samples" % (key, len(r["samples"])))
        s = r["samples"][0]
        h.check(s["max_load_ms"] >= DD_LOAD_MS and s["downtime_ms"] >= s["max_load_ms"],
                "%s: load %d ms, downtime %d ms" % (key, s["max_load_ms"], s["downtime_ms"]))
        if key[0] == "serial":
            h.check(s["raw_ms"] is None and r["floor_ms"] is None and r["vs_floor"] is None,
                    "%s: a serial row with a floor: %s" % (key, r))
            continue
        h.check(positive(s["raw_ms"]) and positive(s["raw_gbps"]), "%s: raw %s" % (key, s))
        # the raw transfer moved the row's device bytes: its speed and time agree
        moved = s["raw_gbps"] * 1e9 * s["raw_ms"] / 1e3
        h.check(abs(moved - key[2] * DD_DEVICE_BYTES) <= 0.01 * key[2] * DD_DEVICE_BYTES,
                "%s: raw %.0f bytes, not %d" % (key, moved, key[2] * DD_DEVICE_BYTES))
        h.check(close(r["median_raw_ms"], s["raw_ms"]), "%s: median raw %s" % (key, r["median_raw_ms"]))
        floor = max(top["one_device_load_ms"], r["median_raw_ms"])
        h.check(close(r["floor_ms"], floor), "%s: floor %s, not %s" % (key, r["floor_ms"], floor))
        h.check(close(r["vs_floor"], s["downtime_ms"] / floor), "%s: vs_floor %s" % (key, r["vs_floor"]))
    h.check(top["one_device_load_ms"] == rows[("lane", 4, 1)]["samples"][0]["max_load_ms"],
            "one_device_load_ms %s" % top["one_device_load_ms"])
    t = top["floor_target"]
    vs = rows[("lane", 4, 4)]["vs_floor"]
    h.check(t["devices"] == 4 and t["channels"] == 4 and t["limit"] == 1.2 and close(t["vs_floor"], vs)
            and t["met"] == (vs <= 1.2), "floor_target %s (row: %s)" % (t, vs))
    line = "target: lane, 4 devices, 4 channels <= 1.2 x floor: %.2f %s" % (vs, "met" if vs <= 1.2 else "MISSED")
    h.check(line in out, "the table lacks %r" % line)


def case_file_lazy():
    with tempfile.TemporaryDirectory(prefix="mig-migbench-", dir=h._tmp_base()) as d:
        top, out = run_migbench(os.path.join(d, "lazy.json"),
                                ("file", "--lazy-only", "--guest-mib", str(GUEST_MIB), "--runs", "1"))
    print(out)
    lz = top["lazy"]
    h.check(lz["status"] == "ok", "lazy restore: %s: %s" % (lz["status"], lz["error"]))
    run, all_in = lz["running_after_ms"], lz["all_in_after_ms"]
    h.check(positive(run) and positive(all_in) and run <= all_in, "running after %s, all in after %s ms" % (run, all_in))
    h.check(positive(lz["faults"]) and positive(lz["fault_4k_p50_us"]) and positive(lz["fault_wait_sum_ms"]),
            "faults %s, p50 %s us, waits %s ms" % (lz["faults"], lz["fault_4k_p50_us"], lz["fault_wait_sum_ms"]))
    marks = [(500, lz["guest_units_0_5s"]), (1000, lz["guest_units_1s"]), (2000, lz["guest_units_2s"])]
    units = [u for _, u in marks]
    h.check(all(isinstance(u, (int, float)) and u >= 0 for u in units) and units == sorted(units) and units[-1] > 0,
            "units written at 0.5, 1, 2 s: %s" % units)
    # one counter, interpolated: the moment every page was in sorts among the others
    at = lz["guest_units_all_in"]
    for ms, u in marks:
        after = all_in >= run + ms
        h.check(at >= u if after else at <= u, "units %s when every page was in (%s ms) against %s at %s ms after %s"
                % (at, all_in, u, ms, run))


if __name__ == "__main__":
    h.main([case_quick, case_device_downtime, case_file_lazy])
