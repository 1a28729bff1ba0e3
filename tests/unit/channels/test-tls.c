/* channels/tls.c over a real socket pair, with PSK contexts made here: the handshake,
 * channels/io.h's functions on a TLS fd, one session read and written by two threads
 * at once while both directions re-key every 64 KiB, shutdown() waking a blocked
 * reader, the plain-peer check, and the splice paths. */
#include "channels/tls.h"
#include "channels/io.h"

#include <errno.h>
#include <glib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

static const unsigned char psk_key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static unsigned int server_cb(SSL *ssl, const char *id, unsigned char *psk, unsigned int max)
{
	if (strcmp(id, "qemu") || max < sizeof(psk_key))
		return 0;
	memcpy(psk, psk_key, sizeof(psk_key));
	return sizeof(psk_key);
}

static unsigned int client_cb(SSL *ssl, const char *hint, char *id, unsigned int max_id, unsigned char *psk,
			      unsigned int max)
{
	g_strlcpy(id, "qemu", max_id);
	memcpy(psk, psk_key, sizeof(psk_key));
	return sizeof(psk_key);
}

static SSL_CTX *psk_ctx(gboolean server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if (server)
		SSL_CTX_set_psk_server_callback(ctx, server_cb);
	else
		SSL_CTX_set_psk_client_callback(ctx, client_cb);
	return ctx;
}

typedef struct Pair {
	int c, s;               /* client and server ends */
	SSL_CTX *cctx, *sctx;
	int server_rc;
	char server_err[256];
	guint64 rekey;
} Pair;

static gpointer server_hs(gpointer opaque)
{
	Pair *p = opaque;

	p->server_rc = mig_tls_server(p->s, p->sctx, 10000, 0, p->rekey, p->server_err, sizeof(p->server_err));
	return NULL;
}

static void pair_open(Pair *p, guint64 rekey)
{
	int sv[2];
	char err[256];
	GThread *t;

	memset(p, 0, sizeof(*p));
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	p->c = sv[0];
	p->s = sv[1];
	p->rekey = rekey;
	p->cctx = psk_ctx(FALSE);
	p->sctx = psk_ctx(TRUE);
	/* a deadlock becomes a timeout error, not a hung test */
	mig_io_set_timeout(p->c, 20000);
	mig_io_set_timeout(p->s, 20000);
	t = g_thread_new("hs", server_hs, p);
	g_assert_cmpint(mig_tls_client(p->c, p->cctx, "", 10000, rekey, err, sizeof(err)), ==, 0);
	g_thread_join(t);
	g_assert_cmpstr(p->server_err, ==, "");
	g_assert_cmpint(p->server_rc, ==, 0);
	g_assert_nonnull(mig_tls_of(p->c));
	g_assert_nonnull(mig_tls_of(p->s));
}

static void pair_close(Pair *p)
{
	mig_io_close(p->c);
	mig_io_close(p->s);
	g_assert_null(mig_tls_of(p->c));
	g_assert_null(mig_tls_of(p->s));
	SSL_CTX_free(p->cctx);
	SSL_CTX_free(p->sctx);
}

static void test_handshake_and_io(void)
{
	Pair p;
	MigTlsInfo info;
	char id[64];
	guint8 buf[100], big[70000], back[70000];
	struct iovec iov[3];

	pair_open(&p, 0);
	mig_tls_info(mig_tls_of(p.c), &info);
	g_assert_cmpstr(info.version, ==, "TLSv1.3");
	g_assert_cmpstr(info.cipher, !=, "");
	mig_tls_peer_identity(mig_tls_of(p.s), id, sizeof(id));
	g_assert_cmpstr(id, ==, "");   /* the test's callback leaves no identity */

	/* writev gathers small entries; readv splits them again */
	for (gsize i = 0; i < sizeof(big); i++)
		big[i] = (guint8)(i * 7);
	iov[0] = (struct iovec){ "hdr!", 4 };
	iov[1] = (struct iovec){ big, sizeof(big) };
	iov[2] = (struct iovec){ "end", 3 };
	g_assert_cmpint(mig_io_writev_full(p.c, iov, 3), ==, 0);
	g_assert_cmpuint(iov[1].iov_len, ==, 0);
	iov[0] = (struct iovec){ buf, 4 };
	iov[1] = (struct iovec){ back, sizeof(back) };
	iov[2] = (struct iovec){ buf + 4, 3 };
	g_assert_cmpint(mig_io_readv_full(p.s, iov, 3), ==, 0);
	g_assert_cmpmem(buf, 7, "hdr!end", 7);
	g_assert_cmpmem(back, sizeof(back), big, sizeof(big));
	pair_close(&p);
}

/* ---- one session, two threads, re-keying ---- */

#define STREAM (8u << 20)
#define ACKS 64

typedef struct Duo {
	Pair p;
	int rc_cw, rc_cr, rc_sr, rc_sw;
	guint acks_seen;
} Duo;

static gpointer client_writer(gpointer opaque)
{
	Duo *d = opaque;
	guint8 chunk[65536];

	for (guint off = 0; off < STREAM && d->rc_cw == 0; off += sizeof(chunk)) {
		for (guint i = 0; i < sizeof(chunk); i++)
			chunk[i] = (guint8)((off + i) * 31 >> 3);
		d->rc_cw = mig_io_write_full(d->p.c, chunk, sizeof(chunk));
	}
	return NULL;
}

static gpointer client_reader(gpointer opaque)
{
	Duo *d = opaque;

	for (guint i = 0; i < ACKS && d->rc_cr == 0; i++) {
		guint64 v;

		d->rc_cr = mig_io_read_full(d->p.c, &v, sizeof(v));
		if (d->rc_cr == 0 && v == i)
			d->acks_seen++;
	}
	return NULL;
}

