#!/usr/bin/env python3
"""What mig-faultlat costs the process it watches.

One uffd-delay process runs rounds of faults; between rounds mig-faultlat is attached or
detached, alternating (off, on, off, on, ...), so both states see the same memory, the
same threads and the same machine. Prints the true fault latency p50 of every round and
the median of the per-round p50s with and without the tool. Not a test: numbers for
docs/faultlat.md.

    faultlat-overhead.py --tool PATH --delay PATH [--pairs 10] [--mem 4k] [--threads 1]
                         [--delay-us 0] [--faults 256]
"""
import argparse
import json
import signal
import statistics
import subprocess
import sys


def attach(tool, pid):
    p = subprocess.Popen([tool, "-p", str(pid), "--json"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if line.startswith("Tracing"):
            return p
    p.wait()
    raise RuntimeError("mig-faultlat did not start (exit %s)" % p.returncode)


def detach(p):
    p.send_signal(signal.SIGINT)
    p.stderr.read()
    p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--delay", required=True)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--mem", default="4k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--delay-us", type=int, default=0)
    ap.add_argument("--faults", type=int, default=256)
    a = ap.parse_args()

    cmd = [a.delay, "--mem", a.mem, "--threads", str(a.threads), "--delay-us",
           str(a.delay_us), "--faults", str(a.faults), "--rounds", str(2 * a.pairs), "--wait"]
    ud = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p50 = {False: [], True: []}
    try:
        for r in range(2 * a.pairs):
            ready = ud.stdout.readline()
            if not ready.startswith("ready "):
                raise RuntimeError("uffd-delay: %r" % ready)
            traced = r % 2 == 1
            tool = attach(a.tool, ready.split()[1]) if traced else None
            ud.stdin.write("go\n")
            ud.stdin.flush()
            res = json.loads(ud.stdout.readline())
            if tool:
                detach(tool)
            p50[traced].append(res["p50_us"])
            print("round %2d %-8s p50 %8.1f us  p99 %8.1f us" % (
                r, "traced" if traced else "untraced", res["p50_us"], res["p99_us"]))
        ud.stdin.close()
        ud.wait(timeout=60)
    finally:
        if ud.poll() is None:
            ud.kill()
    off, on = statistics.median(p50[False]), statistics.median(p50[True])
    print("%s memory, %d thread(s), delay %d us, %d faults a round, %d rounds each way:" % (
        a.mem, a.threads, a.delay_us, a.faults, a.pairs))
    print("  median p50 without mig-faultlat %.1f us, with %.1f us: %+.1f us (%+.1f %%)" % (
        off, on, on - off, 100.0 * (on - off) / off))
    return 0


if __name__ == "__main__":
    sys.exit(main())
