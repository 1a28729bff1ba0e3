#!/usr/bin/env python3
"""The shaped-network test bed (netbed.py, and migbench's own in tools/bench/netns.c).

- The bed builds: two namespaces, link-local /30 addresses on the veth ends and nothing
  added to the host, tbf on both ends; a raw transfer across it runs at about the shaped
  rate (0.5 to 1.1 Gbit/s), which proves the shaping is real; closing removes it.
- A namespace left by a dead process is deleted by the next bed.
- postcopy with the preempt channel completes across the bed, with integrity.
- `migbench postcopy-latency --quick` exits 0 with JSON that parses and every run
  verified, and leaves no namespace behind. Every run carries the kernel's view of its
  fault waits (migd --trace-latency: x-fault-latency-bpf), with about as many waits as
  the engine timed (a few more: faults whose page bulk placed before migd read them), and the extra traced run of the preempt arm carries the stage
  breakdown of mig-faultlat --stages, whose typical request adds up to its total; the
  preempt arm's run without the tracer has no kernel figures, is verified, and gives the
  tracer's cost as a ratio. SIGTERM in the middle of it exits 130 and
  leaves neither namespaces nor processes.
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402
import netbed  # noqa: E402

# postcopy across the bed: at 1 Gbit/s a 128 MiB push still lasts a second, in which the
# destination's vCPUs make thousands of requests
SIZE = 128 * h.MiB
PORT = 4444
RAW_BYTES = 128 * h.MiB          # ~1.1 s at 1 Gbit/s
QUICK_TIMEOUT = 300.0


def new_bed():
    try:
        return netbed.NetBed()
    except netbed.BedUnavailable as e:
        raise h.Skip(str(e)) from None


def read_line(proc, timeout, what):
    """The child's next stdout line, waiting at most timeout seconds."""
    deadline = h.Deadline(h.scaled(timeout))
    buf = b""
    for _ in range(10000):
        if b"\n" in buf:
            return buf.split(b"\n", 1)[0].decode()
        if deadline.expired():
            break
        r, _, _ = select.select([proc.stdout], [], [], min(0.2, deadline.left()))
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    raise h.HarnessError("%s printed no line within %.0f s (got %r)" % (what, timeout, buf))


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def raw_gbit(bed):
    """Moves RAW_BYTES from the src namespace to the dst one; the receiver's Gbit/s."""
    rawxfer = h.tool("mig-rawxfer")
    recv = subprocess.Popen(bed.exec_argv("dst", [rawxfer, "recv", "--listen", bed.uri("dst", 0), "--conns", "1",
                                                  "--timeout", "60"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, preexec_fn=h._set_pdeathsig)
    try:
        port = int(read_line(recv, 10, "mig-rawxfer recv"))
        send = subprocess.run(bed.exec_argv("src", [rawxfer, "send", "--connect", bed.uri("dst", port),
                                                    "--conns", "1", "--bytes", str(RAW_BYTES), "--timeout", "60"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=h.scaled(90))
        h.check(send.returncode == 0, "mig-rawxfer send failed with status %d" % send.returncode)
        result = json.loads(read_line(recv, 30, "mig-rawxfer recv's result"))
        h.check(recv.wait(timeout=30) == 0, "mig-rawxfer recv failed")
    finally:
        stop(recv)
    h.check(result["bytes"] == RAW_BYTES, "received %d of %d bytes" % (result["bytes"], RAW_BYTES))
    return result["gbps"] * 8


def host_links():
    return subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, timeout=10,
                          check=True).stdout.decode()


def case_bed():
    before = host_links()
    with new_bed() as bed:
        names = netbed.namespaces()
        for side in ("src", "dst"):
            h.check(bed.ns[side] in names, "namespace %s missing: %s" % (bed.ns[side], names))
            addrs = bed.addresses(side)
            h.check(addrs == ["127.0.0.1/8", bed.addr[side] + netbed.PREFIX],
                    "%s has addresses %s: only loopback and its link-local /30 belong there" % (side, addrs))
            h.check(bed.addr[side].startswith("169.254."), "%s is not link-local" % bed.addr[side])
            q = bed.qdisc(side)
            h.check("tbf" in q and "rate 1Gbit" in q, "%s is not shaped: %s" % (side, q))
        h.check(host_links().count("mig-") == before.count("mig-"), "the veth pair showed up on the host")
        gbit = raw_gbit(bed)
        print("raw across the bed: %.3f Gbit/s (shaped to %s)" % (gbit, netbed.RATE))
        h.check(0.5 <= gbit <= 1.1, "raw %.3f Gbit/s across a bed shaped to 1 Gbit/s: the shaping is not real" % gbit)
        ns = dict(bed.ns)
    left = [n for n in netbed.namespaces() if n in ns.values()]
    h.check(not left, "namespaces left after close: %s" % left)


def case_stale_reaped():
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    name = "mig-src-%d" % dead.pid
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        with new_bed():
            h.check(name not in netbed.namespaces(), "the stale namespace %s survived a new bed" % name)
    finally:
        if name in netbed.namespaces():
            subprocess.run(["ip", "netns", "del", name], timeout=10)


def case_postcopy_preempt():
    caps = {"postcopy-ram": True, "postcopy-preempt": True}
    size = "%dM" % (SIZE // h.MiB)
    with new_bed() as bed:
        with netbed.NsMigd(bed, "dst", "dst", h.guest_args(size, workload="random,rate=0", vcpus=2,
                                                           incoming=bed.uri("dst", PORT))) as dst, \
             netbed.NsMigd(bed, "src", "src", h.guest_args(size, workload="seq")) as src:
            dst.set_caps(caps)
            src.set_caps(caps)
            src.set_params({"max-bandwidth": 0, "downtime-limit": 1, "x-postcopy-after-passes": 1})
            src.cmd("migrate", uri=bed.uri("dst", PORT))
            src.wait_status(["postcopy-active", "completed"], timeout=60)
            info = src.wait_status("completed", timeout=120)
            h.check_migrated(src, dst, info, size=SIZE)
            d = dst.query_migrate()
            lat = d.get("x-postcopy-latency") or {}
            reqs = d.get("x-postcopy-requests", -1)
            h.check(reqs == sum(v["count"] for v in lat.values()),
                    "%d requests but %s timed placements" % (reqs, lat))
            h.check(info["ram"]["postcopy-requests"] == reqs,
                    "source served %s requests, destination made %d" % (info["ram"]["postcopy-requests"], reqs))
            print("across the bed: %d requests, latency %s, downtime %s ms" % (reqs, lat, info.get("downtime")))


def case_idle_passes_drain_return_path():
    """A precopy that cannot converge yet (a device needs seconds to load) spins through
    passes with nothing dirty, and the destination answers each with RP_PASS. With the
    source's receive buffer shrunk to 4 KiB (tcp_rmem, in the source's namespace only), a
    source that did not read those answers would stall the destination's loader within a
    few hundred passes, and the migration would never complete."""
    dev = ["--device", "sim,id=slow,size=16M,load-rate=4M"]   # about 4 s to load
    with new_bed() as bed:
        subprocess.run(bed.exec_argv("src", ["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4096 4096"]),
                       check=True, timeout=10)
        with netbed.NsMigd(bed, "dst", "dst", h.guest_args("64M", incoming=bed.uri("dst", PORT)) + dev) as dst, \
             netbed.NsMigd(bed, "src", "src", h.guest_args("64M", workload="idle") + dev) as src:
            for m in (src, dst):
                m.set_caps({"multifd": True})
                m.set_params({"multifd-channels": 2})
            src.set_params({"max-bandwidth": 0, "downtime-limit": 300})
            src.cmd("migrate", uri=bed.uri("dst", PORT))
            h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("dirty-sync-count", 0) >= 400, 30,
                         "400 passes of a migration that cannot converge yet")
            h.check(src.query_migrate()["status"] == "active", "the migration left active early")
            src.set_params({"downtime-limit": 60000})
            info = src.wait_status("completed", timeout=60)
            h.check_migrated(src, dst, info, size=64 * h.MiB)
            print("completed after %d passes, downtime %d ms" % (info["ram"]["dirty-sync-count"], info["downtime"]))


def migbench(args, **kw):
    return subprocess.Popen([h.tool("migbench"), "postcopy-latency", "--quick"] + args,
                            stdin=subprocess.DEVNULL, preexec_fn=h._set_pdeathsig, **kw)


def check_kernel(what, s):
    """The kernel's view (migd --trace-latency) of the same faults the engine timed."""
    k = s["kernel"]
    h.check(k is not None, "%s: no x-fault-latency-bpf figures (see migbench's notes)" % what)
    # the kernel also sees faults whose page bulk placed before migd read them (migd
    # never times those; 5 of 14 in one loopback preempt-off run), never fewer
    h.check(-2 <= k["count"] - s["faults"] <= max(8, 0.1 * s["faults"]),
            "%s: the kernel saw %s waits, the engine timed %d" % (what, k["count"], s["faults"]))
    h.check(k["p50_us"] > 0 and k["p50_us"] <= k["p90_us"] <= k["p99_us"], "%s: kernel %s" % (what, k))


def check_stages(what, st):
    h.check(st["complete"] > 0 and len(st["hops"]) == 6, "%s: stages %s" % (what, st))
    h.check(st["hops"][0]["hop"] == "fault_read -> request_sent" and
            st["hops"][5]["hop"] == "page_received -> page_placed", "%s: hops %s" % (what, st["hops"]))
    typical = sum(hop["typical_mean_us"] for hop in st["hops"])
    # within a run the typical hops add up exactly; a median over runs need not
    h.check(abs(typical - st["typical_total_us"]) <= 0.02 * st["typical_total_us"] + 1,
            "%s: typical hops sum to %.1f us, total %.1f us" % (what, typical, st["typical_total_us"]))
    h.check(st["total_p50_us"] > 0, "%s: total p50 %s" % (what, st["total_p50_us"]))


def check_quick_row(what, r, kernel=True):
    for s in r["samples"]:
        i = s["integrity"]
        h.check(i["failed"] == 0 and i["total"] > 0 and i["checked"] == i["total"],
                "%s: integrity %s" % (what, i))
        h.check(s["faults"] > 0 and s["requests"] == s["source_requests"], "%s: %s" % (what, s))
        if kernel:
            check_kernel(what, s)
        else:
            h.check(s["kernel"] is None, "%s: kernel figures without the tracer: %s" % (what, s["kernel"]))
    if r["status"] == "ok":
        h.check(len(r["samples"]) == 1 and r["median"]["p50_us"] >= 0, "%s: %s" % (what, r))
        h.check((r["median"]["kernel_p50_us"] is not None) == kernel,
                "%s: kernel p50 median %s" % (what, r["median"]["kernel_p50_us"]))


def check_quick_json(path):
    with open(path) as f:
        top = json.load(f)
    h.check(top["scenario"] == "postcopy-latency" and top["quick"] is True, "scenario/quick: %s" % top)
    nets = {n["net"]: n for n in top["nets"]}
    h.check(sorted(nets) == ["loopback", "netns"], "nets %s" % sorted(nets))
    for name, net in nets.items():
        h.check(net["error"] is None, "%s: %s" % (name, net["error"]))
        h.check(net["floor"]["4k"] and net["floor"]["4k"]["median_us"] > 0, "%s: no 4K floor" % name)
        h.check([r["arm"] for r in net["rows"]] == ["off", "preempt", "preempt-break-huge"],
                "%s rows %s" % (name, net["rows"]))
        for r in net["rows"]:
            what = "%s %s/%s" % (name, r["page"], r["arm"])
            h.check(r["status"] == "ok", "%s: %s: %s" % (what, r["status"], r["error"]))
            check_quick_row(what, r)
        traced = net["traced"]
        h.check([(r["arm"], r["traced"]) for r in traced] == [("preempt", True)], "%s traced %s" % (name, traced))
        what = "%s 4k/preempt, --stages" % name
        # loopback's few dozen faults can all find their page already on the bulk stream,
        # leaving no request to break down; the bed's thousands cannot
        nothing_urgent = (name == "loopback" and traced[0]["status"] == "skipped" and
                          "no request passed every stage" in (traced[0]["error"] or ""))
        h.check(traced[0]["status"] == "ok" or nothing_urgent,
                "%s: %s: %s" % (what, traced[0]["status"], traced[0]["error"]))
        if not nothing_urgent:
            check_quick_row(what, traced[0])
            check_stages(what, traced[0]["samples"][0]["stages"])
            check_stages(what + " (median)", traced[0]["stages_median"])
        untraced = net["untraced"]
        h.check([(r["arm"], r["kernel_tracer"]) for r in untraced] == [("preempt", False)],
                "%s untraced %s" % (name, untraced))
        what = "%s 4k/preempt, untraced" % name
        h.check(untraced[0]["status"] == "ok", "%s: %s: %s" % (what, untraced[0]["status"], untraced[0]["error"]))
        check_quick_row(what, untraced[0], kernel=False)
        cost = net["kernel_tracer_cost"]["4k"]
        h.check(cost is not None and cost > 0, "%s: kernel_tracer_cost %s" % (name, net["kernel_tracer_cost"]))
    h.check(nets["netns"]["raw"] and 0.5 <= nets["netns"]["raw"]["gbit_per_s"] <= 1.1,
            "migbench's bed moved %s" % nets["netns"]["raw"])
    return top


def case_migbench_quick():
    with tempfile.TemporaryDirectory(prefix="mig-netbed-", dir=h._tmp_base()) as d:
        path = os.path.join(d, "quick.json")
        p = migbench(["--json", path])
        try:
            rc = p.wait(timeout=h.scaled(QUICK_TIMEOUT))
        finally:
            stop(p)
        h.check(rc == 0, "migbench postcopy-latency --quick exited with %d" % rc)
        top = check_quick_json(path)
        left = [n for n in netbed.namespaces() if n.endswith("-%d" % p.pid)]
        h.check(not left, "migbench left %s" % left)
        for net in top["nets"]:
            for r in net["rows"]:
                if r["median"]:
                    print("%s %s %s: p50 %.3f ms, p99 %.3f ms" % (net["net"], r["page"], r["arm"],
                                                                  r["median"]["p50_us"] / 1e3,
                                                                  r["median"]["p99_us"] / 1e3))


def children_of(pid):
    """Pids whose parent is pid, from /proc (no procps needed)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(name))
    return kids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def case_migbench_sigterm():
    p = migbench([], stdout=subprocess.DEVNULL)
    try:
        mine = ["mig-src-%d" % p.pid, "mig-dst-%d" % p.pid]
        # its bed exists, then a migd pair runs in it (the floor comes first: ~1 s)
        h.wait_until(lambda: all(n in netbed.namespaces() for n in mine) or p.poll() is not None, 30,
                     "migbench's namespaces")
        time.sleep(3)
        h.check(p.poll() is None, "migbench ended early with %s" % p.poll())
        kids = h.wait_until(lambda: children_of(p.pid), 10, "migbench to run something in its bed")
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=h.scaled(60))
    finally:
        stop(p)
    h.check(rc == 130, "migbench exited with %d after SIGTERM, not 130" % rc)
    left = [n for n in netbed.namespaces() if n in mine]
    h.check(not left, "SIGTERM left %s" % left)
    # they die with it (PR_SET_PDEATHSIG) or are reaped by it: either way, at once
    h.wait_until(lambda: not any(alive(k) for k in kids), 10, "migbench's children %s to be gone" % kids)


if __name__ == "__main__":
    h.main([case_bed, case_stale_reaped, case_postcopy_preempt, case_idle_passes_drain_return_path,
            case_migbench_quick, case_migbench_sigterm])
