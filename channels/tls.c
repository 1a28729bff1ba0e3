/* TLS channels over OpenSSL: the handshake, the non-blocking record I/O behind
 * channels/io.h, and the fd -> session table io.c consults. channels/tls.h says how the
 * reader and the writer of one channel share its session. */
#include "channels/tls.h"
#include "channels/io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct MigTls {
	int fd;
	SSL *ssl;
	pthread_mutex_t lock;   /* every SSL call; never held across a wait */
	uint64_t rekey_bytes, since_rekey, key_updates; /* rekey_bytes 0: never (kTLS) */
	char error[256];        /* the last TLS-level failure, under lock */
};

/* The fd -> session table. It is the one piece of process-wide state in channels/: the
 * key, a file descriptor, is process-wide itself, and it lets every existing caller of
 * channels/io.h run over TLS unchanged. Two levels of atomically published pointers,
 * so a plain channel's lookup is two loads and no lock. */
#define TLS_L2_BITS 10
#define TLS_L1_SIZE 1024
#define TLS_L2_SIZE (1 << TLS_L2_BITS)
static MigTls **tls_table[TLS_L1_SIZE];
static pthread_mutex_t tls_table_lock = PTHREAD_MUTEX_INITIALIZER;   /* growing it */

MigTls *mig_tls_of(int fd)
{
	MigTls **l2;

	if (fd < 0 || fd >= TLS_L1_SIZE * TLS_L2_SIZE)
		return NULL;
	l2 = __atomic_load_n(&tls_table[fd >> TLS_L2_BITS], __ATOMIC_ACQUIRE);
	return l2 ? __atomic_load_n(&l2[fd & (TLS_L2_SIZE - 1)], __ATOMIC_ACQUIRE) : NULL;
}

static int table_set(int fd, MigTls *t)
{
	MigTls **l2;

	if (fd < 0 || fd >= TLS_L1_SIZE * TLS_L2_SIZE)
		return -EMFILE;
	pthread_mutex_lock(&tls_table_lock);
	l2 = tls_table[fd >> TLS_L2_BITS];
	if (!l2) {
		l2 = calloc(TLS_L2_SIZE, sizeof(*l2));
		if (!l2) {
			pthread_mutex_unlock(&tls_table_lock);
			return -ENOMEM;
		}
		__atomic_store_n(&tls_table[fd >> TLS_L2_BITS], l2, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&l2[fd & (TLS_L2_SIZE - 1)], t, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&tls_table_lock);
	return 0;
}

static void tls_free(MigTls *t)
{
	if (!t)
		return;
	if (t->ssl)
		free(SSL_get_app_data(t->ssl));
	SSL_free(t->ssl);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void mig_tls_detach(int fd)
{
	MigTls *t = mig_tls_of(fd);

	if (!t)
		return;
	table_set(fd, NULL);
	tls_free(t);
}

/* ---- errors ---- */

/* The first error on this thread's OpenSSL queue, or the verify result, in words. */
static void ssl_error_text(SSL *ssl, int ssl_err, char *out, size_t len)
{
	unsigned long e = ERR_peek_error();
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (v != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		snprintf(out, len, "the peer's certificate was refused: %s", X509_verify_cert_error_string(v));
	} else if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER) {
		snprintf(out, len, "the peer does not speak TLS (is tls-creds set on both sides?)");
	} else if (e) {
		const char *r = ERR_reason_error_string(e);

		snprintf(out, len, "%s", r ? r : "TLS error");
	} else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
		snprintf(out, len, "the peer closed the TLS session");
	} else {
		out[0] = 0;
	}
	ERR_clear_error();
}

/* ---- waiting ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- record I/O ---- */

typedef enum { OP_READ, OP_WRITE } Op;

/* One non-blocking SSL call under the lock, then the wait it asks for without the lock.
 * Returns bytes moved (> 0), or -errno: -EPIPE at the peer's close, -EPROTO for a
 * TLS-level failure (the reason in t->error). */
