#!/usr/bin/env python3
"""What mig-faultlat costs the process it watches.

One uffd-delay process runs rounds of faults; between rounds mig-faultlat is attached or
detached, alternating (off, on, off, on, ...), so both states see the same memory, the
same threads and the same machine. Prints the true fault latency p50 of every round and
the median of the per-round p50s with and without the tool. Not a test: numbers for
docs/faultlat.md.

    faultlat-overhead.py --tool PATH --delay PATH [--pairs 10] [--mem 4k] [--threads 1]
                         [--delay-us 0] [--faults 256] [--cpus LIST] [--prog-stats]
                         [--method M] [--hooks-only]
    faultlat-overhead.py --tool PATH --syscall-cost PATH [--pairs 10] [--cpus LIST]
                         [--method M] [--hooks-only]

--cpus runs uffd-delay under `taskset -c LIST`. The untraced p50 of a free-running pair
of threads is bimodal on a 2-CPU machine (same CPU or not); pinned, both states see the
same placement. The tool itself is never pinned.

--prog-stats also says where the time goes: it turns on kernel.bpf_stats_enabled for the
run (and restores it), and prints, per BPF program of the tool, its runs and run time per
traced round, per fault. Those stats put two clock reads around every program run, so
the p50s of a --prog-stats run are not the overhead figures.

--method is passed to mig-faultlat -M (default: its own choice).

--hooks-only attaches the tool with --x-hooks-only: every program returns at once, so the
difference is what the hooks being there costs.

--syscall-cost PATH runs PATH (build/tools/bench/syscall-cost, built from
tools/bench/syscall-cost.c: ns per getppid()) instead of faults, alternately with
nothing attached and with the tool attached to an idle process: what the tool costs
the rest of the machine's system calls.

Another tracer on the same hooks (a second mig-faultlat, or a migd --trace-latency
running a benchmark) slows the untraced rounds too, and with syscall tracepoints it puts
every system call on the slow path for both states: the difference then shows only part
of the cost. The script refuses to measure while programs named like the tool's are
loaded, checking before every round.
"""
import argparse
import collections
import json
import signal
import statistics
import subprocess
import sys
import time

STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"
# Names of mig-faultlat's BPF programs, this version's and earlier ones'.
TOOL_PROGS = {"uf_enter", "uf_exit", "fault_user_btf", "fault_kern_btf", "sys_enter_btf",
              "sys_exit_btf", "page_fault_user", "page_fault_kernel", "uffd_ioctl_enter",
              "uffd_ioctl_exit", "sched_waking", "sched_switch", "mmap_lock_released"}


