#!/usr/bin/env python3
"""TLS on every channel (main with its return path, multifd, preempt), with certificates
made by the openssl command line in a temporary directory.

- x509 with verify-peer on both sides and tls-authz naming the client's DN: precopy over
  4 multifd channels with a device's state on the lane, and postcopy with a preempt
  channel, complete intact; both sides' query-migrate x-tls report TLSv1.3 and list
  every channel.
- PSK credentials (keys.psk, username:hexkey, authz-list) migrate too, the device's
  state serially on the main channel.
- Refusals, each by its cause, with the source guest still running afterwards and the
  destination still listening (a good migration to it follows): a missing file, an
  expired or not-yet-valid certificate at object-add; a wrong CA; a server certificate
  that has expired; a client certificate not yet valid; a hostname mismatch; a client
  identity tls-authz does not allow (hello status 10); a plain source at a TLS
  destination, and a TLS source at a plain one.
- openssl s_client against the migration port sees TLSv1.3 and the server's
  certificate; without a client certificate it is refused.
- kTLS: used and reported where the kernel has the tls ULP, else skipped with a reason.
- Postcopy recovery inside TLS: postcopy with preempt and 2 multifd channels, every
  connection cut by a proxy; at the new address migrate-recover opens, a plain-text
  RESUME hello of the right session is refused in plain text (status 10) and a RESUME
  hello of another session inside TLS is refused (4); then migrate resume:true re-opens
  every channel inside TLS (x-tls lists each once, TLSv1.3) and the migration completes
  intact."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

# RFC 4514 order, most specific first, as QEMU (GnuTLS) prints a DN: the reverse of the
# certificate's own order (O, then CN: the order of the CA's policy section below)
CLIENT_DN = "CN=client,O=mig"
# Encryption on a loaded 2-CPU machine makes the measured bandwidth low, and a device's
# stop-copy state then does not fit QEMU's default 300 ms: these tests are about TLS,
# not convergence, so they allow a longer downtime.
PARAMS = dict(h.FAST_PARAMS, **{"downtime-limit": 3000})


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=h.scaled(30))
    h.check(r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr))


def key(d, name):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", name, cwd=d)


CA_CONF = """[ca]
default_ca = mig
[mig]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
organizationName = optional
commonName = supplied
"""


def make_ca(d, cn):
    os.makedirs(d, exist_ok=True)
    key(d, "ca-key.pem")
    openssl("req", "-x509", "-new", "-key", "ca-key.pem", "-out", "ca-cert.pem", "-subj", "/CN=" + cn,
            "-days", "3", cwd=d)
    with open(os.path.join(d, "ca.conf"), "w") as f:
        f.write(CA_CONF)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")


def issue(ca, out_dir, role, subj, san=None, start=None, end=None):
    """role-cert.pem and role-key.pem in out_dir, signed by the CA in ca. start/end
    (YYMMDDHHMMSSZ) place the validity period anywhere, past or future, which
    `openssl ca` allows and `openssl x509 -days` does not."""
    os.makedirs(out_dir, exist_ok=True)
    key(ca, role + "-key.pem")
    openssl("req", "-new", "-key", role + "-key.pem", "-subj", subj, "-out", role + ".csr", cwd=ca)
    args = ["ca", "-batch", "-config", "ca.conf", "-cert", "ca-cert.pem", "-keyfile", "ca-key.pem",
            "-in", role + ".csr", "-out", role + "-cert.pem", "-notext"]
    if san:
        with open(os.path.join(ca, role + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        args += ["-extfile", role + ".ext"]
    args += ["-startdate", start or "200101000000Z", "-enddate", end or "491231000000Z"] if start or end \
        else ["-days", "3"]
    openssl(*args, cwd=ca)
    for f in (role + "-cert.pem", role + "-key.pem"):
        shutil.copy(os.path.join(ca, f), os.path.join(out_dir, f))
    shutil.copy(os.path.join(ca, "ca-cert.pem"), os.path.join(out_dir, "ca-cert.pem"))


class Certs:
    """Directories of credentials, QEMU's file names in each:
    server, client: the good pair; wrongca: a client trusting another CA;
    expired: a server whose certificate has expired; early: a client whose certificate
    is not valid yet; psk: keys.psk."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="mig-tls-", dir=h._tmp_base())
        ca, ca2 = self.path("ca"), self.path("ca2")
        make_ca(ca, "mig test CA")
        make_ca(ca2, "another CA")
        issue(ca, self.path("server"), "server", "/O=mig/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
        issue(ca, self.path("client"), "client", "/O=mig/CN=client")
        issue(ca2, self.path("wrongca"), "client", "/O=mig/CN=client")
        issue(ca, self.path("expired"), "server", "/O=mig/CN=localhost", san="DNS:localhost,IP:127.0.0.1",
              start="200101000000Z", end="200201000000Z")
        issue(ca, self.path("early"), "client", "/O=mig/CN=client", start="450101000000Z", end="460101000000Z")
        os.makedirs(self.path("psk"))
        with open(os.path.join(self.path("psk"), "keys.psk"), "w") as f:
            f.write("qemu:" + os.urandom(32).hex() + "\n")

    def path(self, name):
        return os.path.join(self.base, name)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


CERTS = None


def certs():
    global CERTS
    if CERTS is None:
        CERTS = Certs()
    return CERTS


def creds(kind, d, endpoint, **extra):
    o = {"qom-type": kind, "id": "tls0", "dir": d, "endpoint": endpoint}
    o.update(extra)
    return o


def tls_dst(c, name="dst", caps=None, params=None, server_dir=None, authz=True, extra=(), args=(), **kw):
    """A destination with server credentials (x509, verify-peer) and, by default,
    tls-authz allowing only the good client's DN. --incoming defer, then its params."""
    args = list(h.guest_args(kw.pop("size", "128M"), **kw)) + list(args) + ["--incoming", "defer"]
    args += ["--object", "tls-creds-x509,id=tls0,dir=%s,endpoint=server,verify-peer=on%s"
             % (server_dir or c.path("server"), "".join("," + e for e in extra))]
    if authz:
        args += ["--object", "authz-simple,id=auth0,identity=" + CLIENT_DN.replace(",", ",,")]
    dst = h.Migd(name, args)
    if caps:
        dst.set_caps(caps)
    p = {"tls-creds": "tls0"}
    if authz:
        p["tls-authz"] = "auth0"
    p.update(params or {})
    dst.set_params(p)
    dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    return dst


def tls_src(c, caps=None, params=None, client_dir=None, args=(), **kw):
    src = h.Migd("src", h.guest_args(kw.pop("size", "128M"), **kw) + list(args))
    if caps:
        src.set_caps(caps)
    src.cmd("object-add", creds("tls-creds-x509", client_dir or c.path("client"), "client"))
    p = dict(PARAMS)
    p["tls-creds"] = "tls0"
    p.update(params or {})
    src.set_params(p)
    return src


def check_x_tls(m, types):
    x = m.query_migrate().get("x-tls")
    h.check(x is not None, "%s: no x-tls in query-migrate" % m.name)
    h.check(x["version"] == "TLSv1.3", "%s: x-tls %r" % (m.name, x))
    h.check(x["mode"] in ("openssl", "ktls"), "%s: x-tls mode %r" % (m.name, x))
    got = sorted((ch["type"], ch["index"]) for ch in x["channels"])
    h.check(got == sorted(types), "%s: channels %r, expected %r" % (m.name, got, sorted(types)))
    h.check(all(ch["version"] == "TLSv1.3" for ch in x["channels"]), "%s: %r" % (m.name, x))
    return x


DEVICE = ["--device", "sim,id=d0,size=8M,precopy=1M"]


def check_device(dst):
    d = {x["id"]: x for x in dst.query_migrate().get("x-devices", [])}.get("d0") or {}
    h.check(d.get("result") == "ok" and d.get("verified-bytes") == d.get("expected-bytes") == 9 * h.MiB,
            "device state over TLS: %r" % d)


def case_precopy_multifd():
    """multifd with the device-state lane: device chunks spliced into TLS senders."""
    c = certs()
    caps = {"multifd": True, "events": True}
    with tls_dst(c, caps=caps, params={"multifd-channels": 4}, workload="seq", size="32M", args=DEVICE) as dst, \
         tls_src(c, caps=caps, params={"multifd-channels": 4}, workload="seq", size="32M", args=DEVICE) as src:
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=32 * h.MiB)
        check_device(dst)
        want = [("main", 0)] + [("multifd", i) for i in range(4)]
        x = check_x_tls(src, want)
        check_x_tls(dst, want)
        print("x-tls: %s %s %s" % (x["mode"], x["version"], x["cipher"]))


