#!/usr/bin/env python3
"""multifd: bulk RAM over parallel channels.

- 1, 4 and 16 channels over anon, memfd and hugetlb-2M guests under the seq workload
  complete with zero integrity failures, and the pages really went over multifd.
- Once every multifd channel is in, the destination's listener is closed while the
  migration runs, and the migration still completes (the hello refusals before that:
  test_attacks.py).
- Killing one multifd connection in the middle of a pass (a proxy between source and
  destination drops it) fails the migration cleanly: the source ends "failed" with a
  reason naming the channel, keeps running, and its guest is intact.
- x-tcp-congestion: an algorithm the kernel lacks is refused and changes nothing; one
  it has is what every channel socket of both sides uses (as ss(8) reports it), and the
  default is cubic where the kernel has it.
- A migration runs with the parameters of its start: multifd-channels and
  x-debug-drop-pages changed on the source mid-migration are accepted (as QEMU accepts
  migrate-set-parameters at any time) but neither adds a sender nor loses a page, while
  the destination refuses a new multifd-channels once incoming has started.
- An idle guest's downtime carries no work proportional to its size: with 4 channels,
  downtime-bytes (what the source sent with the guest stopped) of a 64 MiB and of a
  256 MiB idle guest are both far below the guest's generation record (1 MiB per GiB,
  which travels live) and do not grow with the size; both destinations verify every
  unit against the record. The source's x-downtime-us has every step of the
  stop-and-copy, adding up to the downtime it reports in ms.
- zero-page-detection legacy finds a guest's untouched memory empty in the page tables
  instead of reading it: the source's Rss does not grow by the untouched 192 MiB of a
  256 MiB idle guest that wrote 64 MiB (on a host without a shared zero page a read
  allocates), and the destination verifies every unit."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

# The matrix's guests: its checks are integrity and that most bytes went over multifd,
# none about the size; a 4K guest's time goes with its size (populating it, moving it,
# the integrity sweep), and 16 channels still get 8 MiB each.
SIZE = 128 * h.MiB
# The cases after the matrix are about channels and parameters, not the guest's size: a
# 64 MiB guest, whose seq workload (64 MiB/s) still dirties it faster than their paced
# links (16 or 32 MiB/s) carry, so each migration stays active until the case lifts the
# pace. (At 256 MiB, params_snapshot's two more passes at 16 MiB/s took half a minute.)
SMALL = 64 * h.MiB


def multifd(n):
    return {"caps": {"multifd": True}, "params": {"multifd-channels": n}}


def setup(m, n):
    m.set_caps({"multifd": True, "events": True})
    m.set_params({"multifd-channels": n})


def migrate_matrix(backend):
    if backend == "hugetlb":
        h.require_hugepages(2 * SIZE // (2 * h.MiB))
    size = "%dM" % (SIZE // h.MiB)
    for n in (1, 4, 16):
        with h.Migd("src", h.guest_args(size, backend=backend, workload="seq", vcpus=2)) as src, \
             h.Migd("dst", h.guest_args(size, backend=backend, workload="seq", vcpus=2,
                                        incoming="tcp:127.0.0.1:0")) as dst:
            setup(src, n)
            setup(dst, n)
            src.set_params(h.FAST_PARAMS)
            src.cmd("migrate", uri=dst.listen_uri())
            info = src.wait_status("completed", timeout=120)
            h.check_migrated(src, dst, info, size=SIZE)
            mf = info["ram"].get("multifd-bytes", 0)
            h.check(mf >= SIZE // 2, "%d channels: only %d bytes went over multifd" % (n, mf))
            print("%s, %d channels: %d ms, downtime %d ms" % (backend, n, info["total-time"], info["downtime"]))


def case_anon():
    migrate_matrix("anon")


def case_memfd():
    migrate_matrix("memfd")


def case_hugetlb():
    migrate_matrix("hugetlb")


def migrate_slowly(src, dst):
    """Two channels at 16 MiB/s: a migration that stays active a while. Returns once
    multifd data flows; the destination's URI."""
    setup(src, 2)
    setup(dst, 2)
    src.set_params({"max-bandwidth": 16 * h.MiB})
    uri = dst.listen_uri()
    src.cmd("migrate", uri=uri)
    dst.wait_status("active", timeout=30)
    h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("multifd-bytes", 0) > 0,
                 30, "multifd data to flow")
    return uri


