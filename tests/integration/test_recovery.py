#!/usr/bin/env python3
"""Postcopy recovery, QEMU's way: a lost channel pauses both sides, never fails them.

- pause: migrate-pause on the source during postcopy-active -> both sides
  postcopy-paused with an error-desc; the destination's vCPUs wait on their missing
  pages (the guest keeps running, no unit read wrong, status stays paused);
  migrate_cancel, a second migrate and `cont` on the source are refused; migrate-recover on the destination
  and migrate resume:true on the source -> postcopy-recover-setup, postcopy-recover,
  postcopy-active (events on both sides), then completed with integrity intact.
  A RESUME hello of another session, or while no migrate-recover listens, is refused.
  A resume whose connect is refused pauses the source again at once, its events
  postcopy-recover-setup then postcopy-paused, in that order.
- cut: the link cut by a proxy (multifd and preempt channels through it too) -> both
  paused -> recovery through a new address -> completed, integrity intact.
- double: a recovery that fails in postcopy-recover on either side pauses again, and
  the next recovery completes. The source's peer answers its hello, reads PC_RECOVER
  and then says nothing: the source pauses again by itself within x-channel-timeout
  (2000 ms here) * 2 + 3 s, as every wait on a peer; the destination's peer reads its
  bitmaps and then says nothing: the same there.
- one_lane: one multifd channel cut pauses both sides too; a resume whose main channel
  gets no answer then pauses the source again naming it (the multifd and preempt
  channels, which connect beside it, say nothing until it is answered and close without
  a byte when it fails); a resume whose main channel is answered and whose other
  channels are then refused pauses the source again at once, naming them (it reads the
  answer while they say hello); a destination whose resumed main channel closes after
  PC_RESUME while it waits for the other channels pauses again at once, naming it; the
  next recovery re-opens every channel.
- quit: quit ends a paused source and a paused destination.
- hugetlb: a 2 MiB hugetlb guest with preempt and break-huge (half-sent huge pages in
  flight when the link goes) pauses and recovers with integrity intact."""
import contextlib
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402
from test_postcopy import expect_refusal  # noqa: E402

FOREIGN_SESSION = 4
NOT_EXPECTED = 7
HELLO_F_RESUME = 1
F_PC_RECOVER, F_PC_RESUME, F_RP_RECV_BITMAP, F_RP_RECV_END = 12, 13, 0x4a, 0x4b


