/* The destination of a mapped-ram file migration. Nothing reaches the guest before the
 * whole file is checked: the header against this guest's RAM blocks (names, sizes, page
 * sizes, the one layout they allow), the file's length, every bitmap's and the guest
 * record's SHA-256. Then `multifd-channels` workers (one with multifd off), each with an
 * io_uring, take chunks from a shared cursor and read the present pages of each chunk
 * straight into guest memory, adjacent pages (and runs a short gap apart) in one
 * request; absent pages are zero and fresh guest memory already is, so they cost no
 * I/O of their own. With postcopy-ram the guest runs
 * first (lazy restore): faults are served from the file by postcopy's fault thread
 * (lazy_fetch) while the workers prefetch the rest through userfaultfd. */
#include "engine/dst/fileload.h"
#include "engine/dst/devlane.h"
#include "engine/dst/start.h"
#include "engine/dst/postcopy.h"
#include "engine/dst/diskcpu.h"
#include "engine/mapfile.h"
#include "engine/ring.h"
#include "engine/filelock.h"
#include "engine/bitmap.h"
#include "engine/device_int.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <limits.h>

#define CHUNK_BYTES (2u << 20)
/* Lazy restore: after a fault, the prefetch stays at a fault's pace this long (faults
 * come in streams: a vCPU that faulted once touches more), with one request of at most
 * FAULT_PACE_IO bytes in flight: a fault's read then waits behind that much at most,
 * not behind every worker's queue (docs/design.md, Migration to a file). */
#define FAULT_QUIET_US 20000
#define FAULT_PACE_IO (128u << 10)
/* Lazy restore: the longest a paced prefetch request waits for a fault's read (2 ms) */
#define FAULT_HOLD_NS 2000000L
/* Lazy restore: the faults' reads timed, at most this many (4 MiB) */
#define FAULT_READ_SAMPLES (1u << 20)
/* Lazy restore, paused: how often a parked worker and mig/dst/file look at what the
 * pause's condition does not signal (a failure elsewhere, mf_quit) */
#define PAUSE_POLL_MS 100
/* migrate-recover: the longest it waits for a pause's file to be closed (the fault's
 * or a worker's read still out) */
#define RECOVER_WAIT_MS 5000

typedef struct FileLoad {
	MigSession *s;
	MigUri u;
	MigMapFile map;
	int fd, dfd;
	gulong **present;
	guint64 *chunk_base;
	guint nworkers;
	MigRing **rings;
	guint64 next_chunk;
	GMutex err_lock;
	GError *error;
	gboolean failed;
	gsize max_chunk;      /* lazy: bytes of the largest chunk */
	GPtrArray *dev_state; /* GBytes per device, checked, until loaded */
	gboolean lazy;        /* postcopy-ram: the guest runs first, pages come through userfaultfd */
	guint8 *fault_buf;    /* lazy: the fault thread's page, aligned for O_DIRECT */
	gint faulting;        /* lazy: faults being read now (atomic) */
	gint64 fault_end_us;  /* lazy: when the last one was placed (atomic) */
	gint fault_reading;   /* lazy: 1 while a fault's read is at the disk, 2 if a worker waits for its end (futex) */
	GArray *fault_read_us; /* lazy: guint32 per fault, its read alone; the fault thread's until postcopy stops */
	gboolean fault_pin;   /* lazy: the fault thread moves to fault_cpus at its first fault (then FALSE; its own) */
	cpu_set_t fault_cpus; /* lazy: where the disk's completions arrive (engine/dst/diskcpu.h) */
	guint64 depth_peak;   /* the rings', those a pause freed too */
	/* lazy: a pause (the file failed, or migrate-pause) and its recovery; under s->lock
	 * with s->dst->recover_cond, paused and fetch_paused read atomically too */
	gboolean paused;      /* the workers park; cleared when a recovery served the pending faults */
	gboolean fetch_paused; /* the fault thread reads nothing: a fault's page stays asked for */
	gboolean closed;      /* paused, no read out, the file closed and its lock let go */
	guint parked, exited; /* workers waiting out a pause; workers done */
	int new_fd, new_dfd;  /* migrate-recover's file, checked and locked, for mig/dst/file (-1: none) */
	MigUri new_u;
} FileLoad;

typedef struct Worker {
	FileLoad *fl;
	guint index;
	GThread *thread;
	guint8 *buf;          /* lazy: a chunk read here before it is placed */
	gboolean throttled;   /* lazy: its ring is at the faults' pace (make_room) */
	gboolean read_failed; /* lazy: the last chunk's error was the file's, not a placement's */
} Worker;

static gboolean quitting(FileLoad *fl)
{
	return __atomic_load_n(&fl->s->dst->mf_quit, __ATOMIC_ACQUIRE) || __atomic_load_n(&fl->failed, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&fl->s->dst->quit, __ATOMIC_ACQUIRE);
}

/* Under s->lock: postcopy-paused with why as error-desc (lazy_pause). */
static void pause_locked(FileLoad *fl, const char *why)
{
	MigSession *s = fl->s;

	__atomic_store_n(&fl->fetch_paused, TRUE, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fl->paused, TRUE, __ATOMIC_SEQ_CST);
	g_free(s->error);
	s->error = g_strdup(why);
	mig_log(s, MIG_LOG_WARNING, "lazy restore paused: %s", why);
	mig_set_status_locked(s, MIG_STATUS_POSTCOPY_PAUSED);
	g_cond_broadcast(&s->dst->recover_cond);
}

/* Lazy restore: the file failed (why: a read's error) or migrate-pause. Status
 * postcopy-paused with why as error-desc; the fault thread reads no more (a fault's
 * page stays asked for and its vCPU waits), the workers park, and mig/dst/file closes
 * the file once no read is out (supervise). FALSE when the restore does not run any
 * more (failed, or done): the caller fails as before. */
static gboolean lazy_pause(FileLoad *fl, const char *why)
{
	MigSession *s = fl->s;
	gboolean ok;

	g_mutex_lock(&s->lock);
	ok = s->status == MIG_STATUS_ACTIVE || mig_status_is_postcopy_run(s->status);
	/* paused already (recover-setup too): the first cause stands; a recovery's
	 * postcopy-recover is paused again */
	if (ok && s->status != MIG_STATUS_POSTCOPY_PAUSED && s->status != MIG_STATUS_POSTCOPY_RECOVER_SETUP)
		pause_locked(fl, why);
	g_mutex_unlock(&s->lock);
	return ok;
}