def case_bad_channels_refused():
    with h.Migd("src", h.guest_args("64M", workload="seq")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        uri = migrate_slowly(src, dst)
        # every channel is in, so nothing more may join: the listener is closed (the
        # hello refusals before that point: test_attacks.py)
        h.expect_listener_closed(uri)
        src.set_params(h.FAST_PARAMS)
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=SMALL)


def case_kill_one_channel():
    with h.Migd("src", h.guest_args("64M", workload="seq")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        dst.expect_exit()
        setup(src, 4)
        setup(dst, 4)
        src.set_params({"max-bandwidth": 32 * h.MiB})
        proxy = h.Proxy(dst.listen_uri())
        try:
            src.cmd("migrate", uri=proxy.uri)
            h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("multifd-bytes", 0) > 16 * h.MiB,
                         30, "16 MiB over multifd")
            h.check(src.query_migrate()["status"] == "active", "migration no longer active before the cut")
            proxy.cut_channel(h.CHAN_MULTIFD, 2)
            info = src.wait_status("failed", timeout=30)
        finally:
            proxy.close()
        desc = info.get("error-desc", "")
        print("source failed with: %s" % desc)
        h.check("multifd channel" in desc, "error-desc does not say a multifd channel broke: %r" % desc)
        st = src.query_status()
        h.check(st.get("running") is True, "source not running after the failed migration: %s" % st)
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged: %s" % chk)
        h.wait_until(lambda: dst.query_migrate().get("status") == "failed", 30, "destination to fail too")


def channel_algorithms(pid, port):
    """The congestion control of each established TCP socket of pid to or from port."""
    out = subprocess.run(["ss", "-Htinp", "state", "established", "( sport = :%d or dport = :%d )" % (port, port)],
                         capture_output=True, text=True, check=True).stdout
    algos, owner = [], False
    for line in out.splitlines():
        if not line[:1].isspace():   # a socket line; its details follow, indented
            owner = "pid=%d," % pid in line
        elif owner:
            m = re.match(r"\s*(\w+)\s", line)
            algos.append(m.group(1) if m else "?")
    return algos


def query_param(m, name):
    return m.cmd("query-migrate-parameters").get(name)


def case_tcp_congestion():
    with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
        available = f.read().split()
    with h.Migd("src", h.guest_args("64M", workload="seq")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        default = query_param(src, "x-tcp-congestion")
        h.check(default == ("cubic" if "cubic" in available else ""), "default x-tcp-congestion %r" % default)
        try:
            src.set_params({"x-tcp-congestion": "no-such-algorithm"})
            h.check(False, "an unknown congestion control was accepted")
        except h.QmpError as e:
            print("refused: %s" % e)
            h.check("no-such-algorithm" in str(e) and "cannot be used" in str(e), "unclear error: %s" % e)
        h.check(query_param(src, "x-tcp-congestion") == default, "a refused value changed the parameter")
        # one the system does not default to, so the check below sees the setting work
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            system = f.read().strip()
        algo = next(a for a in ("reno", "cubic", "bbr") if a in available and a != system)
        for m in (src, dst):
            setup(m, 4)
            m.set_params({"x-tcp-congestion": algo})
        src.set_params({"max-bandwidth": 32 * h.MiB})
        port = h.tcp_port(dst.listen_uri())[1]
        src.cmd("migrate", uri=dst.listen_uri())
        h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("multifd-bytes", 0) > 0,
                     30, "multifd data to flow")
        for m, side in ((src, "source"), (dst, "destination")):
            algos = channel_algorithms(m.pid(), port)
            print("%s channels: %s" % (side, algos))
            h.check(len(algos) == 5, "%s: %d channel sockets seen, not 5 (main + 4 multifd)" % (side, len(algos)))
            h.check(all(a == algo for a in algos), "%s channels use %s, not %s" % (side, algos, algo))
        src.set_params(h.FAST_PARAMS)
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=SMALL)