def case_postcopy_preempt():
    c = certs()
    caps = {"postcopy-ram": True, "postcopy-preempt": True, "events": True}
    with tls_dst(c, caps=caps, workload="seq", size="32M") as dst, \
         tls_src(c, caps=caps, params={"x-postcopy-after-passes": 1}, workload="seq", size="32M") as src:
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=32 * h.MiB)
        print("postcopy: total %s ms, setup %s ms, downtime %s ms, latency %s"
              % (info.get("total-time"), info.get("setup-time"), info.get("downtime"),
                 dst.query_migrate().get("x-postcopy-latency")))
        h.check(info["ram"].get("postcopy-bytes", 0) > 0, "no postcopy phase: %r" % info["ram"])
        want = [("main", 0), ("preempt", 0)]
        check_x_tls(src, want)
        check_x_tls(dst, want)


def case_psk():
    """PSK, and device state serially on the main channel (lane off)."""
    c = certs()
    caps = {"multifd": True, "events": True, "x-device-state-lane": False}
    args = list(h.guest_args("64M", workload="idle")) + DEVICE + [
        "--incoming", "defer", "--object", "tls-creds-psk,id=tls0,dir=%s,endpoint=server" % c.path("psk"),
        "--object", "authz-list,id=auth0,policy=deny,rules.0.match=qemu,rules.0.policy=allow"]
    with h.Migd("dst", args) as dst, h.Migd("src", h.guest_args("64M", workload="idle") + DEVICE) as src:
        dst.set_caps(caps)
        dst.set_params({"tls-creds": "tls0", "tls-authz": "auth0", "multifd-channels": 2})
        dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        src.set_caps(caps)
        src.cmd("object-add", creds("tls-creds-psk", c.path("psk"), "client", username="qemu"))
        p = dict(PARAMS, **{"tls-creds": "tls0", "multifd-channels": 2})
        src.set_params(p)
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=64 * h.MiB)
        check_device(dst)
        check_x_tls(src, [("main", 0), ("multifd", 0), ("multifd", 1)])