static gsize chunk_pages(const MigRamBlock *rb)
{
	return MAX(CHUNK_BYTES, rb->page_size) / rb->page_size;
}

/* A device's data fd is a pipe, not a socket. */
static int write_all(int fd, const guint8 *p, gsize len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (gsize)n;
	}
	return 0;
}

/* One device takes its state (already checked) in its resuming state; its verdict
 * comes when it stops, before the guest may run. */
static gboolean load_device(MigDevice *d, guint i, gpointer opaque, GError **err)
{
	FileLoad *fl = opaque;
	GBytes *b = g_ptr_array_index(fl->dev_state, i);
	gint64 t0 = g_get_monotonic_time();
	int fd = -1, rc;

	if (!mig_device_set_state(d, MIG_DEV_RESUMING, &fd, err))
		return FALSE;
	rc = write_all(fd, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
	close(fd);
	if (rc < 0) {
		g_set_error(err, MIG_ERROR, -rc, "loading device '%s': %s", d->id, g_strerror(-rc));
		return FALSE;
	}
	if (!mig_device_set_state(d, MIG_DEV_STOP, NULL, err))
		return FALSE;
	d->bytes = g_bytes_get_size(b);
	d->load_us = g_get_monotonic_time() - t0;
	return TRUE;
}

/* The device lane of a file load: every device loads at once, one thread each, from
 * its own region (read and checked with the rest of the file). */
static gboolean load_devices(FileLoad *fl, GError **err)
{
	gint64 us = 0;
	gboolean ok = mig_devices_parallel(fl->s->devices, "mig/dst/load/", load_device, fl, &us, err);

	if (fl->s->devices->len)
		fl->s->stats.x_file_devices_us = us;
	return ok;
}

/* Lazy restore: a prefetch request sent while a fault's read is at the disk holds that
 * read up: traced, this (virtio) disk then completed the read nearly with the request
 * that followed it (5 µs before it at p50), 76-93 µs after it was sent against 52-64
 * when nothing followed. So the paced prefetch sends its next request only once the
 * fault's read is back (docs/design.md, Migration to a file). */
static void fault_read_end(FileLoad *fl)
{
	if (__atomic_exchange_n(&fl->fault_reading, 0, __ATOMIC_SEQ_CST) == 2)
		syscall(SYS_futex, &fl->fault_reading, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* A worker, before its next paced request: until the fault's read in flight, if any,
 * is back, at most FAULT_HOLD_NS (a read that long is the disk's trouble, not the
 * prefetch's). */
static void wait_fault_read(FileLoad *fl)
{
	gint v = __atomic_load_n(&fl->fault_reading, __ATOMIC_SEQ_CST);
	struct timespec ts = { 0, FAULT_HOLD_NS };

	if (!v)
		return;
	if (v == 1 && !__atomic_compare_exchange_n(&fl->fault_reading, &v, 2, FALSE, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) && !v)
		return;
	syscall(SYS_futex, &fl->fault_reading, FUTEX_WAIT_PRIVATE, 2, &ts, NULL, 0);
}

/* Lazy restore: a vCPU faulted on a page not placed yet. Its offset is known, so one
 * read at queue depth 1 serves it, on the fault thread itself: ahead of any prefetch. */
static int lazy_fetch(gpointer opaque, guint bi, gsize page)
{
	FileLoad *fl = opaque;
	MigRamBlock *rb = g_ptr_array_index(fl->s->ram, bi);
	g_autoptr(GError) e = NULL;
	gint64 t0;
	gboolean ok;
	int rc = 0;

	if (fl->fault_pin) {
		/* here, the fault thread's own: the disk's completion wakes it without a
		 * cross-CPU wake-up (docs/design.md, Migration to a file); not fatal */
		fl->fault_pin = FALSE;
		if (sched_setaffinity(0, sizeof(fl->fault_cpus), &fl->fault_cpus) < 0)
			mig_log(fl->s, MIG_LOG_WARNING, "lazy restore: the fault thread stays where it was: sched_setaffinity: %s",
				g_strerror(errno));
	}
	/* before the pause is looked at: mig/dst/file closes the file only when it saw
	 * the pause and no fault reading (both seq-cst) */
	__atomic_add_fetch(&fl->faulting, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fl->fetch_paused, __ATOMIC_SEQ_CST)) {
		/* the page stays asked for, its vCPU waits: a recovery serves it first */
		__atomic_sub_fetch(&fl->faulting, 1, __ATOMIC_SEQ_CST);
		return 0;
	}
	__atomic_store_n(&fl->fault_reading, 1, __ATOMIC_SEQ_CST);
	t0 = g_get_monotonic_time();
	ok = mig_mapf_pread(fl->dfd, fl->fault_buf, rb->page_size,
			    fl->u.offset + fl->map.blocks[bi].pages_off + (guint64)page * rb->page_size, "faulted page", &e);
	fault_read_end(fl);
	if (ok) {
		/* the read apart from the rest of the fault (x-file fault-read-*): what the
		 * disk's queue costs a fault, against a raw read's */
		guint32 us = (guint32)MIN(g_get_monotonic_time() - t0, (gint64)G_MAXUINT32);

		if (fl->fault_read_us->len < FAULT_READ_SAMPLES)
			g_array_append_val(fl->fault_read_us, us);
		mig_atomic_add(&fl->s->stats.x_file_fault_reads, 1);
	}
	if (!ok) {
		g_autofree char *why = g_strdup_printf("lazy restore of '%s': %s", fl->u.file, e->message);

		if (!lazy_pause(fl, why)) {
			mig_session_report_error(fl->s, "%s", why);
			rc = -(e->code ? e->code : EIO);
		}
	} else if (!mig_pc_dst_place(fl->s, bi, page, fl->fault_buf, &e)) {
		mig_session_report_error(fl->s, "lazy restore of '%s': %s", fl->u.file, e->message);
		rc = -(e->code ? e->code : EIO);
	} else {
		mig_atomic_add(&fl->s->stats.x_file_bytes, rb->page_size);
	}
	__atomic_store_n(&fl->fault_end_us, g_get_monotonic_time(), __ATOMIC_RELEASE);
	__atomic_sub_fetch(&fl->faulting, 1, __ATOMIC_SEQ_CST);
	return rc;
}

static gint cmp_u32(gconstpointer a, gconstpointer b)
{
	guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;

	return x < y ? -1 : x > y;
}

static gboolean faults_near(FileLoad *fl)
{
	return __atomic_load_n(&fl->faulting, __ATOMIC_SEQ_CST) ||
	       g_get_monotonic_time() - __atomic_load_n(&fl->fault_end_us, __ATOMIC_ACQUIRE) < FAULT_QUIET_US;
}

/* Before a prefetch request: while faults come, one worker prefetches, one small
 * request at a time, and the others wait; else every worker at full depth. */
static void make_room(FileLoad *fl, Worker *w, MigRing *ring)
{
	gboolean near = faults_near(fl);

	while (near && w->index > 0 && !quitting(fl)) {
		g_usleep(1000);
		near = faults_near(fl);
	}
	if (near != w->throttled) {
		mig_ring_throttle(ring, near ? 1 : MIG_RING_QD, near ? FAULT_PACE_IO : MIG_RING_MAX_IO);
		w->throttled = near;
	}
}

/* Lazy restore's prefetch: the chunk's present pages not placed yet, read into the
 * worker's buffer and placed whole through userfaultfd (a page a fault placed
 * meanwhile is left alone). */
static gboolean prefetch_chunk(FileLoad *fl, Worker *w, MigRing *ring, guint bi, guint64 chunk, GError **err)
{
	MigSession *s = fl->s;
	MigRamBlock *rb = g_ptr_array_index(s->ram, bi);
	gsize ps = rb->page_size, cp = chunk_pages(rb), npages = mig_ram_block_pages(rb);
	gsize first = chunk * cp, end = MIN(first + cp, npages), run = 0, nrun = 0;
	guint64 base = fl->u.offset + fl->map.blocks[bi].pages_off;
	gulong *want = mig_bitmap_new(cp);
	gboolean ok = TRUE;

	for (gsize i = first; i < end; i++)
		if (mig_bitmap_test(fl->present[bi], i) && !mig_bitmap_test(s->dst->received[bi], i))
			mig_bitmap_set(want, i - first);
	/* into the worker's buffer: a short gap is read with the runs around it (see
	 * read_chunk), its bytes never placed */
	for (gsize k = mig_bitmap_next(want, end - first, 0); ok; k = mig_bitmap_next(want, end - first, k + 1)) {
		if (nrun && (k >= end - first || (k - run - nrun) * ps > MIG_RING_FILL_MAX)) {
			make_room(fl, w, ring);
			if (w->throttled) {
				/* a request at a time, each sent when no fault's read is out */
				for (gsize o = 0; ok && o < nrun * ps; o += FAULT_PACE_IO) {
					ok = mig_ring_reserve(ring, err);
					if (ok)
						wait_fault_read(fl);
					ok = ok && mig_ring_read(ring, w->buf + run * ps + o, MIN(nrun * ps - o, FAULT_PACE_IO),
								 base + (first + run) * ps + o, err);
				}
			} else {
				ok = mig_ring_read(ring, w->buf + run * ps, nrun * ps, base + (first + run) * ps, err);
			}
			nrun = 0;
		}
		if (k >= end - first)
			break;
		if (!nrun)
			run = k;
		nrun = k + 1 - run;
	}
	ok = ok && mig_ring_drain(ring, err);
	w->read_failed = !ok;
	/* a run of adjacent pages in one UFFDIO_COPY: page by page (a system call each),
	 * placing took about a quarter of a paced worker's time, its disk idle meanwhile */
	for (gsize k = mig_bitmap_next(want, end - first, 0); ok && k < end - first;) {
		gsize e = k + 1;

		while (e < end - first && mig_bitmap_test(want, e))
			e++;
		ok = mig_pc_dst_place_run(s, bi, first + k, e - k, w->buf + k * ps, err);
		k = mig_bitmap_next(want, end - first, e);
	}
	g_free(want);
	return ok;
}

/* A chunk's present pages read straight into guest memory, a run in one request and
 * runs apart by at most MIG_RING_FILL_MAX bytes in one request too, the gap read into
 * the ring's discard filler: an absent page's bytes in the file may be stale (a page
 * that was data in an earlier pass) and never reach the guest, whose fresh memory is
 * already zero there. */
static gboolean read_chunk(FileLoad *fl, MigRing *ring, guint bi, guint64 chunk, GError **err)
{
	MigRamBlock *rb = g_ptr_array_index(fl->s->ram, bi);
	gsize ps = rb->page_size, cp = chunk_pages(rb), npages = mig_ram_block_pages(rb);
	gsize first = chunk * cp, end = MIN(first + cp, npages), last = 0;
	guint64 base = fl->u.offset + fl->map.blocks[bi].pages_off;
	gboolean open = FALSE;

	for (gsize i = mig_bitmap_next(fl->present[bi], end, first); i < end; i = mig_bitmap_next(fl->present[bi], end, i + 1)) {
		if (open && i != last && (i - last) * ps > MIG_RING_FILL_MAX) {
			if (!mig_ring_vec_end(ring, err))
				return FALSE;
			open = FALSE;
		}
		if (!open) {
			mig_ring_vec_begin(ring, base + i * ps, FALSE);
			open = TRUE;
		} else if (i != last && !mig_ring_vec_fill(ring, (i - last) * ps, err)) {
			return FALSE;
		}
		if (!mig_ring_vec_add(ring, rb->host + i * ps, ps, FALSE, err))
			return FALSE;
		last = i + 1;
	}
	return !open || mig_ring_vec_end(ring, err);
}

/* Lazy restore, paused: the worker waits here (no I/O, its ring freed under it) for a
 * recovery, which gave it a new ring, or the end (FALSE). */
static gboolean park(FileLoad *fl, Worker *w)
{
	MigSession *s = fl->s;

	if (!__atomic_load_n(&fl->paused, __ATOMIC_SEQ_CST))
		return TRUE;
	g_mutex_lock(&s->lock);
	fl->parked++;
	g_cond_broadcast(&s->dst->recover_cond);
	while (fl->paused && !quitting(fl))
		g_cond_wait_until(&s->dst->recover_cond, &s->lock, g_get_monotonic_time() + PAUSE_POLL_MS * G_TIME_SPAN_MILLISECOND);
	fl->parked--;
	g_mutex_unlock(&s->lock);
	w->throttled = FALSE;   /* a new ring is at full depth */
	return !quitting(fl);
}

/* Lazy restore: the worker's read of the file failed (e): the restore pauses, and the
 * chunk is read again once recovered. FALSE when it cannot pause (it fails). */
static gboolean pause_on_read(FileLoad *fl, MigRing *ring, GError **e)
{
	g_autofree char *why = g_strdup_printf("lazy restore of '%s': %s", fl->u.file, (*e)->message);

	mig_ring_drain(ring, NULL);   /* nothing in flight when the pause frees the ring */
	if (!lazy_pause(fl, why))
		return FALSE;
	g_clear_error(e);
	return TRUE;
}

static gpointer worker_thread(gpointer opaque)
{
	Worker *w = opaque;
	FileLoad *fl = w->fl;
	guint nb = fl->s->ram->len;
	GError *e = NULL;
	guint64 c = G_MAXUINT64;   /* else a chunk whose read failed, read again after the pause */
	MigRing *ring;

	while (!quitting(fl)) {
		guint bi = 0;

		if (fl->lazy && !park(fl, w))
			break;
		ring = fl->rings[w->index];
		if (c == G_MAXUINT64)
			c = __atomic_fetch_add(&fl->next_chunk, 1, __ATOMIC_RELAXED);
		if (c >= fl->chunk_base[nb])
			break;
		while (c >= fl->chunk_base[bi + 1])
			bi++;
		if (fl->lazy ? prefetch_chunk(fl, w, ring, bi, c - fl->chunk_base[bi], &e)
			     : read_chunk(fl, ring, bi, c - fl->chunk_base[bi], &e)) {
			c = G_MAXUINT64;
			continue;
		}
		if (!fl->lazy || !w->read_failed || !pause_on_read(fl, ring, &e))
			break;
	}
	if (!e && quitting(fl) && !__atomic_load_n(&fl->failed, __ATOMIC_ACQUIRE))
		g_set_error(&e, MIG_ERROR, ECANCELED, "the incoming migration was stopped");
	ring = fl->rings[w->index];   /* NULL: a pause freed it */
	if ((ring && !mig_ring_drain(ring, e ? NULL : &e)) || e) {
		g_mutex_lock(&fl->err_lock);
		if (!fl->error)
			fl->error = g_steal_pointer(&e);
		g_mutex_unlock(&fl->err_lock);
		g_clear_error(&e);
		__atomic_store_n(&fl->failed, TRUE, __ATOMIC_RELEASE);
	}
	g_mutex_lock(&fl->s->lock);
	fl->exited++;
	g_cond_broadcast(&fl->s->dst->recover_cond);
	g_mutex_unlock(&fl->s->lock);
	return NULL;
}

/* *fd read-locked, and *dfd for the pages (the same, or O_DIRECT with direct-io); on
 * failure what was opened is left in them for the caller to close. */
static gboolean open_file(MigSession *s, const MigUri *u, int *fd, int *dfd, GError **err)
{
	*dfd = *fd = mig_file_open(s, u->file, O_RDONLY, err);
	if (*fd < 0)
		return FALSE;
	/* held until every page is in (a lazy restore reads the file for seconds) */
	if (!mig_file_lock(*fd, u->file, u->offset, FALSE, err))
		return FALSE;
	if (s->dst->p.direct_io && (*dfd = mig_file_open(s, u->file, O_RDONLY | O_DIRECT, err)) < 0)
		return FALSE;
	return TRUE;
}

static void close_file(int fd, int dfd, guint64 offset)
{
	if (dfd >= 0 && dfd != fd)
		close(dfd);
	mig_file_close(fd, offset);
}

/* The regions read next (bitmaps; guest record and devices' state, one region at the
 * file's end) asked of the disk all at once: read one after the other, each waited
 * for the disk in turn, and these reads grow with the guest (a lazy restore's start). */
static void prefetch_meta(FileLoad *fl)
{
	for (guint bi = 0; bi < fl->map.nblocks; bi++)
		posix_fadvise(fl->fd, (off_t)(fl->u.offset + fl->map.blocks[bi].bitmap_off), (off_t)fl->map.blocks[bi].bitmap_len,
			      POSIX_FADV_WILLNEED);
	posix_fadvise(fl->fd, (off_t)(fl->u.offset + fl->map.state_off), (off_t)(fl->map.file_len - fl->map.state_off),
		      POSIX_FADV_WILLNEED);
}

/* A buffer for a read that grows with the guest (the guest record: 4 MiB at 4 GiB for
 * migd's), in 2 MiB pages where the kernel gives them on request (transparent huge
 * pages "madvise"): the read's first touch then faults once per 2 MiB, not per 4 KiB,
 * and a lazy restore's guest waits for it. Freed with g_free (free). */
static guint8 *big_buf(gsize len)
{
	void *p = NULL;

	if (len < (2u << 20))
		return g_malloc(MAX(len, 1u));
	if (posix_memalign(&p, 2u << 20, len))
		g_error("out of memory for %" G_GSIZE_FORMAT " bytes of guest record", len);
	madvise(p, len, MADV_HUGEPAGE);   /* a hint: without it, 4 KiB pages */
	return p;
}

/* Everything but the pages, checked; the guest record is returned for later. */
static GBytes *check_file(FileLoad *fl, GError **err)
{
	MigSession *s = fl->s;
	g_autofree guint8 *state = NULL;
	guint8 sha[MIG_MAPF_SHA_LEN];

	if (!mig_mapf_read_header(fl->fd, fl->u.offset, s->ram, s->devices, &fl->map, err))
		return NULL;
	prefetch_meta(fl);
	fl->present = g_new0(gulong *, s->ram->len);
	fl->chunk_base = g_new0(guint64, s->ram->len + 1);
	for (guint bi = 0; bi < s->ram->len; bi++) {
		const MigRamBlock *rb = g_ptr_array_index(s->ram, bi);
		gsize npages = mig_ram_block_pages(rb);

		fl->present[bi] = mig_bitmap_new(npages);
		fl->chunk_base[bi + 1] = fl->chunk_base[bi] + (npages + chunk_pages(rb) - 1) / chunk_pages(rb);
		if (!mig_mapf_read_bitmap(fl->fd, fl->u.offset, &fl->map.blocks[bi], npages, fl->present[bi], err))
			return NULL;
	}
	if (!mig_mapf_check_tail_pads(fl->fd, fl->u.offset, &fl->map, err))
		return NULL;
	fl->dev_state = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (guint i = 0; i < fl->map.ndevs; i++) {
		const MigMapDev *md = &fl->map.devs[i];
		guint8 *buf = g_malloc(MAX(md->len, 1u));

		if (!mig_mapf_pread(fl->fd, buf, md->len, fl->u.offset + md->off, "device state", err)) {
			g_free(buf);
			return NULL;
		}
		mig_mapf_sha256(buf, md->len, sha);
		g_ptr_array_add(fl->dev_state, g_bytes_new_take(buf, md->len));
		if (memcmp(sha, md->sha, sizeof(sha))) {
			g_set_error(err, MIG_ERROR, EINVAL, "mapped-ram file refused: the state of device '%s' is damaged (checksum)",
				    md->id);
			return NULL;
		}
	}
	state = big_buf(fl->map.state_len);
	if (!mig_mapf_pread(fl->fd, state, fl->map.state_len, fl->u.offset + fl->map.state_off, "guest record", err))
		return NULL;
	mig_mapf_sha256(state, fl->map.state_len, sha);
	if (memcmp(sha, fl->map.state_sha, sizeof(sha))) {
		g_set_error(err, MIG_ERROR, EINVAL, "mapped-ram file refused: the guest record is damaged (checksum)");
		return NULL;
	}
	return g_bytes_new_take(g_steal_pointer(&state), fl->map.state_len);
}

/* A ring's counts into the restore's (x-file), before it goes: at a pause or the end. */
static void ring_account(FileLoad *fl, MigRing *r)
{
	MigSession *s = fl->s;
	guint64 bytes = mig_ring_bytes(r), fill = mig_ring_fill_bytes(r);

	fl->depth_peak = MAX(fl->depth_peak, mig_ring_depth_peak(r));
	mig_atomic_add(&s->stats.x_file_requests, mig_ring_requests(r));
	mig_atomic_add(&s->stats.x_file_fill_bytes, fill);
	mig_atomic_add(&s->stats.x_file_bytes, bytes);
	mig_atomic_add(&s->stats.transferred, bytes - fill);
}

/* Paused, no read out (every worker parked or done, no fault reading): the rings and
 * the file closed, its lock let go, so that the operator may repair or move it. */
static void close_paused(FileLoad *fl)
{
	for (guint i = 0; i < fl->nworkers; i++) {
		if (!fl->rings[i])
			continue;
		ring_account(fl, fl->rings[i]);
		mig_ring_free(g_steal_pointer(&fl->rings[i]));
	}
	close_file(fl->fd, fl->dfd, fl->u.offset);
	fl->fd = fl->dfd = -1;
	mig_log(fl->s, MIG_LOG_INFO, "lazy restore paused: '%s' closed, its lock let go; migrate-recover file: goes on",
		fl->u.file);
}

/* The pages faults asked for while paused, read from the recovered file and placed
 * before the workers go on. */
static gboolean serve_pending(FileLoad *fl, GError **err)
{
	MigSession *s = fl->s;
	gsize maxps = 0;
	guint8 *buf = NULL;
	gboolean ok = TRUE;

	for (guint bi = 0; bi < s->ram->len; bi++)
		maxps = MAX(maxps, ((MigRamBlock *)g_ptr_array_index(s->ram, bi))->page_size);
	if (posix_memalign((void **)&buf, MIG_MAPF_ALIGN, maxps))
		g_error("out of memory for a recovery's page");
	for (guint bi = 0; ok && bi < s->ram->len; bi++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, bi);
		gsize n = mig_ram_block_pages(rb);

		for (gsize p = mig_pc_dst_next_pending(s, bi, 0); ok && p < n; p = mig_pc_dst_next_pending(s, bi, p + 1)) {
			ok = mig_mapf_pread(fl->dfd, buf, rb->page_size, fl->u.offset + fl->map.blocks[bi].pages_off +
					    (guint64)p * rb->page_size, "faulted page", err) &&
			     mig_pc_dst_place(s, bi, p, buf, err);
			if (ok) {
				mig_atomic_add(&s->stats.x_file_fault_reads, 1);
				mig_atomic_add(&s->stats.x_file_bytes, rb->page_size);
			}
		}
	}
	free(buf);
	return ok;
}

/* Paused with the file closed, and migrate-recover gave a file it checked: taken, new
 * rings on it (postcopy-recover), the pending faults served, then the workers go on
 * where they stopped (postcopy-active). A read that fails meanwhile pauses again. */
static void recover(FileLoad *fl)
{
	MigSession *s = fl->s;
	g_autoptr(GError) e = NULL;
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	fl->fd = fl->new_fd;
	fl->dfd = fl->new_dfd;
	fl->u = fl->new_u;
	fl->new_fd = fl->new_dfd = -1;
	mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER);
	g_mutex_unlock(&s->lock);
	for (guint i = 0; ok && i < fl->nworkers; i++)
		ok = (fl->rings[i] = mig_ring_new(fl->dfd, MIG_RING_QD, &e)) != NULL;
	if (ok) {
		gboolean resumed;

		/* the faults from here on are the fault thread's again; those before are
		 * pending (asked for, not placed) and served here. Unless a pause came
		 * meanwhile (migrate-pause in postcopy-recover): it stands. */
		g_mutex_lock(&s->lock);
		resumed = s->status == MIG_STATUS_POSTCOPY_RECOVER;
		if (resumed)
			__atomic_store_n(&fl->fetch_paused, FALSE, __ATOMIC_SEQ_CST);
		g_mutex_unlock(&s->lock);
		ok = !resumed || serve_pending(fl, &e);
	}
	g_mutex_lock(&s->lock);
	fl->closed = FALSE;   /* paused again: closed afresh; else not paused any more */
	if (!ok && (!fl->fetch_paused || s->status == MIG_STATUS_POSTCOPY_RECOVER)) {
		/* unless a pause came first (its cause stands) */
		g_autofree char *why = g_strdup_printf("lazy restore of '%s': %s", fl->u.file, e->message);

		pause_locked(fl, why);
	} else if (!fl->fetch_paused) {
		__atomic_store_n(&fl->paused, FALSE, __ATOMIC_SEQ_CST);
		mig_log(s, MIG_LOG_INFO, "lazy restore recovered from '%s'", fl->u.file);
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_ACTIVE);
	}
	g_cond_broadcast(&s->dst->recover_cond);
	g_mutex_unlock(&s->lock);
}

