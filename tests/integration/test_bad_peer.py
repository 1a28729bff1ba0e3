#!/usr/bin/env python3
"""Bad peers on a listening destination's migration port. Each peer connects raw and:
(i) sends a hello with a wrong magic, (ii) a "MIGC" hello with version 99, (iii) a hello
with an unknown channel type, (iv) 4 KiB of random garbage, (v) connects and closes at
once. Where the protocol gets that far the peer must get a "MIGA" reply with a non-zero
status; always the destination must stay alive, answer QMP and keep listening, and a
real migration into it afterwards must complete."""
import os
import random
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

SIZE = 64 * h.MiB


def connect(uri):
    s = socket.create_connection(h.tcp_port(uri), timeout=h.scaled(5))
    s.settimeout(h.scaled(5))
    return s


def expect_refusal(uri, payload, what, reply_required=True):
    with connect(uri) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass        # the destination may hang up on garbage while we still send
        reply = h.read_hello_reply(s)
    if reply is None:
        h.check(not reply_required, "%s: destination closed without a MIGA reply" % what)
        print("%s: closed without reply" % what)
        return
    magic, status, msg = reply
    h.check(magic == h.HELLO_REPLY, "%s: reply magic %#x, not MIGA" % (what, magic))
    h.check(status != 0, "%s: destination accepted it (status 0, %r)" % (what, msg))
    print("%s: refused with status %d (%s)" % (what, status, msg))


def check_still_serving(dst, uri, what):
    h.check(dst.alive(), "destination died after %s" % what)
    with dst.connect() as q:
        st = q.cmd("query-status")
    h.check(st.get("status") == "inmigrate", "destination status %r after %s" % (st.get("status"), what))
    h.check(dst.listen_uri() == uri, "destination stopped listening on %s after %s" % (uri, what))


def case_bad_peers_then_migrate():
    rng = random.Random(1234)
    garbage = bytes(rng.getrandbits(8) for _ in range(4096))
    if garbage[:4] == b"MIGC":
        garbage = b"X" + garbage[1:]
    peers = [
        ("wrong magic", h.hello(magic=0x12345678), True),
        ("version 99", h.hello(version=99), True),
        ("channel type 9", h.hello(chan_type=9), True),
        ("4 KiB of garbage", garbage, False),
        ("connect and close", None, False),
    ]
    with h.Migd("dst", h.guest_args("64M", incoming="tcp:127.0.0.1:0")) as dst:
        uri = dst.listen_uri()
        for what, payload, reply_required in peers:
            if payload is None:
                connect(uri).close()
            else:
                expect_refusal(uri, payload, what, reply_required)
            check_still_serving(dst, uri, what)

        with h.Migd("src", h.guest_args("64M", workload="seq")) as src:
            for m in (src, dst):
                m.set_caps({"events": True})
            src.set_params(h.FAST_PARAMS)
            src.cmd("migrate", uri=uri)
            info = src.wait_status("completed", timeout=120)
            h.check_migrated(src, dst, info, size=SIZE)


if __name__ == "__main__":
    h.main([case_bad_peers_then_migrate])
