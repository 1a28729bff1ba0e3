/* The source of a mapped-ram file migration. Each pass splits RAM into chunks (2 MiB,
 * or one huge page) that `multifd-channels` workers (one with multifd off), each with
 * its own io_uring, take in turn from a shared cursor: a worker writes a chunk's dirty
 * non-zero pages straight from guest memory at their offsets, adjacent pages and runs
 * a short gap apart in one request, and clears the present bit of a zero page instead
 * of writing it (in a short gap it writes filler there: the bitmap says absent). A page
 * dirtied again is rewritten in place, so the file never grows with dirtying. The
 * header written first has no COMPLETE flag; it gets it only after the pages, the
 * bitmaps and the guest record are on disk, so a save that fails anywhere leaves a file
 * no load accepts. */
#include "engine/src/filesave.h"
#include "engine/mapfile.h"
#include "engine/holes.h"
#include "engine/ring.h"
#include "engine/filelock.h"
#include "engine/bitmap.h"
#include "engine/device_int.h"
#include "channels/uri.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_BYTES (2u << 20)

typedef struct FileSave {
	Src *src;
	MigMapFile map;
	int fd;               /* the header, bitmaps and record: buffered */
	int dfd;              /* the pages: O_DIRECT with direct-io, else fd */
	guint64 start;        /* the URI's offset */
	gsize fill_max;       /* the longest gap written through: 0 into a hole (its zero pages take no room) */
	MigHoles *holes;      /* pages that hold nothing are zero without a read */
	gulong **present;     /* per block: the page has data in the file (atomic bits) */
	guint64 *chunk_base;  /* per block: its first chunk's number; [nblocks] = all */
	guint nworkers;
	MigRing **rings;
	guint64 next_chunk;   /* the pass's cursor (atomic) */
	GMutex err_lock;
	GError *error;        /* the first worker error */
	gboolean failed;      /* (atomic) stop taking chunks */
} FileSave;

typedef struct Worker {
	FileSave *fs;
	guint index;
	GThread *thread;
} Worker;

static gsize chunk_pages(const MigRamBlock *rb)
{
	return MAX(CHUNK_BYTES, rb->page_size) / rb->page_size;
}

static void set_present(gulong *map, gsize i, gboolean on)
{
	gulong bit = 1ul << (i % (8 * sizeof(gulong)));

	if (on)
		__atomic_fetch_or(&map[i / (8 * sizeof(gulong))], bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&map[i / (8 * sizeof(gulong))], ~bit, __ATOMIC_RELAXED);
}

/* The pages [from, to) between two data pages of one request, written through so the
 * request goes on: a page present in the file (clean in this pass) from guest memory,
 * whose current bytes are the file's or newer (then it is dirty again and rewritten
 * next pass); an absent one (zero now or before) from the ring's zero filler, without
 * touching its memory. The bitmap says which of them the file holds. */
static gboolean write_gap(FileSave *fs, MigRing *ring, guint bi, gsize from, gsize to, GError **err)
{
	MigRamBlock *rb = fs->src->blocks[bi].rb;
	gsize ps = rb->page_size;

	for (gsize i = from, j; i < to; i = j) {
		gboolean present = mig_bitmap_test(fs->present[bi], i);
		gboolean ok;

		/* pages alike in one piece: a filler piece is an iovec of its own */
		for (j = i + 1; j < to && mig_bitmap_test(fs->present[bi], j) == present; j++)
			;
		ok = present ? mig_ring_vec_add(ring, rb->host + i * ps, (j - i) * ps, TRUE, err)
			     : mig_ring_vec_fill(ring, (j - i) * ps, err);
		if (!ok)
			return FALSE;
	}
	return TRUE;
}

/* A chunk's dirty non-zero pages, each at its fixed offset: a run of them in one
 * request, and runs apart by at most fill_max bytes (MIG_RING_FILL_MAX) in one request
 * too, the gap written through (write_gap): a disk takes a request for about as long
 * as it takes that many bytes. */
