/* Destination side of postcopy: userfaultfd registration, the fault thread, atomic
 * placement, discards and the fault-latency statistics. */
#include "engine/dst/postcopy.h"
#include "engine/dst/blocktime.h"
#include "engine/dst/reqbatch.h"
#include "engine/dst/silence.h"
#include "engine/bitmap.h"
#include "engine/discard.h"
#include "engine/probes.h"
#include "engine/urgency.h"
#include "channels/frame.h"
#include "channels/io.h"
#include "channels/wire.h"
#include "uffd/place.h"
#include "uffd/uffd.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define LAT_BUCKETS 24
#define MAX_SAMPLES (1u << 20)
#define FAULT_BATCH MIG_REQ_BATCH_MAX

typedef struct PcBlock {
	MigRamBlock *rb;
	gsize npages;
	gulong *requested;     /* a request went to the source (atomic) */
	gint64 *t_fault;       /* fault read time (ns) of the pending request, 0 if none */
} PcBlock;

typedef struct PcDst {
	MigSession *s;
	int uffd;
	int quit_fd;           /* eventfd: stops the fault thread */
	GThread *fault_thread;
	gboolean placing;      /* userfaultfd is live: pages are placed through it */
	GRWLock place_lock;    /* placements read-hold it; stopping takes it to write */
	guint8 *zero;          /* one zero page of the largest size (hugetlb has no ZEROPAGE) */
	PcBlock *blocks;
	guint nblocks;

	MigPcFetchFn fetch;    /* no source: a fault is served here (lazy restore) */
	gpointer fetch_opaque;

	GMutex stat_lock;
	guint64 requests, placed_requested, lat_sum_ns;
	guint64 dist[LAT_BUCKETS];
	GArray *samples[3];    /* µs per request, by page size class: 4K, 2M, 1G */
	MigBlocktime *bt;      /* postcopy-blocktime capability on, else NULL */
	MigDiscarder *discarder;   /* made at the first discard (the loader's thread) */
} PcDst;

G_STATIC_ASSERT(sizeof(gint64) == 8);

static inline gint64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int size_class(gsize ps)
{
	return ps >= (1u << 30) ? 2 : ps >= (2u << 20) ? 1 : 0;
}

static gboolean test_and_set(gulong *map, gsize i)
{
	gulong bit = 1ul << (i % MIG_BITS_PER_LONG);

	return (__atomic_fetch_or(&map[i / MIG_BITS_PER_LONG], bit, __ATOMIC_SEQ_CST) & bit) != 0;
}

/* t_end: when the placement's ioctl returned, which is when it woke the waiters. */
static void record_latency(PcDst *pc, PcBlock *b, gsize page, gint64 t_end)
{
	gint64 t0 = __atomic_exchange_n(&b->t_fault[page], 0, __ATOMIC_ACQ_REL);
	guint64 ns, us;
	guint bucket;

	if (!t0)
		return;
	ns = (guint64)MAX(t_end - t0, 0);
	us = ns / 1000;
	bucket = us ? MIN((guint)g_bit_nth_msf(us, -1), LAT_BUCKETS - 1u) : 0;
	g_mutex_lock(&pc->stat_lock);
	pc->placed_requested++;
	pc->lat_sum_ns += ns;
	pc->dist[bucket]++;
	if (pc->samples[size_class(b->rb->page_size)]->len < MAX_SAMPLES) {
		guint32 v = (guint32)MIN(us, (guint64)G_MAXUINT32);

		g_array_append_val(pc->samples[size_class(b->rb->page_size)], v);
	}
	g_mutex_unlock(&pc->stat_lock);
}

static int place(PcDst *pc, PcBlock *b, gsize page, const void *data)
{
	guint8 *dst = b->rb->host + page * b->rb->page_size;
	gsize ps = b->rb->page_size;
	int rc;

	if (data)
		rc = mig_uffd_copy(pc->uffd, dst, data, ps);
	else if (b->rb->backend == MIG_MEM_HUGETLB)
		rc = mig_uffd_copy(pc->uffd, dst, pc->zero, ps);
	else
		rc = mig_uffd_zeropage(pc->uffd, dst, ps);
	if (rc == -EEXIST) {
		/* a racing copy won; wake anyone who faulted between its placement and now */
		mig_uffd_wake(pc->uffd, dst, ps);
		rc = 0;
	}
	return rc;
}

