/* The destination's migration state, shared by the listener and loader (migrate.c),
 * the multifd receivers, postcopy's fault thread and the device lane; it mirrors the
 * source's Src (engine/src/src_int.h). Created by migrate-incoming, freed when the
 * session is. */
#pragma once
#include "engine/dst/dst.h"
#include <sys/uio.h>

typedef struct Dst {
	MigSession *s;
	/* the parameters this migration runs with, copied when its main channel is
	 * admitted (the listener alone may still be reconfigured, as in QEMU) */
	MigParams p;
	GThread *listen_thread;
	GThread *main_thread;      /* mig/dst/main: the loader */
	int listen_fd;             /* -1 with an fd: URI */
	int given_fd;              /* fd: URI: the passed socket until the listener admits it */
	int listen_wake[2];        /* pipe: wakes the listener to quit */
	int fd;                    /* the main channel (under s->lock; rp_lock for writes) */
	char *listen_uri;          /* the address actually bound */
	gboolean incoming_started; /* a main channel was accepted (under s->lock) */
	gulong **received;         /* per block: pages received (set atomically) */

	/* multifd (multifd.c); mf_lock nests inside s->lock, never around it */
	GMutex mf_lock;
	GCond mf_cond;
	GPtrArray *mf_recv;        /* MfRecv*, by arrival */
	guint mf_expected;         /* channels this destination takes (0: multifd off) */
	guint64 mf_connected;      /* bit i: multifd channel i was admitted (under s->lock) */
	guint mf_synced;           /* channels parked at the current sync point */
	guint64 mf_released;       /* last pass every channel was released from */
	gboolean mf_setup_done;    /* SETUP was loaded: receivers may place pages */
	gboolean mf_quit;

	struct PcDst *pc;          /* postcopy (postcopy.c) */
	gboolean pc_began;         /* LISTEN was loaded: memory is registered (under s->lock) */
	struct DevDst *devdst;     /* the device lane (devlane.c) */
	GMutex rp_lock;            /* return-path writes: loader and fault thread */
	GThread *urgent_thread[MIG_PREEMPT_MAX];  /* mig/dst/urg/N: preempt channel N's loader */
	int urgent_fd[MIG_PREEMPT_MAX];
	guint urgent_expected;     /* preempt channels this destination takes (0: preempt off) */

	/* postcopy recovery (under s->lock unless said otherwise) */
	gboolean pc_running;       /* PC_RUN done: the guest ran here, a lost channel pauses */
	gboolean paused_ready;     /* paused, and every old channel and thread is gone */
	gboolean resume_claimed;   /* the listener is admitting a resumed main channel */
	gboolean quit;             /* the session goes away: the paused loader ends */
	GCond recover_cond;        /* wakes the paused loader: a main channel is back, or quit */
	gboolean rp_hold;          /* under rp_lock: page requests wait for RP_RESUME_ACK */
	guint64 pass_done;         /* the loader's last PASS in place (told at recovery) */
} Dst;

/* dst.c: what every part of the half may do. */
Dst *mig_dst_new(MigSession *s);
void mig_dst_free(Dst *d);
/* Sends a return-path frame on the main channel (loader and fault thread share it). */
int mig_dst_rp_send(MigSession *s, guint16 type, const struct iovec *iov, int n);
/* A part of the half failed: records why, wakes the receivers and cuts the main
 * channel's reading, so the loader notices, stops the rest and answers the source. */
void mig_dst_fail(MigSession *s, const char *msg);
/* Every channel failure once the guest ran here comes through this (main channel,
 * return path, multifd, preempt, migrate-pause; from any thread): enters
 * postcopy-paused with why as error-desc and cuts every channel, so each thread
 * notices; the loader then joins them and waits for a recovery. userfaultfd stays
 * registered and the fault thread keeps its requests. FALSE when not in postcopy (the
 * caller fails the migration as before). */
gboolean mig_dst_postcopy_lost(MigSession *s, const char *why);