static gboolean write_chunk(FileSave *fs, MigRing *ring, guint bi, guint64 chunk, GError **err)
{
	Src *src = fs->src;
	SrcBlock *b = &src->blocks[bi];
	MigStats *st = &src->s->stats;
	gsize ps = b->rb->page_size, cp = chunk_pages(b->rb);
	gsize first = chunk * cp, end = MIN(first + cp, b->npages);
	gsize last = 0, nzero = 0, ndata = 0;   /* last: one past the request's last data page */
	gboolean open = FALSE;
	guint64 base = fs->start + fs->map.blocks[bi].pages_off;

	gulong empty[CHUNK_BYTES / 4096 / MIG_BITS_PER_LONG];   /* chunk_pages() of 4 KiB pages, the most */

	/* a page never touched is zero: reading it to see would fault it in */
	if (src->zero_mode)
		mig_holes_find(fs->holes, b->rb, first, end - first, empty);
	for (gsize i = mig_bitmap_next(b->dirty, end, first); i < end; i = mig_bitmap_next(b->dirty, end, i + 1)) {
		gboolean zero = src->zero_mode && (mig_bitmap_test(empty, i - first) || mig_mem_is_zero(b->rb->host + i * ps, ps));

		set_present(fs->present[bi], i, !zero);
		if (zero) {
			nzero++;
			continue;
		}
		ndata++;
		if (open && i != last && (i - last) * ps > fs->fill_max) {
			if (!mig_ring_vec_end(ring, err))
				return FALSE;
			open = FALSE;
		}
		if (!open) {
			mig_ring_vec_begin(ring, base + i * ps, TRUE);
			open = TRUE;
		} else if (!write_gap(fs, ring, bi, last, i, err)) {
			return FALSE;
		}
		if (!mig_ring_vec_add(ring, b->rb->host + i * ps, ps, FALSE, err))
			return FALSE;
		last = i + 1;
	}
	if (open && !mig_ring_vec_end(ring, err))
		return FALSE;
	mig_atomic_add(&st->duplicate, nzero);
	mig_atomic_add(&st->normal, ndata);
	mig_atomic_add(&st->normal_bytes, ndata * ps);
	mig_atomic_add(&st->transferred, ndata * ps);
	mig_atomic_add(src->in_downtime ? &st->downtime_bytes : &st->precopy_bytes, ndata * ps);
	mig_atomic_set(&st->remaining, mig_atomic_get(&st->remaining) - MIN(mig_atomic_get(&st->remaining), (guint64)(ndata + nzero) * ps));
	return TRUE;
}

static void worker_fail(FileSave *fs, GError *e)
{
	g_mutex_lock(&fs->err_lock);
	if (!fs->error)
		fs->error = e;
	else
		g_error_free(e);
	g_mutex_unlock(&fs->err_lock);
	__atomic_store_n(&fs->failed, TRUE, __ATOMIC_RELEASE);
}

static gpointer worker_thread(gpointer opaque)
{
	Worker *w = opaque;
	FileSave *fs = w->fs;
	MigRing *ring = fs->rings[w->index];
	guint nb = fs->src->nblocks;
	GError *e = NULL;

	while (!__atomic_load_n(&fs->failed, __ATOMIC_ACQUIRE)) {
		guint64 c = __atomic_fetch_add(&fs->next_chunk, 1, __ATOMIC_RELAXED);
		guint bi = 0;

		if (c >= fs->chunk_base[nb])
			break;
		if (mig_src_cancelled(fs->src)) {
			g_set_error(&e, MIG_ERROR, ECANCELED, "migration cancelled");
			break;
		}
		while (c >= fs->chunk_base[bi + 1])
			bi++;
		if (!write_chunk(fs, ring, bi, c - fs->chunk_base[bi], &e))
			break;
	}
	/* every write of the pass is done (or failed) before the pass counts */
	if (!mig_ring_drain(ring, e ? NULL : &e) || e)
		worker_fail(fs, e);
	return NULL;
}

/* One pass over the dirty bitmaps; clears them afterwards (the workers only read them:
 * a page written meanwhile is already in the tracker's next collect). */