def start_postcopy(backend="anon", size="128M", preempt=False, multifd=0, proxied=False, dst_workload="random",
                   timeout_ms=None):
    """Source and destination in postcopy-active, the push slow (max-postcopy-bandwidth)
    so that most pages are still missing; proxied: every channel through a Proxy;
    timeout_ms: x-channel-timeout on both sides. Returns the two Migd (to be entered)
    and the proxy (or None)."""
    if backend == "hugetlb":
        h.require_hugepages(2 * h.parse_size(size) // (2 * h.MiB))
    src = h.Migd("src", h.guest_args(size, backend=backend, workload="seq", vcpus=2))
    dst = h.Migd("dst", h.guest_args(size, backend=backend, workload=dst_workload, vcpus=2,
                                     incoming="tcp:127.0.0.1:0"))
    try:
        if timeout_ms:
            for m in (src, dst):
                m.set_params({"x-channel-timeout": timeout_ms})
        return _start_postcopy(src, dst, preempt, multifd, proxied)
    except BaseException:
        src.cleanup()
        dst.cleanup()
        raise


def _start_postcopy(src, dst, preempt, multifd, proxied):
    caps = {"postcopy-ram": True, "events": True}
    if preempt:
        caps["postcopy-preempt"] = True
    if multifd:
        caps["multifd"] = True
    for m in (src, dst):
        m.set_caps(caps)
        if multifd:
            m.set_params({"multifd-channels": multifd})
    src.set_params({"max-bandwidth": 64 * h.MiB, "downtime-limit": 1, "x-postcopy-after-passes": 1,
                    "max-postcopy-bandwidth": 16 * h.MiB})
    if preempt:
        src.set_params({"x-postcopy-preempt-break-huge": True})
    proxy = h.Proxy(dst.listen_uri()) if proxied else None
    src.cmd("migrate", uri=proxy.uri if proxy else dst.listen_uri())
    src.wait_status("postcopy-active", timeout=60)
    dst.wait_status("postcopy-active", timeout=30)
    return src, dst, proxy


def check_paused(src, dst, paused_by=None):
    """Both sides paused with a reason (paused_by's naming migrate-pause); the
    destination's guest still runs, its vCPUs on missing pages waiting, and nothing
    read wrong."""
    for m in (src, dst):
        info = m.wait_status("postcopy-paused", timeout=30)
        why = info.get("error-desc", "")
        h.check(why, "%s: postcopy-paused without an error-desc" % m.name)
        h.check(m is not paused_by or "migrate-pause" in why, "%s's error-desc %r" % (m.name, why))
        print("%s paused: %s" % (m.name, why))
    h.check(dst.query_status()["status"] == "running", "the destination's guest stopped")
    h.check(src.query_status()["running"] is False, "the source's guest runs again")
    time.sleep(0.5)     # vCPUs touch missing pages meanwhile
    for m in (src, dst):
        h.check(m.query_migrate()["status"] == "postcopy-paused", "%s left postcopy-paused by itself" % m.name)
    integ = dst.query_migrate().get("x-integrity") or {}
    h.check(integ.get("failed", 0) == 0, "a unit read wrong while paused: %s" % integ)


def recover(src, dst, expect_src_events=True, before_resume=None, listen="tcp:127.0.0.1:0"):
    """migrate-recover on a new address (listen), migrate resume:true; both back in
    postcopy-active (the statuses in between announced), then completed.
    before_resume(uri) runs against the new listener before the source resumes."""
    for m in (src, dst):
        m.qmp.take_events("MIGRATION")
    dst.cmd("migrate-recover", uri=listen)
    h.check(dst.query_migrate()["status"] == "postcopy-recover-setup",
            "destination after migrate-recover: %s" % dst.query_migrate()["status"])
    uri = dst.listen_uri()
    if before_resume:
        before_resume(uri)
    src.cmd("migrate", uri=uri, resume=True)
    src.set_params({"max-postcopy-bandwidth": 0})
    info = src.wait_status("completed", timeout=90)
    dst.wait_status("completed", timeout=30)
    for m in (src, dst):
        check_recovery_events(m.name, [e["data"]["status"] for e in m.qmp.take_events("MIGRATION")])
    return info


def check_recovery_events(name, seen):
    """A recovery's MIGRATION statuses, in order, among those a side announced."""
    want = ["postcopy-recover-setup", "postcopy-recover", "postcopy-active"]
    pos = 0
    for st in seen:
        if pos < len(want) and st == want[pos]:
            pos += 1
    h.check(pos == len(want), "%s's MIGRATION events %r lack %r in order" % (name, seen, want))


def case_pause():
    src, dst, proxy = start_postcopy(preempt=True)
    with src, dst:
        first = dst.listen_uri()
        expect_refusal(lambda: dst.cmd("migrate-recover", uri="tcp:127.0.0.1:0"), ["postcopy is paused"],
                       "migrate-recover while postcopy-active")
        expect_refusal(lambda: src.cmd("migrate", uri="tcp:127.0.0.1:1", resume=True), ["no paused migration"],
                       "resume while postcopy-active")
        src.cmd("migrate-pause")
        check_paused(src, dst, paused_by=src)
        expect_refusal(lambda: src.cmd("migrate_cancel"), ["Postcopy"], "migrate_cancel while paused")
        expect_refusal(lambda: src.cmd("migrate", uri="tcp:127.0.0.1:1"), ["in progress"],
                       "a new migrate while paused")
        expect_refusal(lambda: src.cmd("migrate-pause"), ["postcopy-active"], "migrate-pause while paused")
        # the destination ran the guest (RP_RUNNING): the source must not
        expect_refusal(lambda: src.cmd("cont"), ["ran on the destination"], "cont on the paused source")
        resume_refused(src)
        # the listener closed once every channel was in (as QEMU's does): until
        # migrate-recover nothing listens, and then a resume of another session is refused
        h.expect_listener_closed(first)
        info = recover(src, dst, before_resume=lambda uri: h.expect_hello_refused(
            uri, h.hello(flags=HELLO_F_RESUME, session=b"\x55" * 16), FOREIGN_SESSION,
            "RESUME hello of another session"))
        h.check_migrated(src, dst, info, size=128 * h.MiB)


def resume_refused(src):
    """A resume whose connect is refused pauses the source again at once. Its
    postcopy-recover-setup event is sent after the migration thread is woken, and
    still comes first."""
    src.qmp.take_events("MIGRATION")
    src.cmd("migrate", uri="tcp:127.0.0.1:1", resume=True)
    deadline = h.Deadline(h.scaled(10))
    seen = []
    while "postcopy-paused" not in seen and not deadline.expired():
        src.qmp.pump(0.05)   # take_events alone reads only what the reply's read brought
        seen += [e["data"]["status"] for e in src.qmp.take_events("MIGRATION")]
    print("refused resume: MIGRATION events %r" % seen)
    h.check(seen == ["postcopy-recover-setup", "postcopy-paused"],
            "a refused resume's MIGRATION events: %r" % seen)
    h.check(src.query_migrate()["status"] == "postcopy-paused", "the source after a refused resume")


def case_cut():
    src, dst, proxy = start_postcopy(preempt=True, multifd=2, proxied=True)
    with src, dst:
        proxy.close()
        print("proxy: every connection cut")
        check_paused(src, dst)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=128 * h.MiB)


