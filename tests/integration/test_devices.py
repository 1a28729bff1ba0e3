#!/usr/bin/env python3
"""The device-state lane, end to end between two migd processes with simulated devices
(docs/devices.md), whose destinations check every byte of their state in order.

- Four devices of different sizes and rates (one with a pre-copy phase) move with the
  lane on (chunks over 4 multifd channels) and off (serially on the main channel), by
  precopy and by postcopy: every device verified, RAM integrity intact, and the bytes
  went where the lane says they go.
- A device that refuses its state fails the migration with its id in the error; the
  source keeps running with its guest intact and its devices running again. The same
  when the device stops reading mid-stream (the engine's writes fail).
- The source's multifd senders never hold more device chunks at once than
  x-device-chunks-in-flight (by default one per CPU the source may use); at 1 the
  lane still completes with every device verified.
- One device loading slowly behind a small x-device-max-queued: the destination never
  holds more than the cap, and the migration completes.
- The switchover estimate counts the devices: a device that needs about a second to
  load keeps expected-downtime above a 300 ms downtime-limit (no switchover, and
  x-converging says so) until the limit is raised, and then the downtime holds it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 128 * h.MiB
# id, size, options both sides take (contents), source-only options, destination-only
DEVICES = [
    ("nic0", "16M", "", "", ",load-rate=512M"),
    ("nic1", "24M", ",precopy=8M", ",read-rate=1G", ""),
    ("gpu0", "40M", "", ",read-rate=512M", ",load-rate=1G,load-latency=200"),
    ("blk0", "3M", "", "", ",load-latency=50,load-chunk=256K"),
]


def dev_args(side, devices=DEVICES, dst_extra=None):
    args = []
    for i, (dev_id, size, common, src_opts, dst_opts) in enumerate(devices):
        spec = "sim,id=%s,size=%s,seed=%d%s" % (dev_id, size, 11 + i, common)
        spec += src_opts if side == "src" else dst_opts + (dst_extra or {}).get(dev_id, "")
        args += ["--device", spec]
    return args


def expected_bytes(devices=DEVICES):
    """State bytes per device: its pre-copy part and its stop-copy part."""
    total = {}
    for dev_id, size, common, _, _ in devices:
        pre = h.parse_size(common.split(",precopy=")[1].split(",")[0]) if ",precopy=" in common else 0
        total[dev_id] = h.parse_size(size) + pre
    return total


def by_id(info):
    return {d["id"]: d for d in info.get("x-devices", [])}


def pair(multifd, lane, backend="anon", dst_extra=None, dst_workload="seq", size="128M"):
    if backend == "hugetlb":
        h.require_hugepages(2 * h.parse_size(size) // (2 * h.MiB))
    src = h.Migd("src", h.guest_args(size, backend=backend, workload="seq", vcpus=2) + dev_args("src"))
    dst = h.Migd("dst", h.guest_args(size, backend=backend, workload=dst_workload, vcpus=2,
                                     incoming="tcp:127.0.0.1:0") + dev_args("dst", dst_extra=dst_extra))
    for m in (src, dst):
        caps = {"events": True, "x-device-state-lane": lane}
        if multifd:
            caps["multifd"] = True
        m.set_caps(caps)
        if multifd:
            m.set_params({"multifd-channels": multifd})
    return src, dst


def check_devices(src, dst, info, lane, in_flight=0):
    want = expected_bytes()
    dinfo = dst.query_migrate()
    sdev, ddev = by_id(info), by_id(dinfo)
    h.check(sorted(sdev) == sorted(want) and sorted(ddev) == sorted(want),
            "x-devices: source %s, destination %s" % (sorted(sdev), sorted(ddev)))
    for dev_id, n in want.items():
        s, d = sdev[dev_id], ddev[dev_id]
        h.check(d.get("result") == "ok", "%s: destination result %r (%s)" % (dev_id, d.get("result"), d.get("error")))
        h.check(d.get("verified-bytes") == n == d.get("expected-bytes"),
                "%s: verified %r of %r, want %d" % (dev_id, d.get("verified-bytes"), d.get("expected-bytes"), n))
        h.check(s["bytes"] == n and d["bytes"] == n, "%s: bytes source %r destination %r, want %d"
                % (dev_id, s["bytes"], d["bytes"], n))
        h.check(s["state"] == "stop" and d["state"] == "running",
                "%s: states source %r destination %r" % (dev_id, s["state"], d["state"]))
    h.check(by_id(info)["nic1"]["precopy-bytes"] > 0, "nic1 sent no pre-copy data: %s" % by_id(info)["nic1"])
    split = info.get("x-downtime-split") or {}
    h.check(split.get("devices-ms", -1) >= 0 and "ram-ms" in split, "x-downtime-split %s" % split)
    mf = info["ram"].get("multifd-bytes", 0)
    dev_total = sum(want.values())
    peak = info["ram"].get("x-device-chunks-in-flight-peak", -1)
    if lane:
        h.check(mf >= dev_total, "lane on, but only %d multifd bytes for %d device bytes" % (mf, dev_total))
        limit = in_flight or len(os.sched_getaffinity(0))
        h.check(1 <= peak <= limit, "x-device-chunks-in-flight-peak %d, limit %d" % (peak, limit))
    else:
        h.check(peak == 0, "lane off, but x-device-chunks-in-flight-peak %d" % peak)
    print("devices: %s; downtime %d ms, split %s, chunks in flight at most %d" % (
        ", ".join("%s %d B load %d ms" % (k, v["bytes"], v["load-ms"]) for k, v in sorted(sdev.items())),
        info["downtime"], split, peak))


def precopy_run(multifd, lane, backend="anon", in_flight=0):
    src, dst = pair(multifd, lane, backend)
    with src, dst:
        src.set_params(dict(h.FAST_PARAMS, **{"downtime-limit": 2000, "x-device-chunks-in-flight": in_flight}))
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=SIZE)
        check_devices(src, dst, info, lane and multifd, in_flight)


def postcopy_run(multifd, lane):
    src, dst = pair(multifd, lane, dst_workload="random")
    with src, dst:
        for m in (src, dst):
            m.set_caps({"postcopy-ram": True})
        info = h.migrate_via_postcopy(src, dst)
        h.check_migrated(src, dst, info, size=SIZE)
        check_devices(src, dst, info, lane and multifd)


def case_lane_precopy():
    precopy_run(4, True)


def case_lane_precopy_hugetlb():
    precopy_run(4, True, "hugetlb")


def case_lane_one_chunk_in_flight():
    precopy_run(4, True, in_flight=1)


def case_serial_precopy():
    precopy_run(4, False)


def case_serial_precopy_no_multifd():
    precopy_run(0, True)   # the lane needs multifd: without it, serial


def case_lane_postcopy():
    postcopy_run(4, True)


def case_serial_postcopy():
    postcopy_run(0, False)


def failed_load(lane, mode):
    # the device's failure is the point, not the RAM before it: a 64 MiB guest
    src, dst = pair(4 if lane else 0, lane, dst_extra={"gpu0": ",fail-at=12345678,fail-mode=" + mode}, size="64M")
    with src, dst:
        src.set_params(dict(h.FAST_PARAMS, **{"downtime-limit": 2000}))
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("failed", timeout=120)
        desc = info.get("error-desc", "")
        print("lane %s, fail-mode %s: source failed with: %s" % (lane, mode, desc))
        h.check("gpu0" in desc, "error-desc does not name the device: %r" % desc)
        h.check("12345678" in desc, "error-desc lost the device's own reason: %r" % desc)
        st = src.query_status()
        h.check(st.get("running") is True, "source not running after the failed migration: %s" % st)
        for dev_id, d in by_id(src.query_migrate()).items():
            h.check(d["state"] == "running", "source device %s left %r" % (dev_id, d["state"]))
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged: %s" % chk)
        h.wait_until(lambda: dst.query_migrate().get("status") == "failed", 30, "destination to fail too")


def case_load_refused_lane():
    failed_load(True, "verdict")


def case_load_refused_serial():
    failed_load(False, "verdict")


def case_load_aborted_serial():
    failed_load(False, "abort")


def case_load_aborted_lane():
    failed_load(True, "abort")


def idle_lane_pair(devices, channels):
    """An idle source and a destination with these devices, multifd (and so the lane) on."""
    src = h.Migd("src", h.guest_args("128M", workload="idle") + dev_args("src", devices))
    dst = h.Migd("dst", h.guest_args("128M", incoming="tcp:127.0.0.1:0") + dev_args("dst", devices))
    for m in (src, dst):
        m.set_caps({"multifd": True})
        m.set_params({"multifd-channels": channels})
    return src, dst


def case_queue_cap():
    cap = 4 * h.MiB
    devices = [("slow0", "32M", "", "", ",load-rate=64M")] + [("fast%d" % i, "16M", "", "", "") for i in range(3)]
    src, dst = idle_lane_pair(devices, 4)
    with src, dst:
        dst.set_params({"x-device-max-queued": cap})
        src.set_params(dict(h.FAST_PARAMS, **{"downtime-limit": 5000}))
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=SIZE)
        dinfo = dst.query_migrate()
        peak = dinfo.get("x-device-queued-peak", -1)
        print("x-device-queued-peak %d of a %d cap; slow0 loaded in %d ms" % (peak, cap, by_id(info)["slow0"]["load-ms"]))
        h.check(0 < peak <= cap, "x-device-queued-peak %d, cap %d" % (peak, cap))
        for dev_id, d in by_id(dinfo).items():
            h.check(d.get("result") == "ok", "%s: %r (%s)" % (dev_id, d.get("result"), d.get("error")))
        # 32 MiB at 64 MiB/s is 500 ms of device time: the cap really was under pressure
        h.check(by_id(info)["slow0"]["load-ms"] >= 400, "slow0 loaded in %d ms" % by_id(info)["slow0"]["load-ms"])


def case_estimate_counts_devices():
    devices = [("slow0", "64M", "", ",read-rate=64M", ",load-rate=64M")]
    src, dst = idle_lane_pair(devices, 2)
    with src, dst:
        src.set_params({"max-bandwidth": 0, "downtime-limit": 300})
        src.cmd("migrate", uri=dst.listen_uri())
        h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("dirty-sync-count", 0) >= 3, 60, "three passes")
        info = src.query_migrate()
        print("limit 300 ms: status %s, expected-downtime %s ms, x-converging %s"
              % (info["status"], info.get("expected-downtime"), info.get("x-converging")))
        h.check(info["status"] == "active", "switched over with a 1 s device: %s" % info["status"])
        # 64 MiB at 64 MiB/s: a second of device time, whatever the wire does
        h.check(info.get("expected-downtime", 0) >= 900, "expected-downtime %s ignores the device" % info.get("expected-downtime"))
        h.check(info.get("x-converging") is False, "x-converging %s" % info.get("x-converging"))
        src.set_params({"downtime-limit": 3000})
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=SIZE)
        print("limit 3000 ms: downtime %d ms, split %s" % (info["downtime"], info.get("x-downtime-split")))
        h.check(900 <= info["downtime"] <= 3000, "downtime %d ms for a 1 s device under a 3 s limit" % info["downtime"])


def case_devices_wait_for_cont():
    """A destination told to stop before the migration keeps its guest and its devices
    stopped after it, until cont."""
    src, dst = pair(4, True)
    with src, dst:
        dst.cmd("stop")
        src.set_params(dict(h.FAST_PARAMS, **{"downtime-limit": 2000}))
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("completed", timeout=120)
        h.wait_until(lambda: dst.query_migrate().get("status") == "completed", 30, "destination to complete")
        states = {k: v["state"] for k, v in by_id(dst.query_migrate()).items()}
        h.check(set(states.values()) == {"stop"}, "devices of a paused destination: %s" % states)
        dst.cmd("cont")
        states = {k: v["state"] for k, v in by_id(dst.query_migrate()).items()}
        h.check(set(states.values()) == {"running"}, "devices after cont: %s" % states)
        print("paused destination: devices stop, then running after cont")


if __name__ == "__main__":
    h.main([case_lane_precopy, case_lane_precopy_hugetlb, case_lane_one_chunk_in_flight, case_serial_precopy, case_serial_precopy_no_multifd,
            case_lane_postcopy, case_serial_postcopy, case_load_refused_lane, case_load_refused_serial,
            case_load_aborted_lane, case_load_aborted_serial, case_queue_cap, case_estimate_counts_devices,
            case_devices_wait_for_cont])