static gboolean write_pass(FileSave *fs, GError **err)
{
	Src *src = fs->src;
	Worker *w = g_newa(Worker, fs->nworkers);
	guint64 peak = 0;

	fs->next_chunk = 0;
	for (guint i = 0; i < fs->nworkers; i++) {
		char name[16];

		w[i] = (Worker){ fs, i, NULL };
		g_snprintf(name, sizeof(name), "mig/src/file/%u", i);
		w[i].thread = g_thread_new(name, worker_thread, &w[i]);
	}
	for (guint i = 0; i < fs->nworkers; i++) {
		g_thread_join(w[i].thread);
		peak = MAX(peak, mig_ring_depth_peak(fs->rings[i]));
	}
	mig_atomic_set(&src->s->stats.x_file_depth_peak, peak);
	{
		guint64 bytes = 0, requests = 0, fill = 0;

		for (guint i = 0; i < fs->nworkers; i++) {
			bytes += mig_ring_bytes(fs->rings[i]);
			requests += mig_ring_requests(fs->rings[i]);
			fill += mig_ring_fill_bytes(fs->rings[i]);
		}
		mig_atomic_set(&src->s->stats.x_file_bytes, bytes);
		mig_atomic_set(&src->s->stats.x_file_fill_bytes, fill);
		mig_atomic_set(&src->s->stats.x_file_requests, requests);
	}
	if (fs->error) {
		/* a worker's error says where in the file; this says which file */
		g_propagate_prefixed_error(err, g_steal_pointer(&fs->error), "'%s': ", src->uri.file);
		return FALSE;
	}
	for (guint bi = 0; bi < src->nblocks; bi++)
		memset(src->blocks[bi].dirty, 0, mig_bitmap_longs(src->blocks[bi].npages) * sizeof(gulong));
	src->pass++;
	return TRUE;
}

static gboolean open_file(FileSave *fs, GError **err)
{
	const MigUri *u = &fs->src->uri;

	fs->fd = mig_file_open(fs->src->s, u->file, O_WRONLY | O_CREAT, err);
	if (fs->fd < 0)
		return FALSE;
	/* an older save behind the offset is no longer there to be mistaken for this one;
	 * not while another migration reads or writes it */
	if (!mig_file_lock(fs->fd, u->file, u->offset, TRUE, err))
		return FALSE;
	if (ftruncate(fs->fd, (off_t)u->offset) < 0) {
		g_set_error(err, MIG_ERROR, errno, "cannot truncate '%s' to offset %llu: %s", u->file, u->offset, g_strerror(errno));
		return FALSE;
	}
	fs->dfd = fs->fd;
	if (fs->src->p.direct_io && (fs->dfd = mig_file_open(fs->src->s, u->file, O_WRONLY | O_DIRECT, err)) < 0)
		return FALSE;
	fs->src->s->stats.x_file_direct = fs->src->p.direct_io;
	return TRUE;
}

/* The bitmaps' and pages' region, sized up front so that a page write never extends
 * the file (which ext4 does synchronously, one writer at a time, with a journal
 * update), and allocated up front (fallocate: unwritten extents, read as zeros) so
 * that it is an overwrite: ext4 runs an O_DIRECT overwrite under the shared inode lock
 * and io_uring issues it inline, where a write into a hole allocates under the
 * exclusive lock, in an io-wq thread, one writer at a time. A file system that cannot
 * (no fallocate, or no room for the whole guest though its zero pages may leave enough)
 * gets a hole: zero pages take no space there, and a full disk fails the write that
 * meets it; no filler is written into it either (it would take room). */