static ssize_t tls_op(MigTls *t, Op op, void *buf, size_t len)
{
	for (;;) {
		size_t done = 0;
		int ok, err, saved_errno;
		short want;

		pthread_mutex_lock(&t->lock);
		ERR_clear_error();
		errno = 0;
		if (op == OP_READ) {
			ok = SSL_read_ex(t->ssl, buf, len, &done);
		} else {
			if (t->rekey_bytes && t->since_rekey >= t->rekey_bytes &&
			    SSL_key_update(t->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1) {
				t->since_rekey = 0;
				t->key_updates++;
			}
			ok = SSL_write_ex(t->ssl, buf, len, &done);
			if (ok)
				t->since_rekey += done;
		}
		err = ok ? SSL_ERROR_NONE : SSL_get_error(t->ssl, 0);
		saved_errno = errno;
		/* OpenSSL 3 calls an EOF without close_notify an error; to io.h's callers it
		 * is what it is on a plain socket, the peer gone */
		if (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			err = SSL_ERROR_SYSCALL;
			saved_errno = 0;
		}
		if (err == SSL_ERROR_SSL || (err == SSL_ERROR_SYSCALL && ERR_peek_error()) ||
		    err == SSL_ERROR_ZERO_RETURN)
			ssl_error_text(t->ssl, err, t->error, sizeof(t->error));
		else if (err == SSL_ERROR_SYSCALL)
			t->error[0] = 0;
		pthread_mutex_unlock(&t->lock);

		switch (err) {
		case SSL_ERROR_NONE:
			return (ssize_t)done;
		case SSL_ERROR_WANT_READ:
			want = POLLIN;
			break;
		case SSL_ERROR_WANT_WRITE:
			want = POLLOUT;
			break;
		case SSL_ERROR_ZERO_RETURN:
			return -EPIPE;
		case SSL_ERROR_SYSCALL:
			if (saved_errno == EINTR)
				continue;
			if (saved_errno == 0 || saved_errno == ECONNRESET || saved_errno == EPIPE)
				return -EPIPE;   /* EOF without close_notify: the peer went away */
			return -saved_errno;
		default:
			return -EPROTO;
		}
		{
			int rc = mig_io_wait(t->fd, want, want == POLLOUT ? mig_io_send_wait_ms(t->fd) :
								    mig_io_timeout_ms(t->fd, want));

			if (rc < 0)
				return rc;
		}
	}
}

int mig_tls_read_full(MigTls *t, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = tls_op(t, OP_READ, p, len);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mig_tls_write_full(MigTls *t, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		/* with partial writes on, a retry after WANT_WRITE resends the same bytes */
		ssize_t n = tls_op(t, OP_WRITE, (void *)p, len);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A TLS record holds at most 16 KiB: small iovec entries (frame headers, offsets) are
 * gathered into one record instead of each costing a record of its own. */
#define GATHER 16384

int mig_tls_writev_full(MigTls *t, struct iovec *iov, int iovcnt)
{
	uint8_t stage[GATHER];
	size_t staged = 0;
	int rc = 0;

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt && rc == 0; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len >= GATHER && staged == 0) {
			rc = mig_tls_write_full(t, p, len);
		} else {
			while (len > 0 && rc == 0) {
				size_t k = len < GATHER - staged ? len : GATHER - staged;

				memcpy(stage + staged, p, k);
				staged += k;
				p += k;
				len -= k;
				if (staged == GATHER) {
					rc = mig_tls_write_full(t, stage, staged);
					staged = 0;
				}
			}
		}
		if (rc == 0) {
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + iov[i].iov_len;
			iov[i].iov_len = 0;
		}
	}
	if (rc == 0 && staged)
		rc = mig_tls_write_full(t, stage, staged);
	return rc;
}

int mig_tls_readv_full(MigTls *t, struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		int rc = mig_tls_read_full(t, iov[i].iov_base, iov[i].iov_len);

		if (rc < 0)
			return rc;
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + iov[i].iov_len;
		iov[i].iov_len = 0;
	}
	return 0;
}

int mig_tls_from_pipe(MigTls *t, int in, size_t len)
{
	uint8_t buf[GATHER];

	while (len > 0) {
		ssize_t n = read(in, buf, len < sizeof(buf) ? len : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int rc = mig_io_wait(in, POLLIN, -1);

			if (rc < 0)
				return rc;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		{
			int rc = mig_tls_write_full(t, buf, (size_t)n);

			if (rc < 0)
				return rc;
		}
		len -= (size_t)n;
	}
	return 0;
}

/* ---- handshake ---- */

/* Whether the peer opened with plain bytes starting with magic: peeked, not read. */
static int peer_is_plain(int fd, uint32_t magic, int timeout_ms)
{
	uint8_t b[4];
	int64_t end = now_ms() + timeout_ms;
	ssize_t n;

	for (;;) {
		n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(b) || n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		/* fewer than 4 bytes yet: a TLS record header is 5, so wait for them */
		if (now_ms() >= end || mig_io_wait(fd, POLLIN, (int)(end - now_ms())) < 0)
			return 0;
		if (n > 0)
			usleep(1000);   /* POLLIN stays set with bytes pending: don't spin */
	}
	return n == (ssize_t)sizeof(b) &&
	       ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]) == magic;
}

/* After refusing a handshake: the alert is in flight, and a TLS 1.3 client that
 * thinks it is done may already be sending. Closing now would answer those bytes with
 * a reset, which can destroy the alert in the client's receive queue before it reads
 * it; so stop sending and swallow what comes until the client closes, for a short
 * bounded while. */