def frame(ftype, payload=b""):
    return struct.pack(">IHH", len(payload), ftype, 0) + payload


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise h.HarnessError("peer closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


DOUBLE_TIMEOUT_MS = 2000
DOUBLE_BOUND = h.scaled(DOUBLE_TIMEOUT_MS / 1000 * 2 + 3)


def paused_again(m, since, what):
    """m goes back to postcopy-paused by itself, through postcopy-recover, within
    DOUBLE_BOUND of since; returns its error-desc."""
    info = m.wait_status("postcopy-paused", timeout=DOUBLE_BOUND + 10)
    took = time.monotonic() - since
    why = info.get("error-desc", "")
    print("%s paused again in %.1f s: %s" % (m.name, took, why))
    h.check(took <= DOUBLE_BOUND, "%s: %s took %.1f s to pause again, more than %.1f s"
            % (what, m.name, took, DOUBLE_BOUND))
    h.check(why.startswith("postcopy recovery:"), "%s: %s paused again for another reason: %r" % (what, m.name, why))
    seen = [e["data"]["status"] for e in m.qmp.take_events("MIGRATION")]
    h.check(seen[-2:] == ["postcopy-recover", "postcopy-paused"], "%s: %s's MIGRATION events %r" % (what, m.name, seen))
    return why


@contextlib.contextmanager
def resumed_peer(dst):
    """migrate-recover on a new port, and a hand-made source of dst's session there
    whose RESUME hello was admitted: the connection, closed on leaving."""
    sid = bytes.fromhex(dst.query_migrate()["x-session-id"])
    dst.qmp.take_events("MIGRATION")
    dst.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    with socket.create_connection(h.tcp_port(dst.listen_uri()), timeout=h.scaled(10)) as peer:
        peer.sendall(h.hello(flags=HELLO_F_RESUME, session=sid))
        reply = h.read_hello_reply(peer)
        h.check(reply is not None and reply[1] == 0, "resume hello refused: %r" % (reply,))
        yield peer


def read_bitmaps(peer):
    """The destination's answer to PC_RECOVER, read and checked: a received bitmap per
    RAM block, then RECV_END counting them."""
    blocks = 0
    for _ in range(64):
        ln, ftype, _ = struct.unpack(">IHH", recv_exact(peer, 8))
        body = recv_exact(peer, ln)
        if ftype == F_RP_RECV_END:
            h.check(struct.unpack(">I", body[:4])[0] == blocks, "RECV_END counts %r, %d bitmaps came"
                    % (body[:4], blocks))
            return
        h.check(ftype == F_RP_RECV_BITMAP, "frame type %#x during recovery" % ftype)
        nl = body[4]
        pages = struct.unpack(">Q", body[5 + nl:13 + nl])[0]
        bits = body[13 + nl:]
        h.check(len(bits) == (pages + 7) // 8, "bitmap of %d bytes for %d pages" % (len(bits), pages))
        have = sum(bin(b).count("1") for b in bits)
        # a seq guest may have dirtied all of it in the one precopy pass
        h.check(have < pages, "the destination has all %d pages: not a paused postcopy" % pages)
        print("bitmap of %s: %d of %d pages in place" % (body[5:5 + nl].decode(), have, pages))
        blocks += 1
    h.check(False, "no RECV_END after 64 bitmaps")


def case_double():
    src, dst, proxy = start_postcopy(timeout_ms=DOUBLE_TIMEOUT_MS)
    with src, dst:
        src.cmd("migrate-pause")
        check_paused(src, dst, paused_by=src)

        # the source's recovery stalls in postcopy-recover: its peer answers the hello,
        # takes PC_RECOVER and then says nothing
        src.qmp.take_events("MIGRATION")
        fake = socket.socket()
        fake.bind(("127.0.0.1", 0))
        fake.listen(1)
        src.cmd("migrate", uri="tcp:127.0.0.1:%d" % fake.getsockname()[1], resume=True)
        fake.settimeout(h.scaled(10))
        conn, _ = fake.accept()
        conn.settimeout(h.scaled(10))
        hello = recv_exact(conn, 32)
        h.check(struct.unpack(">I", hello[12:16])[0] & HELLO_F_RESUME, "the source's resume hello lacks RESUME")
        conn.sendall(struct.pack(">IIH", h.HELLO_REPLY, 0, 0))
        h.check(recv_exact(conn, 8) == frame(F_PC_RECOVER), "the source did not open with PC_RECOVER")
        paused_again(src, time.monotonic(), "a silent destination in postcopy-recover")
        conn.close()
        fake.close()

        # the destination's recovery stalls in postcopy-recover: a peer of its session
        # reads the bitmaps and then says nothing
        with resumed_peer(dst) as peer:
            peer.sendall(frame(F_PC_RECOVER))
            read_bitmaps(peer)
            why = paused_again(dst, time.monotonic(), "a silent source in postcopy-recover")
            h.check("PC_RESUME" in why, "the destination's error-desc does not say what it waited for: %r" % why)
        integ = dst.query_migrate().get("x-integrity") or {}
        h.check(integ.get("failed", 0) == 0, "a unit read wrong while paused: %s" % integ)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=128 * h.MiB)


def case_hugetlb_break_huge():
    # 64 huge pages: vCPUs faulting at full speed ask for all of them (over the preempt
    # channel, which the push's pacing does not slow) within moments, and the migration
    # may complete before postcopy-active is seen; slow faulting leaves the push to it
    src, dst, proxy = start_postcopy(backend="hugetlb", size="128M", preempt=True, proxied=True,
                                     dst_workload="random,rate=64K")
    with src, dst:
        # the main channel carries bulk's huge pages in chunks: one is half way
        proxy.cut_channel(h.CHAN_MAIN, 0)
        check_paused(src, dst)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=128 * h.MiB)
        proxy.close()