static gboolean size_file(FileSave *fs, GError **err)
{
	Src *src = fs->src;
	guint64 from = fs->start + fs->map.header_len, to = fs->start + fs->map.state_off;
	int e;

	if (fallocate(fs->fd, 0, (off_t)from, (off_t)(to - from)) == 0) {
		src->s->stats.x_file_prealloc = TRUE;
		fs->fill_max = MIG_RING_FILL_MAX;
		return TRUE;
	}
	e = errno;
	mig_log(src->s, MIG_LOG_INFO, "'%s': no room allocated up front for the pages (fallocate: %s); they go into a hole",
		src->uri.file, g_strerror(e));
	/* what a failed fallocate did allocate goes, so the hole has the room it leaves */
	if (ftruncate(fs->fd, (off_t)from) < 0 || ftruncate(fs->fd, (off_t)to) < 0) {
		g_set_error(err, MIG_ERROR, errno, "cannot size '%s': %s", src->uri.file, g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

static gboolean setup(FileSave *fs, GError **err)
{
	Src *src = fs->src;
	MigSession *s = src->s;
	g_autofree guint8 *hdr = NULL;
	MigStats *st = &s->stats;

	fs->start = src->uri.offset;
	if (!open_file(fs, err))
		return FALSE;
	mig_mapf_layout(&fs->map, s->ram, s->devices->len);
	for (guint i = 0; i < s->devices->len; i++)
		g_strlcpy(fs->map.devs[i].id, ((MigDevice *)g_ptr_array_index(s->devices, i))->id, sizeof(fs->map.devs[i].id));
	memcpy(fs->map.session, s->session_id, 16);
	/* marked incomplete from the first byte on */
	hdr = mig_mapf_pack(&fs->map);
	if (!mig_mapf_pwrite(fs->fd, hdr, fs->map.header_len, fs->start, "header", err))
		return FALSE;
	if (!size_file(fs, err))
		return FALSE;
	fs->present = g_new0(gulong *, src->nblocks);
	fs->chunk_base = g_new0(guint64, src->nblocks + 1);
	for (guint bi = 0; bi < src->nblocks; bi++) {
		const MigRamBlock *rb = src->blocks[bi].rb;

		fs->present[bi] = mig_bitmap_new(src->blocks[bi].npages);
		fs->chunk_base[bi + 1] = fs->chunk_base[bi] + (src->blocks[bi].npages + chunk_pages(rb) - 1) / chunk_pages(rb);
	}
	fs->holes = mig_holes_new();
	fs->nworkers = s->caps[MIG_CAP_MULTIFD] ? (guint)src->p.multifd_channels : 1;
	fs->rings = g_new0(MigRing *, fs->nworkers);
	for (guint i = 0; i < fs->nworkers; i++)
		if (!(fs->rings[i] = mig_ring_new(fs->dfd, MIG_RING_QD, err)))
			return FALSE;
	st->x_file = TRUE;
	return TRUE;
}

/* Live passes until the dirty rest fits downtime-limit at the file's measured rate. */
static gboolean live_passes(FileSave *fs, GError **err)
{
	Src *src = fs->src;
	MigSession *s = src->s;
	MigStats *st = &s->stats;

	for (;;) {
		gint64 t0 = g_get_monotonic_time();
		guint64 todo = mig_atomic_get(&st->remaining), dirty, bw, expected;

		if (!write_pass(fs, err) || !mig_src_sync_dirty(src, &dirty, err))
			return FALSE;
		if (s->caps[MIG_CAP_EVENTS])
			mig_emit(s, &(MigEvent){ .type = MIG_EVENT_MIGRATION_PASS, .pass = mig_atomic_get(&st->dirty_sync_count) });
		bw = MAX(todo * G_USEC_PER_SEC / (guint64)MAX(g_get_monotonic_time() - t0, 1), 1u);
		if (todo >= (4u << 20) || !mig_atomic_get(&st->bandwidth))
			mig_atomic_set(&st->bandwidth, bw);
		expected = dirty * 1000 / MAX(mig_atomic_get(&st->bandwidth), 1u);
		mig_atomic_set(&st->expected_downtime, expected);
		if (expected <= __atomic_load_n(&s->params.downtime_limit, __ATOMIC_RELAXED))
			return TRUE;
		if (mig_src_cancelled(src)) {
			g_set_error(err, MIG_ERROR, ECANCELED, "migration cancelled");
			return FALSE;
		}
	}
}

/* A stopped device's whole state, read out of its stop-copy fd (the guest is stopped:
 * the device, already stopped with it, has nothing more to change). */
static GBytes *device_state(MigDevice *d, GError **err)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	int fd = -1;

	if (!mig_device_set_state(d, MIG_DEV_STOP, NULL, err) || !mig_device_set_state(d, MIG_DEV_STOP_COPY, &fd, err))
		return NULL;
	for (;;) {
		guint8 chunk[64 << 10];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			g_set_error(err, MIG_ERROR, errno, "reading device '%s': %s", d->id, g_strerror(errno));
			break;
		}
		if (!n)
			break;
		if (buf->len + (guint64)n > MIG_MAPF_MAX_DEV_STATE) {
			g_set_error(err, MIG_ERROR, EFBIG, "device '%s' has more state than a mapped-ram file holds (%llu bytes)",
				    d->id, (unsigned long long)MIG_MAPF_MAX_DEV_STATE);
			break;
		}
		g_byte_array_append(buf, chunk, (guint)n);
	}
	close(fd);
	if ((err && *err) || !mig_device_set_state(d, MIG_DEV_STOP, NULL, err))
		return NULL;
	d->bytes = buf->len;
	return g_byte_array_free_to_bytes(g_steal_pointer(&buf));
}

/* The device lane of a file save: every device's state is read out at once, one
 * thread per device (a slow device holds up only itself); the regions follow from
 * the lengths, and then each device's thread writes its own region. */
typedef struct DevSave {
	FileSave *fs;
	GBytes **state;       /* per device */
} DevSave;

static gboolean dev_read(MigDevice *d, guint i, gpointer opaque, GError **err)
{
	DevSave *ds = opaque;
	gint64 t0 = g_get_monotonic_time();

	ds->state[i] = device_state(d, err);
	d->save_us = g_get_monotonic_time() - t0;
	if (ds->state[i])
		mig_mapf_sha256(g_bytes_get_data(ds->state[i], NULL), g_bytes_get_size(ds->state[i]), ds->fs->map.devs[i].sha);
	return ds->state[i] != NULL;
}

static gboolean dev_write(MigDevice *d, guint i, gpointer opaque, GError **err)
{
	DevSave *ds = opaque;
	FileSave *fs = ds->fs;
	const MigMapDev *md = &fs->map.devs[i];

	(void)d;
	if (!mig_mapf_pwrite(fs->fd, g_bytes_get_data(ds->state[i], NULL), md->len, fs->start + md->off, "device state", err))
		return FALSE;
	mig_atomic_add(&fs->src->s->stats.x_file_bytes, md->len);
	return TRUE;
}

static gboolean save_devices(FileSave *fs, GBytes *state, GError **err)
{
	MigSession *s = fs->src->s;
	guint n = s->devices->len;
	g_autofree GBytes **all = g_new0(GBytes *, MAX(n, 1u));
	g_autofree guint64 *lens = g_new0(guint64, MAX(n, 1u));
	DevSave ds = { fs, all };
	gint64 read_us = 0, write_us = 0;
	gboolean ok;

	ok = mig_devices_parallel(s->devices, "mig/src/save/", dev_read, &ds, &read_us, err);
	if (ok) {
		for (guint i = 0; i < n; i++)
			lens[i] = g_bytes_get_size(all[i]);
		mig_mapf_set_lengths(&fs->map, g_bytes_get_size(state), lens);
		ok = mig_devices_parallel(s->devices, "mig/src/save/", dev_write, &ds, &write_us, err);
	}
	s->stats.x_file_devices_us = n ? read_us + write_us : 0;
	for (guint i = 0; i < n; i++)
		if (all[i])
			g_bytes_unref(all[i]);
	return ok;
}

/* fdatasync, or the test's failure in its place (MigSession.test_file_sync); -errno */
static int sync_file(FileSave *fs, int fd, const char *what)
{
	MigSession *s = fs->src->s;
	int rc = s->test_file_sync ? s->test_file_sync(s, what) : 0;

	return rc ? rc : fdatasync(fd) < 0 ? -errno : 0;
}

/* Guest stopped: the last dirty pages, then everything that makes the file loadable,
 * each step on disk before the next; the COMPLETE flag last. */
static gboolean stop_and_copy(FileSave *fs, GError **err)
{
	Src *src = fs->src;
	MigSession *s = src->s;
	g_autoptr(GBytes) state = NULL;
	g_autofree guint8 *hdr = NULL;
	guint64 dirty;
	int rc;

	if (!mig_src_stop_vm(src, err) || !mig_src_sync_dirty(src, &dirty, err) || !write_pass(fs, err))
		return FALSE;
	s->stats.t_ram_done = g_get_monotonic_time();
	if ((rc = sync_file(fs, fs->dfd, "pages")) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "flushing the pages to '%s': %s", src->uri.file, g_strerror(-rc));
		return FALSE;
	}
	state = s->vm->save_state(s->vm_opaque, err);
	if (!state)
		return FALSE;
	if (g_bytes_get_size(state) > MIG_MAPF_MAX_STATE) {
		g_set_error(err, MIG_ERROR, EFBIG, "the guest record has %zu bytes, more than a mapped-ram file holds (%u)",
			    g_bytes_get_size(state), MIG_MAPF_MAX_STATE);
		return FALSE;
	}
	if (!save_devices(fs, state, err))
		return FALSE;
	mig_mapf_sha256(g_bytes_get_data(state, NULL), fs->map.state_len, fs->map.state_sha);
	for (guint bi = 0; bi < src->nblocks; bi++) {
		MigMapBlock *mb = &fs->map.blocks[bi];
		g_autofree guint8 *bm = g_malloc0(MAX(mb->bitmap_len, 1u));

		mig_mapf_bitmap_pack(fs->present[bi], src->blocks[bi].npages, bm);
		mig_mapf_sha256(bm, mb->bitmap_len, mb->bitmap_sha);
		if (!mig_mapf_pwrite(fs->fd, bm, mb->bitmap_len, fs->start + mb->bitmap_off, "page bitmap", err))
			return FALSE;
	}
	if (!mig_mapf_pwrite(fs->fd, g_bytes_get_data(state, NULL), fs->map.state_len, fs->start + fs->map.state_off,
			     "guest record", err))
		return FALSE;
	if ((rc = sync_file(fs, fs->fd, "guest record")) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "flushing '%s': %s", src->uri.file, g_strerror(-rc));
		return FALSE;
	}
	fs->map.flags = MIG_MAPF_F_COMPLETE;
	hdr = mig_mapf_pack(&fs->map);
	if (!mig_mapf_pwrite(fs->fd, hdr, fs->map.header_len, fs->start, "header", err))
		return FALSE;
	if ((rc = sync_file(fs, fs->fd, "header")) < 0) {
		g_set_error(err, MIG_ERROR, -rc, "flushing the header of '%s': %s", src->uri.file, g_strerror(-rc));
		/* the page cache keeps the COMPLETE header whatever reached the disk, and a load
		 * on this host reads it there while the source's guest resumes: it says
		 * incomplete again (on disk too if this one lands) */
		fs->map.flags = 0;
		g_free(hdr);
		hdr = mig_mapf_pack(&fs->map);
		if (!mig_mapf_pwrite(fs->fd, hdr, fs->map.header_len, fs->start, "header", NULL))
			mig_log(s, MIG_LOG_WARNING, "'%s' may still load: its header could not be marked incomplete again",
				src->uri.file);
		return FALSE;
	}
	mig_atomic_add(&s->stats.x_file_bytes, fs->map.header_len + fs->map.state_len);
	s->stats.downtime_us = g_get_monotonic_time() - s->stats.t_stop;
	return TRUE;
}

