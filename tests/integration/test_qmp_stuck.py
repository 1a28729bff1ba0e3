#!/usr/bin/env python3
"""A QMP that answers while the guest is stuck.

- stuck: a postcopy migration whose source is SIGSTOPped once the destination is in
  postcopy-active, so the destination's vCPUs wait for pages that do not come. There
  query-status, query-migrate, stop and cont each answer within a bound (stop does not
  wait for a vCPU inside a fault; the guest reads as stopped, then running again); a
  client that floods in-band requests without reading its replies, and leaves one
  half-sent, holds back nobody else; query-yank lists the migration, out-of-band too;
  quit makes the destination exit within its deadline, vCPUs stuck and all, and SIGTERM
  does the same for the source, woken in postcopy with its peer gone.
- oob: QEMU's out-of-band rules on migd: exec-oob without the "oob" capability is an
  unexpected member (even for yank), with it a command that does not allow OOB is
  refused by name; yank's arguments are checked as QEMU checks them and instances that
  do not exist are DeviceNotFound; exec-oob yank of the migration instance cuts a
  precopy migration's channels: the source ends "failed" with its guest running and
  query-yank is empty again."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

# A reply the server owes at once, given on a loaded 2-CPU machine: the behaviour under
# test is "answers at all" (before, stop never answered), so the bound is generous.
BOUND = 5.0
# migd's own exit deadline is 4 s after quit/SIGTERM; the process must be gone well
# within 5 s, plus the time a loaded machine takes to reap it.
EXIT_BOUND = 5.0 + 3.0


def timed(q, name, args=None):
    """Runs a command on q; fails unless its reply came within BOUND. Returns the reply."""
    t0 = time.monotonic()
    reply = q.execute(name, args, timeout=BOUND + 5)
    secs = time.monotonic() - t0
    h.check(secs <= h.scaled(BOUND), "%s took %.2f s (bound %.1f s)" % (name, secs, h.scaled(BOUND)))
    print("%-14s %.3f s" % (name, secs))
    if "error" in reply:
        raise h.QmpError(reply["error"].get("class"), reply["error"].get("desc"))
    return reply["return"]


def oob(q, name, args=None, cid="oob"):
    msg = {"exec-oob": name, "id": cid}
    if args is not None:
        msg["arguments"] = args
    q.send_raw(json.dumps(msg).encode() + b"\r\n")
    return q.wait_reply(cid, timeout=BOUND + 5)


def expect_error(reply, cls, desc):
    h.check("error" in reply, "want error %s, got %r" % (cls, reply))
    e = reply["error"]
    h.check(e.get("class") == cls and (desc is None or e.get("desc") == desc),
            "want %s %r, got %r" % (cls, desc, e))


def oob_client(m):
    q = m.connect(negotiate=False)
    q.cmd("qmp_capabilities", enable=["oob"])
    return q


def wait_exit(m, what):
    t0 = time.monotonic()
    try:
        rc = m.proc.wait(timeout=h.scaled(EXIT_BOUND))
    except Exception:
        raise h.HarnessError("%s did not exit within %.1f s\n%s" % (what, h.scaled(EXIT_BOUND), m.log_tail()))
    print("%s: exited with %s after %.2f s" % (what, rc, time.monotonic() - t0))
    return rc


def vcpus_in_fault(m):
    """How many vcpu threads wait in a userfaultfd fault, from their kernel stacks; None
    when the stacks cannot be read (not root)."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % m.pid()):
        try:
            with open("/proc/%d/task/%s/comm" % (m.pid(), tid)) as f:
                if not f.read().startswith("vcpu/"):
                    continue
            with open("/proc/%d/task/%s/stack" % (m.pid(), tid)) as f:
                n += "handle_userfault" in f.read()
        except FileNotFoundError:
            pass        # the thread ended meanwhile
        except PermissionError:
            return None
    return n


def wait_vcpus_stuck(m):
    """Waits until a vCPU of m waits for a page, so the commands below meet a stuck guest."""
    if vcpus_in_fault(m) is None:
        print("kernel stacks not readable: cannot confirm a vCPU waits for a page")
        return
    n = h.wait_until(lambda: vcpus_in_fault(m), 10, "a destination vCPU to wait for a page")
    print("destination vCPUs waiting for a page: %d" % n)