def case_one_lane():
    """One multifd channel cut, the others and the main channel intact: both sides
    pause all the same (the source's sender fails, the destination's receiver sees its
    peer go), and the recovery re-opens every channel."""
    src, dst, proxy = start_postcopy(preempt=True, multifd=2, proxied=True)
    with src, dst:
        proxy.cut_channel(h.CHAN_MULTIFD, 1)
        check_paused(src, dst)
        h.check("multifd" in src.query_migrate().get("error-desc", "") + dst.query_migrate().get("error-desc", ""),
                "neither side blames the multifd channel: %r / %r"
                % (src.query_migrate().get("error-desc"), dst.query_migrate().get("error-desc")))
        refuse_main(src, 2 + 1)
        lanes_refused(src, 2 + 1)
        lanes_never_come(dst)
        info = recover(src, dst)
        h.check_migrated(src, dst, info, size=128 * h.MiB)
        proxy.close()


def lanes_never_come(dst):
    """A source that sends PC_RECOVER and PC_RESUME together, as mig's does, and then
    closes its main channel, its other channels never coming (it could not open them):
    the destination, which waits for those before its ack, pauses again as soon as the
    main channel closes, naming that, not after x-channel-timeout (15 s here) naming
    the missing channels."""
    with resumed_peer(dst) as peer:
        peer.sendall(frame(F_PC_RECOVER) + frame(F_PC_RESUME))
        read_bitmaps(peer)
        t0 = time.monotonic()
    info = dst.wait_status("postcopy-paused", timeout=h.scaled(15 * 2 + 3))
    why = info.get("error-desc", "")
    print("destination paused again %.2f s after the main channel closed: %s" % (time.monotonic() - t0, why))
    h.check("closed the main channel after PC_RESUME" in why,
            "the destination did not pause for the closed main channel: %r" % why)
    seen = [e["data"]["status"] for e in dst.qmp.take_events("MIGRATION")]
    h.check(seen[-2:] == ["postcopy-recover", "postcopy-paused"], "destination's MIGRATION events %r" % seen)