/* mig/dst/file while the lazy restore's workers prefetch: waits for them, and through
 * every pause: once no read is out, the file closed (close_paused); then the file
 * migrate-recover checked is taken (recover). Ends when every worker did and nothing
 * is paused, or on a failure or the session's end. */
static void supervise(FileLoad *fl)
{
	MigSession *s = fl->s;
	Dst *d = s->dst;

	g_mutex_lock(&s->lock);
	while (!quitting(fl) && (fl->exited < fl->nworkers || fl->paused)) {
		gint64 wait_ms = PAUSE_POLL_MS;

		if (fl->paused && !fl->closed && fl->parked + fl->exited == fl->nworkers) {
			if (__atomic_load_n(&fl->faulting, __ATOMIC_SEQ_CST)) {
				wait_ms = 1;   /* a fault's read is out: it ends soon */
			} else {
				g_mutex_unlock(&s->lock);
				close_paused(fl);
				g_mutex_lock(&s->lock);
				fl->closed = TRUE;
				g_cond_broadcast(&d->recover_cond);
				continue;
			}
		} else if (fl->paused && fl->closed && fl->new_fd >= 0) {
			g_mutex_unlock(&s->lock);
			recover(fl);
			g_mutex_lock(&s->lock);
			continue;
		}
		/* not paused: a worker's end, a pause and the session's end all signal */
		if (!fl->paused)
			g_cond_wait(&d->recover_cond, &s->lock);
		else
			g_cond_wait_until(&d->recover_cond, &s->lock, g_get_monotonic_time() + wait_ms * G_TIME_SPAN_MILLISECOND);
	}
	g_mutex_unlock(&s->lock);
}