def object_add_fails(m, obj, words):
    try:
        m.cmd("object-add", obj)
    except h.QmpError as e:
        h.check(all(w in e.desc for w in words), "object-add error %r lacks %r" % (e.desc, words))
        print("refused as expected: %s" % e.desc)
        return
    raise AssertionError("object-add %r succeeded" % obj)


def refused(src, dst, uri, src_words, dst_words=(), dst_log_from=0):
    """Migrates src to uri, expects failure naming src_words, the source guest running,
    the destination still listening and its log naming dst_words."""
    src.cmd("migrate", uri=uri)
    info = src.wait_status(("failed", "completed"), timeout=30)
    err = info.get("error-desc") or ""
    h.check(info["status"] == "failed", "migration did not fail: %r" % info)
    h.check(all(w in err for w in src_words), "source error %r lacks %r" % (err, src_words))
    src.wait_running(True)
    if dst is not None:
        h.check(dst.query_migrate().get("status") == "setup", "destination left setup: %r" % dst.query_migrate())
        if dst_words:
            def logged():
                text = dst._read_log(dst.stderr_path)[dst_log_from:]
                return all(w in text for w in dst_words)
            h.wait_until(logged, h.scaled(10), "destination log naming %r" % (dst_words,))
    print("refused as expected: %s" % err)


def set_src_creds(src, d, **extra):
    src.cmd("object-del", id="tls0")
    src.cmd("object-add", creds("tls-creds-x509", d, "client", **extra))