def fake_listener():
    fake = socket.socket()
    fake.bind(("127.0.0.1", 0))
    fake.listen(16)
    fake.settimeout(0.2)
    return fake


def resume_to(src, fake, conns, nchans):
    """migrate resume:true to the fake listener: its main channel's connection and
    the nchans others', appended to conns as they come (the caller closes them)."""
    src.cmd("migrate", uri="tcp:127.0.0.1:%d" % fake.getsockname()[1], resume=True)
    deadline = h.Deadline(h.scaled(10))
    while len(conns) < nchans + 1 and not deadline.expired():
        try:
            conns.append(fake.accept()[0])
        except socket.timeout:
            pass
    h.check(len(conns) == nchans + 1, "%d of %d connections came" % (len(conns), nchans + 1))


def lanes_refused(src, nchans):
    """A resume whose main channel is answered and whose nchans other channels are
    then refused: the source reads the answer while they say hello, so a refused one
    must end that read (it shuts the main channel). It pauses again at once, naming
    the refused channel, not after x-channel-timeout (15 s here) of a silent main
    channel."""
    fake = fake_listener()
    conns, hellos = [], {}
    before = src.query_migrate().get("error-desc")
    why_refused = b"this test refuses the channel"
    try:
        resume_to(src, fake, conns, nchans)
        for c in conns:
            c.settimeout(0.05)
        # the main channel speaks first; the others wait for its answer
        main = None
        deadline = h.Deadline(h.scaled(10))
        while main is None and not deadline.expired():
            for c in conns:
                with contextlib.suppress(socket.timeout):
                    data = c.recv(h.HELLO_LEN)
                    h.check(data, "a channel closed before its hello")
                    main = c
                    hellos[c] = data
                    break
        h.check(main is not None, "no channel said hello")
        main.settimeout(h.scaled(10))
        hello = hellos[main] + recv_exact(main, h.HELLO_LEN - len(hellos[main]))
        h.check(struct.unpack(h.HELLO_FMT, hello)[2] == h.CHAN_MAIN, "the first to speak is not the main channel")
        main.sendall(struct.pack(">IIH", h.HELLO_REPLY, 0, 0))
        h.check(recv_exact(main, 16) == frame(F_PC_RECOVER) + frame(F_PC_RESUME),
                "the source did not send PC_RECOVER and PC_RESUME")
        t0 = time.monotonic()
        # the main channel stays silent; every other channel is refused
        for c in conns:
            if c is main:
                continue
            c.settimeout(h.scaled(10))
            recv_exact(c, h.HELLO_LEN)
            c.sendall(struct.pack(">IIH", h.HELLO_REPLY, NOT_EXPECTED, len(why_refused)) + why_refused)
        info = h.wait_until(lambda: (lambda i: i if i["status"] == "postcopy-paused" and i.get("error-desc") != before
                                     else None)(src.query_migrate()), 30, "the source paused again")
        took = time.monotonic() - t0
    finally:
        for c in conns:
            c.close()
        fake.close()
    why = info.get("error-desc", "")
    print("source paused again %.2f s after its other channels were refused: %s" % (took, why))
    h.check(took < h.scaled(5), "the source took %.1f s to pause again: its read of the answer did not end" % took)
    h.check(why_refused.decode() in why and "main channel" not in why, "the source's error-desc %r" % why)