static gpointer server_reader(gpointer opaque)
{
	Duo *d = opaque;
	guint8 chunk[4096];

	for (guint off = 0; off < STREAM && d->rc_sr == 0; off += sizeof(chunk)) {
		d->rc_sr = mig_io_read_full(d->p.s, chunk, sizeof(chunk));
		for (guint i = 0; d->rc_sr == 0 && i < sizeof(chunk); i++)
			if (chunk[i] != (guint8)((off + i) * 31 >> 3))
				d->rc_sr = -EBADMSG;
	}
	return NULL;
}

static gpointer server_writer(gpointer opaque)
{
	Duo *d = opaque;

	for (guint64 i = 0; i < ACKS && d->rc_sw == 0; i++) {
		d->rc_sw = mig_io_write_full(d->p.s, &i, sizeof(i));
		g_usleep(2000);
	}
	return NULL;
}

static void test_two_threads_rekey(void)
{
	Duo d = { 0 };
	GThread *t[4];
	MigTlsInfo ci;

	pair_open(&d.p, 64 << 10);
	t[0] = g_thread_new("cw", client_writer, &d);
	t[1] = g_thread_new("cr", client_reader, &d);
	t[2] = g_thread_new("sr", server_reader, &d);
	t[3] = g_thread_new("sw", server_writer, &d);
	for (int i = 0; i < 4; i++)
		g_thread_join(t[i]);
	g_assert_cmpint(d.rc_cw, ==, 0);
	g_assert_cmpint(d.rc_cr, ==, 0);
	g_assert_cmpint(d.rc_sr, ==, 0);
	g_assert_cmpint(d.rc_sw, ==, 0);
	g_assert_cmpuint(d.acks_seen, ==, ACKS);
	mig_tls_info(mig_tls_of(d.p.c), &ci);
	/* 8 MiB in 64 KiB steps: the client re-keyed over a hundred times, each KeyUpdate
	 * read by the server's reader while its writer wrote on the same session */
	g_assert_cmpuint(ci.key_updates, >=, STREAM / (64 << 10) - 2);
	pair_close(&d.p);
}

/* ---- shutdown wakes a reader blocked in a TLS read ---- */

static gpointer blocked_read(gpointer opaque)
{
	Pair *p = opaque;
	guint8 b;

	return GINT_TO_POINTER(mig_io_read_full(p->s, &b, 1));
}

static void test_shutdown_wakes_reader(void)
{
	Pair p;
	GThread *t;
	int rc;

	pair_open(&p, 0);
	t = g_thread_new("r", blocked_read, &p);
	g_usleep(50000);
	/* the writer is not blocked by the reader waiting on the same session */
	g_assert_cmpint(mig_io_write_full(p.s, "x", 1), ==, 0);
	shutdown(p.s, SHUT_RDWR);
	rc = GPOINTER_TO_INT(g_thread_join(t));
	g_assert_cmpint(rc, ==, -EPIPE);
	pair_close(&p);
}

/* ---- a plain peer where TLS is required ---- */

static void test_plain_peer(void)
{
	int sv[2];
	SSL_CTX *ctx = psk_ctx(TRUE);
	char err[256];
	guint8 b[8];

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
	g_assert_cmpint(write(sv[0], "MIGC\0\1\0\1", 8), ==, 8);
	g_assert_cmpint(mig_tls_server(sv[1], ctx, 5000, 0x4d494743u, 0, err, sizeof(err)), ==, -EPROTONOSUPPORT);
	g_assert_nonnull(strstr(err, "plain text"));
	g_assert_null(mig_tls_of(sv[1]));
	/* nothing was consumed: the caller can still read (and answer) the hello */
	g_assert_cmpint(mig_io_read_full(sv[1], b, 8), ==, 0);
	g_assert_cmpmem(b, 4, "MIGC", 4);
	/* a silent peer: the handshake gives up at its deadline */
	g_assert_cmpint(mig_tls_server(sv[1], ctx, 200, 0x4d494743u, 0, err, sizeof(err)), ==, -ETIMEDOUT);
	g_assert_nonnull(strstr(err, "timed out"));
	close(sv[0]);
	close(sv[1]);
	SSL_CTX_free(ctx);
}

/* ---- splice paths ---- */

static void test_splice(void)
{
	Pair p;
	int pipefd[2];
	guint8 out[3000];

	pair_open(&p, 0);
	g_assert_cmpint(pipe(pipefd), ==, 0);
	g_assert_cmpint(write(pipefd[1], "spliced through TLS", 19), ==, 19);
	g_assert_cmpint(mig_io_splice_full(pipefd[0], p.c, 19, 0), ==, 0);
	g_assert_cmpint(mig_io_read_full(p.s, out, 19), ==, 0);
	g_assert_cmpmem(out, 19, "spliced through TLS", 19);
	/* ciphertext never goes into a pipe: nothing spliced, the caller reads */
	g_assert_cmpint(mig_io_write_full(p.c, "abc", 3), ==, 0);
	g_assert_cmpint(mig_io_splice_fill(p.s, pipefd[1], 3), ==, 0);
	g_assert_cmpint(mig_io_read_full(p.s, out, 3), ==, 0);
	g_assert_cmpmem(out, 3, "abc", 3);
	close(pipefd[0]);
	close(pipefd[1]);
	pair_close(&p);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	mig_io_block_sigpipe();
	g_test_add_func("/tls/handshake-and-io", test_handshake_and_io);
	g_test_add_func("/tls/two-threads-rekey", test_two_threads_rekey);
	g_test_add_func("/tls/shutdown-wakes-reader", test_shutdown_wakes_reader);
	g_test_add_func("/tls/plain-peer", test_plain_peer);
	g_test_add_func("/tls/splice", test_splice);
	return g_test_run();
}
