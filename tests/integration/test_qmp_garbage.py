#!/usr/bin/env python3
"""QMP garbage: bytes that are not JSON, invalid JSON, JSON that is not a command object,
a 2 MB string, unknown commands, commands before qmp_capabilities, arguments of the
wrong type or range, a client hanging up mid-message, several clients at once. Every
bad input gets an error reply (GenericError or CommandNotFound, as QEMU answers), the
connection keeps working where QEMU's would, and migd keeps serving new connections."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

CLASSES = ("GenericError", "CommandNotFound")


def start():
    return h.Migd("qmp", h.guest_args("64M"))


def assert_serving(m):
    h.check(m.alive(), "migd died")
    with m.connect() as q:
        st = q.cmd("query-status")
    h.check(st.get("status") == "running", "query-status on a new connection: %s" % st)


def sync(q, attempts=3):
    """Proves q still answers commands. A parser may lose the command that follows
    garbage, so it gets a few tries; returns the messages that came before the answer."""
    seen = []
    for i in range(attempts):
        cid = "sync-%d" % i
        q.send_raw(json.dumps({"execute": "query-status", "id": cid}).encode() + b"\r\n")
        deadline = h.Deadline(h.scaled(2))
        while not deadline.expired():
            try:
                msg = q.read_message(max(0.01, deadline.left()))
            except h.HarnessError as e:
                if isinstance(e, h.QmpClosed):
                    raise
                break       # timed out: try again
            if msg.get("id") == cid:
                h.check("return" in msg, "query-status after bad input failed: %s" % msg)
                return seen
            seen.append(msg)
    raise AssertionError("the connection stopped answering after bad input (or migd does not "
                         "echo \"id\"); saw %s" % seen)


def expect_error(q, payload, what, classes=CLASSES, may_close=False):
    """Sends payload raw and requires an error reply of one of classes before the
    connection answers a command again."""
    try:
        q.send_raw(payload)
        msgs = sync(q)
    except (h.QmpClosed, BrokenPipeError, ConnectionResetError):
        h.check(may_close, "%s: migd closed the connection" % what)
        print("%s: connection closed" % what)
        return
    errors = [m["error"] for m in msgs if isinstance(m.get("error"), dict)]
    h.check(errors, "%s: no error reply (got %s)" % (what, msgs))
    for e in errors:
        h.check(e.get("class") in classes and isinstance(e.get("desc"), str),
                "%s: error %s, expected class %s" % (what, e, "/".join(classes)))
    print("%s: %s" % (what, errors[0]))


def expect_cmd_error(q, name, args, what, classes=CLASSES):
    try:
        ret = q.cmd(name, args)
    except h.QmpError as e:
        h.check(e.cls in classes, "%s: error class %s, expected %s" % (what, e.cls, "/".join(classes)))
        print("%s: %s" % (what, e))
        return
    raise AssertionError("%s: accepted, returned %s" % (what, ret))


def case_garbage_bytes():
    with start() as m:
        expect_error(m.qmp, b"\x01\x02\x03 garbage !@#$%^&*() \x7f\xfe\xff\n", "garbage bytes")
        assert_serving(m)


def case_invalid_json():
    with start() as m:
        expect_error(m.qmp, b'{"execute": "query-status",, }\r\n', "invalid JSON")
        expect_error(m.qmp, b'{"execute": query-status}\r\n', "bare word")
        assert_serving(m)


def case_not_an_object():
    with start() as m:
        expect_error(m.qmp, b'["execute", "query-status"]\r\n', "JSON array")
        expect_error(m.qmp, b'42\r\n', "JSON number")
        expect_error(m.qmp, b'{"arguments": {}}\r\n', "object without execute")
        expect_error(m.qmp, b'{"execute": 42}\r\n', "execute not a string")
        expect_error(m.qmp, b'{"execute": "query-status", "arguments": [1]}\r\n', "arguments not an object")
        assert_serving(m)


def case_huge_string():
    with start() as m:
        payload = b'{"execute": "' + b"x" * (2 * h.MiB) + b'"}\r\n'
        # An error (most likely CommandNotFound) or a server that drops an oversized
        # message with the connection: both fine, as long as migd lives on.
        expect_error(m.qmp, payload, "2 MB command name", may_close=True)
        payload = b'{"execute": "query-status", "arguments": {"k": "' + b"y" * (2 * h.MiB) + b'"}}\r\n'
        with m.connect() as q:
            try:
                q.send_raw(payload)
                sync(q)
            except (h.QmpClosed, BrokenPipeError, ConnectionResetError):
                print("2 MB argument: connection closed")
        assert_serving(m)


def case_unknown_command():
    with start() as m:
        expect_cmd_error(m.qmp, "no-such-command", None, "unknown command", ("CommandNotFound",))
        assert_serving(m)


def case_before_capabilities():
    with start() as m:
        with m.connect(negotiate=False) as q:
            expect_cmd_error(q, "query-status", None, "query-status before qmp_capabilities")
            expect_cmd_error(q, "migrate", {"uri": "tcp:127.0.0.1:1"}, "migrate before qmp_capabilities")
            q.cmd("qmp_capabilities")
            h.check(q.cmd("query-status").get("running") is True, "query-status after negotiation")
        h.check(m.query_migrate().get("status") in (None, "none"),
                "a migration started from a connection that had not negotiated: %s" % m.query_migrate())
        assert_serving(m)


def case_bad_argument_types():
    with start() as m:
        q = m.qmp
        expect_cmd_error(q, "migrate", {"uri": 5}, "migrate uri=5", ("GenericError",))
        expect_cmd_error(q, "migrate", {}, "migrate without uri", ("GenericError",))
        expect_cmd_error(q, "migrate-set-capabilities", {"capabilities": "events"},
                         "capabilities not a list", ("GenericError",))
        expect_cmd_error(q, "migrate-set-capabilities",
                         {"capabilities": [{"capability": "events", "state": "yes"}]},
                         "capability state not a bool", ("GenericError",))
        expect_cmd_error(q, "migrate-set-capabilities",
                         {"capabilities": [{"capability": "no-such-cap", "state": True}]},
                         "unknown capability", ("GenericError",))
        expect_cmd_error(q, "migrate-set-parameters", {"max-bandwidth": "fast"},
                         "max-bandwidth a string", ("GenericError",))
        st = m.query_status()
        h.check(st.get("running") is True, "guest not running after refused commands: %s" % st)
        h.check(m.query_migrate().get("status") in (None, "none"),
                "a refused migrate left a migration behind: %s" % m.query_migrate())
        assert_serving(m)


def case_migrate_unknown_scheme():
    # QEMU refuses a URI it cannot parse in the migrate command itself, before any
    # migration state exists.
    with start() as m:
        expect_cmd_error(m.qmp, "migrate", {"uri": "bogus:1234"}, "migrate to an unknown scheme",
                         ("GenericError",))
        expect_cmd_error(m.qmp, "migrate", {"uri": "tcp:127.0.0.1"}, "tcp URI without a port",
                         ("GenericError",))
        h.check(m.query_migrate().get("status") in (None, "none"),
                "a refused migrate left a migration behind: %s" % m.query_migrate())
        assert_serving(m)


def case_negative_downtime_limit():
    with start() as m:
        before = m.cmd("query-migrate-parameters")
        expect_cmd_error(m.qmp, "migrate-set-parameters", {"downtime-limit": -1},
                         "downtime-limit -1", ("GenericError",))
        expect_cmd_error(m.qmp, "migrate-set-parameters", {"max-bandwidth": -1},
                         "max-bandwidth -1", ("GenericError",))
        after = m.cmd("query-migrate-parameters")
        for k in ("downtime-limit", "max-bandwidth"):
            h.check(after.get(k) == before.get(k),
                    "%s changed by a refused set: %r -> %r" % (k, before.get(k), after.get(k)))
        m.set_params({"downtime-limit": 123})
        h.check(m.cmd("query-migrate-parameters").get("downtime-limit") == 123,
                "a valid downtime-limit did not take")
        assert_serving(m)


def case_hang_up_mid_message():
    with start() as m:
        for _ in range(5):
            with m.connect() as q:
                q.send_raw(b'{"execute": "query-st')
        with m.connect(negotiate=False) as q:
            q.send_raw(b'{"execute": "qmp_capa')
        assert_serving(m)


def case_many_clients():
    with start() as m:
        conns = [m.connect() for _ in range(8)]
        try:
            for q in conns:
                h.check(q.cmd("query-status").get("running") is True, "query-status on one of 8 clients")
        finally:
            for q in conns:
                q.close()
        assert_serving(m)


if __name__ == "__main__":
    h.main([case_garbage_bytes, case_invalid_json, case_not_an_object, case_huge_string,
            case_unknown_command, case_before_capabilities, case_bad_argument_types,
            case_migrate_unknown_scheme, case_negative_downtime_limit, case_hang_up_mid_message, case_many_clients])