def case_stuck():
    args = dict(workload="seq", vcpus=2)
    with h.Migd("src", h.guest_args("64M", **args)) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0", **args)) as dst:
        for m in (src, dst):
            m.set_caps({"postcopy-ram": True, "events": True})
        # the source rewrites its memory faster than precopy sends it, and postcopy is
        # slow: most pages are still missing on the destination at the switchover
        src.set_params({"max-bandwidth": 32 * h.MiB, "max-postcopy-bandwidth": 2 * h.MiB,
                        "downtime-limit": 1})
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("active", timeout=30)
        time.sleep(0.3)
        src.cmd("migrate-start-postcopy")
        dst.wait_status("postcopy-active", timeout=60, interval=0.01)
        os.kill(src.pid(), signal.SIGSTOP)
        try:
            wait_vcpus_stuck(dst)
            q = dst.qmp
            h.check(timed(q, "query-status")["running"], "destination guest not running in postcopy")
            st = timed(q, "query-migrate")["status"]
            h.check(st in ("postcopy-active", "postcopy-paused"), "destination status %s" % st)

            # a client that queues requests faster than it reads, then half a request
            flood = dst.connect()
            flood.send_raw(b"".join(json.dumps({"execute": "query-migrate", "id": i}).encode()
                                    for i in range(64)) + b'{"execute": "query-st')

            timed(q, "stop")
            h.check(not timed(q, "query-status")["running"], "stop: the destination guest still runs")
            timed(q, "cont")
            h.check(timed(q, "query-status")["running"], "cont: the destination guest does not run")
            timed(q, "query-migrate-parameters")
            # migd's check reads every unit: refused at once, not stuck on a missing page
            t0 = time.monotonic()
            r = q.execute("x-guest-check", timeout=BOUND + 5)
            h.check("not while an incoming migration" in r.get("error", {}).get("desc", ""),
                    "x-guest-check on a destination in postcopy: %r" % r)
            h.check(time.monotonic() - t0 <= h.scaled(BOUND), "x-guest-check's refusal too slow")

            with oob_client(dst) as o:
                t0 = time.monotonic()
                reply = oob(o, "query-yank")
                h.check(time.monotonic() - t0 <= h.scaled(BOUND), "exec-oob query-yank too slow")
                h.check(reply.get("return") == [{"type": "migration"}], "query-yank: %r" % reply)
            # the flooding client's requests all ran, in order
            for i in range(64):
                r = flood.wait_reply(i, timeout=BOUND + 5)
                h.check("return" in r, "flood request %d: %r" % (i, r))
            flood.send_raw(b'atus", "id": "last"}')
            h.check("return" in flood.wait_reply("last", timeout=BOUND + 5), "the half-sent request")
            flood.close()

            wait_vcpus_stuck(dst)
            dst.exit_ok = True
            t0 = time.monotonic()
            q.execute("quit", timeout=BOUND + 5)
            h.check(time.monotonic() - t0 <= h.scaled(BOUND), "quit did not answer in time")
            wait_exit(dst, "destination after quit, vCPUs stuck")
        finally:
            os.kill(src.pid(), signal.SIGCONT)
        src.exit_ok = True
        src.qmp.close()
        os.kill(src.pid(), signal.SIGTERM)
        wait_exit(src, "source after SIGTERM, peer gone in postcopy")


def case_oob():
    with h.Migd("src", h.guest_args("64M", workload="seq")) as src, \
         h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        q = src.qmp
        # without the capability, as QEMU: an unexpected member, whatever the command
        for name in ("yank", "query-status"):
            expect_error(oob(q, name, cid=name), "GenericError", "QMP input member 'exec-oob' is unexpected")
        o = oob_client(src)
        expect_error(oob(o, "query-status"), "GenericError", "The command query-status does not support OOB")
        expect_error(oob(o, "no-such-command"), "CommandNotFound", "The command no-such-command has not been found")
        h.check(oob(o, "query-yank").get("return") == [], "query-yank before any migration")
        for args, cls, desc in [
            ({}, "GenericError", "Parameter 'instances' is missing"),
            ({"instances": {}}, "GenericError", "Invalid parameter type for 'instances', expected: array"),
            ({"instances": [{}]}, "GenericError", "Parameter 'instances[0].type' is missing"),
            ({"instances": [{"type": "disk"}]}, "GenericError",
             "Parameter 'instances[0].type' does not accept value 'disk'"),
            ({"instances": [{"type": "chardev"}]}, "GenericError", "Parameter 'instances[0].id' is missing"),
            ({"instances": [{"type": "migration", "x": 1}]}, "GenericError", "Parameter 'instances[0].x' is unexpected"),
            ({"instances": [{"type": "chardev", "id": "serial0"}]}, "DeviceNotFound", "Instance not found"),
            ({"instances": [{"type": "migration"}]}, "DeviceNotFound", "Instance not found"),
        ]:
            expect_error(oob(o, "yank", args), cls, desc)
        h.check("return" in oob(o, "yank", {"instances": []}), "yank of no instance")

        # a precopy that cannot finish soon: the channels stay open until yanked
        src.set_caps({"events": True})
        src.set_params({"max-bandwidth": 8 * h.MiB})
        src.cmd("migrate", uri=dst.listen_uri())
        src.wait_status("active", timeout=30)
        h.wait_until(lambda: oob(o, "query-yank").get("return") == [{"type": "migration"}], 10,
                     "query-yank to list the migration")
        t0 = time.monotonic()
        r = oob(o, "yank", {"instances": [{"type": "migration"}]}, cid="y")
        h.check("return" in r, "yank: %r" % r)
        print("exec-oob yank answered in %.3f s" % (time.monotonic() - t0))
        info = src.wait_status("failed", timeout=30)
        print("source after yank: %s (%s)" % (info["status"], info.get("error-desc")))
        h.check(src.query_status()["running"], "the source guest stopped running after yank")
        h.wait_until(lambda: oob(o, "query-yank").get("return") == [], 10,
                     "query-yank to be empty after the migration ended")
        o.close()
        dst.expect_exit()


if __name__ == "__main__":
    h.main([case_stuck, case_oob])
