#!/usr/bin/env python3
"""Migration to and from a file: QEMU's file: URI with the mapped-ram capability, and
without it (the ordinary stream in a file).

Round trips through a mapped-ram file for every memory backend (and devices), checked unit by unit
by the destination's guest (x-integrity); a live save of a writing guest and a save of
a stopped one; a lazy restore (postcopy-ram on migrate-incoming) under a random
workload, paused by its file cut or by migrate-pause and recovered (migrate-recover
file:, the same save only); damaged files (truncated, bad magic or version, flipped bytes in the
header, in the page bitmap and in their padding, marked incomplete, another guest
size or page size) refused before a byte is read into the guest; a full file system (a small tmpfs made
here) fails the save, leaves the source running and the file marked incomplete;
direct-io on tmpfs; the combinations that make no sense refused with the reason."""
import contextlib
import fcntl
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

HEAD_LEN, BLOCK_LEN, DEV_LEN, SHA_LEN = 96, 144, 112, 32
FILE_CAPS = {"mapped-ram": True}
SIZE = 128 * h.MiB


@contextlib.contextmanager
def workdir():
    d = tempfile.mkdtemp(prefix="mig-file-", dir=os.environ.get("MIG_TMPDIR", "/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def small_tmpfs(size):
    """A tmpfs of this size, mounted for the case and removed after it."""
    with mounted("tmpfs", ["-o", "size=%s" % size]) as d:
        yield d


@contextlib.contextmanager
def mounted(fstype, options=()):
    """A file system of this type, mounted for the case and removed after it."""
    d = tempfile.mkdtemp(prefix="mig-file-%s-" % fstype, dir="/tmp")
    try:
        r = subprocess.run(["mount", "-t", fstype] + list(options) + [fstype, d],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise h.Skip("kernel lacks a mountable %s here (%s)" % (fstype, r.stderr.strip()))
        try:
            yield d
        finally:
            subprocess.run(["umount", "-l", d], capture_output=True, timeout=30)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(d)


def save(src, path, caps=None, params=None, timeout=60):
    src.set_caps(dict(FILE_CAPS, **(caps or {})))
    src.set_params(params or {})
    src.cmd("migrate", uri="file:" + path)
    return src.wait_status("completed", timeout=timeout)


def restore(path, guest, caps=None, params=None, status="completed", timeout=60):
    """A fresh destination loads path; returns (migd, its query-migrate)."""
    dst = h.Migd("dst", guest + ["--incoming", "defer"])
    dst.set_caps(dict(FILE_CAPS, **(caps or {})))
    dst.set_params(params or {})
    # a refusal is read from the destination: it stays up (QEMU's default ends it)
    dst.cmd("migrate-incoming", {"uri": "file:" + path, "exit-on-error": status != "failed"})
    if status == "failed":
        info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(dst.query_migrate()),
                            timeout, "the destination to refuse the file")
    else:
        info = dst.wait_status(status, timeout=timeout)
    return dst, info


def check_restored(dst, size):
    dst.wait_running(True, timeout=30)
    integ = dst.wait_integrity(timeout=120)
    h.check(integ.get("failed") == 0, "restored guest damaged: %s" % integ)
    h.check(integ.get("total") == size // h.UNIT, "x-integrity total %r, want %d" % (integ.get("total"), size // h.UNIT))


def check_saved(src, info, path, size, direct=False, page=4096, offset=0):
    xf = info.get("x-file") or {}
    h.check(xf.get("bytes-written", 0) > 0, "x-file reports nothing written: %s" % info)
    h.check(xf.get("queue-depth-reached", 0) >= 1, "x-file queue depth: %s" % xf)
    h.check(xf.get("direct") is direct, "x-file direct %r, want %r" % (xf.get("direct"), direct))
    h.check(info.get("downtime") is not None, "no downtime reported: %s" % info)
    st = src.query_status()
    h.check(st.get("status") == "postmigrate" and st.get("running") is False,
            "source after a save: %s" % st)
    h.check(xf.get("mapped-ram") is True, "x-file mapped-ram: %s" % xf)
    h.check(0 < xf.get("requests", 0) <= xf["bytes-written"] // 4096, "x-file requests: %s" % xf)
    h.check(isinstance(xf.get("preallocated"), bool), "x-file preallocated: %s" % xf)
    # pages sit at fixed offsets: however often the guest dirtied them, the file is the
    # guest's size plus header, bitmap and guest record, and exactly as long as its header says
    flen = os.path.getsize(path)
    h.check(flen <= size + page + 2 * h.MiB, "file has %d bytes for a %d-byte guest: it grew with dirtying" % (flen, size))
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(HEAD_LEN)
    h.check(head[:8] == b"MIGMAPRM" and struct.unpack(">I", head[12:16])[0] == 1,
            "saved file's head: %r" % head[:16])
    h.check(flen == offset + struct.unpack(">Q", head[24:32])[0],
            "file has %d bytes, its header says %d from offset %d" % (flen, struct.unpack(">Q", head[24:32])[0], offset))


def require_direct(d):
    """Skips the case when directory d's file system refuses O_DIRECT."""
    try:
        os.close(os.open(os.path.join(d, "probe"), os.O_CREAT | os.O_WRONLY | os.O_DIRECT))
    except OSError as e:
        raise h.Skip("kernel lacks O_DIRECT on the test's file system (%s)" % e)


def can_fallocate(d):
    """Whether the file system of directory d allocates a file's blocks up front."""
    probe = os.path.join(d, "fallocate-probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, 1 << 20)
            return True
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError:
        return False


def data_bytes(path):
    """Bytes of the file that hold data (SEEK_DATA/SEEK_HOLE): holes and allocated but
    never written extents read as zeros and are not counted."""
    n = 0
    with open(path, "rb") as f:
        fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            n += hole - pos
            pos = hole
    return n


DEVICES = ["--device", "sim,id=d0,size=4M", "--device", "sim,id=d1,size=2M,precopy=1M"]


def case_live_anon_multifd_devices():
    """A live save of a writing guest with two devices over 2 io_uring workers, restored
    and checked: every unit, each device's state byte by byte. Then the same file with
    one byte of a device's state flipped is refused, and with one of the padding
    after the guest record."""
    with workdir() as d:
        path = os.path.join(d, "anon.img")
        # a writing guest, at a rate a loaded machine's disk still outruns
        with h.Migd("src", h.guest_args("128M", workload="seq,rate=16M") + DEVICES) as src:
            info = save(src, path, caps={"multifd": True}, params={"multifd-channels": 2, "downtime-limit": 300})
            h.check(info["ram"]["dirty-sync-count"] >= 2, "a live save takes passes: %s" % info["ram"])
            check_saved(src, info, path, SIZE + 8 * h.MiB)
        dst, dinfo = restore(path, h.guest_args("128M") + DEVICES, caps={"multifd": True}, params={"multifd-channels": 2})
        with dst:
            h.check((dinfo.get("x-file") or {}).get("bytes-read", 0) > 0, "destination x-file: %s" % dinfo)
            check_restored(dst, SIZE)
            devs = dst.query_migrate().get("x-devices") or []
            h.check([x.get("result") for x in devs] == ["ok", "ok"], "devices after the restore: %s" % devs)
            h.check([x.get("verified-bytes") for x in devs] == [4 * h.MiB, 3 * h.MiB], "devices verified: %s" % devs)
        with open(path, "rb") as f:
            head = f.read(HEAD_LEN)
            nblocks = struct.unpack(">I", head[16:20])[0]
            f.seek(HEAD_LEN + nblocks * BLOCK_LEN + DEV_LEN + 64)   # the second device's offset
            off = struct.unpack(">Q", f.read(8))[0]
        state_end = sum(struct.unpack(">QQ", head[32:48]))
        # a byte of a device's state; one of the padding between the guest record and
        # the first device's state, which no digest covers
        for at, want in ((off + 1000, "state of device 'd1' is damaged"),
                         (state_end + 10, "padding after the guest record is not zero")):
            with open(path, "r+b") as f:
                f.seek(at)
                b = f.read(1)
                f.seek(at)
                f.write(bytes([b[0] ^ 1]))
            dst, dinfo = restore(path, h.guest_args("128M") + DEVICES, status="failed")
            with dst:
                err = dinfo.get("error-desc") or ""
                h.check(want in err, "flipped byte at %d: %r" % (at, err))
            with open(path, "r+b") as f:
                f.seek(at)
                f.write(b)


def case_devices_parallel():
    """The device lane of a file: three devices that each take about a second to save
    (read-rate) and to load (load-rate) are saved and loaded at once, each in its own
    region: the devices' phase (x-file devices-ms) takes well under the sum of the
    devices' own times, and every state round-trips byte by byte."""
    devs = []
    for i in range(3):
        devs += ["--device", "sim,id=p%d,size=2M,read-rate=2M,load-rate=2M,seed=%d" % (i, i + 1)]
    guest = h.guest_args("64M", workload="idle") + devs
    with workdir() as d:
        path = os.path.join(d, "devs.img")
        with h.Migd("src", guest) as src:
            src.cmd("stop")
            info = save(src, path)
            xd = info.get("x-devices") or []
            save_ms = [x.get("save-ms") or 0 for x in xd]
            wall = (info.get("x-file") or {}).get("devices-ms", 0)
            print("save: each device %s ms, all of them %.0f ms" % (save_ms, wall))
            h.check(len(save_ms) == 3 and min(save_ms) >= 800, "devices' save times: %s" % xd)
            h.check(0 < wall < 0.75 * sum(save_ms), "devices saved one after another: %.0f ms for %s" % (wall, save_ms))
        with open(path, "rb") as f:
            head = f.read(HEAD_LEN + 1 * BLOCK_LEN + 3 * DEV_LEN)
        regions = [struct.unpack(">QQ", head[HEAD_LEN + BLOCK_LEN + i * DEV_LEN + 64:][:16]) for i in range(3)]
        h.check(all(r[1] == 2 * h.MiB for r in regions) and len({r[0] for r in regions}) == 3,
                "device regions: %s" % regions)
        dst, dinfo = restore(path, guest)
        with dst:
            check_restored(dst, 64 * h.MiB)
            q = dst.query_migrate()
            xd = q.get("x-devices") or []
            h.check([x.get("result") for x in xd] == ["ok"] * 3, "devices after the restore: %s" % xd)
            load_ms = [x.get("load-ms") or 0 for x in xd]
            wall = (q.get("x-file") or {}).get("devices-ms", 0)
            print("load: each device %s ms, all of them %.0f ms" % (load_ms, wall))
            h.check(min(load_ms) >= 800, "devices' load times: %s" % xd)
            h.check(0 < wall < 0.75 * sum(load_ms), "devices loaded one after another: %.0f ms for %s" % (wall, load_ms))


def case_stopped_memfd_zero_pages_offset():
    """Suspend to file: the guest is stopped first; zero pages cost no write (the
    bitmap says so) and the file stays sparse; saved with QEMU's channels form at an
    offset, the bytes before it kept; the restored guest checks every unit."""
    size = 64 * h.MiB
    with workdir() as d:
        path = os.path.join(d, "memfd.img")
        with open(path, "wb") as f:
            f.write(b"keep" * 1024)
        guest = h.guest_args("64M", backend="memfd", workload="idle,zero=0.5", seed=7)
        with h.Migd("src", guest) as src:
            src.cmd("stop")
            src.set_caps(FILE_CAPS)
            src.cmd("migrate", channels=[{"channel-type": "main",
                                          "addr": {"transport": "file", "filename": path, "offset": 4096}}])
            info = src.wait_status("completed", timeout=60)
            check_saved(src, info, path, size + 4096, offset=4096)
            h.check(info["ram"]["duplicate"] > 0, "no zero pages found in a half-zero guest: %s" % info["ram"])
            written, fill = info["x-file"]["bytes-written"], info["x-file"]["fill-bytes"]
            # every data page once; zero pages only as filler in a short gap between runs
            h.check(0 < written - fill - info["ram"]["normal-bytes"] < 2 * h.MiB,
                    "%d bytes written, %d of them filler, for %d bytes of data" % (written, fill, info["ram"]["normal-bytes"]))
            h.check(info["x-file"]["preallocated"] is can_fallocate(d), "x-file preallocated: %s" % info["x-file"])
        # zero pages are not written but as filler: allocated up front or a hole, they hold no data
        h.check(data_bytes(path) <= written + 2 * h.MiB, "the file holds %d bytes of data, %d were written"
                % (data_bytes(path), written))
        with open(path, "rb") as f:
            h.check(f.read(4096) == b"keep" * 1024, "the bytes before the offset were changed")
        dst, _ = restore(path + ",offset=4096", h.guest_args("64M", backend="memfd", seed=7))
        with dst:
            check_restored(dst, size)


def case_scattered_direct_multifd():
    """A guest whose data pages are scattered (half its 4K units zero, at random) saved
    stopped by 4 io_uring workers with O_DIRECT: adjacent data pages, and runs a short
    gap apart, go in one request; restored the same way and checked unit by unit."""
    size = 128 * h.MiB
    caps, params = {"multifd": True}, {"multifd-channels": 4, "direct-io": True}
    with workdir() as d:
        path = os.path.join(d, "scattered.img")
        require_direct(d)
        with h.Migd("src", h.guest_args("128M", workload="idle,zero=0.5", seed=11)) as src:
            src.cmd("stop")
            info = save(src, path, caps=caps, params=params)
            check_saved(src, info, path, size, direct=True)
            xf, ram = info["x-file"], info["ram"]
            print("scattered save: x-file %s, normal %d, duplicate %d" % (xf, ram["normal"], ram["duplicate"]))
            h.check(size // 4096 // 4 < ram["normal"] < size // 4096 * 3 // 4, "not half data: %s" % ram)
            h.check(xf["requests"] <= ram["normal"] * 3 // 4, "%d requests for %d scattered data pages: adjacent pages "
                    "not written together" % (xf["requests"], ram["normal"]))
            h.check(xf["preallocated"] is can_fallocate(d), "x-file preallocated: %s" % xf)
        h.check(data_bytes(path) <= xf["bytes-written"] + 2 * h.MiB, "the file holds %d bytes of data, %d were written"
                % (data_bytes(path), xf["bytes-written"]))
        dst, dinfo = restore(path, h.guest_args("128M", seed=11), caps=caps, params=params)
        with dst:
            dxf = dinfo.get("x-file") or {}
            print("scattered restore: x-file %s" % dxf)
            h.check(dxf.get("bytes-read", 0) >= ram["normal"] * 4096 and dxf.get("direct") is True,
                    "scattered restore: %s" % dxf)
            h.check(0 < dxf.get("requests", 0) <= ram["normal"] * 3 // 4, "scattered restore's requests: %s" % dxf)
            check_restored(dst, size)


FILL_MAX_PAGES = 16          # MIG_RING_FILL_MAX (engine/ring.h) in 4 KiB pages
CHUNK_PAGES = 512            # a worker's chunk: 2 MiB (a request never spans two)
M64 = (1 << 64) - 1


def starts_zero(seed, zero, idx):
    """tools/migd/guest.c's starts_zero: whether 4K unit idx of a guest starts zero."""
    x = (seed ^ (idx * 0x2545f4914f6cdd1d)) & M64
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    x ^= x >> 31
    return (x >> 11) < zero * float(1 << 53)


def gap_layout(npages, seed, zero):
    """(zero pages, the gaps between data pages inside a chunk by length, the filler bytes
    a save or load of this layout moves: gaps of up to FILL_MAX_PAGES)."""
    zeros, gaps, fill, last = 0, {}, 0, None
    for i in range(npages):
        if i % CHUNK_PAGES == 0:
            last = None
        if starts_zero(seed, zero, i):
            zeros += 1
            continue
        if last is not None and i - last > 1:
            gaps[i - last - 1] = gaps.get(i - last - 1, 0) + 1
            if i - last - 1 <= FILL_MAX_PAGES:
                fill += (i - last - 1) * 4096
        last = i
    return zeros, gaps, fill


def case_gaps_direct():
    """Runs of data pages apart by gaps of every length from 1 page to past the longest
    a request spans (FILL_MAX_PAGES): a stopped save with O_DIRECT writes every data
    page once and, as filler, exactly the short gaps (checked against the layout,
    computed here as the guest computes it); then every absent page of the file is
    overwritten with garbage (the bitmap says absent, so the file stays loadable) and
    the file is restored with O_DIRECT, buffered, and lazily: the guest checks every
    unit, so a gap read into guest memory would fail it."""
    size, seed, zero = 64 * h.MiB, 23, 0.8
    npages = size // 4096
    zeros, gaps, fill = gap_layout(npages, seed, zero)
    missing = [n for n in range(1, FILL_MAX_PAGES + 3) if not gaps.get(n)]
    h.check(not missing and max(gaps) > FILL_MAX_PAGES + 2, "the layout lacks gaps of %s pages: %s" % (missing, gaps))
    caps, params = {"multifd": True}, {"multifd-channels": 2, "direct-io": True}
    with workdir() as d:
        path = os.path.join(d, "gaps.img")
        require_direct(d)
        with h.Migd("src", h.guest_args("64M", workload="idle,zero=%g" % zero, seed=seed)) as src:
            src.cmd("stop")
            info = save(src, path, caps=caps, params=params)
            check_saved(src, info, path, size, direct=True)
            xf, ram = info["x-file"], info["ram"]
            print("gaps save: x-file %s, normal %d, duplicate %d, filler expected %d" % (xf, ram["normal"], ram["duplicate"], fill))
            h.check(ram["duplicate"] == zeros, "%d zero pages saved, the layout has %d" % (ram["duplicate"], zeros))
            h.check(xf["fill-bytes"] == fill, "filler written %d bytes, gaps of up to %d pages hold %d"
                    % (xf["fill-bytes"], FILL_MAX_PAGES, fill))
            h.check(0 < xf["bytes-written"] - fill - ram["normal-bytes"] < 2 * h.MiB,
                    "written %d bytes: not each data page once plus the filler" % xf["bytes-written"])
            # a long gap ends a request: at least one per chunk and per long gap
            long_gaps = sum(n for g, n in gaps.items() if g > FILL_MAX_PAGES)
            h.check(long_gaps < xf["requests"] < ram["normal"] // 4, "%d requests for %d long gaps and %d data pages"
                    % (xf["requests"], long_gaps, ram["normal"]))
        with open(path, "r+b") as f:
            head = f.read(HEAD_LEN + BLOCK_LEN)
            pages_off = struct.unpack(">Q", head[HEAD_LEN + 96:HEAD_LEN + 104])[0]
            for i in range(npages):
                if starts_zero(seed, zero, i):
                    f.seek(pages_off + i * 4096)
                    f.write(b"\xa5" * 4096)
        for how, p in (("direct", params), ("buffered", {"multifd-channels": 2})):
            dst, dinfo = restore(path, h.guest_args("64M", seed=seed), caps=caps, params=p)
            with dst:
                dxf = dinfo.get("x-file") or {}
                print("gaps restore, %s: x-file %s" % (how, dxf))
                h.check(dxf.get("fill-bytes") == fill, "%s restore read %s filler bytes, want %d" % (how, dxf, fill))
                check_restored(dst, size)
        dst = h.Migd("dst", h.guest_args("64M", seed=seed, workload="random") + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True, "multifd": True})
            dst.set_params(params)
            dst.cmd("migrate-incoming", uri="file:" + path)
            dst.wait_status("completed", timeout=60)
            check_restored(dst, size)
    # live, a random writer: a later pass's dirty pages lie among clean ones, and a short
    # gap's clean pages go from guest memory (the file's copy or newer), its absent ones
    # as filler; the file must still restore whole
    with workdir() as d:
        path = os.path.join(d, "gaps-live.img")
        with h.Migd("src", h.guest_args("64M", workload="random,rate=8M,zero=%g" % zero, seed=seed)) as src:
            info = save(src, path, caps=caps, params=dict(params, **{"downtime-limit": 300}))
            print("gaps, live save: x-file %s, passes %d" % (info["x-file"], info["ram"]["dirty-sync-count"]))
            h.check(info["ram"]["dirty-sync-count"] >= 2, "a live save takes passes: %s" % info["ram"])
        dst, _ = restore(path, h.guest_args("64M", seed=seed), caps=caps, params=params)
        with dst:
            check_restored(dst, size)


def case_hugetlb_2m_direct_io():
    """2 MiB pages with O_DIRECT on this file system."""
    h.require_hugepages(2 * SIZE // (2 * h.MiB))
    with workdir() as d:
        path = os.path.join(d, "huge.img")
        guest = h.guest_args("128M", backend="hugetlb", hugepage_size="2M", workload="seq,rate=16M")
        require_direct(d)
        with h.Migd("src", guest) as src:
            info = save(src, path, caps={"multifd": True}, params={"direct-io": True, "multifd-channels": 2})
            check_saved(src, info, path, SIZE, direct=True, page=2 * h.MiB)
        dst, _ = restore(path, h.guest_args("128M", backend="hugetlb", hugepage_size="2M"),
                         params={"direct-io": True})
        with dst:
            check_restored(dst, SIZE)


def case_hugetlb_1g():
    h.require_hugepages(2, size_kb=1 << 20)
    with workdir() as d:
        path = os.path.join(d, "huge1g.img")
        with h.Migd("src", h.guest_args("1G", backend="hugetlb", hugepage_size="1G", workload="seq")) as src:
            info = save(src, path, caps={"multifd": True})
            check_saved(src, info, path, h.GiB, page=h.GiB)
        dst, _ = restore(path, h.guest_args("1G", backend="hugetlb", hugepage_size="1G"))
        with dst:
            check_restored(dst, h.GiB)


def lazy_restore(backend, hugepage_size=None, direct=False):
    """postcopy-ram on migrate-incoming: the guest runs after the guest record alone, a
    random workload faults its pages in from the file while the rest is prefetched; every
    unit checked, every fault timed like a network postcopy request."""
    with workdir() as d:
        path = os.path.join(d, "lazy.img")
        with h.Migd("src", h.guest_args("64M", backend=backend, hugepage_size=hugepage_size,
                                        workload="idle,zero=0.25")) as src:
            save(src, path)
        dst_guest = h.guest_args("64M", backend=backend, hugepage_size=hugepage_size, workload="random")
        dst = h.Migd("dst", dst_guest + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True, "multifd": True})
            dst.set_params({"multifd-channels": 2, "direct-io": direct})
            dst.cmd("migrate-incoming", uri="file:" + path)
            info = dst.wait_status(["postcopy-active", "completed"], timeout=30)
            dst.wait_running(True, timeout=10)
            info = dst.wait_status("completed", timeout=60)
            check_restored(dst, 64 * h.MiB)
            info = dst.query_migrate()
            xf = info.get("x-file") or {}
            print("lazy restore: running after %s ms (checked after %s ms, VM load %s ms), all in after %s ms, "
                  "x-postcopy-latency %s, requests %s, their reads p50 %s us, p99 %s us"
                  % (xf.get("running-after-ms"), xf.get("checked-after-ms"), xf.get("vm-load-ms"),
                     xf.get("all-in-after-ms"), info.get("x-postcopy-latency"),
                     info.get("x-postcopy-requests"), xf.get("fault-read-p50-us"), xf.get("fault-read-p99-us")))
            h.check(xf.get("running-after-ms") is not None, "no running-after-ms in x-file: %s" % xf)
            h.check(xf.get("all-in-after-ms", -1) >= xf["running-after-ms"],
                    "every page in at %s ms, before the guest ran at %s ms" % (xf.get("all-in-after-ms"), xf["running-after-ms"]))
            # the start's two parts: the file checked, then (after registration and the
            # devices) the VM's load of its record; both inside it, in that order
            chk, vml = xf.get("checked-after-ms"), xf.get("vm-load-ms")
            h.check(chk is not None and vml is not None, "no checked-after-ms or vm-load-ms in x-file: %s" % xf)
            h.check(chk is not None and vml is not None and 0 < chk and 0 < vml
                    and chk + vml <= xf["running-after-ms"] + 0.01,
                    "checked after %s ms and the VM's load %s ms do not fit in running after %s ms"
                    % (chk, vml, xf["running-after-ms"]))
            # whether the vCPUs beat the prefetch to a page depends on scheduling; that
            # every fault served is timed exactly once does not
            lat = info.get("x-postcopy-latency") or {}
            cls = "4k" if backend != "hugetlb" else "2m"
            h.check(lat.get(cls, {}).get("count", 0) == info.get("x-postcopy-requests", 0),
                    "faults served %s, timed %s" % (info.get("x-postcopy-requests"), lat))
            h.check(xf.get("bytes-read", 0) >= 32 * h.MiB, "prefetch read only %s bytes" % xf.get("bytes-read"))
            # every fault served was read from the file once, its read timed apart
            reqs = info.get("x-postcopy-requests", 0)
            h.check(xf.get("fault-reads") == reqs, "faults served %s, read from the file %s" % (reqs, xf.get("fault-reads")))
            r50, r99 = xf.get("fault-read-p50-us"), xf.get("fault-read-p99-us")
            h.check((r50 is not None and r99 is not None and 0 <= r50 <= r99) if reqs else (r50 is None and r99 is None),
                    "%s faults read, their reads' p50 %s us and p99 %s us" % (reqs, r50, r99))
            h.check(xf.get("direct") is direct, "x-file direct %r, want %r" % (xf.get("direct"), direct))


def case_lazy_restore_anon():
    lazy_restore("anon")


def case_lazy_restore_hugetlb_2m():
    """2 MiB pages with direct-io: faults and prefetch read with O_DIRECT."""
    h.require_hugepages(64)
    lazy_restore("hugetlb", "2M", direct=True)


def integrity_settled(dst, what):
    """x-integrity once a vCPU waits on a page (its unit checks stop), none failed."""
    def integrity():
        return dst.query_migrate().get("x-integrity") or {}

    def settled():
        first = integrity()
        h.check(first.get("failed") == 0, "a vCPU went on past a page %s: x-integrity %s" % (what, first))
        time.sleep(0.3)
        return first if integrity() == first else None
    return h.wait_until(settled, 15, "the vCPU to wait for a page %s" % what)


def migration_statuses(dst):
    """The MIGRATION events' statuses received so far, in order."""
    return [e["data"]["status"] for e in dst.qmp.take_events("MIGRATION")]


def recover_completes(dst, uri, size):
    """migrate-recover uri: the restore completes, every unit checked; the MIGRATION
    events' statuses received so far."""
    dst.cmd("migrate-recover", uri=uri)
    info = dst.wait_status(["completed", "failed"], timeout=60)
    h.check(info["status"] == "completed", "the recovered restore did not complete: %s" % info)
    check_restored(dst, size)
    return migration_statuses(dst)


def lock_free(path):
    """Whether no migration holds a lock on path (a write lock could be taken)."""
    try:
        os.close(ofd_lock(path, "write"))
        return True
    except BlockingIOError:
        return False


def case_lazy_restore_file_cut():
    """A lazy restore whose file is cut short after its guest runs pauses (postcopy-paused
    naming the truncation, the file let go); a vCPU that touches a page the file no
    longer holds waits for it (never reads zeros) whatever the operator asks next;
    migrate-recover with another save of a guest of the same shape, with the still cut
    file or with a socket address is refused and the restore stays paused; with the
    file repaired it goes on and completes, every unit checked."""
    with workdir() as d:
        path, keep, other = (os.path.join(d, n) for n in ("cut.img", "keep.img", "other.img"))
        for p in (path, other):
            with h.Migd("src", h.guest_args("256M", workload="idle,zero=0.25")) as src:
                save(src, p)
        shutil.copyfile(path, keep)
        dst = h.Migd("dst", h.guest_args("256M", workload="random") + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True, "multifd": True, "events": True})
            dst.set_params({"multifd-channels": 2})
            dst.cmd("migrate-incoming", uri="file:" + path)
            # the random vCPU paces the prefetch: every page is in about 0.5 s after
            # the guest runs (256 MiB), the cut comes a poll (10 ms) after it runs
            info = dst.wait_status(["postcopy-active", "completed"], timeout=30, interval=0.01)
            h.check(info["status"] == "postcopy-active", "the restore ended before the file was cut: %s" % info)
            os.truncate(path, os.path.getsize(path) // 8 // 4096 * 4096)
            info = dst.wait_status(["postcopy-paused", "failed", "completed"], timeout=30, interval=0.01)
            err = info.get("error-desc") or ""
            print("cut: %s" % info)
            h.check(info["status"] == "postcopy-paused", "the lazy restore did not pause: %s" % info)
            h.check("truncated" in err and path in err, "the error does not name the file and the truncation: %r" % err)
            before = integrity_settled(dst, "past the cut")
            # the file closed, its lock let go: a save (a write lock) could take it
            h.wait_until(lambda: lock_free(path), 10, "the paused restore to let go of the file")
            for cmd, args in (("migrate-pause", {}), ("migrate_cancel", {}), ("migrate-incoming", {"uri": "file:" + path}),
                              ("x-guest-check", {})):
                try:
                    dst.cmd(cmd, args)
                    print("%s: accepted" % cmd)
                except h.QmpError as e:
                    print("%s: %s" % (cmd, e))
            for uri, want in (("tcp:127.0.0.1:0", "from a file: URI of the same save"),
                              ("file:" + other, "session id differs"),
                              ("file:" + path, "truncated")):
                expect_refused_cmd(dst, "migrate-recover", {"uri": uri}, want)
                info = dst.query_migrate()
                h.check(info.get("status") == "postcopy-paused" and info.get("error-desc") == err,
                        "after migrate-recover %s: %s" % (uri, info))
            time.sleep(0.5)
            after = integrity_settled(dst, "past the cut")
            print("x-integrity after the cut %s, after the commands and 0.5 s %s" % (before, after))
            h.check(after == before, "a vCPU went on past a page the file no longer holds: x-integrity %s, then %s"
                    % (before, after))
            h.check(dst.query_status().get("running") is True, "the guest stopped: %s" % dst.query_status())
            os.replace(keep, path)   # repaired
            seen = recover_completes(dst, "file:" + path, 256 * h.MiB)
            print("statuses: %s" % seen)
            h.check(seen[-5:] == ["postcopy-paused", "postcopy-recover-setup", "postcopy-recover", "postcopy-active",
                                  "completed"] and "failed" not in seen, "statuses %s" % seen)
            os.close(ofd_lock(path, "write"))   # raises if the restore still held it
            t0 = time.monotonic()
            dst.quit(timeout=5)
            print("quit took %.2f s" % (time.monotonic() - t0))


def case_lazy_restore_prefetch_cut():
    """The prefetch's read fails (an idle guest faults nothing, so the workers alone
    read): the restore pauses naming the file; recovered with the repaired file, the
    chunk whose read failed is read again and the restore completes, every unit checked."""
    with workdir() as d:
        path, keep = os.path.join(d, "cut.img"), os.path.join(d, "keep.img")
        with h.Migd("src", h.guest_args("256M", workload="idle,zero=0.25")) as src:
            save(src, path)
        shutil.copyfile(path, keep)
        dst = h.Migd("dst", h.guest_args("256M", workload="idle") + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True})
            dst.cmd("migrate-incoming", uri="file:" + path)
            # at once (a poll a ms): the one worker reads every page in 100 to 250 ms
            # here (a loaded 2-CPU VM), and had not read 8 MiB when the cut came, in
            # every run tried; its next read past the cut fails
            info = dst.wait_status(["postcopy-active", "completed"], timeout=30, interval=0.001)
            os.truncate(path, 64 * h.MiB)
            h.check(info["status"] == "postcopy-active", "the restore ended before the file was cut: %s" % info)
            info = dst.wait_status(["postcopy-paused", "failed", "completed"], timeout=30, interval=0.01)
            err = info.get("error-desc") or ""
            print("cut after %s bytes read: %s" % ((info.get("x-file") or {}).get("bytes-read"), err))
            h.check(info["status"] == "postcopy-paused", "the lazy restore did not pause: %s" % info)
            h.check("reading the file at offset" in err and "truncated" in err and path in err,
                    "not the prefetch's read, or the file and the cause not named: %r" % err)
            h.wait_until(lambda: lock_free(path), 10, "the paused restore to let go of the file")
            os.replace(keep, path)
            recover_completes(dst, "file:" + path, 256 * h.MiB)


def case_lazy_restore_pause_recover():
    """migrate-pause on a lazy restore: postcopy-paused, the file let go (an operator may
    move or repair it), the vCPUs wait; migrate-recover on the same file, moved, goes on,
    and a second pause and recovery too; the restore completes, every unit checked."""
    with workdir() as d:
        path, moved = os.path.join(d, "paused.img"), os.path.join(d, "moved.img")
        with h.Migd("src", h.guest_args("256M", workload="idle,zero=0.25")) as src:
            save(src, path)
        dst = h.Migd("dst", h.guest_args("256M", workload="random") + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True, "multifd": True, "events": True})
            # direct-io: the recovered file is opened a second time with O_DIRECT, as the first
            dst.set_params({"multifd-channels": 2, "direct-io": True})
            dst.cmd("migrate-incoming", uri="file:" + path)
            info = dst.wait_status(["postcopy-active", "completed"], timeout=30, interval=0.01)
            h.check(info["status"] == "postcopy-active", "the restore ended before the pause: %s" % info)
            dst.cmd("migrate-pause")
            info = dst.query_migrate()
            h.check(info.get("status") == "postcopy-paused" and "migrate-pause" in (info.get("error-desc") or ""),
                    "after migrate-pause: %s" % info)
            h.wait_until(lambda: lock_free(path), 10, "the paused restore to let go of the file")
            integrity_settled(dst, "while paused")
            os.rename(path, moved)   # the operator moves it
            dst.cmd("migrate-recover", uri="file:" + moved)
            # again as soon as it runs (postcopy-recover or -active), long before every page is in
            deadline = time.monotonic() + 10
            while True:
                try:
                    dst.cmd("migrate-pause")
                    break
                except h.QmpError as e:
                    h.check("postcopy-recover-setup" in str(e) and time.monotonic() < deadline,
                            "the second migrate-pause: %s" % e)
                    time.sleep(0.001)
            info = dst.query_migrate()
            h.check(info.get("status") == "postcopy-paused", "after the second migrate-pause: %s" % info)
            seen = recover_completes(dst, "file:" + moved, 256 * h.MiB)
            print("statuses: %s" % seen)
            h.check(seen.count("postcopy-paused") == 2 and seen.count("postcopy-recover") == 2 and "failed" not in seen
                    and seen[-1] == "completed", "statuses %s" % seen)
            os.close(ofd_lock(moved, "write"))


def damage(path, out, how):
    shutil.copyfile(path, out)
    with open(out, "r+b") as f:
        head = f.read(HEAD_LEN)
        nblocks = struct.unpack(">I", head[16:20])[0]
        body = HEAD_LEN + nblocks * BLOCK_LEN
        f.seek(0)
        hdr = bytearray(f.read(body + SHA_LEN))
        if how == "truncated":
            f.truncate(os.path.getsize(out) // 2)
        elif how == "truncated-head":
            f.truncate(60)                # inside the header's fixed fields
        elif how == "truncated-header":
            f.truncate(body + SHA_LEN - 5)   # inside header_sha256
        elif how == "magic":
            hdr[0] ^= 0xff
        elif how == "version":
            hdr[8:12] = struct.pack(">I", 2)
        elif how == "header-byte":
            hdr[30] ^= 0x01              # inside the file length
        elif how == "incomplete":
            hdr[12:16] = struct.pack(">I", 0)
            hdr[body:body + SHA_LEN] = hashlib.sha256(bytes(hdr[:body])).digest()
        elif how in ("bitmap-bit", "bitmap-pad", "header-pad"):
            # the pads: bytes no digest covers, in the header's and the bitmap's 4 KiB
            bitmap_off, bitmap_len = struct.unpack(">QQ", hdr[HEAD_LEN + 80:HEAD_LEN + 96])
            at = {"bitmap-bit": bitmap_off + 3, "bitmap-pad": bitmap_off + bitmap_len + 100,
                  "header-pad": body + SHA_LEN + 1000}[how]
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0x10]))
        if how in ("magic", "version", "header-byte", "incomplete"):
            f.seek(0)
            f.write(hdr)


def case_damaged_files_refused():
    """Every damage is refused with its reason, and nothing was read into the guest."""
    with workdir() as d:
        path = os.path.join(d, "good.img")
        # the guest's size does not matter here: small ones start faster
        with h.Migd("src", h.guest_args("32M", workload="idle")) as src:
            save(src, path)
        cases = [
            ("truncated", h.guest_args("32M"), "truncated"),
            ("truncated-head", h.guest_args("32M"), "it has 60 bytes, too few for a header"),
            ("truncated-header", h.guest_args("32M"), "the file ends inside its header"),
            ("magic", h.guest_args("32M"), "bad magic"),
            ("version", h.guest_args("32M"), "version 2"),
            ("header-byte", h.guest_args("32M"), "damaged header"),
            ("bitmap-bit", h.guest_args("32M"), "bitmap of RAM block"),
            ("bitmap-pad", h.guest_args("32M"), "bitmap of RAM block 'pc.ram' is damaged (its padding"),
            ("header-pad", h.guest_args("32M"), "padding after the header is not zero"),
            ("incomplete", h.guest_args("32M"), "marked incomplete"),
            (None, h.guest_args("64M"), "bytes in the file"),   # another guest size
        ]
        if os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
            h.require_hugepages(16)
            cases.append((None, h.guest_args("32M", backend="hugetlb", hugepage_size="2M"), "-byte pages in the file"))
        # a lazy restore (its guest would fault from its first instant) checks the same
        # before its guest runs
        lazy = [("bitmap-pad", h.guest_args("32M", workload="random"), "its padding", {"postcopy-ram": True})]
        for how, guest, want, caps in [c + ({},) for c in cases] + lazy:
            f = path
            if how:
                f = os.path.join(d, how + ".img")
                if not os.path.exists(f):
                    damage(path, f, how)
            dst, info = restore(f, guest, caps=caps, status="failed")
            with dst:
                err = info.get("error-desc") or ""
                print("%s: %s" % (how or " ".join(guest), err))
                h.check(want in err and "refused" in err, "%s: error %r does not say %r" % (how, err, want))
                h.check((info.get("x-file") or {}).get("bytes-read") == 0,
                        "%s: pages were read into the guest before the refusal: %s" % (how, info))
                st = dst.query_status()
                h.check(st.get("running") is False, "%s: the refused guest runs: %s" % (how, st))
                h.check(not info.get("x-guest-writes") and not (info.get("x-file") or {}).get("running-after-ms"),
                        "%s: the refused guest ran: %s" % (how, info))


def case_enospc_and_direct_io_on_tmpfs():
    """A 48 MiB tmpfs: saving 128 MiB runs out of space; the source keeps running, its
    guest intact, and the file is marked incomplete (a load refuses it); a streamed
    file (no mapped-ram) there fails alike, naming the file. direct-io on
    tmpfs: a clear error if tmpfs refuses O_DIRECT, else a save that works."""
    with small_tmpfs("48M") as d, h.Migd("src", h.guest_args("128M", workload="seq")) as src:
        path = os.path.join(d, "full.img")
        src.set_caps(FILE_CAPS)
        src.cmd("migrate", uri="file:" + path)
        info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(src.query_migrate()),
                            60, "the save to a full file system to fail")
        err = info.get("error-desc") or ""
        print("ENOSPC: %s" % err)
        h.check("No space left" in err, "error does not name the full disk: %r" % err)
        src.wait_running(True, timeout=10)
        chk = src.cmd("x-guest-check", timeout=120)
        h.check(chk.get("failed") == 0, "source guest damaged by the failed save: %s" % chk)
        with open(path, "rb") as f:
            head = f.read(HEAD_LEN)
        h.check(head[:8] == b"MIGMAPRM" and struct.unpack(">I", head[12:16])[0] == 0,
                "the failed save's file is not marked incomplete: %r" % head[:16])
        dst, dinfo = restore(path, h.guest_args("128M"), status="failed")
        with dst:
            h.check("marked incomplete" in (dinfo.get("error-desc") or ""), "load of the failed save: %s" % dinfo)
        os.unlink(path)
        # the space comes back once every reference to the file is gone (bounded wait)
        h.wait_until(lambda: (lambda v: v.f_bavail * v.f_frsize >= 32 * h.MiB)(os.statvfs(d)), 30,
                     "the full file's space to come back")

        # the streamed file (no mapped-ram) on the full disk: the same, naming the file
        src.set_caps({"mapped-ram": False})
        src.set_params({"max-bandwidth": 4 * h.GiB})
        src.cmd("migrate", uri="file:" + path)
        info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(src.query_migrate()),
                            60, "the streamed save to a full file system to fail")
        err = info.get("error-desc") or ""
        print("ENOSPC, streamed: %s" % err)
        h.check("No space left" in err and path in err, "error does not name the full disk and file: %r" % err)
        src.wait_running(True, timeout=10)
        os.unlink(path)
        h.wait_until(lambda: (lambda v: v.f_bavail * v.f_frsize >= 32 * h.MiB)(os.statvfs(d)), 30,
                     "the streamed file's space to come back")
        src.set_caps(FILE_CAPS)

        # direct-io on tmpfs
        small = h.guest_args("16M", workload="seq")
        probe = os.path.join(d, "probe")
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT))
            tmpfs_direct = True
        except OSError:
            tmpfs_direct = False
        with contextlib.suppress(OSError):
            os.unlink(probe)
        path = os.path.join(d, "direct.img")
        with h.Migd("src2", small) as src2:
            src2.set_caps(FILE_CAPS)
            src2.set_params({"direct-io": True})
            src2.cmd("migrate", uri="file:" + path)
            if tmpfs_direct:
                info = src2.wait_status("completed", timeout=60)
                print("tmpfs takes O_DIRECT here: saved with direct-io")
                h.check(info["x-file"]["direct"] is True, "x-file: %s" % info["x-file"])
            else:
                info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(src2.query_migrate()),
                                    60, "direct-io on tmpfs to fail")
                err = info.get("error-desc") or ""
                print("direct-io on tmpfs: %s" % err)
                h.check("O_DIRECT" in err, "error does not name O_DIRECT: %r" % err)
                src2.wait_running(True, timeout=10)