static gboolean read_pages(FileLoad *fl, GError **err)
{
	MigSession *s = fl->s;
	Worker *w;

	fl->nworkers = s->caps[MIG_CAP_MULTIFD] ? (guint)s->dst->p.multifd_channels : 1;
	fl->rings = g_new0(MigRing *, fl->nworkers);
	for (guint i = 0; i < fl->nworkers; i++)
		if (!(fl->rings[i] = mig_ring_new(fl->dfd, MIG_RING_QD, err)))
			return FALSE;
	w = g_newa(Worker, fl->nworkers);
	for (guint i = 0; i < fl->nworkers; i++) {
		char name[16];

		w[i] = (Worker){ fl, i, NULL, NULL, FALSE, FALSE };
		if (fl->lazy && posix_memalign((void **)&w[i].buf, MIG_MAPF_ALIGN, fl->max_chunk))
			g_error("out of memory for a prefetch buffer");
		g_snprintf(name, sizeof(name), "mig/dst/file/%u", i);
		w[i].thread = g_thread_new(name, worker_thread, &w[i]);
	}
	if (fl->lazy)
		supervise(fl);
	for (guint i = 0; i < fl->nworkers; i++) {
		g_thread_join(w[i].thread);
		free(w[i].buf);
		if (fl->rings[i])
			ring_account(fl, fl->rings[i]);
	}
	mig_atomic_set(&s->stats.x_file_depth_peak, fl->depth_peak);
	if (fl->error) {
		/* a worker's error says where in the file; this says which file */
		g_propagate_prefixed_error(err, g_steal_pointer(&fl->error), fl->lazy ? "lazy restore of '%s': " : "'%s': ",
					   fl->u.file);
		return FALSE;
	}
	return TRUE;
}

