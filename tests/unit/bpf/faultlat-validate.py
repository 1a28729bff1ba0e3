#!/usr/bin/env python3
"""mig-faultlat against ground truth.

For each case (page size x faulting threads x injected delay) runs uffd-delay, attaches
mig-faultlat to it, lets the faults happen, and compares the tool's count and p50/p90/p99
with the true waits. A percentile passes when it is within 10 % or 20 us of the truth,
whichever is larger.

The truth is each touch's wait as mig-faultlat defines one: from the page fault to the
thread's first switch-in after it blocked. uffd-delay times it with the kernel's own
records (uffd-delay --perf-wait: a perf event the faulting thread opens on itself), and
checks that every such wait lies inside the stopwatch interval around its touch. The
stopwatch's p50 is printed too: it adds what no tracer of the wait can see, the exception
entry before the fault is reported and, after the switch-in, the retry and the return to
user mode. On some VMs that part is as long as a short wait (8-18 us on the one of
docs/faultlat.md's Validation, where the first user access to a page the guest kernel
just mapped costs a fault in the hypervisor), so the stopwatch is not the tool's interval.

A case that fails is run once more, and passes if the second run does (both are
printed): a stall of the CPU between the tracer's hook and perf's at either end (at the
end, perf's comes after the context switch) moves one sample by the stall, and on a VM
such stalls run from tens of microseconds to milliseconds; in a sparse tail one sample
moves a p99. A systematic error fails both runs.

Counts must match exactly (--count-slack to loosen): every touch of uffd-delay is one
MISSING fault that its handler resolves with exactly one UFFDIO_COPY, so the tool has no
reason to miss one, and any extra wait it reports would be a fault the method should
have rejected (the faulting threads also take ordinary faults and futex sleeps between
touches, which is exactly what must not be counted).

    faultlat-validate.py --tool PATH --delay PATH [--cases 4k:1:100,...] [--method M]

--method is passed to mig-faultlat -M (default: its auto choice), e.g. tp-classic to
check the fallback programs that the auto choice does not run on this kernel.

Exit 0 when all cases pass, 1 on a failure, 77 (with SKIP-REASON) when the kernel lacks
what the method needs.
"""
import argparse
import json
import os
import queue
import subprocess
import sys
import threading

SKIP = 77
TRACEFS = "/sys/kernel/tracing"
TRACEPOINTS = ("exceptions/page_fault_user", "sched/sched_switch", "sched/sched_waking",
               "mmap_lock/mmap_lock_released")
FULL = [(mem, threads, delay) for mem in ("4k", "2m") for threads in (1, 4)
        for delay in (0, 100, 1000, 10000)]
# get_user_pages() waits (what KVM vCPUs do), seen through the kernel stack.
GUP = [("4k", 1, 1000, True), ("2m", 4, 100, True)]
PCTS = ("p50_us", "p90_us", "p99_us")


def skip(reason):
    print("SKIP-REASON: kernel lacks %s" % reason)
    sys.exit(SKIP)


