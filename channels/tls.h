/* TLS as a channel transport: one OpenSSL session per socket, found by its fd, so every
 * reader and writer of channels/io.h goes through it without knowing (io.c asks
 * mig_tls_of() first). The engine builds the SSL_CTX (credentials, peer checks); this
 * module runs the handshake and the record I/O over the socket.
 *
 * Concurrency: a channel may be read by one thread while another writes it (the main
 * channel and its return path). The socket is non-blocking and every SSL call is made
 * under the channel's own mutex, which is never held while waiting: a thread that
 * needs bytes (or room) drops the mutex and polls. A blocked reader therefore never
 * blocks the writer, and a TLS 1.3 KeyUpdate, which makes a read write a record (or
 * a write wait for nothing), is just another short SSL call under the same mutex. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct MigTls MigTls;

/* What a finished handshake negotiated, for query-migrate. */
typedef struct MigTlsInfo {
	char version[16];       /* "TLSv1.3" */
	char cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
	int ktls_send, ktls_recv; /* the kernel does the record layer in that direction */
	uint64_t key_updates;   /* KeyUpdates this side sent */
} MigTlsInfo;

/* Bytes one direction sends before it asks for new keys: well under AES-GCM's limit
 * (2^24.5 full records per key is ~350 GiB), a KeyUpdate costs one small record. */
#define MIG_TLS_REKEY_BYTES_DEFAULT (32ull << 30)

/* Client side of a channel: handshake on fd (a connected socket), verifying the
 * peer's certificate against host when host is non-empty (a name or an IP address).
 * timeout_ms bounds the whole handshake. On success fd carries TLS from now on
 * (until mig_tls_detach) and 0 is returned; otherwise -errno with a sentence naming
 * the cause in err (the certificate check that failed, the peer's alert, or a plain
 * peer). rekey_bytes: see MIG_TLS_REKEY_BYTES_DEFAULT (0: the default). */
int mig_tls_client(int fd, SSL_CTX *ctx, const char *host, int timeout_ms, uint64_t rekey_bytes,
		   char *err, size_t errlen);
/* Server side: the same, accepting. A peer that opens with plain bytes starting with
 * plain_magic (4 bytes, big-endian; 0: none) is not handshaken with: -EPROTONOSUPPORT,
 * nothing consumed, so the caller can answer it in plain text. */
int mig_tls_server(int fd, SSL_CTX *ctx, int timeout_ms, uint32_t plain_magic, uint64_t rekey_bytes,
		   char *err, size_t errlen);

/* The session on fd, or NULL for a plain socket. Lock-free. */
MigTls *mig_tls_of(int fd);
/* Forgets fd's session and frees it; call before close(fd), with no thread using fd. */
void mig_tls_detach(int fd);

/* The peer's identity once handshaken: its certificate's subject DN (RFC 2253, as
 * "CN=client,O=example"), or the PSK username, which a server's PSK callback leaves
 * as the SSL's app data (a malloc'd string, freed with the session); "" when the
 * peer gave none. */
void mig_tls_peer_identity(MigTls *t, char *out, size_t len);
void mig_tls_info(MigTls *t, MigTlsInfo *info);
/* The last TLS-level failure of an I/O call on t (the peer's alert, a bad record), or
 * "" when the last failure was a plain socket error. */
void mig_tls_last_error(MigTls *t, char *out, size_t len);

/* The I/O behind channels/io.h for a TLS channel; same contracts. */
int mig_tls_read_full(MigTls *t, void *buf, size_t len);
int mig_tls_write_full(MigTls *t, const void *buf, size_t len);
int mig_tls_writev_full(MigTls *t, struct iovec *iov, int iovcnt);
int mig_tls_readv_full(MigTls *t, struct iovec *iov, int iovcnt);
/* len bytes from the pipe in, encrypted onto t: the record layer needs them in user
 * memory, so this is a read and a write, not a splice. */
int mig_tls_from_pipe(MigTls *t, int in, size_t len);

/* Whether this kernel offers the "tls" upper-layer protocol (kTLS): whether
 * net.ipv4.tcp_available_ulp lists it. 1 or 0. */
int mig_tls_kernel_has_ulp(void);