def case_enospc_multifd_direct_then_good_path():
    """A full disk under multifd workers with direct-io, and one that only the guest
    record meets, after the guest was stopped for the last pass: each time the source's
    guest runs on intact, the file is marked incomplete and refused; between the two,
    the same source saves to a good path, restored whole."""
    caps, params = {"multifd": True}, {"multifd-channels": 2, "direct-io": True}
    with workdir() as good, h.Migd("src", h.guest_args("128M", workload="seq")) as src:
        def failed_save(d, what, want):
            path = os.path.join(d, "full.img")
            src.set_caps(dict(FILE_CAPS, **caps))
            src.set_params(params)
            src.cmd("migrate", uri="file:" + path)
            info = h.wait_until(lambda: (lambda i: i if i.get("status") in ("failed", "completed") else None)(
                src.query_migrate()), 60, "the save to a full file system to end")
            err = info.get("error-desc") or ""
            print("%s: %s" % (what, err))
            h.check(info["status"] == "failed" and "No space left" in err and want in err,
                    "%s: %s, error %r (want %r)" % (what, info["status"], err, want))
            src.wait_running(True, timeout=10)
            chk = src.cmd("x-guest-check", timeout=120)
            h.check(chk.get("failed") == 0, "%s: source guest damaged by the failed save: %s" % (what, chk))
            with open(path, "rb") as f:
                head = f.read(HEAD_LEN)
            h.check(head[:8] == b"MIGMAPRM" and struct.unpack(">I", head[12:16])[0] == 0,
                    "%s: the file is not marked incomplete: %r" % (what, head[:16]))
            dst, dinfo = restore(path, h.guest_args("128M"), caps=caps, params=params, status="failed")
            with dst:
                h.check("marked incomplete" in (dinfo.get("error-desc") or ""), "%s: load: %s" % (what, dinfo))

        with small_tmpfs("48M") as d:
            require_direct(d)
            failed_save(d, "ENOSPC, multifd + direct-io", "writing")
        path = os.path.join(good, "good.img")
        save(src, path, caps=caps, params=params)
        flen = os.path.getsize(path)
        dst, _ = restore(path, h.guest_args("128M"), caps=caps, params=params)
        with dst:
            check_restored(dst, SIZE)
        os.unlink(path)
        src.cmd("cont")
        # room for header, bitmap and pages (allocated up front), not for the guest record
        with small_tmpfs(str(flen - 64 * h.KiB)) as d:
            failed_save(d, "ENOSPC at the guest record", "guest record")