/* After a placement that ended at t_end: the page counts as received, and a fault's
 * wait on it ends. */
static void placed(MigSession *s, guint block, gsize page, gint64 t_end)
{
	PcDst *pc = s->dst->pc;
	PcBlock *b = &pc->blocks[block];

	__atomic_fetch_or(&s->dst->received[block][page / MIG_BITS_PER_LONG], 1ul << (page % MIG_BITS_PER_LONG), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&b->requested[page / MIG_BITS_PER_LONG], __ATOMIC_SEQ_CST) & (1ul << (page % MIG_BITS_PER_LONG))) {
		record_latency(pc, b, page, t_end);
		/* every fault sets requested before it reads received (handle_fault), so a
		 * page nobody asked for has no waiter and skips the lock */
		if (pc->bt)
			mig_blocktime_end(pc->bt, (guint64)(uintptr_t)(b->rb->host + page * b->rb->page_size), t_end);
	}
}

gboolean mig_pc_dst_place(MigSession *s, guint block, gsize page, const void *data, GError **err)
{
	PcDst *pc = s->dst->pc;
	PcBlock *b = &pc->blocks[block];
	/* probes only for requested pages: a tracer pays for every hit, and bulk places
	 * every page of the guest */
	gboolean traced = mig_bitmap_test(b->requested, page);
	gint64 t_end;
	int rc;

	if (traced)
		MIG_PROBE(page_received, block, (guint64)page * b->rb->page_size);
	g_rw_lock_reader_lock(&pc->place_lock);
	if (!pc->placing) {
		/* postcopy is over and every page was present: this is a late second copy,
		 * and the guest may have written the page since; drop it */
		g_rw_lock_reader_unlock(&pc->place_lock);
		return TRUE;
	}
	rc = place(pc, b, page, data);
	/* The ioctl woke the waiters: its return ends their wait, here and for the
	 * page_placed probe, which fires next. Read after the probe, the clock also
	 * counted the probe's trap, and any wait for a CPU on the way back from it, when a
	 * tracer is attached: the two figures of one fault then disagreed. */
	t_end = now_ns();
	if (traced)
		MIG_PROBE(page_placed, block, (guint64)page * b->rb->page_size);
	g_rw_lock_reader_unlock(&pc->place_lock);
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "placing page %" G_GSIZE_FORMAT " of '%s': %s", page, b->rb->name, g_strerror(-rc));
		return FALSE;
	}
	placed(s, block, page, t_end);
	return TRUE;
}

gboolean mig_pc_dst_place_run(MigSession *s, guint block, gsize page, gsize npages, const void *data, GError **err)
{
	PcDst *pc = s->dst->pc;
	PcBlock *b = &pc->blocks[block];
	gsize ps = b->rb->page_size;
	gint64 t_end;
	int rc;

	if (npages == 1)
		return mig_pc_dst_place(s, block, page, data, err);
	for (gsize i = page; i < page + npages; i++)
		if (mig_bitmap_test(b->requested, i))
			MIG_PROBE(page_received, block, (guint64)i * ps);
	g_rw_lock_reader_lock(&pc->place_lock);
	if (!pc->placing) {
		g_rw_lock_reader_unlock(&pc->place_lock);
		return TRUE;   /* a late second copy, as in mig_pc_dst_place */
	}
	rc = mig_uffd_copy_pages(pc->uffd, b->rb->host + page * ps, data, ps, npages);
	t_end = now_ns();
	for (gsize i = page; i < page + npages; i++)
		if (mig_bitmap_test(b->requested, i))
			MIG_PROBE(page_placed, block, (guint64)i * ps);
	g_rw_lock_reader_unlock(&pc->place_lock);
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "placing pages %" G_GSIZE_FORMAT " to %" G_GSIZE_FORMAT " of '%s': %s", page,
			    page + npages - 1, b->rb->name, g_strerror(-rc));
		return FALSE;
	}
	for (gsize i = page; i < page + npages; i++)
		placed(s, block, i, t_end);
	return TRUE;
}

/* From LISTEN on, and for good: no page may be written in place any more. */
gboolean mig_pc_dst_placing(MigSession *s)
{
	return __atomic_load_n(&s->dst->pc, __ATOMIC_ACQUIRE) != NULL;
}

