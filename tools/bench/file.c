/* Scenario file: save a stopped guest (anon, and hugetlb 2M with direct-io) to a
 * mapped-ram file and restore it, with 1, 2 and 4 multifd channels, with and without
 * direct-io, a guest whose data pages are scattered (half its 4K units zero, at random)
 * and one whose pages are all data (dense), and once as a streamed file (no
 * mapped-ram: the old way), against a raw write and read of the same data bytes to the
 * same file system in the same run: as many threads, each with an io_uring at mig's
 * queue depth moving 1 MiB requests (O_DIRECT for the direct rows, fdatasync as the
 * save does), and the same with pwrite/pread; then a lazy restore (postcopy-ram on
 * migrate-incoming): when the guest ran, and its 4K fault p50/p99 against a raw 4 KiB
 * O_DIRECT read at queue depth 1 of the same file, and the guest's own progress
 * meanwhile (information). The file lives under --dir
 * (default /var/tmp, not tmpfs) and is deleted after each run; the page cache is
 * dropped between save and restore of the buffered rows. */
#include "tools/bench/runner.h"
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FB_GUEST (4 * GiB)
#define FB_GUEST_QUICK ((guint64)256 << 20)
#define FB_SCATTERED "idle,zero=0.5"    /* half the units start zero, at random: not written */
#define FB_DENSE "idle"                 /* every unit data */
#define FB_BLOCK ((size_t)1 << 20)      /* mig's largest request (MIG_RING_MAX_IO) */
#define FB_QD 32u                       /* mig's requests in flight per worker (MIG_RING_QD) */
#define FB_QD1_READS 2000
/* the raw QD1 read after its CPU idled (information beside the target's baseline): a
 * VM's idle vCPU halts, and a read issued by a CPU just halted for a while completes
 * later than one right after another (docs/benchmarks.md, Scenario file) */
#define FB_IDLE_READS 500
#define FB_IDLE_US 1000
#define FB_POLL_US 5000
#define FB_TARGET_RATIO 0.9
#define FB_TARGET_RUNNING_MS 50.0
#define FB_TARGET_FAULT_X 2.0
/* the lazy restore's guest progress (information): units written this long after it ran */
static const double fb_progress_ms[] = { 500, 1000, 2000 };
#define FB_PROGRESS_N G_N_ELEMENTS(fb_progress_ms)

typedef struct FbSample {
	guint64 data_bytes;                 /* the guest's non-zero pages: the source's ram.normal-bytes */
	guint64 bytes_written, bytes_read;  /* x-file: everything the file moved */
	guint64 depth_save, depth_restore;  /* x-file queue-depth-reached */
	double save_s, restore_s;           /* wall time, command to "completed" */
	double raw_write_gbps, raw_read_gbps;   /* io_uring */
	double raw_pwrite_gbps, raw_pread_gbps; /* pwrite/pread */
} FbSample;

typedef struct FbRow {
	guint channels;
	gboolean direct;
	gboolean huge;                      /* hugetlb 2M guest, else anon */
	gboolean dense;                     /* every page data, else half of them zero at random */
	gboolean streamed;                  /* file: without mapped-ram: the old way */
	GArray *samples;                    /* FbSample */
	RowStatus status;
	char *error;
} FbRow;

typedef struct FbLazy {
	double running_ms, all_in_ms, fault_p50_us, fault_p99_us, raw_qd1_p50_us, raw_qd1_p99_us;
	RowStatus status;
	char *error;
	double checked_ms, vm_load_ms;   /* of running_ms: the file checked; the VM's load of its record */
	double read_p50_us, read_p99_us; /* of a fault: its read from the file alone (x-file fault-read-*) */
	double raw_idle_p50_us, raw_idle_p99_us; /* the raw QD1 read, each after FB_IDLE_US asleep */
	/* the guest's own progress: x-guest-writes fb_progress_ms after it ran and when every
	 * page was in; the vCPUs' wait, the faults' waits summed (requests x mean latency) */
	double units_at[FB_PROGRESS_N], units_all_in, stall_ms, faults;
} FbLazy;

#define FB_LAZY_NONE(st, e) \
	(FbLazy){ NAN, NAN, NAN, NAN, NAN, NAN, (st), (e), NAN, NAN, NAN, NAN, NAN, NAN, { NAN, NAN, NAN }, NAN, NAN, NAN }

/* ---- the raw baseline ---- */

typedef struct FbRawJob {
	const char *path;
	gboolean direct, write, uring;
	guint8 *buf;                        /* len bytes of its own, pre-touched (guest RAM is not cache-hot) */
	guint64 off, len;
	int err;                            /* errno, 0 ok */
} FbRawJob;

/* One io_uring of FB_QD entries keeping FB_QD requests of FB_BLOCK in flight over
 * [off, off + len): the shape of one of mig's file workers (MIG_RING_QD,
 * MIG_RING_MAX_IO) with nothing else in the way. An errno, 0 if all of it moved. */
static int fb_uring_move(int fd, FbRawJob *j)
{
	struct io_uring ring;
	guint64 next = 0;
	guint inflight = 0;
	int rc = io_uring_queue_init(FB_QD, &ring, 0), err = 0;

	if (rc < 0)
		return -rc;
	if ((rc = io_uring_register_files(&ring, &fd, 1)) < 0) {
		io_uring_queue_exit(&ring);
		return -rc;
	}
	while (inflight || (next < j->len && !err)) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		for (; next < j->len && !err && inflight < FB_QD; next += FB_BLOCK, inflight++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (j->write)
				io_uring_prep_write(sqe, 0, j->buf + next, FB_BLOCK, j->off + next);
			else
				io_uring_prep_read(sqe, 0, j->buf + next, FB_BLOCK, j->off + next);
			sqe->flags |= IOSQE_FIXED_FILE;
		}
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
			err = -rc;
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->res != (int)FB_BLOCK && !err)
				err = cqe->res < 0 ? -cqe->res : EIO;
			n++;
		}
		io_uring_cq_advance(&ring, n);
		inflight -= n;
	}
	io_uring_queue_exit(&ring);
	return err;
}

