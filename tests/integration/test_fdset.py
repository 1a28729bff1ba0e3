#!/usr/bin/env python3
"""Fd sets (QMP add-fd, remove-fd, query-fdsets) and file:/dev/fdset/N URIs, driven as
libvirt saves and restores a guest with mapped-ram (qemuMigrationSrcToSparseFile and
its restore): the file opened by the caller, its descriptors passed with add-fd (one
opened O_DIRECT besides for direct-io), migrate / migrate-incoming to
file:/dev/fdset/N,offset=X. Every restore checked unit by unit; after each save and
load the file's lock is let go although the fd set still holds the descriptor whose
open file description the migration's dup shared."""
import fcntl
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402
from test_file import check_restored, require_direct, workdir  # noqa: E402
from test_libvirt import Monitor  # noqa: E402

SIZE = 32 * h.MiB
OFFSET = 4096          # libvirt writes its own header before QEMU's stream


def guest(workload):
    return h.guest_args("32M", workload=workload)


def add_fd(mon, fd, fdset_id=None, opaque=None):
    args = {}
    if fdset_id is not None:
        args["fdset-id"] = fdset_id
    if opaque is not None:
        args["opaque"] = opaque
    return mon.cmd("add-fd", args, fds=[fd])


def error_of(reply):
    return reply.get("error", {}).get("desc", "")


def check_unlocked(path, what):
    """No migration's lock is left on the file (a POSIX lock conflicts with an open file
    description lock of another description)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, OFFSET)
        fcntl.lockf(fd, fcntl.LOCK_UN, 0, OFFSET)
    except OSError as e:
        raise AssertionError("%s: the file is still locked (%s)" % (what, e))
    finally:
        os.close(fd)


def save(path, direct, caps=None):
    """The source's half: returns nothing; the file holds the guest from OFFSET."""
    with open(path, "wb") as f:
        f.write(b"L" * OFFSET)      # libvirt's header: kept, the save goes after it
    fds = [os.open(path, os.O_WRONLY)]
    if direct:
        fds.append(os.open(path, os.O_WRONLY | os.O_DIRECT))
    with h.Migd("src", guest("seq")) as src:
        mon = Monitor(src.qmp_path, "src")
        try:
            for i, fd in enumerate(fds):
                info = add_fd(mon, fd, 7, "save-%d" % i)
                h.check(info["fdset-id"] == 7 and isinstance(info["fd"], int), "add-fd reply %s" % info)
                os.close(fd)
            src.set_caps(dict({"mapped-ram": True, "multifd": True}, **(caps or {})))
            src.set_params({"multifd-channels": 2, "direct-io": direct})
            src.cmd("migrate", uri="file:/dev/fdset/7,offset=%d" % OFFSET)
            info = src.wait_status("completed", timeout=60)
            h.check((info.get("x-file") or {}).get("direct") is direct, "x-file %s" % info.get("x-file"))
            sets = mon.cmd("query-fdsets")
            h.check([s["fdset-id"] for s in sets] == [7] and len(sets[0]["fds"]) == len(fds),
                    "the fd set after the save: %s" % sets)
            check_unlocked(path, "after the save, its fd set still open")
            mon.cmd("remove-fd", {"fdset-id": 7})
            h.check(mon.cmd("query-fdsets") == [], "fd sets after remove-fd")
        finally:
            mon.close()
    with open(path, "rb") as f:
        h.check(f.read(OFFSET) == b"L" * OFFSET, "the bytes before the offset changed")


def restore(path, direct, lazy=False):
    fds = [os.open(path, os.O_RDONLY)]
    if direct:
        fds.append(os.open(path, os.O_RDONLY | os.O_DIRECT))
    with h.Migd("dst", guest("random" if lazy else "seq") + ["--incoming", "defer"]) as dst:
        mon = Monitor(dst.qmp_path, "dst")
        try:
            for i, fd in enumerate(fds):
                # the first without an id makes a new set, the lowest free id (0)
                info = add_fd(mon, fd, 0 if i else None)
                h.check(info["fdset-id"] == 0, "add-fd: %s" % info)
                os.close(fd)
            caps = {"mapped-ram": True, "multifd": True}
            if lazy:
                caps["postcopy-ram"] = True
            dst.set_caps(caps)
            dst.set_params({"multifd-channels": 2, "direct-io": direct})
            dst.cmd("migrate-incoming", uri="file:/dev/fdset/0,offset=%d" % OFFSET)
            info = dst.wait_status("completed", timeout=60)
            h.check((info.get("x-file") or {}).get("direct") is direct, "x-file %s" % info.get("x-file"))
            check_restored(dst, SIZE)
            check_unlocked(path, "after the load, its fd set still open")
        finally:
            mon.close()