gsize mig_pc_dst_next_pending(MigSession *s, guint block, gsize from)
{
	PcBlock *b = &s->dst->pc->blocks[block];
	gsize i;

	for (i = mig_bitmap_next(b->requested, b->npages, from); i < b->npages; i = mig_bitmap_next(b->requested, b->npages, i + 1))
		if (!mig_bitmap_test(s->dst->received[block], i))
			break;
	return i;
}

static PcBlock *find_block(PcDst *pc, guint64 addr, guint *bi)
{
	for (guint i = 0; i < pc->nblocks; i++) {
		MigRamBlock *rb = pc->blocks[i].rb;

		if (addr >= (guint64)(uintptr_t)rb->host && addr < (guint64)(uintptr_t)rb->host + rb->size) {
			*bi = i;
			return &pc->blocks[i];
		}
	}
	return NULL;
}

/* Sends the requests gathered so far in one write. A write that fails means the
 * channel broke: the loader notices and pauses, and the requests, their bits set, are
 * asked again once resumed. */
static void flush_requests(PcDst *pc, MigReqBatch *reqs)
{
	if (!reqs->n)
		return;
	/* before the write, as page_sent: once the bytes are in the socket the source may
	 * read and answer them while this thread waits for a CPU */
	for (guint i = 0; i < reqs->n; i++) {
		guint32 bi, zero;
		guint64 off;

		mig_get_head16(reqs->buf + (gsize)i * MIG_REQ_FRAME_LEN + MIG_FRAME_HDR_LEN, &bi, &zero, &off);
		MIG_PROBE(request_sent, bi, off);
	}
	mig_dst_rp_send_reqs(pc->s, reqs->buf, mig_req_batch_bytes(reqs));
	mig_req_batch_reset(reqs);
}

/* A fault on a page marked received is a zero page that was never materialised
 * (QEMU shipped that hang): place it here instead of asking the source. Any other
 * missing page is asked for in reqs. */
