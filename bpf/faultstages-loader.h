/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* Getting faultstages.bpf.c running: attach each stage's program to the USDT probe of
 * that name in the process that fires it, then hand finished requests to a callback and
 * list the unfinished ones. Negative errno everywhere. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/faultstages.h"

struct fs_tracer;

struct fs_config {
	pid_t src;		/* the source migd: request_received, page_queued, page_sent */
	pid_t dst;		/* the destination migd: the other four */
	bool verbose;		/* libbpf's debug output */
};

/* Called for every request that passed every stage, from fs_consume(). */
typedef void (*fs_record_fn)(void *ctx, const struct fs_record *r);

/* What the tool prints after "method: ". */
const char *fs_method_desc(void);

/* Loads the programs and attaches every stage; on failure, *why (if not NULL) says
 * which probe of which process could not be attached. */
int fs_open(const struct fs_config *cfg, fs_record_fn fn, void *ctx, struct fs_tracer **out,
	    char *why, size_t why_len);
void fs_close(struct fs_tracer *t);

/* Readable when complete requests are waiting: poll it, then call fs_consume(). */
int fs_epoll_fd(struct fs_tracer *t);
/* Hands every waiting complete request to the callback; the number handed, or -errno. */
int fs_consume(struct fs_tracer *t);

/* The program's counters (FS_NR_COUNTERS of them, bpf/faultstages.h). */
void fs_read_counters(struct fs_tracer *t, uint64_t out[FS_NR_COUNTERS]);

/* Ends recording: the probes stay attached until fs_close(), but record nothing. Call
 * fs_consume() once more afterwards to get the last complete requests. */
void fs_stop(struct fs_tracer *t);

/* Hands every request still in the map (not past every stage: placed without some
 * stage, or not placed) to fn; their count, or -errno. Call after fs_stop(), when the
 * map no longer changes. */
int fs_for_each_open(struct fs_tracer *t, fs_record_fn fn, void *ctx);