static int fb_sync_move(int fd, FbRawJob *j)
{
	for (guint64 done = 0; done < j->len; done += FB_BLOCK) {
		ssize_t n = j->write ? pwrite(fd, j->buf + done, FB_BLOCK, (off_t)(j->off + done))
				     : pread(fd, j->buf + done, FB_BLOCK, (off_t)(j->off + done));

		if (n != (ssize_t)FB_BLOCK)
			return n < 0 ? errno : EIO;
	}
	return 0;
}

static gpointer fb_raw_thread(gpointer opaque)
{
	FbRawJob *j = opaque;
	int fd = open(j->path, (j->write ? O_WRONLY : O_RDONLY) | (j->direct ? O_DIRECT : 0) | O_CLOEXEC);

	if (fd < 0) {
		j->err = errno;
		return NULL;
	}
	j->err = j->uring ? fb_uring_move(fd, j) : fb_sync_move(fd, j);
	if (!j->err && j->write && fdatasync(fd) < 0)
		j->err = errno;
	close(fd);
	return NULL;
}

/* threads threads each move their share of bytes (whole MiB) in 1 MiB requests, from
 * or into memory of their own; GB/s. */
static double fb_raw_pass(const char *path, guint threads, gboolean direct, gboolean uring, gboolean write,
			  guint64 bytes, guint8 *mem, GError **err)
{
	g_autofree FbRawJob *jobs = g_new0(FbRawJob, threads);
	g_autofree GThread **t = g_new0(GThread *, threads);
	guint64 blocks = bytes / FB_BLOCK, per = blocks / threads;
	gint64 t0 = g_get_monotonic_time(), t1;
	int e = 0;

	for (guint i = 0; i < threads; i++) {
		jobs[i] = (FbRawJob){ path, direct, write, uring, mem + i * per * FB_BLOCK, i * per * FB_BLOCK,
				      (i + 1 == threads ? blocks - i * per : per) * FB_BLOCK, 0 };
		t[i] = g_thread_new("migbench/raw", fb_raw_thread, &jobs[i]);
	}
	for (guint i = 0; i < threads; i++) {
		g_thread_join(t[i]);
		e = e ? e : jobs[i].err;
	}
	t1 = g_get_monotonic_time();
	if (e) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "raw %s%s %s of %s: %s", direct ? "O_DIRECT " : "",
			    uring ? "io_uring" : "sync", write ? "write" : "read", path, g_strerror(e));
		return -1;
	}
	return (double)(blocks * FB_BLOCK) / ((double)(t1 - t0) * 1e3);
}

/* Clean pages of the file system out of the page cache, so a read comes from the disk. */
static gboolean fb_drop_caches(const char *dir, GError **err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_SKIPPED, "cannot drop the page cache: %s (needs root)",
			    g_strerror(errno));
		if (fd >= 0)
			close(fd);
		return FALSE;
	}
	close(fd);
	return TRUE;
}

/* A fresh file of bytes, its blocks allocated up front as mig's save does (fallocate,
 * else a hole where the file system has none). */
static gboolean fb_raw_file(const char *path, guint64 bytes, GError **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (fallocate(fd, 0, 0, (off_t)bytes) < 0 && ftruncate(fd, (off_t)bytes) < 0)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s: %s", path, g_strerror(errno));
		if (fd >= 0)
			close(fd);
		return FALSE;
	}
	close(fd);
	return TRUE;
}

/* The same bytes as the guest's data, written and read back by as many threads:
 * through io_uring at mig's queue depth, and with pwrite/pread, O_DIRECT on the direct
 * rows, each write pass into a fresh file. */
static gboolean fb_raw_run(const char *dir, guint threads, gboolean direct, guint64 bytes, FbSample *s, GError **err)
{
	g_autofree char *path = g_build_filename(dir, "raw.img", NULL);
	guint8 *mem = NULL;
	gboolean ok = TRUE;

	bytes = MAX(bytes / FB_BLOCK, threads) * FB_BLOCK;
	if (posix_memalign((void **)&mem, FB_BLOCK, bytes)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "no memory for the raw baseline's %" G_GUINT64_FORMAT
			    " bytes", bytes);
		return FALSE;
	}
	memset(mem, 0x5a, bytes);           /* not zero: a file system may not store zeros */
	for (int uring = 1; uring >= 0 && ok; uring--) {
		double *w = uring ? &s->raw_write_gbps : &s->raw_pwrite_gbps, *r = uring ? &s->raw_read_gbps : &s->raw_pread_gbps;

		ok = fb_raw_file(path, bytes, err) && (*w = fb_raw_pass(path, threads, direct, uring, TRUE, bytes, mem, err)) > 0 &&
		     (direct || fb_drop_caches(dir, err)) &&
		     (*r = fb_raw_pass(path, threads, direct, uring, FALSE, bytes, mem, err)) > 0;
		unlink(path);
	}
	free(mem);
	return ok;
}

static int fb_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* n random 4 KiB O_DIRECT reads of path, one at a time (pread, as a lazy restore's
 * fault is served), each after sleeping idle_us (0: back to back): their p50 and p99
 * in us. */