def refuse_main(src, nchans):
    """A resume whose main channel gets no answer: the nchans other channels, which
    connect beside it, say nothing until it is answered and close without a byte when
    it fails; the source pauses again, naming the main channel."""
    fake = fake_listener()
    conns = []
    before = src.query_migrate().get("error-desc")
    try:
        resume_to(src, fake, conns, nchans)
        for c in conns:
            c.setblocking(False)
        # the main channel's hello comes; the others' must not, however long we wait
        spoke = {}
        deadline = h.Deadline(h.scaled(10))
        while not spoke and not deadline.expired():
            time.sleep(0.05)
            for c in conns:
                try:
                    data = c.recv(64)
                except BlockingIOError:
                    continue
                spoke[c] = data
        time.sleep(0.3)      # what the others would send, had they not waited
        for c in conns:
            if c not in spoke:
                with contextlib.suppress(BlockingIOError):
                    spoke[c] = c.recv(64)
        h.check(len(spoke) == 1, "%d channels spoke before the main channel's answer" % len(spoke))
        main, hello = next(iter(spoke.items()))
        h.check(len(hello) >= h.HELLO_LEN and struct.unpack(h.HELLO_FMT, hello[:h.HELLO_LEN])[2] == h.CHAN_MAIN,
                "the first to speak is not a main channel's hello: %r" % hello)
        main.close()         # no answer: the main channel's hello fails
        for c in conns:
            if c is main:
                continue
            c.setblocking(True)
            c.settimeout(h.scaled(10))
            h.check(c.recv(64) == b"", "a channel sent bytes after the main channel failed")
    finally:
        for c in conns:
            c.close()
        fake.close()
    # paused again: the status it had before the resume, with a new error-desc
    info = h.wait_until(lambda: (lambda i: i if i["status"] == "postcopy-paused" and i.get("error-desc") != before
                                 else None)(src.query_migrate()), 30, "the source paused again")
    why = info.get("error-desc", "")
    print("source paused again: %s" % why)
    h.check("main channel" in why and "other channels" not in why, "the source's error-desc %r" % why)


def case_quit():
    """quit ends a paused source and a paused destination (their threads wait for a
    resume that will not come): both exit, status 0, within the bound."""
    src, dst, _ = start_postcopy(preempt=True, multifd=2)
    with src, dst:
        dst.cmd("migrate-pause")
        check_paused(src, dst, paused_by=dst)
        for m in (dst, src):
            rc = m.quit()
            h.check(rc == 0, "%s exited with %r after quit while paused" % (m.name, rc))


if __name__ == "__main__":
    h.main([case_pause, case_cut, case_double, case_hugetlb_break_huge, case_quit, case_one_lane])