static int handle_fault(PcDst *pc, guint64 addr, pid_t tid, MigReqBatch *reqs)
{
	MigSession *s = pc->s;
	guint bi;
	PcBlock *b = find_block(pc, addr, &bi);
	gboolean already;
	guint64 key;
	gsize page;

	if (!b)
		return -EFAULT;
	page = (addr - (guint64)(uintptr_t)b->rb->host) / b->rb->page_size;
	MIG_PROBE(fault_read, bi, (guint64)page * b->rb->page_size);
	if (mig_bitmap_test(s->dst->received[bi], page))
		return place(pc, b, page, NULL);
	key = (guint64)(uintptr_t)(b->rb->host + page * b->rb->page_size);
	if (pc->bt)
		mig_blocktime_begin(pc->bt, key, tid, now_ns());
	{
		gint64 zero = 0;

		__atomic_compare_exchange_n(&b->t_fault[page], &zero, now_ns(), FALSE, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
	already = test_and_set(b->requested, page);
	/* The wait began before requested was set, and a placement ends waits only on
	 * requested pages: if it read requested before we set it, we see its received
	 * bit here (seq-cst on both), and end the wait ourselves. */
	if (pc->bt && (__atomic_load_n(&s->dst->received[bi][page / MIG_BITS_PER_LONG], __ATOMIC_SEQ_CST) &
		       (1ul << (page % MIG_BITS_PER_LONG))))
		mig_blocktime_end(pc->bt, key, now_ns());
	if (already)
		return 0;   /* already asked; the placement wakes every waiter */
	/* A placement may have landed since the check above. Each side publishes its bit
	 * before reading the other's (seq-cst), so at least one of us sees both and the
	 * exchange on t_fault makes exactly one of us time it. The request still goes:
	 * the source counts what it was asked. */
	if (__atomic_load_n(&s->dst->received[bi][page / MIG_BITS_PER_LONG], __ATOMIC_SEQ_CST) & (1ul << (page % MIG_BITS_PER_LONG)))
		record_latency(pc, b, page, now_ns());
	__atomic_add_fetch(&pc->requests, 1, __ATOMIC_RELAXED);
	if (pc->fetch) {
		MIG_PROBE(request_sent, bi, (guint64)page * b->rb->page_size);
		return pc->fetch(pc->fetch_opaque, bi, page);
	}
	/* sent with the rest of this read's requests (fault_main) */
	if (!mig_req_batch_add(reqs, bi, (guint64)page * b->rb->page_size)) {
		flush_requests(pc, reqs);
		mig_req_batch_add(reqs, bi, (guint64)page * b->rb->page_size);
	}
	return 0;
}

/* A step of the fault thread failed. With the guest running, postcopy pauses
 * (mig_dst_fail): `failed` would let a later loss unregister userfaultfd under vCPUs
 * that wait for pages, and refuse recovery. The thread goes on, so that once recovered
 * it asks for what the vCPUs fault on. Reported once per run of failures: each report
 * pauses again, so one that lasts would undo every recovery, and a recovery completes
 * without this thread (the source sends every missing page). */
static void step_failed(PcDst *pc, gboolean *failing, const char *why)
{
	if (*failing)
		return;
	*failing = TRUE;
	mig_log(pc->s, MIG_LOG_WARNING, "postcopy fault thread: %s", why);
	mig_dst_fail(pc->s, why);
}

/* Reads the faults queued on userfaultfd in batches and asks for all the missing
 * pages of one batch in one write: with many vCPUs faulting at once, a system call
 * per fault made this thread the queue. */
static gpointer fault_main(gpointer opaque)
{
	PcDst *pc = opaque;
	MigSession *s = pc->s;
	MigReqBatch reqs = { 0 };
	gboolean read_failing = FALSE, fault_failing = FALSE;

	mig_thread_set_urgent_for(s, (guint)s->dst->p.x_postcopy_rt_priority, "mig/dst/fault");

	for (;;) {
		struct pollfd p[2] = { { .fd = pc->uffd, .events = POLLIN }, { .fd = pc->quit_fd, .events = POLLIN } };
		struct uffd_msg msgs[FAULT_BATCH];
		int n;

		/* after a failed read the fd may stay readable: wait a little, not spin */
		if (poll(read_failing ? &p[1] : p, read_failing ? 1 : 2, read_failing ? 100 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = s->dst->test_fault_step ? s->dst->test_fault_step(s, TRUE) : 0;
		if (n == 0)
			n = mig_uffd_read_msgs(pc->uffd, msgs, FAULT_BATCH);
		if (n < 0 && n != -EINTR) {
			g_autofree char *why = g_strdup_printf("reading userfaultfd: %s", g_strerror(-n));

			step_failed(pc, &read_failing, why);
			continue;
		}
		read_failing = FALSE;
		for (int i = 0; i < n; i++) {
			int rc;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			rc = handle_fault(pc, msgs[i].arg.pagefault.address, (pid_t)msgs[i].arg.pagefault.feat.ptid, &reqs);
			if (rc == 0 && s->dst->test_fault_step)
				rc = s->dst->test_fault_step(s, FALSE);
			if (rc < 0) {
				g_autofree char *why = g_strdup_printf("postcopy fault at 0x%" G_GINT64_MODIFIER "x: %s",
								      (guint64)msgs[i].arg.pagefault.address, g_strerror(-rc));

				/* a zero page that would not be placed, or the lazy restore's read
				 * (which failed the restore itself); a request's own write never
				 * fails here: a broken return path is the loader's to notice */
				step_failed(pc, &fault_failing, why);
			} else {
				fault_failing = FALSE;
			}
		}
		flush_requests(pc, &reqs);
	}
	return NULL;
}

gboolean mig_pc_dst_listen(MigSession *s, GError **err)
{
	PcDst *pc;
	MigUffdInfo info;
	gsize maxps = 0;
	int fd;

	if (s->dst->pc) {
		g_set_error(err, MIG_ERROR, EPROTO, "postcopy LISTEN sent twice");
		return FALSE;
	}
	/* QEMU attributes waits to vCPUs by the faulting thread's id (4.14+) */
	fd = -EOPNOTSUPP;
	if (s->caps[MIG_CAP_POSTCOPY_BLOCKTIME])
		fd = mig_uffd_open(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_THREAD_ID,
				   O_NONBLOCK, &info);
	if (fd == -EOPNOTSUPP) {
		if (s->caps[MIG_CAP_POSTCOPY_BLOCKTIME])
			mig_log(s, MIG_LOG_WARNING, "postcopy-blocktime: the kernel lacks UFFD_FEATURE_THREAD_ID; "
							"every wait counts as a non-vCPU one");
		fd = mig_uffd_open(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS, O_NONBLOCK, &info);
	}
	if (fd < 0) {
		g_set_error(err, MIG_ERROR, -fd, "postcopy needs userfaultfd with shmem and hugetlbfs missing faults: %s",
			    g_strerror(-fd));
		return FALSE;
	}
	pc = g_new0(PcDst, 1);
	pc->s = s;
	pc->uffd = fd;
	pc->quit_fd = eventfd(0, EFD_CLOEXEC);
	g_mutex_init(&pc->stat_lock);
	g_rw_lock_init(&pc->place_lock);
	for (int i = 0; i < 3; i++)
		pc->samples[i] = g_array_new(FALSE, FALSE, sizeof(guint32));
	if (s->caps[MIG_CAP_POSTCOPY_BLOCKTIME]) {
		g_mutex_lock(&s->lock);
		pc->bt = s->vcpu_tids ? mig_blocktime_new((const pid_t *)(void *)s->vcpu_tids->data, s->vcpu_tids->len)
				      : mig_blocktime_new(NULL, 0);
		g_mutex_unlock(&s->lock);
	}
	pc->nblocks = s->ram->len;
	pc->blocks = g_new0(PcBlock, pc->nblocks);
	for (guint i = 0; i < pc->nblocks; i++) {
		PcBlock *b = &pc->blocks[i];
		int rc;

		b->rb = g_ptr_array_index(s->ram, i);
		b->npages = mig_ram_block_pages(b->rb);
		b->requested = mig_bitmap_new(b->npages);
		b->t_fault = g_new0(gint64, b->npages);
		maxps = MAX(maxps, b->rb->page_size);
		rc = mig_uffd_register(fd, b->rb->host, b->rb->size, UFFDIO_REGISTER_MODE_MISSING, NULL);
		if (rc < 0) {
			g_set_error(err, MIG_ERROR, -rc, "registering '%s' (%s) with userfaultfd: %s", b->rb->name,
				    mig_mem_backend_str(b->rb->backend), g_strerror(-rc));
			s->dst->pc = pc;
			mig_pc_dst_stop(s);
			return FALSE;
		}
	}
	pc->zero = g_malloc0(maxps);
	pc->placing = TRUE;
	__atomic_store_n(&s->dst->pc, pc, __ATOMIC_RELEASE);
	pc->fault_thread = g_thread_new("mig/dst/fault", fault_main, pc);
	return TRUE;
}

void mig_pc_dst_set_fetch(MigSession *s, MigPcFetchFn fetch, gpointer opaque)
{
	PcDst *pc = s->dst->pc;

	/* before the guest runs, so before any fault: the fault thread reads them after */
	pc->fetch_opaque = opaque;
	pc->fetch = fetch;
}

gboolean mig_pc_dst_discard(MigSession *s, guint block, const guint64 *ranges, guint n, GError **err)
{
	PcDst *pc = s->dst->pc;
	MigRamBlock *rb;
	gulong *received;
	int rc;

	if (!pc || block >= s->ram->len) {
		g_set_error(err, MIG_ERROR, EPROTO, "discard %s", pc ? "of an unknown block" : "before LISTEN");
		return FALSE;
	}
	rb = g_ptr_array_index(s->ram, block);
	/* every range is checked before any memory is touched */
	for (guint i = 0; i < n; i++) {
		guint64 first = ranges[2 * i], count = ranges[2 * i + 1];

		if (!count || first >= mig_ram_block_pages(rb) || count > mig_ram_block_pages(rb) - first) {
			g_set_error(err, MIG_ERROR, EPROTO, "discard range outside '%s'", rb->name);
			return FALSE;
		}
	}
	if (!pc->discarder) {
		pc->discarder = mig_discarder_new();
		mig_log(s, MIG_LOG_INFO, "postcopy discards pages with %s", mig_discarder_method(pc->discarder));
	}
	if ((rc = mig_discarder_apply(pc->discarder, rb, ranges, n)) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "discarding pages of '%s': %s", rb->name, g_strerror(-rc));
		return FALSE;
	}
	received = s->dst->received[block];
	g_mutex_lock(&s->dst->mf_lock);
	s->dst->received_cleared = TRUE;   /* the counts of set bits stop adding up */
	g_mutex_unlock(&s->dst->mf_lock);
	for (guint i = 0; i < n; i++)
		for (guint64 p = ranges[2 * i]; p < ranges[2 * i] + ranges[2 * i + 1]; p++)
			__atomic_fetch_and(&received[p / MIG_BITS_PER_LONG], ~(1ul << (p % MIG_BITS_PER_LONG)), __ATOMIC_RELAXED);
	return TRUE;
}

/* END comes on the main channel, but an urgent page the source took off its bulk
 * list may still be on its way on the preempt channel (QEMU's preempt thread once
 * quit early and lost such pages), or a bulk page on a multifd channel: wait for
 * every page, and not at all when the main channel is the only one (what came before
 * END is all there is). Bounded by the source's silence on those channels (silence.h);
 * a pause, a failure or a shutdown (mf_quit) ends the wait too. The caller pauses on
 * a failure: the guest runs here and waits for what is missing. */
gboolean mig_pc_dst_finish(MigSession *s, GError **err)
{
	PcDst *pc = s->dst->pc;
	gboolean others = s->dst->urgent_expected || s->dst->mf_expected;
	MigDstSilence w = { 0 };
	gint64 left = 1, next = 0;

	if (others)
		mig_dst_silence_init(&w, s, TRUE);
	for (guint i = 0; pc && i < pc->nblocks; i++) {
		gsize have;

		while ((have = mig_bitmap_count(s->dst->received[i], pc->blocks[i].npages)) != pc->blocks[i].npages &&
		       others && left && s->status != MIG_STATUS_FAILED && s->status != MIG_STATUS_POSTCOPY_PAUSED &&
		       !__atomic_load_n(&s->dst->mf_quit, __ATOMIC_RELAXED)) {
			/* the pages' own arrival is polled often; the channels less so */
			if (g_get_monotonic_time() >= next) {
				left = mig_dst_silence_left(&w);
				next = g_get_monotonic_time() + MIN(mig_dst_silence_slice_us(&w, left), 50 * G_TIME_SPAN_MILLISECOND);
			}
			if (left)
				g_usleep(1000);
		}
		if (have != pc->blocks[i].npages) {
			g_autofree char *why = !left ? g_strdup_printf(": nothing came on the multifd and preempt channels for %"
								       G_GUINT64_FORMAT " ms (x-channel-timeout)",
								       mig_dst_silence_ms(&w)) : NULL;

			g_set_error(err, MIG_ERROR, !left ? ETIMEDOUT : EPROTO, "postcopy ended with %" G_GSIZE_FORMAT " of %"
				    G_GSIZE_FORMAT " pages of '%s' received%s", have, pc->blocks[i].npages,
				    pc->blocks[i].rb->name, why ? why : "");
			return FALSE;
		}
	}
	mig_pc_dst_stop(s);
	return TRUE;
}

int mig_pc_dst_resume(MigSession *s, int fd, guint64 *asked)
{
	PcDst *pc = s->dst->pc;
	MigReqBatch reqs = { 0 };
	int rc;

	*asked = 0;
	g_mutex_lock(&s->dst->rp_lock);
	rc = mig_frame_send(fd, MIG_F_RP_RESUME_ACK, 0, NULL, 0);
	for (guint bi = 0; rc == 0 && bi < pc->nblocks; bi++) {
		PcBlock *b = &pc->blocks[bi];

		for (gsize i = mig_bitmap_next(b->requested, b->npages, 0); rc == 0 && i < b->npages;
		     i = mig_bitmap_next(b->requested, b->npages, i + 1)) {
			if (mig_bitmap_test(s->dst->received[bi], i))
				continue;
			if (!mig_req_batch_add(&reqs, bi, (guint64)i * b->rb->page_size)) {
				rc = mig_io_write_full(fd, reqs.buf, mig_req_batch_bytes(&reqs));
				mig_req_batch_reset(&reqs);
				mig_req_batch_add(&reqs, bi, (guint64)i * b->rb->page_size);
			}
			(*asked)++;
		}
	}
	if (rc == 0 && reqs.n)
		rc = mig_io_write_full(fd, reqs.buf, mig_req_batch_bytes(&reqs));
	/* from here the fault thread asks by itself again; a fault that raced the scan
	 * may ask twice, which the source serves as any repeated request */
	if (rc == 0)
		s->dst->rp_hold = FALSE;
	g_mutex_unlock(&s->dst->rp_lock);
	return rc;
}

/* Stops the fault thread and unregisters; the statistics stay for query-migrate. */
void mig_pc_dst_stop(MigSession *s)
{
	PcDst *pc = s->dst->pc;
	guint64 one = 1;

	if (!pc || pc->uffd < 0)
		return;
	/* no placement is under way once we hold this, and none starts after */
	g_rw_lock_writer_lock(&pc->place_lock);
	pc->placing = FALSE;
	g_rw_lock_writer_unlock(&pc->place_lock);
	if (pc->fault_thread) {
		if (write(pc->quit_fd, &one, sizeof(one)) < 0) {
			/* an eventfd write cannot fail short of a bug; the join below would hang */
			g_error("eventfd write: %s", g_strerror(errno));
		}
		g_thread_join(pc->fault_thread);
		pc->fault_thread = NULL;
	}
	for (guint i = 0; i < pc->nblocks; i++)
		mig_uffd_unregister(pc->uffd, pc->blocks[i].rb->host, pc->blocks[i].rb->size);
	close(pc->uffd);
	close(pc->quit_fd);
	pc->uffd = pc->quit_fd = -1;
}

void mig_pc_dst_free(MigSession *s)
{
	PcDst *pc = s->dst->pc;

	if (!pc)
		return;
	mig_pc_dst_stop(s);
	/* only now: a lane may still have been placing (and reading these) until it was
	 * joined, which the session does before freeing us */
	for (guint i = 0; i < pc->nblocks; i++) {
		g_free(pc->blocks[i].requested);
		g_free(pc->blocks[i].t_fault);
	}
	g_free(pc->zero);
	for (int i = 0; i < 3; i++)
		g_array_free(pc->samples[i], TRUE);
	mig_blocktime_free(pc->bt);
	mig_discarder_free(pc->discarder);
	g_free(pc->blocks);
	g_mutex_clear(&pc->stat_lock);
	g_rw_lock_clear(&pc->place_lock);
	g_free(pc);
	s->dst->pc = NULL;
}

static int cmp_u32(gconstpointer a, gconstpointer b)
{
	guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, as mig-faultlat's: the smallest sample with at least p % of the
 * samples at or below it (n > 0). */
static guint32 nearest_rank(const guint32 *sorted, guint n, guint p)
{
	guint64 rank = ((guint64)n * p + 99) / 100;

	return sorted[MAX(rank, 1) - 1];
}

void mig_pc_dst_query(MigSession *s, MigValue *b)
{
	static const char *const cls[3] = { "4k", "2m", "1g" };
	PcDst *pc = s->dst->pc;
	guint64 placed, sum, dist[LAT_BUCKETS];
	guint32 *v[3] = { NULL, NULL, NULL };
	guint n[3] = { 0, 0, 0 };
	MigValue *arr, *lat;

	if (!pc)
		return;
	/* copy under the lock, sort outside it: placements record into these while the
	 * guest runs, and a query (migctl watch polls) must not stall them */
	g_mutex_lock(&pc->stat_lock);
	placed = pc->placed_requested;
	sum = pc->lat_sum_ns;
	memcpy(dist, pc->dist, sizeof(dist));
	for (int c = 0; c < 3; c++) {
		n[c] = pc->samples[c]->len;
		v[c] = n[c] ? g_memdup2(pc->samples[c]->data, n[c] * sizeof(guint32)) : NULL;
	}
	g_mutex_unlock(&pc->stat_lock);

	mig_value_add_int(b, "x-postcopy-requests", (gint64)__atomic_load_n(&pc->requests, __ATOMIC_RELAXED));
	/* QEMU's members, with QEMU's meaning, only with its capability (blocktime.h);
	 * mig's own view is per request, whoever waited on it */
	if (pc->bt)
		mig_blocktime_query(pc->bt, b);
	mig_value_add_int(b, "x-postcopy-request-latency", placed ? (gint64)(sum / placed) : 0);
	arr = mig_value_add_array(b, "x-postcopy-request-latency-dist");
	for (int i = 0; i < LAT_BUCKETS; i++)
		mig_value_add_int(arr, NULL, (gint64)dist[i]);
	lat = mig_value_add_object(b, "x-postcopy-latency");
	for (int c = 0; c < 3; c++) {
		MigValue *o;

		if (!n[c])
			continue;
		qsort(v[c], n[c], sizeof(guint32), cmp_u32);
		o = mig_value_add_object(lat, cls[c]);
		mig_value_add_int(o, "count", n[c]);
		mig_value_add_int(o, "p50", nearest_rank(v[c], n[c], 50));
		mig_value_add_int(o, "p90", nearest_rank(v[c], n[c], 90));
		mig_value_add_int(o, "p99", nearest_rank(v[c], n[c], 99));
		mig_value_add_int(o, "max", v[c][n[c] - 1]);
		g_free(v[c]);
	}
}