def case_direct_io_refusals_ramfs():
    """direct-io on a file system without O_DIRECT (ramfs; this kernel's tmpfs takes it):
    the save fails naming O_DIRECT, the source's guest running, and nothing loadable is
    left; a load with direct-io, lazy or not, is refused before the guest runs."""
    with mounted("ramfs") as d, h.Migd("src", h.guest_args("16M", workload="seq")) as src:
        path = os.path.join(d, "direct.img")
        for caps in ({}, {"multifd": True}):
            src.set_caps(dict(FILE_CAPS, **caps))
            src.set_params({"direct-io": True, "multifd-channels": 2})
            src.cmd("migrate", uri="file:" + path)
            info = h.wait_until(lambda: (lambda i: i if i.get("status") in ("failed", "completed") else None)(
                src.query_migrate()), 60, "direct-io on ramfs to fail")
            err = info.get("error-desc") or ""
            print("direct-io on ramfs, %s: %s" % (caps or "one worker", err))
            h.check(info["status"] == "failed" and "O_DIRECT" in err, "direct-io on ramfs: %s" % info)
            src.wait_running(True, timeout=10)
            dst, dinfo = restore(path, h.guest_args("16M"), status="failed")
            with dst:
                h.check("refused" in (dinfo.get("error-desc") or ""), "load of the failed save: %s" % dinfo)
        src.set_params({"direct-io": False})
        save(src, path, caps={"multifd": False})
        for lazy in (False, True):
            dst, dinfo = restore(path, h.guest_args("16M", workload="random"), caps={"postcopy-ram": lazy},
                                 params={"direct-io": True}, status="failed")
            with dst:
                err = dinfo.get("error-desc") or ""
                print("load with direct-io from ramfs, lazy %s: %s" % (lazy, err))
                h.check("O_DIRECT" in err, "load with direct-io from ramfs: %s" % dinfo)
                h.check(dst.query_status().get("running") is False and (dinfo.get("x-file") or {}).get("bytes-read") == 0,
                        "the guest ran or took pages: %s, %s" % (dst.query_status(), dinfo))