def case_refusals():
    """One destination; the source tries every wrong way in turn, then the right one."""
    c = certs()
    with tls_dst(c, size="64M") as dst, tls_src(c, size="64M", workload="idle") as src:
        uri = dst.listen_uri()
        # files: missing, and certificates out of their validity period (QEMU's sanity check)
        object_add_fails(src, creds("tls-creds-x509", c.path("nothing"), "client"), ["ca-cert.pem", "no such file"])
        object_add_fails(src, creds("tls-creds-x509", c.path("expired"), "server", id="x"), ["has expired"])
        object_add_fails(src, creds("tls-creds-x509", c.path("early"), "client", id="x"), ["not valid yet"])
        # a client that trusts another CA refuses the server's certificate
        set_src_creds(src, c.path("wrongca"))
        # (the server sends its CA with its certificate: the client finds it untrusted)
        refused(src, dst, uri, ["main channel", "TLS handshake failed", "certificate was refused",
                                "self-signed certificate in certificate chain"], ["alert unknown ca"])
        # a client certificate not valid yet: the destination refuses it
        set_src_creds(src, c.path("early"), **{"sanity-check": False})
        mark = len(dst._read_log(dst.stderr_path))
        # (the alert normally reaches the source, but a reset may overtake it: both say so)
        refused(src, dst, uri, ["TLS session"], ["certificate is not yet valid"], mark)
        # hostname mismatch
        set_src_creds(src, c.path("client"))
        src.set_params({"tls-hostname": "other.example"})
        refused(src, dst, uri, ["hostname mismatch"])
        src.set_params({"tls-hostname": ""})
        # an identity tls-authz does not allow: hello status 10 inside TLS
        dst.cmd("object-del", id="auth0")
        dst.cmd("object-add", {"qom-type": "authz-list", "id": "auth0", "policy": "allow",
                               "rules": [{"match": "CN=client,*", "policy": "deny", "format": "glob"}]})
        mark = len(dst._read_log(dst.stderr_path))
        refused(src, dst, uri, ["refused the main channel", "'CN=client,O=mig' is not allowed by tls-authz 'auth0'"],
                ["is not allowed"], mark)
        dst.cmd("object-del", id="auth0")
        dst.cmd("object-add", {"qom-type": "authz-simple", "id": "auth0", "identity": CLIENT_DN})
        # a plain source at a TLS destination
        src.set_params({"tls-creds": ""})
        refused(src, dst, uri, ["refused the main channel", "requires TLS"])
        src.set_params({"tls-creds": "tls0"})
        # after all that, the destination takes the right source
        src.cmd("migrate", uri=uri)
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=64 * h.MiB)


def case_refusals_server_side():
    """A server certificate that has expired; a TLS source at a plain destination."""
    c = certs()
    with tls_dst(c, size="64M", server_dir=c.path("expired"), extra=["sanity-check=off"]) as dst, \
         tls_src(c, size="64M") as src:
        refused(src, dst, dst.listen_uri(), ["certificate was refused", "certificate has expired"],
                ["TLS handshake failed"])
    with h.Migd("dst", list(h.guest_args("64M")) + ["--incoming", "tcp:127.0.0.1:0"]) as dst, \
         tls_src(c, size="64M") as src:
        refused(src, dst, dst.listen_uri(), ["does not speak TLS"])


def case_s_client():
    """openssl s_client at the migration port: TLSv1.3 and the server's certificate with a
    client certificate; refused without one."""
    c = certs()
    with tls_dst(c, size="64M") as dst:
        port = dst.listen_uri().rsplit(":", 1)[1]
        base = ["openssl", "s_client", "-connect", "127.0.0.1:" + port, "-CAfile",
                os.path.join(c.path("client"), "ca-cert.pem"), "-verify_return_error", "-verify_hostname",
                "localhost"]
        good = base + ["-cert", os.path.join(c.path("client"), "client-cert.pem"),
                       "-key", os.path.join(c.path("client"), "client-key.pem")]
        r = subprocess.run(good, input="", capture_output=True, text=True, timeout=h.scaled(20))
        out = r.stdout + r.stderr
        h.check("TLSv1.3" in out, "s_client did not see TLSv1.3:\n" + out)
        h.check("CN = localhost" in out or "CN=localhost" in out, "s_client did not see the server's certificate:\n" + out)
        h.check("Verify return code: 0 (ok)" in out, "s_client could not verify the server:\n" + out)
        mark = len(dst._read_log(dst.stderr_path))
        subprocess.run(base, input="x" * 32, capture_output=True, text=True, timeout=h.scaled(20))

        def logged():
            return "did not return a certificate" in dst._read_log(dst.stderr_path)[mark:]
        h.wait_until(logged, h.scaled(10), "the destination to log the refused s_client")
        h.check(dst.query_migrate().get("status") == "setup", "destination left setup")
        print("s_client: TLSv1.3, server certificate verified; without a client certificate refused")