static gboolean fb_raw_qd1(const char *path, guint n, guint idle_us, double *p50, double *p99, GError **err)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	g_autofree double *lat = g_new0(double, n);
	/* not the same offsets for the idle reads: the host may still cache those blocks */
	g_autoptr(GRand) rng = g_rand_new_with_seed(17 + idle_us);
	void *buf = NULL;
	struct stat st;
	gboolean ok = FALSE;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 4096 || posix_memalign(&buf, 4096, 4096)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "raw QD1 read of %s: %s", path, g_strerror(errno));
		goto out;
	}
	for (guint i = 0; i < n; i++) {
		off_t off = (off_t)g_rand_int_range(rng, 0, (gint32)MIN(st.st_size / 4096, G_MAXINT32)) * 4096;
		gint64 t0;

		if (idle_us)
			g_usleep(idle_us);
		t0 = g_get_monotonic_time();
		if (pread(fd, buf, 4096, off) != 4096) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "raw QD1 read of %s: %s", path, g_strerror(errno));
			goto out;
		}
		lat[i] = (double)(g_get_monotonic_time() - t0);
	}
	qsort(lat, n, sizeof(double), fb_cmp_double);
	*p50 = lat[n / 2];
	*p99 = lat[n * 99 / 100];
	ok = TRUE;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ok;
}

/* ---- mig ---- */

/* A streamed file is one channel's precopy: no multifd, and max-bandwidth (a
 * precopy's pacing, 128 MiB/s by default) out of the disk's way. */
static gboolean fb_caps(Bench *b, QmpClient *q, const char *side, const FbRow *r, gboolean postcopy, GError **err)
{
	g_autofree char *caps = g_strdup_printf("{\"capabilities\":[{\"capability\":\"mapped-ram\",\"state\":%s},"
						"{\"capability\":\"postcopy-ram\",\"state\":%s}]}",
						r->streamed ? "false" : "true", postcopy ? "true" : "false");
	/* a lazy restore's fault thread as postcopy-latency runs it (--rt-priority): the
	 * raw QD1 read it is held against has the CPUs to itself */
	g_autofree char *params = g_strdup_printf("{\"direct-io\":%s%s,\"x-postcopy-rt-priority\":%u}",
						  r->direct ? "true" : "false",
						  r->streamed ? ",\"max-bandwidth\":1099511627776" : "", postcopy ? b->rt_priority : 0);

	return bench_qmp_run(q, side, "migrate-set-capabilities", caps, err) &&
	       bench_set_multifd(q, side, r->streamed ? 0 : r->channels, err) &&
	       bench_qmp_run(q, side, "migrate-set-parameters", params, err);
}

/* An x-file member of a side's last query-migrate. */
static guint64 fb_xfile(JsonObject *done, const char *member)
{
	return (guint64)bench_obj_int(bench_obj_obj(done, "x-file"), member, 0);
}

static const char *fb_workload(const FbRow *r)
{
	return r->dense ? FB_DENSE : FB_SCATTERED;
}

/* One poll of a lazy restore's guest: us since migrate-incoming, x-guest-writes. */
typedef struct FbTick {
	double t_us, units;
} FbTick;

static void fb_tick(GArray *trace, JsonObject *o, gint64 t0)
{
	FbTick k = { (double)(g_get_monotonic_time() - t0), (double)bench_obj_int(o, "x-guest-writes", 0) };

	g_array_append_val(trace, k);
}

/* Polls q until status is one of want (NULL-terminated); the last reply. With trace, each
 * reply's x-guest-writes, timed from t0. */
static JsonObject *fb_wait_status(Bench *b, QmpClient *q, const char *side, const char *const *want, gint64 t0,
				  GArray *trace, GError **err)
{
	for (gint64 i = 0; i <= (gint64)T_MIGRATE_MS * 1000 / FB_POLL_US; i++) {
		g_autoptr(JsonObject) o = bench_query_migrate(q, err);
		const char *st;

		if (!o) {
			g_prefix_error(err, "%s: ", side);
			return NULL;
		}
		if (trace)
			fb_tick(trace, o, t0);
		st = bench_obj_str(o, "status");
		if (g_strv_contains(want, st ? st : ""))
			return g_steal_pointer(&o);
		if (!g_strcmp0(st, "failed") || !g_strcmp0(st, "cancelled")) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s %s: %s", side, st,
				    bench_obj_str(o, "error-desc") ? bench_obj_str(o, "error-desc") : "no error-desc");
			return NULL;
		}
		if (bench_interrupted(b, err))
			return NULL;
		g_usleep(FB_POLL_US);
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "%s not done in %d s", side, T_MIGRATE_MS / 1000);
	return NULL;
}

static const char *const fb_completed[] = { "completed", NULL };

/* A guest saved, stopped (one pass: suspend to file), to path. */
static gboolean fb_save(Bench *b, guint64 guest, const FbRow *r, const char *path, FbSample *s, GError **err)
{
	MigdSpec m = { .backend = r->huge ? "hugetlb" : "anon", .huge = r->huge, .guest_bytes = guest,
		       .workload = fb_workload(r), .seed = 7, .side = -1 };
	g_autofree char *uri = g_strdup_printf("{\"uri\":\"file:%s\"}", path);
	g_autoptr(JsonObject) done = NULL;
	MigPair p = { 0 };
	gint64 t0 = 0;
	gboolean ok;

	b->seq++;
	ok = bench_migd_start(b, &m, &p, err) && fb_caps(b, p.qsrc, "source", r, FALSE, err) &&
	     bench_qmp_run(p.qsrc, "source", "stop", NULL, err) && (t0 = g_get_monotonic_time()) &&
	     bench_qmp_run(p.qsrc, "source", "migrate", uri, err) &&
	     (done = fb_wait_status(b, p.qsrc, "source", fb_completed, 0, NULL, err)) != NULL;
	if (ok) {
		s->save_s = (double)(g_get_monotonic_time() - t0) / 1e6;
		s->data_bytes = (guint64)bench_obj_int(bench_obj_obj(done, "ram"), "normal-bytes", 0);
		s->bytes_written = fb_xfile(done, "bytes-written");
		s->depth_save = fb_xfile(done, "queue-depth-reached");
		if (!s->data_bytes || !s->bytes_written) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the source's query-migrate lacks ram.normal-bytes "
				    "or x-file.bytes-written");
			ok = FALSE;
		}
	}
	bench_pair_stop(b, &p);
	return ok;
}