def sender_threads(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass        # the thread ended meanwhile
    return sorted(n for n in names if n.startswith("mig/src/send/"))


def case_params_snapshot():
    with h.Migd("src", h.guest_args("64M", workload="seq")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        migrate_slowly(src, dst)
        src.set_params({"multifd-channels": 8, "x-debug-drop-pages": 1000})
        h.check(query_param(src, "multifd-channels") == 8, "the source did not take multifd-channels=8")
        try:
            dst.set_params({"multifd-channels": 8})
            h.check(False, "the destination took a new multifd-channels while incoming runs")
        except h.QmpError as e:
            h.check("incoming has started" in str(e), "unclear refusal: %s" % e)
        # passes go on after the change: several of them must still run on two senders
        passes = (src.query_migrate().get("ram") or {}).get("dirty-sync-count", 0)
        h.wait_until(lambda: (src.query_migrate().get("ram") or {}).get("dirty-sync-count", 0) >= passes + 2, 60,
                     "two more passes")
        threads = sender_threads(src.pid())
        h.check(threads == ["mig/src/send/0", "mig/src/send/1"], "senders after the change: %s" % threads)
        src.set_params(h.FAST_PARAMS)
        info = src.wait_status("completed", timeout=120)
        # x-debug-drop-pages from the start (0) rules: no page lost, the guest intact
        h.check_migrated(src, dst, info, size=SMALL)


def check_downtime_us(info):
    """x-downtime-us: every step of the stop-and-copy, in order, adding up to the
    downtime that query-migrate gives in whole ms."""
    d = info.get("x-downtime-us")
    steps = ("stop", "sync", "send", "pass", "state", "ready", "running")
    h.check(isinstance(d, dict) and sorted(d) == sorted(steps + ("total",)), "x-downtime-us %r" % d)
    h.check(all(isinstance(d[k], int) and d[k] >= 0 for k in d), "x-downtime-us %r" % d)
    h.check(sum(d[k] for k in steps) == d["total"], "x-downtime-us steps do not add up to total: %r" % d)
    h.check(d["total"] // 1000 == info["downtime"], "x-downtime-us total %d us, downtime %d ms"
            % (d["total"], info["downtime"]))
    print("x-downtime-us %s" % d)


def case_idle_downtime_flat():
    dbytes = {}
    for size in ("64M", "256M"):
        nbytes = h.parse_size(size)
        with h.Migd("src", h.guest_args(size, workload="idle")) as src, \
             h.Migd("dst", h.guest_args(size, incoming="tcp:127.0.0.1:0")) as dst:
            setup(src, 4)
            setup(dst, 4)
            src.set_params(h.FAST_PARAMS)
            src.cmd("migrate", uri=dst.listen_uri())
            info = src.wait_status("completed", timeout=120)
            h.check_migrated(src, dst, info, size=nbytes)
            dbytes[size] = info["ram"]["downtime-bytes"]
            check_downtime_us(info)
            record = nbytes // h.UNIT * 4
            # the record alone would be 64 KiB / 256 KiB; what is left is the switchover's
            # frames and the record's 24-byte head
            h.check(dbytes[size] < min(record // 2, 32 * 1024),
                    "%s idle guest: %d bytes sent in the downtime (its record is %d)" % (size, dbytes[size], record))
    h.check(abs(dbytes["256M"] - dbytes["64M"]) < 16 * 1024,
            "downtime-bytes grows with the guest: %s" % dbytes)
    print("idle guest downtime-bytes by size: %s" % dbytes)


def rss_bytes(m):
    with open("/proc/%d/smaps_rollup" % m.pid()) as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) * h.KiB
    raise AssertionError("no Rss in /proc/%d/smaps_rollup" % m.pid())


def case_legacy_zero_untouched():
    size, used = 256 * h.MiB, 64 * h.MiB
    with h.Migd("src", h.guest_args("256M", workload="idle,used=64M")) as src, \
         h.Migd("dst", h.guest_args("256M", incoming="tcp:127.0.0.1:0")) as dst:
        setup(src, 4)
        setup(dst, 4)
        src.set_params(dict(h.FAST_PARAMS, **{"zero-page-detection": "legacy"}))
        before = rss_bytes(src)
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=120)
        h.check_migrated(src, dst, info, size=size)
        grown = rss_bytes(src) - before
        print("legacy zero detection: source Rss %d MiB -> +%d MiB, duplicate %d pages"
              % (before // h.MiB, grown // h.MiB, info["ram"]["duplicate"]))
        h.check(info["ram"]["duplicate"] >= (size - used) // 4096,
                "untouched pages not sent as zero: %r" % info["ram"])
        h.check(grown < (size - used) // 4, "the source read its untouched memory: Rss grew %d MiB"
                % (grown // h.MiB))


if __name__ == "__main__":
    h.main([case_anon, case_memfd, case_hugetlb, case_bad_channels_refused, case_kill_one_channel,
            case_tcp_congestion, case_params_snapshot, case_idle_downtime_flat, case_legacy_zero_untouched])