static void linger_after_alert(int fd, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	char sink[4096];

	shutdown(fd, SHUT_WR);
	while (now_ms() < end && mig_io_wait(fd, POLLIN, (int)(end - now_ms())) == 0) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

static int handshake(int fd, SSL_CTX *ctx, int server, const char *host, int timeout_ms, uint64_t rekey_bytes,
		     char *err, size_t errlen)
{
	int64_t end = now_ms() + timeout_ms;
	MigTls *t;
	int fl = fcntl(fd, F_GETFL), rc;

	err[0] = 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot make the socket non-blocking: %s", strerror(errno));
		return -errno;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->rekey_bytes = rekey_bytes ? rekey_bytes : MIG_TLS_REKEY_BYTES_DEFAULT;
	pthread_mutex_init(&t->lock, NULL);
	t->ssl = SSL_new(ctx);
	if (!t->ssl || !SSL_set_fd(t->ssl, fd)) {
		ssl_error_text(NULL, 0, err, errlen);
		tls_free(t);
		return -ENOMEM;
	}
	SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!server && host && *host) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);

		/* an address is matched against the certificate's IP SANs, a name against DNS */
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
			ERR_clear_error();
			SSL_set_tlsext_host_name(t->ssl, host);
			if (SSL_set1_host(t->ssl, host) != 1) {
				snprintf(err, errlen, "bad TLS hostname '%s'", host);
				tls_free(t);
				return -EINVAL;
			}
		}
	}
	for (;;) {
		int ok, e, saved_errno;
		short want;

		ERR_clear_error();
		errno = 0;
		ok = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
		if (ok == 1)
			break;
		e = SSL_get_error(t->ssl, ok);
		saved_errno = errno;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			if (now_ms() >= end || (rc = mig_io_wait(fd, want, (int)(end - now_ms()))) == -ETIMEDOUT) {
				snprintf(err, errlen, "TLS handshake timed out after %d ms", timeout_ms);
				tls_free(t);
				return -ETIMEDOUT;
			}
			if (rc < 0) {
				snprintf(err, errlen, "TLS handshake: %s", strerror(-rc));
				tls_free(t);
				return rc;
			}
			continue;
		}
		if (e == SSL_ERROR_SYSCALL && saved_errno == EINTR)
			continue;
		ssl_error_text(t->ssl, e, err, errlen);
		if (!err[0])
			snprintf(err, errlen, "the peer closed the connection during the TLS handshake%s%s",
				 saved_errno ? ": " : "", saved_errno ? strerror(saved_errno) : "");
		tls_free(t);
		if (server)
			linger_after_alert(fd, 500);
		return -EPROTO;
	}
	/* the kernel keeps kTLS's keys, and OpenSSL 3.0 cannot update them there: a
	 * KeyUpdate would fail the channel, so kTLS channels do not re-key */
	if (BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0)
		t->rekey_bytes = 0;
	rc = table_set(fd, t);
	if (rc < 0) {
		snprintf(err, errlen, "fd %d out of the TLS table's range", fd);
		tls_free(t);
	}
	return rc;
}

int mig_tls_client(int fd, SSL_CTX *ctx, const char *host, int timeout_ms, uint64_t rekey_bytes, char *err,
		   size_t errlen)
{
	return handshake(fd, ctx, 0, host, timeout_ms, rekey_bytes, err, errlen);
}

int mig_tls_server(int fd, SSL_CTX *ctx, int timeout_ms, uint32_t plain_magic, uint64_t rekey_bytes, char *err,
		   size_t errlen)
{
	if (plain_magic && peer_is_plain(fd, plain_magic, timeout_ms)) {
		snprintf(err, errlen, "the peer spoke plain text where TLS is required");
		return -EPROTONOSUPPORT;
	}
	return handshake(fd, ctx, 1, NULL, timeout_ms, rekey_bytes, err, errlen);
}

/* ---- what was negotiated ---- */

void mig_tls_peer_identity(MigTls *t, char *out, size_t len)
{
	X509 *peer;

	out[0] = 0;
	pthread_mutex_lock(&t->lock);
	peer = SSL_get1_peer_certificate(t->ssl);
	if (peer) {
		BIO *b = BIO_new(BIO_s_mem());

		if (b && X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
			int n = BIO_read(b, out, (int)len - 1);

			out[n > 0 ? n : 0] = 0;
		}
		BIO_free(b);
		X509_free(peer);
	} else {
		/* TLS 1.3 keeps no PSK identity in the session: the server's callback left it */
		const char *id = SSL_get_app_data(t->ssl);

		if (id)
			snprintf(out, len, "%s", id);
	}
	pthread_mutex_unlock(&t->lock);
}

void mig_tls_info(MigTls *t, MigTlsInfo *info)
{
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&t->lock);
	snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(t->ssl));
	snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(t->ssl));
	info->ktls_send = BIO_get_ktls_send(SSL_get_wbio(t->ssl)) > 0;
	info->ktls_recv = BIO_get_ktls_recv(SSL_get_rbio(t->ssl)) > 0;
	info->key_updates = t->key_updates;
	pthread_mutex_unlock(&t->lock);
}

void mig_tls_last_error(MigTls *t, char *out, size_t len)
{
	pthread_mutex_lock(&t->lock);
	snprintf(out, len, "%s", t->error);
	pthread_mutex_unlock(&t->lock);
}

int mig_tls_kernel_has_ulp(void)
{
	char buf[256];
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (char *save = NULL, *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
		if (!strcmp(tok, "tls"))
			return 1;
	return 0;
}