/* The faults' reads' p50 and p99 by nearest rank (as x-postcopy-latency's: the
 * smallest sample with at least p % at or below it), once postcopy has stopped and
 * joined the fault thread, their only writer. */
static void fault_read_pcts(FileLoad *fl, guint32 *p50, guint32 *p99)
{
	GArray *a = fl->fault_read_us;
	guint n = a->len;

	if (!n)
		return;
	g_array_sort(a, cmp_u32);
	*p50 = g_array_index(a, guint32, MAX(((guint64)n * 50 + 99) / 100, 1) - 1);
	*p99 = g_array_index(a, guint32, MAX(((guint64)n * 99 + 99) / 100, 1) - 1);
}

/* The guest, running: its vCPUs (and guest/verify) fault pages in through lazy_fetch
 * while the workers prefetch the rest in order. Pages absent from the file are zero:
 * marked received, a fault on one is placed as a zero page without I/O. */
static gboolean lazy_start(FileLoad *fl, GBytes *state, GError **err)
{
	MigSession *s = fl->s;
	gsize maxps = 0;
	gint64 t0;

	mig_dst_received_new(s);
	for (guint bi = 0; bi < s->ram->len; bi++) {
		MigRamBlock *rb = g_ptr_array_index(s->ram, bi);
		gsize npages = mig_ram_block_pages(rb);

		/* a word at a time: before the guest runs, a bit at a time cost about 1.5 ms
		 * of CPU per GiB of guest */
		for (gsize w = 0; w < mig_bitmap_longs(npages); w++)
			s->dst->received[bi][w] = ~fl->present[bi][w];
		if (npages % MIG_BITS_PER_LONG)
			s->dst->received[bi][npages / MIG_BITS_PER_LONG] &= (1ul << (npages % MIG_BITS_PER_LONG)) - 1;
		maxps = MAX(maxps, rb->page_size);
		fl->max_chunk = MAX(fl->max_chunk, chunk_pages(rb) * rb->page_size);
	}
	if (posix_memalign((void **)&fl->fault_buf, MIG_MAPF_ALIGN, maxps))
		g_error("out of memory for the fault buffer");
	{
		cpu_set_t allowed;

		/* the fault thread inherits this thread's CPUs (mig_pc_dst_listen starts it) */
		fl->fault_pin = sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
				mig_disk_irq_cpus(fl->dfd, &allowed, &fl->fault_cpus);
	}
	/* from here on a failure cannot be retried: the guest may run on what it has */
	g_mutex_lock(&s->lock);
	if (s->dst->cancelled) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "the incoming migration was cancelled");
		return FALSE;
	}
	s->dst->pc_began = TRUE;
	g_mutex_unlock(&s->lock);
	if (!mig_pc_dst_listen(s, err))
		return FALSE;
	mig_pc_dst_set_fetch(s, lazy_fetch, fl);
	if (!load_devices(fl, err))
		return FALSE;
	t0 = g_get_monotonic_time();
	if (!s->vm->load_state(s->vm_opaque, state, err))
		return FALSE;
	g_mutex_lock(&s->lock);
	s->stats.x_file_vm_load_us = MAX(g_get_monotonic_time() - t0, 1);
	/* a fault's read may have failed already (a guest record's load may touch memory) */
	mig_dst_start_guest_locked(s, fl->fetch_paused ? MIG_STATUS_POSTCOPY_PAUSED : MIG_STATUS_POSTCOPY_ACTIVE);
	s->stats.x_file_running_us = g_get_monotonic_time() - s->stats.t_start;
	g_mutex_unlock(&s->lock);
	return TRUE;
}