def case_fdset_commands():
    """QEMU's replies and errors; fd sets are the server's, seen by every client."""
    with workdir() as d, h.Migd("src", guest("idle")) as src:
        a, b = Monitor(src.qmp_path, "a"), Monitor(src.qmp_path, "b")
        path = os.path.join(d, "f")
        try:
            r = a.execute("add-fd", {"fdset-id": 1})
            h.check(error_of(r) == "No file descriptor supplied via SCM_RIGHTS", "add-fd without fd: %s" % r)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            r = a.execute("add-fd", {"fdset-id": -1}, fds=[fd])
            h.check(error_of(r) == "Parameter 'fdset-id' expects a non-negative value", "negative id: %s" % r)
            r = a.execute("add-fd", {"fdset-id": "x"}, fds=[fd])
            h.check("expected: integer" in error_of(r), "string id: %s" % r)
            r = a.execute("add-fd", {"fdset-id": 1, "bogus": 1}, fds=[fd])
            h.check(error_of(r) == "Parameter 'bogus' is unexpected", "bogus member: %s" % r)
            first = add_fd(a, fd, 3, "disk")
            second = add_fd(b, fd)              # the lowest free id
            third = add_fd(b, fd, 3)
            os.close(fd)
            h.check(first["fdset-id"] == 3 and second["fdset-id"] == 0 and third["fdset-id"] == 3,
                    "ids: %s %s %s" % (first, second, third))
            sets = a.cmd("query-fdsets")
            # QEMU's order: sets by falling id, a set's descriptors as added
            h.check(sets == [{"fdset-id": 3, "fds": [{"fd": first["fd"], "opaque": "disk"}, {"fd": third["fd"]}]},
                             {"fdset-id": 0, "fds": [{"fd": second["fd"]}]}],
                    "query-fdsets: %s" % sets)
            r = a.execute("remove-fd", {"fdset-id": 3, "fd": 99999})
            h.check(error_of(r) == "File descriptor named 'fdset-id:3, fd:99999' not found", "remove unknown fd: %s" % r)
            r = a.execute("remove-fd", {"fdset-id": 5})
            h.check(error_of(r) == "File descriptor named 'fdset-id:5' not found", "remove unknown set: %s" % r)
            b.cmd("remove-fd", {"fdset-id": 3, "fd": first["fd"]})
            a.cmd("remove-fd", {"fdset-id": 0})
            h.check(a.cmd("query-fdsets") == [{"fdset-id": 3, "fds": [{"fd": third["fd"]}]}],
                    "after remove-fd: %s" % a.cmd("query-fdsets"))
            a.cmd("remove-fd", {"fdset-id": 3})
            # the cap: 64 descriptors in all
            fd = os.open(path, os.O_RDONLY)
            for i in range(64):
                add_fd(a, fd, 10)
            r = a.execute("add-fd", {"fdset-id": 10}, fds=[fd])
            h.check("at most 64" in error_of(r), "the 65th descriptor: %s" % r)
            os.close(fd)
            a.cmd("remove-fd", {"fdset-id": 10})
            h.check(a.cmd("query-fdsets") == [], "sets left: %s" % a.cmd("query-fdsets"))
        finally:
            a.close()
            b.close()


def case_fdset_save_restore():
    """virsh save --image-format sparse, then virsh restore: buffered I/O."""
    with workdir() as d:
        path = os.path.join(d, "guest.sav")
        save(path, direct=False)
        restore(path, direct=False)


def case_fdset_save_restore_direct():
    """The same with direct-io: each side passes a second descriptor opened O_DIRECT."""
    with workdir() as d:
        require_direct(d)
        path = os.path.join(d, "guest.sav")
        save(path, direct=True)
        restore(path, direct=True)


def case_fdset_lazy_restore():
    """postcopy-ram on migrate-incoming from an fd set: its lock let go once all is in."""
    with workdir() as d:
        path = os.path.join(d, "guest.sav")
        save(path, direct=False)
        restore(path, direct=False, lazy=True)


def unlocked(path):
    try:
        check_unlocked(path, "")
        return True
    except AssertionError:
        return False