/* A lazy restore completed (every page in) before its guest had run for the last of
 * fb_progress_ms: the guest's progress polled on until then, as fb_wait_status did. */
static gboolean fb_trace_on(QmpClient *q, JsonObject *done, gint64 t0, GArray *trace, GError **err)
{
	JsonObject *xf = bench_obj_obj(done, "x-file");
	double run_ms = xf ? json_object_get_double_member_with_default(xf, "running-after-ms", NAN) : NAN;
	double until_us = (run_ms + fb_progress_ms[FB_PROGRESS_N - 1]) * 1000;

	if (isnan(run_ms))
		return TRUE;
	/* bounded: each poll is timed after the last, and until_us is a few s from t0 */
	while (!trace->len || g_array_index(trace, FbTick, trace->len - 1).t_us < until_us) {
		g_autoptr(JsonObject) o = bench_query_migrate(q, err);

		if (!o)
			return FALSE;
		fb_tick(trace, o, t0);
		if (g_array_index(trace, FbTick, trace->len - 1).t_us < until_us)
			g_usleep(FB_POLL_US);
	}
	return TRUE;
}

/* The guest's units written at t_us after migrate-incoming, between the two polls
 * around it; NAN past the last. */
static double fb_units_at(const GArray *trace, double t_us)
{
	for (guint i = 0; i < trace->len; i++) {
		const FbTick *k = &g_array_index(trace, FbTick, i), *p = i ? k - 1 : NULL;

		if (k->t_us < t_us)
			continue;
		if (!p || k->t_us == p->t_us)
			return k->units;
		return p->units + (k->units - p->units) * (t_us - p->t_us) / (k->t_us - p->t_us);
	}
	return NAN;
}

static void fb_progress(FbLazy *l, const GArray *trace)
{
	for (guint i = 0; i < FB_PROGRESS_N; i++)
		l->units_at[i] = fb_units_at(trace, (l->running_ms + fb_progress_ms[i]) * 1000);
	l->units_all_in = fb_units_at(trace, l->all_in_ms * 1000);
}

/* A fresh destination loads path; every unit of its guest checked. With lazy, the
 * guest runs a random workload and faults its pages in from the file. */
static gboolean fb_restore(Bench *b, guint64 guest, const FbRow *r, gboolean lazy, const char *path, FbSample *s,
			   FbLazy *l, GError **err)
{
	MigdSpec m = { .backend = r->huge ? "hugetlb" : "anon", .huge = r->huge, .guest_bytes = guest,
		       .workload = lazy ? "random" : fb_workload(r), .seed = 7, .incoming = "defer", .side = -1 };
	g_autofree char *uri = g_strdup_printf("{\"uri\":\"file:%s\"}", path);
	g_autoptr(JsonObject) done = NULL;
	g_autoptr(GArray) trace = l ? g_array_new(FALSE, FALSE, sizeof(FbTick)) : NULL;
	MigSample ms = { 0 };
	MigPair p = { 0 };
	gint64 t0 = 0;
	gboolean ok;

	b->seq++;
	ok = bench_migd_start(b, &m, &p, err) && fb_caps(b, p.qdst, "destination", r, lazy, err) &&
	     (t0 = g_get_monotonic_time()) && bench_qmp_run(p.qdst, "destination", "migrate-incoming", uri, err) &&
	     (done = fb_wait_status(b, p.qdst, "destination", fb_completed, t0, trace, err)) != NULL;
	if (ok && l)
		ok = fb_trace_on(p.qdst, done, t0, trace, err);
	if (ok && s) {
		s->restore_s = (double)(g_get_monotonic_time() - t0) / 1e6;
		s->bytes_read = fb_xfile(done, "bytes-read");
		s->depth_restore = fb_xfile(done, "queue-depth-reached");
		if (!s->bytes_read) {
			g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the destination's query-migrate lacks x-file.bytes-read");
			ok = FALSE;
		}
	}
	ok = ok && bench_wait_integrity(b, &p, &ms, err);
	if (ok && l) {
		g_autoptr(JsonObject) o = bench_query_migrate(p.qdst, err);
		JsonObject *xf = bench_obj_obj(o, "x-file"), *k4 = bench_obj_obj(bench_obj_obj(o, "x-postcopy-latency"), "4k");

		ok = o != NULL;
		l->running_ms = xf && json_object_has_member(xf, "running-after-ms") ?
				json_object_get_double_member(xf, "running-after-ms") : NAN;
		l->checked_ms = xf && json_object_has_member(xf, "checked-after-ms") ?
				json_object_get_double_member(xf, "checked-after-ms") : NAN;
		l->vm_load_ms = xf && json_object_has_member(xf, "vm-load-ms") ?
				json_object_get_double_member(xf, "vm-load-ms") : NAN;
		l->all_in_ms = xf && json_object_has_member(xf, "all-in-after-ms") ?
			       json_object_get_double_member(xf, "all-in-after-ms") : NAN;
		l->fault_p50_us = k4 && bench_obj_int(k4, "count", 0) ? json_object_get_double_member_with_default(k4, "p50", NAN)
								      : NAN;
		l->fault_p99_us = k4 && bench_obj_int(k4, "count", 0) ? json_object_get_double_member_with_default(k4, "p99", NAN)
								      : NAN;
		l->read_p50_us = xf ? json_object_get_double_member_with_default(xf, "fault-read-p50-us", NAN) : NAN;
		l->read_p99_us = xf ? json_object_get_double_member_with_default(xf, "fault-read-p99-us", NAN) : NAN;
		fb_progress(l, trace);
		l->faults = o ? (double)bench_obj_int(o, "x-postcopy-requests", -1) : NAN;
		l->stall_ms = o && l->faults >= 0 ?
			      l->faults * (double)bench_obj_int(o, "x-postcopy-request-latency", 0) / 1e6 : NAN;
	}
	bench_pair_stop(b, &p);
	return ok;
}