static gboolean load(FileLoad *fl, GError **err)
{
	MigSession *s = fl->s;
	g_autoptr(GBytes) state = NULL;
	gint64 checked;

	if (!open_file(s, &fl->u, &fl->fd, &fl->dfd, err) || !(state = check_file(fl, err)))
		return FALSE;
	s->stats.x_file_direct = s->dst->p.direct_io;
	checked = g_get_monotonic_time();
	/* a file holds the VM's state whole: no parts of an earlier migration count */
	if (s->vm_live)
		s->vm_live->load_begin(s->vm_opaque);
	g_mutex_lock(&s->lock);
	if (fl->lazy)
		s->stats.x_file_checked_us = MAX(checked - s->stats.t_start, 1);
	memcpy(s->session_id, fl->map.session, 16);   /* the saving migration's */
	mig_set_status_locked(s, MIG_STATUS_ACTIVE);
	g_mutex_unlock(&s->lock);
	if (fl->lazy) {
		guint32 p50 = 0, p99 = 0;
		gint64 all_in;

		if (!lazy_start(fl, state, err) || !read_pages(fl, err) || !mig_pc_dst_finish(s, err))
			return FALSE;
		all_in = g_get_monotonic_time() - s->stats.t_start;   /* the sort below is not the restore's */
		fault_read_pcts(fl, &p50, &p99);
		/* before completed is announced: a save to it may come next */
		mig_file_unlock(fl->fd, fl->u.offset);
		g_mutex_lock(&s->lock);
		s->stats.x_file_all_in_us = all_in;
		s->stats.x_file_fault_read_p50_us = p50;
		s->stats.x_file_fault_read_p99_us = p99;
		if (s->status != MIG_STATUS_FAILED)
			mig_set_status_locked(s, MIG_STATUS_COMPLETED);
		g_mutex_unlock(&s->lock);
		if (s->vm->incoming_done)
			s->vm->incoming_done(s->vm_opaque);
		return TRUE;
	}
	if (!read_pages(fl, err) || !load_devices(fl, err) || !s->vm->load_state(s->vm_opaque, state, err))
		return FALSE;
	mig_file_unlock(fl->fd, fl->u.offset);   /* all read: before completed is announced */
	g_mutex_lock(&s->lock);
	if (s->dst->cancelled) {   /* a cancel came first; one after this is refused */
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, ECANCELED, "the incoming migration was cancelled");
		return FALSE;
	}
	s->dst->switching = TRUE;
	mig_dst_start_guest_locked(s, MIG_STATUS_COMPLETED);
	g_mutex_unlock(&s->lock);
	if (s->vm->incoming_done)
		s->vm->incoming_done(s->vm_opaque);
	return TRUE;
}

