/* migbench faults' proxy: a TCP relay between a source and the destination's migration
 * port, run by migbench inside the bed's source namespace (so the link cut lies between
 * it and the destination), that puts a fault at an exact point of the main channel's
 * frame stream. Every connection is relayed byte for byte; the main channel (the first
 * connection whose hello says type 1) is parsed frame by frame in both directions, so
 * that the proxy can
 *   - hold: once the whole frame of type `hold_at` went through, forward nothing more on
 *     any connection until bench_fproxy_release() (the fault goes in meanwhile);
 *   - corrupt: give a frame an unknown type (the frame of type `corrupt_at`, or the next
 *     frame either way once bench_fproxy_corrupt_next() was called; the hello itself
 *     when `corrupt_hello`);
 *   - reset: bench_fproxy_free(p, TRUE) ends every connection with a RST both ways.
 * Its threads (`migbench/proxy`: the acceptor and one per direction of each connection)
 * never block for long: every socket is non-blocking and every wait is a poll bounded
 * by FPROXY_TICK_MS, so closing and resetting are prompt whatever the peers do. */
#pragma once
#include <glib.h>

#define FPROXY_NONE (-1)         /* hold_at / corrupt_at: no such point */
#define FPROXY_HELLO (-2)        /* hold_at: right after the main channel's hello */
#define FPROXY_BAD_TYPE 0x7e7e   /* what a corrupted frame's type becomes: no frame has it */

typedef struct BenchFProxy BenchFProxy;

typedef struct BenchFProxySpec {
	const char *netns;       /* the network namespace to open its sockets in; NULL: ours */
	const char *up_addr;     /* the destination's address and port */
	guint16 up_port;
	int hold_at;             /* frame type, either way on the main channel; FPROXY_NONE */
	int corrupt_at;          /* frame type, source to destination; FPROXY_NONE */
	gboolean corrupt_hello;  /* the main channel's hello gets a wrong magic */
} BenchFProxySpec;

/* Listens on 127.0.0.1 (in spec->netns) at an ephemeral port; NULL with err. */
BenchFProxy *bench_fproxy_new(const BenchFProxySpec *spec, GError **err);
guint16 bench_fproxy_port(const BenchFProxy *p);
/* Waits up to timeout_ms for the hold point (TRUE: every connection now holds), or for
 * the corrupted frame to have been forwarded (bench_fproxy_wait_corrupted). */
gboolean bench_fproxy_wait_held(BenchFProxy *p, int timeout_ms);
gboolean bench_fproxy_wait_corrupted(BenchFProxy *p, int timeout_ms);
void bench_fproxy_release(BenchFProxy *p);
void bench_fproxy_corrupt_next(BenchFProxy *p);
/* Ends every connection (a RST both ways when reset, else a FIN), joins the threads and
 * frees. NULL is fine. */
void bench_fproxy_free(BenchFProxy *p, gboolean reset);