def preflight():
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        skip("BTF (/sys/kernel/btf/vmlinux)")
    if not os.path.isdir(TRACEFS + "/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False)
    for tp in TRACEPOINTS:
        if not os.path.isdir("%s/events/%s" % (TRACEFS, tp)):
            skip("the %s tracepoint" % tp.replace("/", ":"))


def lines_of(stream, q):
    """Feeds a pipe's lines into a queue, None at EOF (no blocking reads in the driver)."""
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


def wait_line(q, prefix, timeout, what):
    seen = []
    while True:
        try:
            line = q.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError("%s: no '%s' after %ss (got %r)" % (what, prefix, timeout, seen))
        if line is None:
            raise RuntimeError("%s ended before '%s' (got %r)" % (what, prefix, seen))
        seen.append(line.rstrip())
        if line.startswith(prefix):
            return line


def run_case(args, mem, threads, delay, gup, faults):
    cmd = [args.delay, "--mem", mem, "--threads", str(threads), "--delay-us", str(delay),
           "--faults", str(faults), "--wait", "--perf-wait"] + (["--gup"] if gup else [])
    ud = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        first = ud.stdout.readline()
        if not first.startswith("ready "):
            ud.wait(timeout=30)
            if ud.returncode == SKIP:
                return {"skip": first.strip()}
            raise RuntimeError("uffd-delay: %r, exit %s" % (first, ud.returncode))
        pid = first.split()[1]

        tool = subprocess.Popen([args.tool, "-p", pid, "--json"]
                                + (["-M", args.method] if args.method else []), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        errq = queue.Queue()
        reader = threading.Thread(target=lines_of, args=(tool.stderr, errq), name="tool-stderr")
        reader.start()
        method = wait_line(errq, "method: ", 60, "mig-faultlat")
        wait_line(errq, "Tracing", 60, "mig-faultlat")

        ud.stdin.write("go\n")
        ud.stdin.flush()
        truth = json.loads(ud.stdout.readline())
        ud.stdin.close()
        ud.wait(timeout=60)
        out, _ = tool.communicate(timeout=60)
        reader.join()
        if tool.returncode:
            raise RuntimeError("mig-faultlat exited %d" % tool.returncode)
        return {"truth": truth, "tool": json.loads(out), "method": method.split(": ", 1)[1].strip()}
    finally:
        for p in (tool, ud):
            if p and p.poll() is None:
                p.kill()
                p.wait()


def within(tool, truth):
    return abs(tool - truth) <= max(0.10 * truth, 20.0)


def check(res, mem, slack):
    """Failures of one case, as strings."""
    ps = "4K" if mem == "4k" else "2M"
    sizes = res["tool"]["page_sizes"]
    got, truth = sizes[ps], res["truth"]["wait"]
    fails = []
    if abs(got["count"] - truth["count"]) > slack:
        fails.append("count %d vs %d" % (got["count"], truth["count"]))
    for other, s in sizes.items():
        if other != ps and s["count"]:
            fails.append("%d waits filed under %s" % (s["count"], other))
    for p in PCTS:
        if not within(got[p], truth[p]):
            fails.append("%s %.1f vs %.1f" % (p[:3], got[p], truth[p]))
    return fails


def faults_for(args, delay):
    """Enough faults that p99 is not decided by two outliers, where they are cheap.

    At small delays an interrupt inside the wait is as large as the wait itself, so with
    256 samples p99 (the 3rd largest) can rest on one or two such faults."""
    if args.faults:
        return args.faults
    return 1024 if delay <= 100 else 256


def one_case(args, case, attempt, methods):
    """Runs and prints one case: "ok", "fail" or the SKIP-REASON line."""
    mem, threads, delay, gup = case
    tag = "%-4s %3d %6d %4s |" % (mem, threads, delay, "gup" if gup else "")
    try:
        res = run_case(args, mem, threads, delay, gup, faults_for(args, delay))
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        print("%s error: %s" % (tag, e))
        return "fail"
    if "skip" in res:
        print("%s %s" % (tag, res["skip"]))
        return res["skip"]
    methods.add(res["method"])
    fails = check(res, mem, args.count_slack)
    sw, t = res["truth"], res["truth"]["wait"]
    g = res["tool"]["page_sizes"]["4K" if mem == "4k" else "2M"]
    print("%s %5d %5d | %9.1f | %9.1f %9.1f | %9.1f %9.1f | %9.1f %9.1f | %s%s" % (
        tag, t["count"], g["count"], sw["p50_us"], t["p50_us"], g["p50_us"], t["p90_us"],
        g["p90_us"], t["p99_us"], g["p99_us"], "ok" if not fails else "FAIL: " + "; ".join(fails),
        " (second run)" if attempt > 1 else ""))
    sys.stdout.flush()
    return "fail" if fails else "ok"


def parse_cases(spec):
    cases = []
    for c in spec.split(","):
        f = c.split(":")
        cases.append((f[0], int(f[1]), int(f[2]), len(f) > 3 and f[3] == "gup"))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--delay", required=True)
    ap.add_argument("--faults", type=int, default=0,
                    help="faults per case (default: 1024 up to 100 us of delay, else 256)")
    ap.add_argument("--count-slack", type=int, default=0)
    ap.add_argument("--cases", help="mem:threads:delay_us[:gup],... instead of the full set")
    ap.add_argument("--method", help="mig-faultlat -M METHOD (default: its own choice)")
    args = ap.parse_args()
    if os.geteuid():
        print("mig-faultlat needs root (BPF, tracefs)")
        return SKIP
    preflight()

    cases = parse_cases(args.cases) if args.cases else [c + (False,) for c in FULL] + GUP
    hdr = "%-4s %3s %6s %4s | %5s %5s | %9s | %9s %9s | %9s %9s | %9s %9s | %s" % (
        "mem", "thr", "delay", "gup", "truth", "tool", "p50 stopw", "p50 truth", "tool",
        "p90 truth", "tool", "p99 truth", "tool", "result")
    print(hdr)
    print("-" * len(hdr))
    failed, skipped, methods = 0, [], set()
    for case in cases:
        for attempt in (1, 2):
            verdict = one_case(args, case, attempt, methods)
            if verdict != "fail":
                break
        if verdict == "fail":
            failed += 1
        elif verdict.startswith("SKIP"):
            skipped.append(verdict)
    print("method: %s" % ", ".join(sorted(methods)))
    if failed:
        print("%d of %d cases failed" % (failed, len(cases)))
        return 1
    if skipped:
        print(skipped[0])
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