/* After postcopy is freed (mig_dst_shutdown): a lazy restore that failed may still have
 * its fault thread reading the file until then. */
static void file_free(gpointer opaque)
{
	FileLoad *fl = opaque;

	for (guint i = 0; fl->rings && i < fl->nworkers; i++)
		mig_ring_free(fl->rings[i]);
	g_free(fl->rings);
	for (guint bi = 0; fl->present && bi < fl->s->ram->len; bi++)
		g_free(fl->present[bi]);
	g_free(fl->present);
	g_free(fl->chunk_base);
	mig_mapf_clear(&fl->map);
	close_file(fl->fd, fl->dfd, fl->u.offset);
	close_file(fl->new_fd, fl->new_dfd, fl->new_u.offset);
	g_clear_error(&fl->error);
	g_mutex_clear(&fl->err_lock);
	free(fl->fault_buf);
	g_array_free(fl->fault_read_us, TRUE);
	if (fl->dev_state)
		g_ptr_array_free(fl->dev_state, TRUE);
	g_free(fl);
}

static gpointer file_thread(gpointer opaque)
{
	FileLoad *fl = opaque;
	g_autoptr(GError) err = NULL;

	if (load(fl, &err))
		return NULL;   /* load let go of the file once it had read what it needs */
	if (!mig_dst_cancelled(fl->s)) {
		mig_session_report_error(fl->s, "%s", err->message);
		mig_session_incoming_failed(fl->s);
	}
	/* failed before its guest ran: nothing needs the file; a lazy restore that failed
	 * under its running guest keeps it (its vCPUs wait on pages in it) */
	if (!fl->lazy || !fl->s->stats.x_file_running_us)
		mig_file_unlock(fl->fd, fl->u.offset);
	return NULL;
}