def case_fdset_lazy_pause_recover():
    """A lazy restore from an fd set, paused by migrate-pause, lets go of the file's lock
    although the set still holds its descriptor; migrate-recover from another set (the
    file passed again, as libvirt would) is refused without the offset (no header
    there) and accepted with it; the restore completes, every unit checked."""
    with workdir() as d:
        path = os.path.join(d, "guest.sav")
        with open(path, "wb") as f:
            f.write(b"L" * OFFSET)
        # 128 MiB: the prefetch, paced by the random vCPU, lasts long enough to pause it
        with h.Migd("src", h.guest_args("128M", workload="idle,zero=0.25")) as src:
            src.set_caps({"mapped-ram": True})
            src.cmd("migrate", uri="file:%s,offset=%d" % (path, OFFSET))
            src.wait_status("completed", timeout=60)
        with h.Migd("dst", h.guest_args("128M", workload="random") + ["--incoming", "defer"]) as dst:
            mon = Monitor(dst.qmp_path, "dst")
            try:
                for fdset in (0, 1):
                    fd = os.open(path, os.O_RDONLY)
                    add_fd(mon, fd, fdset)
                    os.close(fd)
                dst.set_caps({"mapped-ram": True, "multifd": True, "postcopy-ram": True})
                dst.set_params({"multifd-channels": 2})
                dst.cmd("migrate-incoming", uri="file:/dev/fdset/0,offset=%d" % OFFSET)
                info = dst.wait_status(["postcopy-active", "completed"], timeout=30, interval=0.01)
                h.check(info["status"] == "postcopy-active", "the restore ended before the pause: %s" % info)
                dst.cmd("migrate-pause")
                h.wait_until(lambda: unlocked(path), 10, "the paused restore to let go of the file")
                try:
                    dst.cmd("migrate-recover", uri="file:/dev/fdset/1")
                    raise h.HarnessError("migrate-recover without the offset was accepted")
                except h.QmpError as e:
                    h.check("bad magic" in str(e), "refusal without the offset: %s" % e)
                h.check(dst.query_migrate().get("status") == "postcopy-paused", "after a refused migrate-recover")
                dst.cmd("migrate-recover", uri="file:/dev/fdset/1,offset=%d" % OFFSET)
                dst.wait_status("completed", timeout=60)
                check_restored(dst, 128 * h.MiB)
                check_unlocked(path, "after the recovered load, its fd sets still open")
            finally:
                mon.close()


def case_fdset_streamed():
    """A streamed file (no mapped-ram) saved to and loaded from fd sets; each side lets go
    of the file's lock once it has written or read the stream's end."""
    with workdir() as d:
        path = os.path.join(d, "guest.stream")
        with h.Migd("src", guest("seq")) as src:
            mon = Monitor(src.qmp_path, "src")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            add_fd(mon, fd, 2)
            os.close(fd)
            src.cmd("migrate", uri="file:/dev/fdset/2")
            src.wait_status("completed", timeout=60)
            check_unlocked(path, "after a streamed save, its fd set still open")
            mon.close()
        with h.Migd("dst", guest("seq") + ["--incoming", "defer"]) as dst:
            mon = Monitor(dst.qmp_path, "dst")
            fd = os.open(path, os.O_RDONLY)
            add_fd(mon, fd, 2)
            os.close(fd)
            dst.cmd("migrate-incoming", uri="file:/dev/fdset/2")
            dst.wait_status("completed", timeout=60)
            check_restored(dst, SIZE)
            check_unlocked(path, "after a streamed load, its fd set still open")
            mon.close()


def refused(m, mon, uri, want):
    m.cmd("migrate", uri=uri)
    info = h.wait_until(lambda: (lambda i: i if i.get("status") == "failed" else None)(m.query_migrate()),
                        30, "the save to %s to fail" % uri)
    h.check(want in info.get("error-desc", ""), "%s: error %r, want %r" % (uri, info.get("error-desc"), want))


def case_fdset_refusals():
    """An unknown (or emptied) set, a set with only the wrong access mode, direct-io
    without an O_DIRECT descriptor: each refused naming the set and what was wanted."""
    with workdir() as d, h.Migd("src", guest("seq")) as src:
        # no O_DIRECT open is made: the set's descriptors are matched first
        path = os.path.join(d, "guest.sav")
        mon = Monitor(src.qmp_path, "src")
        try:
            src.set_caps({"mapped-ram": True})
            refused(src, mon, "file:/dev/fdset/4", "Failed to find fdset /dev/fdset/4")
            refused(src, mon, "file:/dev/fdset/x", "Could not parse fdset /dev/fdset/x")
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
            add_fd(mon, fd, 4)
            os.close(fd)
            refused(src, mon, "file:/dev/fdset/4", "/dev/fdset/4: it has none opened O_WRONLY without O_DIRECT")
            fd = os.open(path, os.O_WRONLY)
            add_fd(mon, fd, 4)
            os.close(fd)
            src.set_params({"direct-io": True})
            refused(src, mon, "file:/dev/fdset/4", "/dev/fdset/4: it has none opened O_WRONLY with O_DIRECT")
            check_unlocked(path, "after a refused direct-io save")
            mon.cmd("remove-fd", {"fdset-id": 4})
            refused(src, mon, "file:/dev/fdset/4", "Failed to find fdset /dev/fdset/4")
            # the streamed file (no mapped-ram) opens through the same fd sets
            src.set_caps({"mapped-ram": False})
            src.set_params({"direct-io": False})
            refused(src, mon, "file:/dev/fdset/4", "Failed to find fdset /dev/fdset/4")
        finally:
            mon.close()


if __name__ == "__main__":
    h.main([case_fdset_commands, case_fdset_save_restore, case_fdset_save_restore_direct,
            case_fdset_lazy_restore, case_fdset_lazy_pause_recover, case_fdset_streamed, case_fdset_refusals])