def case_enospc_fallocate_fallback():
    """No room to allocate the whole guest up front (a 48 MiB tmpfs of its own, a 64 MiB
    guest): the save falls back to a hole, where a guest half of whose pages are zero
    fits, and the guest restores whole."""
    with small_tmpfs("48M") as d:
        path = os.path.join(d, "half.img")
        half = h.guest_args("64M", workload="idle,zero=0.5", seed=9)
        with h.Migd("src", half) as src:
            src.cmd("stop")
            info = save(src, path, caps={"multifd": True}, params={"multifd-channels": 2})
            print("fallocate refused: x-file %s" % info.get("x-file"))
            check_saved(src, info, path, 64 * h.MiB)
            h.check(info["x-file"]["preallocated"] is False, "a 64 MiB guest preallocated on a 48 MiB file system: %s"
                    % info["x-file"])
            # a hole's zero pages take no room: no filler goes into it
            h.check(info["x-file"]["fill-bytes"] == 0, "filler written into a hole: %s" % info["x-file"])
        dst, _ = restore(path, h.guest_args("64M", seed=9), caps={"multifd": True}, params={"multifd-channels": 2})
        with dst:
            check_restored(dst, 64 * h.MiB)


def expect_refused(migd, command, uri, want):
    """command (migrate or migrate-incoming) with this uri fails, saying want."""
    expect_refused_cmd(migd, command, {"uri": uri}, want)