/* ---- rows and report ---- */

static void fb_row_free(gpointer p)
{
	FbRow *r = p;

	g_array_unref(r->samples);
	g_free(r->error);
	g_free(r);
}

static double fb_median(const FbRow *r, gsize field)
{
	g_autofree double *v = g_new0(double, r->samples->len + 1);

	if (r->status != ROW_OK || !r->samples->len)
		return NAN;
	for (guint i = 0; i < r->samples->len; i++)
		v[i] = G_STRUCT_MEMBER(double, &g_array_index(r->samples, FbSample, i), field);
	return bench_median(v, r->samples->len);
}

typedef struct FbRates {
	double save, restore, raw_w, raw_r, save_x, restore_x, raw_pw, raw_pr;
} FbRates;

/* GB/s of the guest's data (its non-zero pages: what a save must write), for mig and
 * for the raw baseline that moved as many bytes. */
static FbRates fb_rates(const FbRow *r)
{
	g_autofree double *sv = g_new0(double, r->samples->len + 1), *rv = g_new0(double, r->samples->len + 1);
	FbRates x;

	for (guint i = 0; i < r->samples->len; i++) {
		const FbSample *s = &g_array_index(r->samples, FbSample, i);

		sv[i] = (double)s->data_bytes / s->save_s / 1e9;
		rv[i] = (double)s->data_bytes / s->restore_s / 1e9;
	}
	x.save = r->status == ROW_OK ? bench_median(sv, r->samples->len) : NAN;
	x.restore = r->status == ROW_OK ? bench_median(rv, r->samples->len) : NAN;
	x.raw_w = fb_median(r, G_STRUCT_OFFSET(FbSample, raw_write_gbps));
	x.raw_r = fb_median(r, G_STRUCT_OFFSET(FbSample, raw_read_gbps));
	x.raw_pw = fb_median(r, G_STRUCT_OFFSET(FbSample, raw_pwrite_gbps));
	x.raw_pr = fb_median(r, G_STRUCT_OFFSET(FbSample, raw_pread_gbps));
	x.save_x = x.save / x.raw_w;
	x.restore_x = x.restore / x.raw_r;
	return x;
}

/* The row of this memory, layout and direct-ness with the best save (restore) rate:
 * the target's row. */
static const FbRow *fb_best(GPtrArray *rows, const FbRow *like, gboolean restore)
{
	const FbRow *best = NULL;
	double bv = -1;

	for (guint i = 0; i < rows->len; i++) {
		const FbRow *r = g_ptr_array_index(rows, i);
		FbRates x = fb_rates(r);
		double v = restore ? x.restore : x.save;

		if (r->direct == like->direct && r->huge == like->huge && r->dense == like->dense && !r->streamed &&
		    !isnan(v) && v > bv) {
			bv = v;
			best = r;
		}
	}
	return best;
}

static const char *fb_mark(gboolean ok, double v)
{
	return isnan(v) ? "n/a" : ok ? "met" : "MISSED";
}

static guint64 fb_first(const FbRow *r, gsize field)
{
	return r->samples->len ? G_STRUCT_MEMBER(guint64, &g_array_index(r->samples, FbSample, 0), field) : 0;
}

/* The save/restore rows' table and the lines under it. */
static void fb_print_rows(GPtrArray *rows)
{
	printf("%-7s %-9s %-10s %2s %3s %8s %7s %7s %7s %8s %7s %7s %8s %5s %6s\n", "memory", "layout", "format", "ch",
	       "dir", "data MiB", "save", "raw wr", "sv/raw", "restore", "raw rd", "rs/raw", "target", "qd sv", "qd rs");
	for (guint i = 0; i < rows->len; i++) {
		const FbRow *r = g_ptr_array_index(rows, i);
		FbRates x = fb_rates(r);
		g_autofree char *sv = bench_fmt_num(x.save, 2), *rw = bench_fmt_num(x.raw_w, 2), *sx = bench_fmt_num(x.save_x, 2);
		g_autofree char *rv = bench_fmt_num(x.restore, 2), *rr = bench_fmt_num(x.raw_r, 2);
		g_autofree char *rx = bench_fmt_num(x.restore_x, 2);
		const char *mark = "";

		if (r == fb_best(rows, r, FALSE) || r == fb_best(rows, r, TRUE))
			mark = fb_mark((r != fb_best(rows, r, FALSE) || x.save_x >= FB_TARGET_RATIO) &&
				       (r != fb_best(rows, r, TRUE) || x.restore_x >= FB_TARGET_RATIO), x.save_x);
		if (r->status != ROW_OK)
			mark = bench_status_names[r->status];
		printf("%-7s %-9s %-10s %2u %3s %8.0f %7s %7s %7s %8s %7s %7s %8s %5" G_GUINT64_FORMAT " %6" G_GUINT64_FORMAT "\n",
		       r->huge ? "hugetlb" : "anon", r->dense ? "dense" : "scattered", r->streamed ? "streamed" : "mapped-ram",
		       r->channels, r->direct ? "yes" : "no", (double)fb_first(r, G_STRUCT_OFFSET(FbSample, data_bytes)) / (1 << 20),
		       sv, rw, sx, rv, rr, rx, mark, fb_first(r, G_STRUCT_OFFSET(FbSample, depth_save)),
		       fb_first(r, G_STRUCT_OFFSET(FbSample, depth_restore)));
	}
	printf("GB/s = 1e9 bytes/s of the guest's data (its non-zero pages); raw: as many bytes, as many threads, each an "
	       "io_uring with %u requests of 1 MiB in flight (then fdatasync) / the same read; qd: x-file "
	       "queue-depth-reached (first run)\n", FB_QD);
	printf("target: save and restore >= %.1fx raw at the best channel count (marked on that row, per memory, layout and "
	       "direct-ness; streamed: file: without mapped-ram, the old way, one channel, no target)\n", FB_TARGET_RATIO);
	printf("raw with pwrite/pread instead of io_uring, GB/s write/read:");
	for (guint i = 0; i < rows->len; i++) {
		const FbRow *r = g_ptr_array_index(rows, i);
		FbRates x = fb_rates(r);
		g_autofree char *pw = bench_fmt_num(x.raw_pw, 2), *pr = bench_fmt_num(x.raw_pr, 2);

		printf("%s %s/%s", i ? "," : "", pw, pr);
	}
	printf(" (rows in order)\n");
}