def prog_stats():
    """{prog id: (name, run_cnt, run_time_ns)} of every loaded BPF program."""
    out = subprocess.run(["bpftool", "prog", "show", "--json"], check=True, capture_output=True,
                         text=True).stdout
    return {p["id"]: (p.get("name", "?"), p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in json.loads(out)}


def tool_progs():
    """{prog id: name} of the loaded programs named like the tool's."""
    out = subprocess.run(["bpftool", "prog", "show", "--json"], check=True, capture_output=True,
                         text=True).stdout
    return {p["id"]: p.get("name", "") for p in json.loads(out) if p.get("name") in TOOL_PROGS}


def check_quiet(ours, grace=0.0):
    """Raises if programs named like the tool's are loaded that are not ours. The kernel
    frees a tracer's programs some time after it exits (a run right after another one
    finds them), so `grace` seconds are given for them to go."""
    deadline = time.monotonic() + grace
    while True:
        others = sorted({name for pid, name in tool_progs().items() if pid not in ours})
        if not others or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if others:
        raise RuntimeError("programs named like mig-faultlat's are loaded (%s): another "
                           "mig-faultlat or migd --trace-latency is running" % ", ".join(others))


def attach(tool, pid, method, hooks_only=False):
    p = subprocess.Popen([tool, "-p", str(pid), "--json"] + (["-M", method] if method else []) +
                         (["--x-hooks-only"] if hooks_only else []),
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    method = None
    for line in p.stderr:
        if line.startswith("method: "):
            method = line.split(": ", 1)[1].strip()
        if line.startswith("Tracing"):
            return p, method
    p.wait()
    raise RuntimeError("mig-faultlat did not start (exit %s)" % p.returncode)


def detach(p):
    p.send_signal(signal.SIGINT)
    p.stderr.read()
    p.wait(timeout=30)


def syscall_cost(a):
    """ns per getppid() on --cpus, with nothing attached and with the tool attached to an
    idle process, alternating for --pairs pairs."""
    idle = subprocess.Popen(["sleep", "3600"])
    ns = {False: [], True: []}
    method = None
    our_ids = set()
    try:
        for r in range(2 * a.pairs):
            traced = r % 2 == 1
            check_quiet(our_ids, grace=10.0 if r == 0 else 0.0)
            tool = None
            if traced:
                tool, method = attach(a.tool, idle.pid, a.method, a.hooks_only)
                our_ids |= set(tool_progs())
            cmd = (["taskset", "-c", a.cpus] if a.cpus else []) + [a.syscall_cost]
            v = float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            if tool:
                detach(tool)
            ns[traced].append(v)
            print("round %2d %-8s getppid %6.1f ns" % (r, "traced" if traced else "untraced", v))
    finally:
        idle.kill()
        idle.wait()
    off, on = statistics.median(ns[False]), statistics.median(ns[True])
    print("getppid() on another process's CPU, %d rounds each way, method %s%s:" % (
        a.pairs, method, ", hooks only" if a.hooks_only else ""))
    print("  median without mig-faultlat %.1f ns, with %.1f ns: %+.1f ns" % (off, on, on - off))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--delay")
    ap.add_argument("--hooks-only", action="store_true")
    ap.add_argument("--syscall-cost")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--mem", default="4k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--delay-us", type=int, default=0)
    ap.add_argument("--faults", type=int, default=256)
    ap.add_argument("--prog-stats", action="store_true")
    ap.add_argument("--cpus")
    ap.add_argument("--method")
    a = ap.parse_args()
    if a.syscall_cost:
        return syscall_cost(a)
    if not a.delay:
        ap.error("--delay is required (or --syscall-cost)")
    stats_was = None
    if a.prog_stats:
        with open(STATS_SYSCTL) as f:
            stats_was = f.read().strip()
        with open(STATS_SYSCTL, "w") as f:
            f.write("1\n")
    cost = collections.defaultdict(lambda: [0, 0])   # name: [runs, ns] over traced rounds

    cmd = (["taskset", "-c", a.cpus] if a.cpus else []) + [a.delay, "--mem", a.mem, "--threads", str(a.threads), "--delay-us",
           str(a.delay_us), "--faults", str(a.faults), "--rounds", str(2 * a.pairs), "--wait"]
    ud = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p50 = {False: [], True: []}
    method = None   # what the tool said it used
    our_ids = set()  # ids of the programs our attaches loaded
    try:
        for r in range(2 * a.pairs):
            ready = ud.stdout.readline()
            if not ready.startswith("ready "):
                raise RuntimeError("uffd-delay: %r" % ready)
            traced = r % 2 == 1
            check_quiet(our_ids, grace=10.0 if r == 0 else 0.0)
            before = prog_stats() if a.prog_stats else {}
            tool = None
            if traced:
                tool, method = attach(a.tool, ready.split()[1], a.method, a.hooks_only)
                our_ids |= set(tool_progs())
            if tool and a.prog_stats:
                ours = set(prog_stats()) - set(before)   # the tool's programs
                before = prog_stats()
            ud.stdin.write("go\n")
            ud.stdin.flush()
            res = json.loads(ud.stdout.readline())
            if tool and a.prog_stats:
                after = prog_stats()
                for pid in ours:
                    name, cnt, ns = after.get(pid, ("?", 0, 0))
                    cost[name][0] += cnt - before[pid][1]
                    cost[name][1] += ns - before[pid][2]
            if tool:
                detach(tool)
            p50[traced].append(res["p50_us"])
            print("round %2d %-8s p50 %8.1f us  p99 %8.1f us" % (
                r, "traced" if traced else "untraced", res["p50_us"], res["p99_us"]))
        ud.stdin.close()
        ud.wait(timeout=60)
        check_quiet(our_ids)
    finally:
        if ud.poll() is None:
            ud.kill()
        if stats_was is not None:
            with open(STATS_SYSCTL, "w") as f:
                f.write(stats_was + "\n")
    off, on = statistics.median(p50[False]), statistics.median(p50[True])
    # each traced round against the untraced round just before it: drift cancels out
    diffs = [t - u for u, t in zip(p50[False], p50[True])]
    print("%s memory, %d thread(s), delay %d us, %d faults a round, %d rounds each way, method %s%s:" % (
        a.mem, a.threads, a.delay_us, a.faults, a.pairs, method, ", hooks only" if a.hooks_only else ""))
    print("  median p50 without mig-faultlat %.1f us, with %.1f us: %+.1f us (%+.1f %%)" % (
        off, on, on - off, 100.0 * (on - off) / off))
    print("  median of the per-pair differences (traced round - the untraced round before it): %+.2f us (%+.1f %%)" % (
        statistics.median(diffs), 100.0 * statistics.median(diffs) / off))
    if a.prog_stats:
        faults = a.faults * a.threads * a.pairs
        print("BPF programs over the %d traced rounds (%d faults), whole machine:" % (a.pairs, faults))
        total = 0
        for name, (cnt, ns) in sorted(cost.items(), key=lambda kv: -kv[1][1]):
            total += ns
            print("  %-22s %9d runs %8.0f ns/run %8.3f us/fault" % (
                name, cnt, ns / cnt if cnt else 0, ns / 1e3 / faults))
        print("  %-22s %43.3f us/fault" % ("all", total / 1e3 / faults))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        sys.exit("faultlat-overhead: %s" % e)