NOT_AUTHORIZED, FOREIGN_SESSION, HELLO_F_RESUME = 10, 4, 1


def tls_hello_refused(c, uri, hello_bytes, want, what):
    """expect_hello_refused inside a TLS session made with the good client's certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(c.path("client"), "ca-cert.pem"))
    ctx.load_cert_chain(os.path.join(c.path("client"), "client-cert.pem"),
                        os.path.join(c.path("client"), "client-key.pem"))
    with socket.create_connection(h.tcp_port(uri), timeout=h.scaled(5)) as raw, \
         ctx.wrap_socket(raw, server_hostname="localhost") as s:
        h.check(s.version() == "TLSv1.3", "%s: TLS %s" % (what, s.version()))
        s.sendall(hello_bytes)
        reply = h.read_hello_reply(s)
    h.check(reply is not None, "%s: closed without a reply" % what)
    h.check(reply[1] == want, "%s: status %d (%s), expected %d" % (what, reply[1], reply[2], want))
    print("%s: refused with status %d (%s)" % (what, reply[1], reply[2]))


def case_recovery():
    """A postcopy whose every channel is cut pauses both sides; the recovery re-opens
    every channel inside TLS, refuses what is not inside TLS or not of this session."""
    from test_recovery import check_paused, recover
    c = certs()
    caps = {"postcopy-ram": True, "postcopy-preempt": True, "multifd": True, "events": True}
    params = {"multifd-channels": 2}
    with tls_dst(c, caps=caps, params=params, workload="random", size="64M", vcpus=2) as dst, \
         tls_src(c, caps=caps, workload="seq", size="64M", vcpus=2,
                 params=dict(params, **{"max-bandwidth": 64 * h.MiB, "downtime-limit": 1,
                                        "x-postcopy-after-passes": 1,
                                        "max-postcopy-bandwidth": 8 * h.MiB})) as src:
        # raw: the hellos and frames are inside TLS
        proxy = h.Proxy(dst.listen_uri(), raw=True)
        try:
            src.cmd("migrate", uri=proxy.uri)
            src.wait_status("postcopy-active", timeout=60)
            dst.wait_status("postcopy-active", timeout=30)
            proxy.close()
            print("proxy: every connection cut")
            check_paused(src, dst)
        finally:
            proxy.close()
        sid = bytes.fromhex(dst.query_migrate()["x-session-id"])

        def refusals(uri):
            h.expect_hello_refused(uri, h.hello(flags=HELLO_F_RESUME, session=sid), NOT_AUTHORIZED,
                                   "plain-text RESUME hello of this session")
            tls_hello_refused(c, uri, h.hello(flags=HELLO_F_RESUME, session=b"\x55" * 16), FOREIGN_SESSION,
                              "RESUME hello of another session inside TLS")
        info = recover(src, dst, before_resume=refusals)
        h.check_migrated(src, dst, info, size=64 * h.MiB)
        want = [("main", 0), ("preempt", 0), ("multifd", 0), ("multifd", 1)]
        check_x_tls(src, want)
        check_x_tls(dst, want)


def case_ktls():
    with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
        ulps = f.read().split()
    if "tls" not in ulps:
        raise h.Skip("kernel lacks the tls ULP (net.ipv4.tcp_available_ulp: %s); kTLS is not used here"
                     % (" ".join(ulps) or "empty"))
    c = certs()
    with tls_dst(c, size="64M") as dst, tls_src(c, size="64M") as src:
        src.cmd("migrate", uri=dst.listen_uri())
        info = src.wait_status("completed", timeout=60)
        h.check_migrated(src, dst, info, size=64 * h.MiB)
        x = check_x_tls(src, [("main", 0)])
        h.check(x["mode"] == "ktls", "kernel has the tls ULP but x-tls says %r" % x)


if __name__ == "__main__":
    try:
        h.main([case_precopy_multifd, case_postcopy_preempt, case_psk, case_refusals, case_refusals_server_side,
                case_s_client, case_ktls, case_recovery])
    finally:
        if CERTS:
            CERTS.cleanup()