/* The lazy restore's guest progress line (information, no target). */
static void fb_print_progress(const FbLazy *l)
{
	g_autofree char *all = bench_fmt_num(l->units_all_in, 0), *stall = bench_fmt_num(l->stall_ms, 0);
	g_autofree char *nf = bench_fmt_num(l->faults, 0);

	printf("  the guest's progress (information): units written");
	for (guint i = 0; i < FB_PROGRESS_N; i++) {
		g_autofree char *u = bench_fmt_num(l->units_at[i], 0);

		printf("%s %.1f s after it ran %s", i ? "," : "", fb_progress_ms[i] / 1000, u);
	}
	printf(", when every page was in %s; its faults %s, their waits summed %s ms\n", all, nf, stall);
}

static void fb_print(Bench *b, guint64 guest, GPtrArray *rows, const FbLazy *l)
{
	g_autofree char *size = bench_fmt_size(guest);

	if (b->lazy_only)
		printf("\n%s: %s guest, file in %s, the lazy restore only (--lazy-only), %u CPUs\n", b->scenario, size,
		       b->file_dir, g_get_num_processors());
	else
		printf("\n%s: %s guest, stopped, file in %s, median of %d run%s, %u CPUs\n", b->scenario, size, b->file_dir,
		       b->runs, b->runs == 1 ? "" : "s", g_get_num_processors());
	if (!b->lazy_only)
		fb_print_rows(rows);
	{
		g_autofree char *run = bench_fmt_num(l->running_ms, 1), *p50 = bench_fmt_num(l->fault_p50_us, 0);
		g_autofree char *p99 = bench_fmt_num(l->fault_p99_us, 0), *raw50 = bench_fmt_num(l->raw_qd1_p50_us, 0);
		g_autofree char *raw99 = bench_fmt_num(l->raw_qd1_p99_us, 0), *all = bench_fmt_num(l->all_in_ms, 0);
		g_autofree char *x50 = bench_fmt_num(l->fault_p50_us / l->raw_qd1_p50_us, 2);
		g_autofree char *x99 = bench_fmt_num(l->fault_p99_us / l->raw_qd1_p99_us, 2);
		g_autofree char *chk = bench_fmt_num(l->checked_ms, 1), *vml = bench_fmt_num(l->vm_load_ms, 1);
		g_autofree char *rd50 = bench_fmt_num(l->read_p50_us, 0), *rd99 = bench_fmt_num(l->read_p99_us, 0);
		g_autofree char *id50 = bench_fmt_num(l->raw_idle_p50_us, 0), *id99 = bench_fmt_num(l->raw_idle_p99_us, 0);

		printf("lazy restore (postcopy-ram, 4 channels, direct-io, random workload, scattered file, "
		       "x-postcopy-rt-priority %u: %s): running after %s ms "
		       "[<= %.0f ms: %s] (file checked after %s ms, the VM's load of its record %s ms), all in after %s ms\n",
		       b->rt_priority, b->rt_priority ? "SCHED_FIFO" : "the fair class", run, FB_TARGET_RUNNING_MS, fb_mark(l->running_ms <= FB_TARGET_RUNNING_MS, l->running_ms), chk, vml, all);
		printf("  4K fault p50 %s us, p99 %s us; raw 4K O_DIRECT QD1 read p50 %s us, p99 %s us; fault/raw p50 %s "
		       "[<= %.0fx: %s], p99 %s\n", p50, p99, raw50, raw99, x50, FB_TARGET_FAULT_X,
		       fb_mark(l->fault_p50_us <= FB_TARGET_FAULT_X * l->raw_qd1_p50_us, l->fault_p50_us + l->raw_qd1_p50_us), x99);
		printf("  of a fault, its read from the file alone: p50 %s us, p99 %s us (the rest: its placement, "
		       "UFFDIO_COPY with the wake)\n", rd50, rd99);
		printf("  for information, the raw QD1 read each after %u us asleep: p50 %s us, p99 %s us (not the "
		       "target's baseline)\n", FB_IDLE_US, id50, id99);
		fb_print_progress(l);
		if (l->status != ROW_OK)
			printf("lazy %s: %s\n", bench_status_names[l->status], l->error);
	}
	for (guint i = 0; i < rows->len; i++) {
		const FbRow *r = g_ptr_array_index(rows, i);

		if (r->status != ROW_OK)
			printf("%s %s %s %u/%s %s: %s\n", r->huge ? "hugetlb" : "anon", r->dense ? "dense" : "scattered",
			       r->streamed ? "streamed" : "mapped-ram", r->channels, r->direct ? "direct" : "buffered",
			       bench_status_names[r->status], r->error);
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static gboolean fb_write_json(Bench *b, guint64 guest, GPtrArray *rows, const FbLazy *l, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();

	bench_json_head(b, j, guest);
	bench_json_str(j, "dir", b->file_dir);
	bench_json_int(j, "raw_queue_depth", FB_QD);
	bench_json_int(j, "raw_request_bytes", FB_BLOCK);
	json_builder_set_member_name(j, "rows");
	json_builder_begin_array(j);
	for (guint i = 0; i < rows->len; i++) {
		const FbRow *r = g_ptr_array_index(rows, i);
		FbRates x = fb_rates(r);

		json_builder_begin_object(j);
		bench_json_str(j, "memory", r->huge ? "hugetlb" : "anon");
		bench_json_str(j, "layout", r->dense ? "dense" : "scattered");
		bench_json_str(j, "workload", fb_workload(r));
		bench_json_str(j, "format", r->streamed ? "streamed" : "mapped-ram");
		bench_json_int(j, "channels", r->channels);
		json_builder_set_member_name(j, "direct");
		json_builder_add_boolean_value(j, r->direct);
		bench_json_status(j, r->status, r->error);
		json_builder_set_member_name(j, "samples");
		json_builder_begin_array(j);
		for (guint k = 0; k < r->samples->len; k++) {
			const FbSample *s = &g_array_index(r->samples, FbSample, k);

			json_builder_begin_object(j);
			bench_json_int(j, "data_bytes", (gint64)s->data_bytes);
			bench_json_int(j, "bytes_written", (gint64)s->bytes_written);
			bench_json_int(j, "bytes_read", (gint64)s->bytes_read);
			bench_json_int(j, "queue_depth_save", (gint64)s->depth_save);
			bench_json_int(j, "queue_depth_restore", (gint64)s->depth_restore);
			bench_json_double(j, "save_s", s->save_s);
			bench_json_double(j, "restore_s", s->restore_s);
			bench_json_double(j, "raw_write_gbps", s->raw_write_gbps);
			bench_json_double(j, "raw_read_gbps", s->raw_read_gbps);
			bench_json_double(j, "raw_pwrite_gbps", s->raw_pwrite_gbps);
			bench_json_double(j, "raw_pread_gbps", s->raw_pread_gbps);
			json_builder_end_object(j);
		}
		json_builder_end_array(j);
		bench_json_double(j, "save_gbps", x.save);
		bench_json_double(j, "restore_gbps", x.restore);
		bench_json_double(j, "raw_write_gbps", x.raw_w);
		bench_json_double(j, "raw_read_gbps", x.raw_r);
		bench_json_double(j, "raw_pwrite_gbps", x.raw_pw);
		bench_json_double(j, "raw_pread_gbps", x.raw_pr);
		bench_json_double(j, "save_vs_raw", x.save_x);
		bench_json_double(j, "restore_vs_raw", x.restore_x);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	json_builder_set_member_name(j, "lazy");
	json_builder_begin_object(j);
	bench_json_status(j, l->status, l->error);
	bench_json_int(j, "rt_priority", b->rt_priority);
	bench_json_double(j, "running_after_ms", l->running_ms);
	bench_json_double(j, "checked_after_ms", l->checked_ms);
	bench_json_double(j, "vm_load_ms", l->vm_load_ms);
	bench_json_double(j, "all_in_after_ms", l->all_in_ms);
	bench_json_double(j, "fault_4k_p50_us", l->fault_p50_us);
	bench_json_double(j, "fault_4k_p99_us", l->fault_p99_us);
	bench_json_double(j, "raw_qd1_4k_p50_us", l->raw_qd1_p50_us);
	bench_json_double(j, "raw_qd1_4k_p99_us", l->raw_qd1_p99_us);
	bench_json_double(j, "fault_read_p50_us", l->read_p50_us);
	bench_json_double(j, "fault_read_p99_us", l->read_p99_us);
	bench_json_double(j, "raw_qd1_4k_idle_p50_us", l->raw_idle_p50_us);
	bench_json_double(j, "raw_qd1_4k_idle_p99_us", l->raw_idle_p99_us);
	bench_json_double(j, "guest_units_0_5s", l->units_at[0]);
	bench_json_double(j, "guest_units_1s", l->units_at[1]);
	bench_json_double(j, "guest_units_2s", l->units_at[2]);
	bench_json_double(j, "guest_units_all_in", l->units_all_in);
	bench_json_double(j, "faults", l->faults);
	bench_json_double(j, "fault_wait_sum_ms", l->stall_ms);
	json_builder_end_object(j);
	return bench_json_save(b, j, err);
}

/* ---- the runs ---- */

static void fb_fail(RowStatus *status, char **error, const char *what, GError *err)
{
	*status = bench_status_of(err);
	*error = g_strdup(err->message);
	g_printerr("migbench: %s: %s: %s\n", what, bench_status_names[*status], err->message);
}

static void fb_cell(Bench *b, guint64 guest, const char *dir, FbRow *r, int run)
{
	g_autofree char *path = g_build_filename(dir, "guest.img", NULL);
	g_autofree char *what = g_strdup_printf("%s %s %s %u ch %s run %d/%d", r->huge ? "hugetlb" : "anon",
						r->dense ? "dense" : "scattered", r->streamed ? "streamed" : "mapped-ram",
						r->channels, r->direct ? "direct" : "buffered", run + 1, b->runs);
	g_autoptr(GError) err = NULL;
	FbSample s = { 0 };
	gboolean ok;

	if (r->status != ROW_OK)
		return;
	/* the hugetlb guest, saved and restored one after the other, needs its pages once */
	ok = !bench_interrupted(b, &err) && (!r->huge || bench_huge_ensure(b, guest / (2u << 20), &err)) &&
	     fb_save(b, guest, r, path, &s, &err) && (r->direct || fb_drop_caches(dir, &err)) &&
	     fb_restore(b, guest, r, FALSE, path, &s, NULL, &err);
	unlink(path);
	ok = ok && fb_raw_run(dir, r->channels, r->direct, s.data_bytes, &s, &err);
	if (!ok) {
		fb_fail(&r->status, &r->error, what, err);
		return;
	}
	g_array_append_val(r->samples, s);
	g_printerr("migbench: %s: save %.2f s, restore %.2f s, data %" G_GUINT64_FORMAT " MiB, written %" G_GUINT64_FORMAT
		   " MiB, read %" G_GUINT64_FORMAT " MiB, qd %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "; raw io_uring "
		   "%.2f/%.2f GB/s, pwrite/pread %.2f/%.2f GB/s\n", what, s.save_s, s.restore_s, s.data_bytes >> 20,
		   s.bytes_written >> 20, s.bytes_read >> 20, s.depth_save, s.depth_restore, s.raw_write_gbps,
		   s.raw_read_gbps, s.raw_pwrite_gbps, s.raw_pread_gbps);
}

static void fb_lazy(Bench *b, guint64 guest, const char *dir, FbLazy *l)
{
	g_autofree char *path = g_build_filename(dir, "lazy.img", NULL);
	g_autoptr(GError) err = NULL;
	FbSample s = { 0 };
	const FbRow r = { .channels = 4, .direct = TRUE };
	gboolean ok;

	*l = FB_LAZY_NONE(ROW_OK, NULL);
	ok = !bench_interrupted(b, &err) && fb_save(b, guest, &r, path, &s, &err) &&
	     fb_raw_qd1(path, FB_QD1_READS, 0, &l->raw_qd1_p50_us, &l->raw_qd1_p99_us, &err) &&
	     fb_raw_qd1(path, FB_IDLE_READS, FB_IDLE_US, &l->raw_idle_p50_us, &l->raw_idle_p99_us, &err) &&
	     fb_drop_caches(dir, &err) &&
	     fb_restore(b, guest, &r, TRUE, path, NULL, l, &err);
	unlink(path);
	if (!ok)
		fb_fail(&l->status, &l->error, "lazy restore", err);
}

static int run_file(Bench *b)
{
	static const guint channels[] = { 1, 2, 4 };
	/* the row groups, each by channels: memory, layout, direct-io; then the old way */
	static const struct {
		gboolean huge, dense, direct, streamed;
	} groups[] = {
		{ FALSE, FALSE, TRUE, FALSE },  /* anon, scattered, direct */
		{ FALSE, FALSE, FALSE, FALSE }, /* anon, scattered, buffered */
		{ FALSE, TRUE, TRUE, FALSE },   /* anon, dense, direct */
		{ TRUE, FALSE, TRUE, FALSE },   /* hugetlb 2M (every 2M page has data), direct */
		{ FALSE, FALSE, FALSE, TRUE },  /* streamed, one channel */
	};
	guint64 guest = b->guest_bytes ? b->guest_bytes : b->quick ? FB_GUEST_QUICK : FB_GUEST;
	g_autofree char *tmpl = g_build_filename(b->file_dir, "migbench-file-XXXXXX", NULL);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(fb_row_free);
	g_autoptr(GError) err = NULL;
	FbLazy lazy = { 0 };
	int rc = 0;

	if (!g_mkdtemp(tmpl)) {
		g_printerr("migbench: --dir %s: %s\n", b->file_dir, g_strerror(errno));
		return 2;
	}
	b->unplotted = TRUE;    /* tools/bench/plot has no plot of this scenario */
	for (guint k = 0; k < (b->lazy_only ? 0 : G_N_ELEMENTS(groups)); k++) {
		for (guint i = 0; i < (groups[k].streamed ? 1 : G_N_ELEMENTS(channels)); i++) {
			FbRow *r = g_new0(FbRow, 1);

			r->channels = channels[i];
			r->huge = groups[k].huge;
			r->dense = groups[k].dense;
			r->direct = groups[k].direct;
			r->streamed = groups[k].streamed;
			r->samples = g_array_new(FALSE, TRUE, sizeof(FbSample));
			g_ptr_array_add(rows, r);
		}
	}
	/* round by round, so a drift of the host's load weighs on every row alike */
	for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++)
		for (guint i = 0; i < rows->len && !bench_procs_interrupted(b->procs); i++)
			fb_cell(b, guest, tmpl, g_ptr_array_index(rows, i), run);
	if (!bench_procs_interrupted(b->procs))
		fb_lazy(b, guest, tmpl, &lazy);
	else
		lazy = FB_LAZY_NONE(ROW_INTERRUPTED, g_strdup("interrupted"));
	rmdir(tmpl);
	fb_print(b, guest, rows, &lazy);
	if (b->json_path && !fb_write_json(b, guest, rows, &lazy, &err)) {
		g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
		rc = 1;
	}
	for (guint i = 0; i < rows->len; i++)
		rc |= ((FbRow *)g_ptr_array_index(rows, i))->status == ROW_ERROR;
	rc |= lazy.status == ROW_ERROR;
	g_free(lazy.error);
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_file = {
	"file", "mapped-ram save/restore (anon scattered and dense, hugetlb 2M) with 1, 2, 4 channels, direct-io or not, "
	"and the streamed file, vs raw io_uring (and pwrite/pread) of the same bytes; lazy restore",
	run_file, 3,
};