gboolean mig_file_dst_start(MigSession *s, const MigUri *u, GError **err)
{
	FileLoad *fl;
	Dst *d;

	g_mutex_lock(&s->lock);
	if (s->dst || s->status != MIG_STATUS_NONE) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EBUSY, "The incoming migration has already been started");
		return FALSE;
	}
	if (s->runstate != MIG_RUN_INMIGRATE) {
		g_mutex_unlock(&s->lock);
		g_set_error(err, MIG_ERROR, EINVAL, "'-incoming' was not specified on the command line");
		return FALSE;
	}
	d = mig_dst_new(s);
	mig_params_copy(&d->p, &s->params);
	d->incoming_started = TRUE;
	s->dst = d;
	s->stats.x_file = TRUE;
	s->stats.x_file_streamed = FALSE;
	/* a retried incoming migration (after a failed one) counts afresh */
	s->stats.transferred = s->stats.x_file_bytes = s->stats.x_file_depth_peak = s->stats.x_file_requests = 0;
	s->stats.x_file_fill_bytes = 0;
	s->stats.x_file_running_us = s->stats.x_file_all_in_us = s->stats.x_file_devices_us = 0;
	s->stats.x_file_checked_us = s->stats.x_file_vm_load_us = 0;
	s->stats.x_file_fault_reads = s->stats.x_file_fault_read_p50_us = s->stats.x_file_fault_read_p99_us = 0;
	fl = g_new0(FileLoad, 1);
	fl->s = s;
	fl->u = *u;
	fl->fd = fl->dfd = fl->new_fd = fl->new_dfd = -1;
	fl->lazy = s->caps[MIG_CAP_POSTCOPY_RAM];
	fl->fault_read_us = g_array_new(FALSE, FALSE, sizeof(guint32));
	s->stats.t_start = g_get_monotonic_time();
	g_mutex_init(&fl->err_lock);
	mig_set_status_locked(s, MIG_STATUS_SETUP);
	d->file = fl;
	d->file_free = file_free;
	d->main_thread = g_thread_new("mig/dst/file", file_thread, fl);
	g_mutex_unlock(&s->lock);
	return TRUE;
}

gboolean mig_file_dst_pause(MigSession *s, GError **err)
{
	FileLoad *fl = s->dst->file;

	if (!fl->lazy || !lazy_pause(fl, "paused by migrate-pause")) {
		g_set_error(err, MIG_ERROR, EINVAL, "migrate-pause: the lazy restore does not run any more");
		return FALSE;
	}
	return TRUE;
}

gboolean mig_file_dst_recover(MigSession *s, const MigUri *u, GError **err)
{
	FileLoad *fl = s->dst->file;
	gint64 end = g_get_monotonic_time() + RECOVER_WAIT_MS * G_TIME_SPAN_MILLISECOND;
	int fd = -1, dfd = -1;
	MigMapFile m = { 0 };
	gboolean ok;

	g_mutex_lock(&s->lock);
	ok = fl->lazy && s->status == MIG_STATUS_POSTCOPY_PAUSED;
	g_mutex_unlock(&s->lock);
	if (!ok) {
		g_set_error(err, MIG_ERROR, EINVAL, "Migrate recover can only be run when postcopy is paused.");
		return FALSE;
	}
	if (u->kind != MIG_URI_FILE) {
		g_set_error(err, MIG_ERROR, EINVAL, "migrate-recover: a lazy restore takes its pages from a file; it recovers "
			    "from a file: URI of the same save, not a %s address", u->kind == MIG_URI_FD ? "fd:" :
			    u->kind == MIG_URI_TCP ? "tcp:" : "unix:");
		return FALSE;
	}
	g_mutex_lock(&s->lock);
	/* a read still out (a failing disk's) delays the close a little */
	while (s->status == MIG_STATUS_POSTCOPY_PAUSED && !fl->closed && !s->dst->quit &&
	       g_cond_wait_until(&s->dst->recover_cond, &s->lock, end))
		;
	ok = fl->lazy && s->status == MIG_STATUS_POSTCOPY_PAUSED && fl->closed && fl->new_fd < 0 && !s->dst->quit;
	if (!ok) {
		g_set_error(err, MIG_ERROR, EINVAL, s->status == MIG_STATUS_POSTCOPY_PAUSED && !fl->closed ?
			    "migrate-recover: the paused lazy restore still reads its old file (a read is out); try again" :
			    "Migrate recover can only be run when postcopy is paused.");
		g_mutex_unlock(&s->lock);
		return FALSE;
	}
	mig_set_status_locked(s, MIG_STATUS_POSTCOPY_RECOVER_SETUP);
	g_mutex_unlock(&s->lock);
	/* the same checks as the first load's header, then that it is the same save:
	 * only then may its pages go into the guest */
	ok = open_file(s, u, &fd, &dfd, err) && mig_mapf_read_header(fd, u->offset, s->ram, s->devices, &m, err) &&
	     mig_mapf_same_save(&fl->map, &m, err);
	mig_mapf_clear(&m);
	g_mutex_lock(&s->lock);
	if (ok && (s->status != MIG_STATUS_POSTCOPY_RECOVER_SETUP || s->dst->quit)) {
		g_set_error(err, MIG_ERROR, ECANCELED, "the restore ended meanwhile");
		ok = FALSE;
	}
	if (ok) {
		fl->new_fd = fd;
		fl->new_dfd = dfd;
		fl->new_u = *u;
		g_cond_broadcast(&s->dst->recover_cond);
	} else if (s->status == MIG_STATUS_POSTCOPY_RECOVER_SETUP) {
		mig_set_status_locked(s, MIG_STATUS_POSTCOPY_PAUSED);
	}
	g_mutex_unlock(&s->lock);
	if (!ok) {
		close_file(fd, dfd, u->offset);
		g_prefix_error(err, "migrate-recover: '%s' refused, the restore stays paused: ", u->file);
	}
	return ok;
}
