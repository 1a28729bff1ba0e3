#!/usr/bin/env python3
"""Where a postcopy page request spends its time: mig-faultlat --stages, and the
destination's x-fault-latency-bpf (migd --trace-latency), on a real migration.

A 256 MiB anon guest moves by postcopy with the preempt channel (the flow of
test_postcopy.py: max-bandwidth 64 MiB/s and downtime-limit 1 keep precopy from
finishing, migrate-start-postcopy once the source is active, then max-bandwidth 0). The
destination runs random,rate=0 on 2 vCPUs, so it faults all the time. While it migrates,
`mig-faultlat --stages --src SRC --dst DST -d N --json` matches the USDT probes of both
migd by (block, offset). It is stopped with SIGINT once the migration has completed.

- complete chains > 0, and the tool saw every request: its request_sent hits equal the
  destination's x-postcopy-requests, its request_received hits the source's
  postcopy-requests;
- every hop's p50 >= 0 (the probes that stand for a write fire before it; a request
  answered by a copy that left before the urgent one is counted apart as early);
- the tool's fault_read -> page_placed p50 over every placed request against
  x-postcopy-latency's 4K p50: the same requests, timed by the probes in the kernel on
  one side and by the engine's clock on the other, so a probe in the wrong place or a
  record matched to the wrong request shows here. The engine reads its clock just after
  the fault_read probe and just before the page_placed one (both as the ioctl that
  placed the page returned), so per request its span lies inside the probes' by the
  two traps' cost (6 us at p50 here): the engine's p50 may not exceed the probes' by
  more than 3 % + 3 us (room for the few requests one side times and the other does
  not), and the probes' may not exceed 1.1x the engine's + 25 us. An engine that read
  its end after the probe counted the probe's trap and the wait for a CPU behind it,
  and came out 3 to 45 % above the probes (226 against 188 us in one run). (The typical
  request's hop means add up to its total by construction: printed, not asserted);
- the destination's x-fault-latency-bpf (the kernel's view of the guest threads'
  userfaultfd waits) has no error, a count within 10 % of x-postcopy-latency's (the
  engine's fault-to-placement timing); its waits ended at the wakeup count the same
  and are not longer than those ended at the vCPU's next run; and their p50 is between
  0.5x and 2x + 200 us of the engine's: the windows differ (the kernel's adds the
  fault's wait before migd reads it; the engine's end can come late when the woken
  vCPU preempts the placing thread). The wait until the vCPU ran again is not compared:
  it adds the woken vCPU's wait for a CPU, which on 2 loaded CPUs once made its p50
  2.9x the engine's.

Needs root (BPF). Exit 77 with "SKIP-REASON: kernel lacks uprobes" only when the kernel
has no uprobe support."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 256 * h.MiB
TRACEFS = "/sys/kernel/tracing"
UPROBE_PMU = "/sys/bus/event_source/devices/uprobe/type"
TOOL_SECONDS = 600          # an upper bound; the test stops the tool once migrated
CAPS = {"postcopy-ram": True, "postcopy-preempt": True, "events": True}


def preflight():
    if not os.path.exists(UPROBE_PMU) and not os.path.exists(TRACEFS + "/uprobe_events"):
        if not os.path.isdir(TRACEFS + "/events"):
            subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False)
        if not os.path.exists(TRACEFS + "/uprobe_events"):
            raise h.Skip("kernel lacks uprobes (no %s, no %s/uprobe_events)" % (UPROBE_PMU, TRACEFS))
    # migd --trace-latency needs tracefs for its tracepoints (it mounts it too).
    if not os.path.isdir(TRACEFS + "/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False)


class Tool:
    """mig-faultlat --stages in the background; stderr lines are read by a thread so
    that waiting for "Tracing" has a timeout."""

    def __init__(self, src_pid, dst_pid):
        self.argv = [h.tool("mig-faultlat"), "--stages", "--src", str(src_pid), "--dst", str(dst_pid),
                     "-d", str(TOOL_SECONDS), "--json"]
        print("[test] %s" % " ".join(self.argv), flush=True)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.err = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_tracing(self, timeout=30.0):
        deadline = h.Deadline(h.scaled(timeout))
        while not deadline.expired():
            try:
                line = self.lines.get(timeout=max(0.01, deadline.left()))
            except queue.Empty:
                break
            if line is None:
                break
            print("[mig-faultlat] %s" % line.rstrip(), flush=True)
            if line.startswith("Tracing"):
                return
        self.kill()
        raise AssertionError("mig-faultlat did not start tracing (exit %s):\n%s"
                             % (self.proc.poll(), "".join(self.err)))

    def stop(self, timeout=30.0):
        """SIGINT, then the JSON report it prints."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out = self.proc.stdout.read()
            rc = self.proc.wait(timeout=h.scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("mig-faultlat did not end on SIGINT") from None
        self.reader.join(5)
        h.check(rc == 0, "mig-faultlat exited with %s:\n%s" % (rc, "".join(self.err)))
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError("mig-faultlat printed no JSON: %r\n%s" % (out, "".join(self.err))) from None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def near(a, b, rel, abs_us):
    return abs(a - b) <= max(rel * abs(b), abs_us)


def print_table(r):
    print("hop                                    count     p50 us     p90 us     p99 us")
    for hop in r["hops"] + [r["total"]]:
        print("%-36s %7d %10.1f %10.1f %10.1f" % ("%s -> %s" % (hop["from"], hop["to"]), hop["count"],
                                              hop["p50_us"], hop["p90_us"], hop["p99_us"]))
    print("sum of hop p50s %.1f us, total p50 %.1f us; requests %s"
          % (r["sum_hop_p50_us"], r["total_p50_us"], json.dumps(r["requests"])), flush=True)


def case_stages():
    preflight()
    with h.Migd("src", h.guest_args("256M", workload="seq", vcpus=2)) as src, \
         h.Migd("dst", h.guest_args("256M", workload="random,rate=0", vcpus=2, incoming="tcp:127.0.0.1:0")
                + ["--trace-latency"]) as dst:
        bpf = dst.query_migrate().get("x-fault-latency-bpf")
        h.check(isinstance(bpf, dict), "no x-fault-latency-bpf in the destination's query-migrate")
        h.check("error" not in bpf, "migd --trace-latency could not load its BPF programs: %s" % bpf.get("error"))
        for m in (src, dst):
            m.set_caps(CAPS)
        tool = Tool(src.pid(), dst.pid())
        try:
            tool.wait_tracing()
            info = h.migrate_via_postcopy(src, dst)
            h.check_migrated(src, dst, info, size=SIZE)
            r = tool.stop()
        finally:
            tool.kill()
        d = dst.query_migrate()

    lat = d.get("x-postcopy-latency") or {}
    bpf = d.get("x-fault-latency-bpf") or {}
    print_table(r)
    print("probe hits %s" % json.dumps(r["probe_hits"]))
    print("x-postcopy-latency %s\nx-fault-latency-bpf %s" % (json.dumps(lat), json.dumps(bpf)), flush=True)

    # Every check runs, so that a failing run shows all that failed.
    fails = []

    def expect(cond, msg):
        if not cond:
            fails.append(msg)

    req = r["requests"]
    expect(req["complete"] > 0, "no complete chain: %s" % json.dumps(req))
    expect(r["lost"] == 0 and r["map_full"] == 0, "records lost %d, map full %d" % (r["lost"], r["map_full"]))
    reqs = d.get("x-postcopy-requests", -1)
    expect(r["probe_hits"]["request_sent"] == reqs,
           "the tool saw %d request_sent, the destination made %d requests" % (r["probe_hits"]["request_sent"], reqs))
    served = info["ram"]["postcopy-requests"]
    expect(r["probe_hits"]["request_received"] == served,
           "the tool saw %d request_received, the source served %d" % (r["probe_hits"]["request_received"], served))
    for hop in r["hops"]:
        expect(hop["count"] == req["complete"], "hop %s -> %s counts %d of %d complete chains"
               % (hop["from"], hop["to"], hop["count"], req["complete"]))
        expect(hop["p50_us"] >= 0, "hop %s -> %s has a negative p50: %.1f us" % (hop["from"], hop["to"], hop["p50_us"]))

    expect("error" not in bpf, "x-fault-latency-bpf: %s" % bpf.get("error"))
    expect(len(bpf.get("hist", [])) == 24, "x-fault-latency-bpf's hist must have 24 buckets")
    eng, ker = lat.get("4k"), bpf.get("4k") or {"count": 0, "p50": 0}
    if not eng:
        fails.append("x-postcopy-latency has no 4k class: %s" % json.dumps(lat))
    else:
        tot = r["total_all_placed"]
        print("fault_read -> page_placed p50: %.1f us by the probes (%d requests), %d us by the engine (%d)"
              % (tot["p50_us"], tot["count"], eng["p50"], eng["count"]))
        expect(eng["p50"] <= 1.03 * tot["p50_us"] + 3,
               "x-postcopy-latency's p50 %d us is more than 3 %% + 3 us above mig-faultlat's fault_read -> "
               "page_placed p50 %.1f us: the engine times more than the span between the probes"
               % (eng["p50"], tot["p50_us"]))
        expect(tot["p50_us"] <= 1.1 * eng["p50"] + 25,
               "mig-faultlat's fault_read -> page_placed p50 %.1f us is above 1.1x + 25 us "
               "of x-postcopy-latency's %d us" % (tot["p50_us"], eng["p50"]))
        expect(near(ker["count"], eng["count"], 0.10, 0),
               "x-fault-latency-bpf counts %d waits, x-postcopy-latency %d requests (more than 10 %% apart)"
               % (ker["count"], eng["count"]))
        # The engine's window is the fault thread's read to the placement; the kernel's
        # woken one adds the fault's wait in the queue before migd reads it, and ends at
        # the wakeup the placement makes. Its running one adds the woken vCPU's wait for
        # a CPU, which the engine cannot see and which on 2 loaded CPUs was seen to
        # triple it: compared with the engine's, it made this test fail (docs/faultlat.md).
        woken = (bpf.get("woken") or {}).get("4k") or {"count": 0, "p50": 0}
        print("kernel 4k p50: %.1f us until the wakeup, %.1f us until the vCPU ran; engine %d us"
              % (woken["p50"], ker["p50"], eng["p50"]))
        expect(near(woken["count"], ker["count"], 0.02, 0),
               "x-fault-latency-bpf counts %d waits until the wakeup, %d until the vCPU ran"
               % (woken["count"], ker["count"]))
        # bucket midpoints are within 1.6 % of their values
        expect(woken["p50"] <= ker["p50"] * 1.04 + 1,
               "x-fault-latency-bpf p50 until the wakeup %.1f us is above the p50 until the vCPU ran, %.1f us"
               % (woken["p50"], ker["p50"]))
        expect(0.5 * eng["p50"] <= woken["p50"] <= 2 * eng["p50"] + 200,
               "x-fault-latency-bpf p50 until the wakeup %.1f us is outside [0.5x, 2x + 200 us] of "
               "x-postcopy-latency's %d us" % (woken["p50"], eng["p50"]))
    h.check(not fails, "\n".join(fails))

if __name__ == "__main__":
    h.main([case_stages])