def expect_refused_cmd(migd, command, args, want):
    """command with these arguments fails, saying want."""
    try:
        migd.cmd(command, args)
    except h.QmpError as e:
        print("refused: %s" % e)
        h.check(want in str(e), "refusal %r does not say %r" % (str(e), want))
    else:
        raise h.HarnessError("%s %s was accepted" % (command, args))


def case_streamed():
    """file: without mapped-ram writes the ordinary migration stream into the file (QEMU's
    old way): a live save of a writing guest with two devices at an offset, the bytes
    before it kept, restored by migrate-incoming file: and checked unit by unit and
    byte by byte; the same file cut short, and a file that holds no stream, are
    refused naming why; a lazy restore from a stream is refused (no fixed offsets)."""
    size = 64 * h.MiB
    guest = h.guest_args("64M", workload="seq,rate=16M") + DEVICES
    with workdir() as d:
        path = os.path.join(d, "stream.img")
        with open(path, "wb") as f:
            f.write(b"keep" * 1024)
        with h.Migd("src", guest) as src:
            src.set_params({"max-bandwidth": 4 * h.GiB, "downtime-limit": 300})
            src.cmd("migrate", uri="file:%s,offset=4096" % path)
            info = src.wait_status("completed", timeout=90)
            h.check(info["ram"]["dirty-sync-count"] >= 2, "a live save takes passes: %s" % info["ram"])
            h.check(info.get("downtime") is not None, "no downtime reported: %s" % info)
            st = src.query_status()
            h.check(st.get("status") == "postmigrate" and st.get("running") is False, "source after a save: %s" % st)
        with open(path, "rb") as f:
            h.check(f.read(4096) == b"keep" * 1024, "the bytes before the offset were changed")
            h.check(f.read(4) == b"MIGC", "the stream does not begin with the main channel's hello")
        flen = os.path.getsize(path)
        h.check(flen > size // 2, "a %d-byte stream for a %d-byte guest" % (flen, size))
        # x-file as for mapped-ram: the stream is the file's bytes, written and read in order
        xf = info.get("x-file") or {}
        print("streamed save: x-file %s, ram.transferred %s" % (xf, info["ram"]["transferred"]))
        h.check(xf.get("mapped-ram") is False and xf.get("direct") is False and xf.get("queue-depth-reached") == 1,
                "streamed save's x-file: %s" % xf)
        h.check(xf.get("bytes-written") == flen - 4096, "streamed save wrote %d bytes, x-file says %s" % (flen - 4096, xf))
        dst, dinfo = restore(path + ",offset=4096", h.guest_args("64M") + DEVICES, caps={"mapped-ram": False})
        with dst:
            dxf = dinfo.get("x-file") or {}
            print("streamed restore: x-file %s, x-ram-transferred %s" % (dxf, dinfo.get("x-ram-transferred")))
            h.check(dxf.get("mapped-ram") is False and dxf.get("bytes-read") == flen - 4096,
                    "streamed restore read %d bytes, x-file says %s" % (flen - 4096, dxf))
            h.check(dinfo.get("x-ram-transferred", 0) > size // 2, "streamed restore's x-ram-transferred: %s" % dinfo)
            check_restored(dst, size)
            devs = dst.query_migrate().get("x-devices") or []
            h.check([x.get("result") for x in devs] == ["ok", "ok"], "devices after the restore: %s" % devs)
        # cut in the middle of the pages: refused with the cause, the guest never started
        with open(path, "r+b") as f:
            f.truncate(4096 + flen // 2)
        dst, dinfo = restore(path + ",offset=4096", h.guest_args("64M") + DEVICES, caps={"mapped-ram": False},
                             status="failed")
        with dst:
            err = dinfo.get("error-desc") or ""
            print("truncated stream: %s" % err)
            h.check("truncated" in err and "ends before the migration stream" in err, "truncated stream: %r" % err)
            h.check(dst.query_status().get("running") is False, "a guest ran from a truncated stream")
        with h.Migd("dst", h.guest_args("64M") + DEVICES + ["--incoming", "defer"]) as dst:
            dst.set_caps({})
            expect_refused(dst, "migrate-incoming", "file:" + path, "holds no migration stream at offset 0")
            dst.set_caps({"postcopy-ram": True})
            expect_refused(dst, "migrate-incoming", "file:%s,offset=4096" % path, "only mapped-ram gives")
            h.check(dst.query_status().get("running") is False, "the refused destination runs a guest")


def ofd_lock(path, kind):
    """An open file description lock on path from offset 0 on, as another migration holds
    one (engine/filelock.c); the descriptor to close is returned."""
    fd = os.open(path, os.O_RDWR)
    l_type = fcntl.F_RDLCK if kind == "read" else fcntl.F_WRLCK
    # struct flock on x86-64: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hh4xqqi4x", l_type, os.SEEK_SET, 0, 0, 0))
    return fd


def migrate_fails(migd, uri, want):
    """migrate with uri fails, at once or in its setup, saying want; its query-migrate."""
    try:
        migd.cmd("migrate", uri=uri)
    except h.QmpError as e:
        h.check(want in str(e), "refusal %r does not say %r" % (str(e), want))
        return migd.query_migrate()
    info = h.wait_until(lambda: (lambda i: i if i.get("status") in ("failed", "completed") else None)(
        migd.query_migrate()), 30, "the save to fail")
    h.check(info["status"] == "failed" and want in (info.get("error-desc") or ""), "save: %s" % info)
    return info


def case_locks():
    """One migration at a time on a file: while another holds a read lock on it (a
    restore reading it), a save there, mapped-ram or streamed, fails naming why, before
    a byte of the file changes, and the source's guest runs on; while another holds a
    write lock (a save), a load from it is refused before the guest starts; a lazy
    restore lets go of the file once every page is in, so a save may follow."""
    with workdir() as d, h.Migd("src", h.guest_args("32M", workload="idle,zero=0.25")) as src:
        path = os.path.join(d, "locked.img")
        save(src, path)
        src.cmd("cont")
        src.wait_running(True, timeout=10)
        with open(path, "rb") as f:
            before = hashlib.sha256(f.read()).hexdigest()
        fd = ofd_lock(path, "read")
        try:
            for mapped in (True, False):
                src.set_caps({"mapped-ram": mapped})
                info = migrate_fails(src, "file:" + path, "in use by another migration")
                print("save while another reads, mapped-ram %s: %s" % (mapped, info.get("error-desc")))
                src.wait_running(True, timeout=10)
                with open(path, "rb") as f:
                    h.check(hashlib.sha256(f.read()).hexdigest() == before, "a refused save changed the file")
        finally:
            os.close(fd)
        fd = ofd_lock(path, "write")
        try:
            dst, dinfo = restore(path, h.guest_args("32M"), status="failed")
            with dst:
                err = dinfo.get("error-desc") or ""
                print("load while another saves: %s" % err)
                h.check("being saved to by another migration" in err, "load under a write lock: %s" % dinfo)
                h.check(dst.query_status().get("running") is False and (dinfo.get("x-file") or {}).get("bytes-read", 0) == 0,
                        "the guest ran or took pages: %s, %s" % (dst.query_status(), dinfo))
        finally:
            os.close(fd)
        dst = h.Migd("dst", h.guest_args("32M", workload="random") + ["--incoming", "defer"])
        with dst:
            dst.set_caps({"mapped-ram": True, "postcopy-ram": True})
            dst.cmd("migrate-incoming", uri="file:" + path)
            dst.wait_status("completed", timeout=60)
            check_restored(dst, 32 * h.MiB)
            os.close(ofd_lock(path, "write"))   # raises if the restore still held it


def case_refusals():
    """Combinations that make no sense are refused at migrate, naming why; the guest
    keeps running."""
    with workdir() as d, h.Migd("src", h.guest_args("64M", workload="idle")) as src:
        uri = "file:" + os.path.join(d, "x.img")

        def refused(want, caps=None, params=None, u=uri):
            src.set_caps(caps or {})
            src.set_params(params or {})
            expect_refused(src, "migrate", u, want)
            src.set_caps({k: False for k in (caps or {})})
            src.set_params({k: "" if isinstance(v, str) else False for k, v in (params or {}).items()})

        refused("multifd to a file needs the mapped-ram capability", caps={"multifd": True})
        refused("postcopy", caps={"mapped-ram": True, "postcopy-ram": True})
        refused("direct-io needs the mapped-ram", params={"direct-io": True})
        refused("needs a file: URI", caps={"mapped-ram": True}, u="tcp:127.0.0.1:1")
        refused("offset", caps={"mapped-ram": True, "postcopy-ram": False}, params={"direct-io": True},
                u=uri + ",offset=100")
        refused("tls-creds does not apply", caps={"mapped-ram": True}, params={"tls-creds": "creds0"})
        h.check(src.query_status().get("running") is True, "source stopped by a refused migrate")
        h.check(not os.path.exists(os.path.join(d, "x.img")), "a refused migrate created the file")
        # qemu_strtosz takes the offset up to 2^64 - 1; past off_t's range it fails at
        # once, naming the offset, with the file left untouched
        src.set_caps({"mapped-ram": True})
        src.cmd("migrate", uri=uri + ",offset=0x8000000000000000")
        info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(src.query_migrate()),
                            timeout=10, what="a migrate past the largest file offset to fail")
        print("offset 2^63: %s" % info.get("error-desc"))
        h.check("past the largest offset" in info.get("error-desc", ""), "offset 2^63 failed as %r" % info)
        h.check(src.query_status().get("running") is True, "source stopped by a failed migrate")
        h.check(os.path.getsize(os.path.join(d, "x.img")) == 0, "a migrate past the largest offset wrote the file")


if __name__ == "__main__":
    h.main([case_live_anon_multifd_devices, case_stopped_memfd_zero_pages_offset, case_scattered_direct_multifd,
            case_gaps_direct,
            case_hugetlb_2m_direct_io,
            case_hugetlb_1g, case_lazy_restore_anon, case_lazy_restore_hugetlb_2m, case_lazy_restore_file_cut, case_lazy_restore_prefetch_cut, case_lazy_restore_pause_recover, case_damaged_files_refused, case_enospc_and_direct_io_on_tmpfs, case_enospc_multifd_direct_then_good_path, case_direct_io_refusals_ramfs,
            case_enospc_fallocate_fallback,
            case_refusals, case_locks, case_streamed, case_devices_parallel])