gboolean mig_file_src_run(Src *src, GError **err)
{
	MigSession *s = src->s;
	FileSave fs = { .src = src, .fd = -1, .dfd = -1 };
	gboolean ok;

	g_mutex_init(&fs.err_lock);
	ok = setup(&fs, err);
	if (ok) {
		g_mutex_lock(&s->lock);
		s->stats.t_setup_done = g_get_monotonic_time();
		if (!s->cancel)
			mig_set_status_locked(s, MIG_STATUS_ACTIVE);
		g_mutex_unlock(&s->lock);
		ok = live_passes(&fs, err) && stop_and_copy(&fs, err);
	}
	/* the guest resumes after a failure (migrate.c) when it ran before: so do its devices */
	for (guint i = 0; !ok && src->vm_was_running && i < s->devices->len; i++) {
		MigDevice *d = g_ptr_array_index(s->devices, i);
		g_autoptr(GError) e = NULL;

		if (d->state != MIG_DEV_RUNNING && (d->state == MIG_DEV_STOP || mig_device_set_state(d, MIG_DEV_STOP, NULL, &e)) &&
		    !mig_device_set_state(d, MIG_DEV_RUNNING, NULL, &e))
			mig_log(s, MIG_LOG_WARNING, "%s", e->message);
	}
	for (guint i = 0; fs.rings && i < fs.nworkers; i++)
		mig_ring_free(fs.rings[i]);
	g_free(fs.rings);
	for (guint bi = 0; fs.present && bi < src->nblocks; bi++)
		g_free(fs.present[bi]);
	g_free(fs.present);
	g_free(fs.chunk_base);
	mig_holes_free(fs.holes);
	mig_mapf_clear(&fs.map);
	if (fs.dfd >= 0 && fs.dfd != fs.fd)
		close(fs.dfd);
	mig_file_close(fs.fd, src->uri.offset);
	g_clear_error(&fs.error);
	g_mutex_clear(&fs.err_lock);
	return ok;
}
