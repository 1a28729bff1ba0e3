/* migd: hosts one migration session and a synthetic guest, controlled over QMP. */
#include "bpf/faultlat-loader.h"
#include "tools/migd/guest_vm.h"
#include "engine/qmp/qmp.h"
#include "engine/qmp/qmp_cmds.h"
#include <mig/dirty.h>
#include <mig/session.h>
#include "tools/migd/simdev.h"
#include "tools/faultlat/report.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct Migd {
	MigdGuest *guest;
	MigSession *session;
	MigQmpServer *qmp;
	GPtrArray *devices;     /* MigdSimDev*, registered with the session, freed after it */
	gint exit_status;       /* atomic: 1 once an incoming migration failed with exit-on-error */
} Migd;

/* --trace-latency: mig-faultlat's BPF programs (bpf/faultlat-loader.c, tracepoint
 * method) on this process, read at query time into x-fault-latency-bpf. One migd, one
 * tracer: loaded before any thread starts, read-only afterwards. */
static struct {
	gboolean on;
	struct faultlat_bpf *skel;
	enum fl_method method;
	char *error;            /* why it could not be loaded */
} trace_latency;

static void trace_latency_start(void)
{
	struct fl_config cfg = { .tgid = getpid(), .method = FL_METHOD_TRACEPOINTS };
	int rc;

	trace_latency.on = TRUE;
	rc = fl_load(&cfg, &trace_latency.skel, &trace_latency.method);
	if (rc < 0) {
		trace_latency.skel = NULL;
		trace_latency.error = g_strdup_printf("loading the faultlat BPF programs: %s", g_strerror(-rc));
		g_printerr("migd: --trace-latency: %s; x-fault-latency-bpf will say so\n", trace_latency.error);
	}
}

/* to 0.1 µs (values are never negative): the percentiles are bucket midpoints, good to
 * 1.6 %, so more digits would only be noise */
static double tenths(double us)
{
	return (double)(gint64)(us * 10 + 0.5) / 10;
}

static void add_summary(MigValue *o, const struct fl_summary *s)
{
	mig_value_add_int(o, "count", (gint64)s->count);
	mig_value_add_double(o, "p50", tenths(s->p50_us));
	mig_value_add_double(o, "p90", tenths(s->p90_us));
	mig_value_add_double(o, "p99", tenths(s->p99_us));
	mig_value_add_double(o, "max", tenths(s->max_us));
}

/* x-fault-latency-bpf: the guest threads' userfaultfd waits as the kernel saw them,
 * shaped like x-postcopy-latency (µs, per page size) with a log2 histogram laid out like
 * x-postcopy-request-latency-dist (bucket k: [2^k, 2^(k+1)) µs, the last one open). */
static void trace_latency_query(MigValue *obj)
{
	static const char *const cls[FL_NR_PS] = { "4k", "2m", "1g", "other" };
	guint64 dist[24] = { 0 };
	struct fl_hist h;
	MigValue *b = mig_value_add_object(obj, "x-fault-latency-bpf"), *hist, *woken;

	if (!trace_latency.skel) {
		mig_value_add_str(b, "error", trace_latency.error ? trace_latency.error : "not loaded");
		return;
	}
	mig_value_add_str(b, "method", trace_latency.method == FL_METHOD_FENTRY ? "fentry" : "tracepoints");
	for (int ps = 0; ps < FL_NR_PS; ps++) {
		struct fl_summary s;
		int rc = fl_read_hist(trace_latency.skel, ps, &h);

		if (rc < 0) {
			mig_value_add_str(b, "error", g_strerror(-rc));
			break;
		}
		for (int i = 0; i < FL_LOG2_SLOTS; i++)
			dist[MIN(i, (int)G_N_ELEMENTS(dist) - 1)] += h.log2_us[i];
		if (!h.count)
			continue;
		fl_summarize(&h, &s);
		add_summary(mig_value_add_object(b, cls[ps]), &s);
	}
	hist = mig_value_add_array(b, "hist");
	for (guint i = 0; i < G_N_ELEMENTS(dist); i++)
		mig_value_add_int(hist, NULL, (gint64)dist[i]);
	/* the same waits until the wakeup, without the woken thread's wait for a CPU */
	woken = mig_value_add_object(b, "woken");
	for (int ps = 0; ps < FL_NR_PS; ps++) {
		struct fl_summary s;

		if (fl_read_hist_woken(trace_latency.skel, ps, &h) < 0 || !h.count)
			continue;
		fl_summarize(&h, &s);
		add_summary(mig_value_add_object(woken, cls[ps]), &s);
	}
}

/* migd's query-migrate members: the guest's x-integrity and, when on, the latency trace. */
static void migd_vm_query(gpointer g, MigValue *obj)
{
	if (trace_latency.on)
		trace_latency_query(obj);
	migd_guest_vm_query(g, obj);
}

/* The engine's messages on stderr, in the words the tests and scripts read. */
static void log_stderr(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
	g_printerr("mig: %s: %s\n", session, msg);
}

/* --dirty-log: the source's trackers log sync write faults instead of scanning. */
static MigDirtyTracker *log_tracker_new(gpointer opaque, const MigRamBlock *block, GError **err)
{
	return mig_dirty_tracker_uffd_log_new();
}

static void on_integrity_failure(gpointer opaque, guint64 unit, const char *what)
{
	Migd *d = opaque;

	mig_session_report_error(d->session, "integrity check failed at unit %" G_GUINT64_FORMAT ": %s", unit, what);
}

/* QEMU's migrate-incoming exit-on-error (its default): a failed incoming migration is
 * reported, then the process ends with an error status. Through the orderly stop, so
 * the clients still get the MIGRATION event and the replies already queued. */
static void on_incoming_failed(gpointer opaque, const char *error, gboolean exit_on_error)
{
	Migd *d = opaque;

	if (!exit_on_error)
		return;
	g_printerr("migd: load of migration failed: %s; exiting (exit-on-error)\n", error);
	g_atomic_int_set(&d->exit_status, 1);
	mig_qmp_server_stop(d->qmp);
}

static JsonNode *h_quit(JsonObject *args, gpointer opaque, GError **err)
{
	mig_qmp_server_stop(((Migd *)opaque)->qmp);
	return NULL;
}

/* The QEMU release whose QMP migd speaks: in the greeting and in query-version. */
static const MigQmpVersion migd_version = { 10, 1, 0, "mig " MIG_VERSION };

static JsonNode *h_query_version(JsonObject *args, gpointer opaque, GError **err)
{
	return mig_qmp_version_json(&migd_version);
}

static JsonNode *h_guest_check(JsonObject *args, gpointer opaque, GError **err)
{
	Migd *d = opaque;
	guint64 checked, failed;
	MigInfo info = { .size = sizeof(info) };
	JsonNode *n;
	JsonObject *o;

	/* the check reads every unit: on a destination whose pages are still coming, a
	 * read of a missing one would wait for it inside the QMP dispatcher */
	mig_session_query(d->session, &info);
	if (info.started && !info.source && info.status != MIG_STATUS_COMPLETED) {
		g_set_error(err, MIG_ERROR, EBUSY, "x-guest-check reads every page: not while an incoming migration "
			    "is %s", mig_status_str(info.status));
		mig_info_clear(&info);
		return NULL;
	}
	mig_info_clear(&info);
	n = json_node_new(JSON_NODE_OBJECT);
	o = json_object_new();
	migd_guest_self_check(d->guest, &checked, &failed);
	json_object_set_int_member(o, "checked", (gint64)checked);
	json_object_set_int_member(o, "failed", (gint64)failed);
	json_node_take_object(n, o);
	return n;
}

/* The teardown after the QMP server stopped (its replies flushed in at most 1 s) takes at
 * most this, whatever the guest and the migration do, so quit and SIGTERM end migd
 * within 4 s: libvirt and the harness give a VMM about 5 before they kill it. */
#define MIGD_EXIT_DEADLINE_MS 3000
/* How long the vCPUs get to leave a read that waits for a page, at quit. */
#define MIGD_VCPU_QUIT_MS 1000

/* migd/exit: ends the process if the orderly teardown outlives MIGD_EXIT_DEADLINE_MS
 * (a session thread waiting on a silent peer that nothing wakes). */
typedef struct ExitGuard {
	GMutex lock;
	GCond cond;
	gboolean done;
	const char *qmp_path;
	gint *exit_status;      /* Migd.exit_status */
	const char *step;       /* what the teardown is doing, for the message if it overruns */
} ExitGuard;

static void exit_guard_step(ExitGuard *x, const char *step)
{
	g_mutex_lock(&x->lock);
	x->step = step;
	g_mutex_unlock(&x->lock);
}

static gpointer exit_guard_thread(gpointer opaque)
{
	ExitGuard *x = opaque;
	gint64 end = g_get_monotonic_time() + MIGD_EXIT_DEADLINE_MS * G_TIME_SPAN_MILLISECOND;

	g_mutex_lock(&x->lock);
	while (!x->done && g_cond_wait_until(&x->cond, &x->lock, end))
		;
	if (!x->done) {
		g_printerr("migd: teardown still running after %d ms (%s); exiting\n", MIGD_EXIT_DEADLINE_MS,
			   x->step);
		unlink(x->qmp_path);
		_exit(g_atomic_int_get(x->exit_status));
	}
	g_mutex_unlock(&x->lock);
	return NULL;
}

/* Signals are taken by a named thread with sigwait, so no handler ever runs inside
 * the engine's threads; it turns SIGINT/SIGTERM into an orderly QMP stop. */
static gpointer signal_thread(gpointer opaque)
{
	Migd *d = opaque;
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigwait(&set, &sig);
	if (sig != SIGUSR1)
		mig_qmp_server_stop(d->qmp);
	return NULL;
}

/* QEMU's option syntax: comma-separated, ",," standing for a comma in a value. */
static GStrv split_opts(const char *spec)
{
	GPtrArray *parts = g_ptr_array_new();
	GString *cur = g_string_new(NULL);

	for (const char *p = spec; *p; p++) {
		if (*p == ',' && p[1] == ',') {
			g_string_append_c(cur, ',');
			p++;
		} else if (*p == ',') {
			g_ptr_array_add(parts, g_string_free(cur, FALSE));
			cur = g_string_new(NULL);
		} else {
			g_string_append_c(cur, *p);
		}
	}
	g_ptr_array_add(parts, g_string_free(cur, FALSE));
	g_ptr_array_add(parts, NULL);
	return (GStrv)g_ptr_array_free(parts, FALSE);
}

/* QEMU's -object syntax: TYPE,id=ID,key=value,... */
static gboolean add_object(MigSession *s, const char *spec, GError **err)
{
	g_auto(GStrv) parts = split_opts(spec);
	g_autoptr(GPtrArray) kv = g_ptr_array_new_with_free_func(g_free);
	const char *id = NULL;

	for (guint i = 1; parts[i]; i++) {
		char *eq = strchr(parts[i], '=');

		if (!eq) {
			g_set_error(err, MIG_ERROR, EINVAL, "'%s': '%s' is not key=value", spec, parts[i]);
			return FALSE;
		}
		*eq = 0;
		if (!strcmp(parts[i], "id")) {
			id = eq + 1;
			continue;
		}
		g_ptr_array_add(kv, g_strdup(parts[i]));
		g_ptr_array_add(kv, g_strdup(eq + 1));
	}
	g_ptr_array_add(kv, NULL);
	return mig_session_object_add(s, parts[0], id, (const char *const *)kv->pdata, err);
}

int main(int argc, char **argv)
{
	g_autofree char *name = NULL, *qmp = NULL, *mem = NULL, *backend = NULL, *huge = NULL;
	g_autofree char *workload = NULL, *incoming = NULL;
	g_auto(GStrv) device_specs = NULL, object_specs = NULL;
	gint vcpus = 1, qmp_max_clients = (gint)MIG_QMP_MAX_CLIENTS_DEFAULT;
	gboolean prealloc = FALSE, trace_lat = FALSE, paused = FALSE, thp = FALSE, dirty_log = FALSE;
	gint64 seed = 1;
	GOptionEntry entries[] = {
		{ "name", 0, 0, G_OPTION_ARG_STRING, &name, "Name of this VM", "NAME" },
		{ "qmp", 0, 0, G_OPTION_ARG_STRING, &qmp, "QMP socket (unix:PATH)", "URI" },
		{ "qmp-max-clients", 0, 0, G_OPTION_ARG_INT, &qmp_max_clients,
		  "QMP clients served at once (default 16); one more is refused", "N" },
		{ "memory", 'm', 0, G_OPTION_ARG_STRING, &mem, "Guest memory size (default 256M)", "SIZE" },
		{ "mem-backend", 0, 0, G_OPTION_ARG_STRING, &backend, "anon (default), memfd or hugetlb", "KIND" },
		{ "hugepage-size", 0, 0, G_OPTION_ARG_STRING, &huge, "2M (default) or 1G", "SIZE" },
		{ "vcpus", 0, 0, G_OPTION_ARG_INT, &vcpus, "vCPU threads (default 1)", "N" },
		{ "workload", 0, 0, G_OPTION_ARG_STRING, &workload,
		  "idle|seq|random[,wss=SIZE][,rate=BYTES_PER_S][,zero=FRACTION][,read=PCT][,used=SIZE] "
		  "(used: RAM past SIZE is never written, zero and unallocated)", "SPEC" },
		{ "mem-prealloc", 0, 0, G_OPTION_ARG_NONE, &prealloc, "Fault all guest memory in at start", NULL },
		{ "mem-thp", 0, 0, G_OPTION_ARG_NONE, &thp,
		  "anon: back guest memory with transparent huge pages (MADV_HUGEPAGE) instead of 4K pages", NULL },
		{ "dirty-log", 0, 0, G_OPTION_ARG_NONE, &dirty_log,
		  "As a source, track dirty pages with synchronous uffd-wp faults logged by a thread "
		  "(a sync costs what was written) instead of async uffd-wp + PAGEMAP_SCAN "
		  "(a sync walks all RAM)", NULL },
		{ "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed of the guest's memory contents", "N" },
		{ "incoming", 0, 0, G_OPTION_ARG_STRING, &incoming, "Wait for a migration on URI, or 'defer'", "URI" },
		{ "paused", 'S', 0, G_OPTION_ARG_NONE, &paused,
		  "Keep the guest paused until 'cont' (QEMU's -S): at start, or after an incoming migration", NULL },
		{ "device", 0, 0, G_OPTION_ARG_STRING_ARRAY, &device_specs,
		  "Add a simulated device (repeatable): sim,id=ID,size=SIZE[,precopy=SIZE][,read-rate=RATE]"
		  "[,load-rate=RATE][,load-latency=US][,load-chunk=SIZE][,seed=N][,fail-at=OFFSET]"
		  "[,fail-mode=verdict|abort]; docs/devices.md", "SPEC" },
		{ "object", 0, 0, G_OPTION_ARG_STRING_ARRAY, &object_specs,
		  "Create an object (repeatable), as QEMU's -object: tls-creds-x509,id=ID,dir=DIR,"
		  "endpoint=server|client[,verify-peer=on|off], tls-creds-psk,id=ID,dir=DIR,endpoint=..."
		  "[,username=NAME], authz-simple,id=ID,identity=DN, authz-list,id=ID,policy=allow|deny,"
		  "rules.0.match=DN,rules.0.policy=allow|deny[,rules.0.format=exact|glob]", "SPEC" },
		{ "trace-latency", 0, 0, G_OPTION_ARG_NONE, &trace_lat,
		  "Trace this process's userfaultfd waits with BPF (x-fault-latency-bpf in query-migrate)", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- mig engine host with a synthetic guest");
	g_autoptr(GError) err = NULL;
	MigdGuestConfig cfg = { .mem_size = 256u << 20, .hugepage_size = 2u << 20, .seed = 1 };
	Migd d = { 0 };
	MigVmOps vm_ops = migd_guest_vm_ops;   /* outlives the session: main returns last */
	GThread *sigt, *guard_thread;
	ExitGuard guard = { .done = FALSE };
	gboolean quiet;
	sigset_t set;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
		g_printerr("migd: %s\n", err->message);
		return 2;
	}
	if (!qmp) {
		g_printerr("migd: --qmp unix:PATH is required\n");
		return 2;
	}
	if (qmp_max_clients < 1 || qmp_max_clients > (gint)MIG_QMP_MAX_CLIENTS_LIMIT) {
		g_printerr("migd: --qmp-max-clients must be 1 to %u, not %d\n", MIG_QMP_MAX_CLIENTS_LIMIT,
			   qmp_max_clients);
		return 2;
	}
	if ((mem && !mig_parse_size(mem, &cfg.mem_size)) ||
	    (backend && !mig_mem_backend_parse(backend, &cfg.backend)) ||
	    (huge && !mig_parse_size(huge, (guint64 *)&cfg.hugepage_size)) || vcpus < 1 || vcpus > 256) {
		g_printerr("migd: bad -m, --mem-backend, --hugepage-size or --vcpus value\n");
		return 2;
	}
	if (thp && cfg.backend != MIG_MEM_ANON) {
		g_printerr("migd: --mem-thp is for --mem-backend anon\n");
		return 2;
	}
	if (!migd_workload_parse(workload, &cfg.workload, &err)) {
		g_printerr("migd: %s\n", err->message);
		return 2;
	}
	d.devices = g_ptr_array_new_with_free_func((GDestroyNotify)migd_simdev_free);
	for (guint i = 0; device_specs && device_specs[i]; i++) {
		MigdSimDevConfig dcfg;

		if (!migd_simdev_parse(device_specs[i], &dcfg, &err)) {
			g_printerr("migd: --device: %s\n", err->message);
			g_ptr_array_free(d.devices, TRUE);
			return 2;
		}
		g_ptr_array_add(d.devices, migd_simdev_new(&dcfg));
	}
	cfg.vcpus = (guint)vcpus;
	cfg.seed = (guint64)seed;
	cfg.incoming = incoming != NULL;
	cfg.prealloc = prealloc;
	cfg.thp = thp;

	/* before any thread exists, so every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (trace_lat)
		trace_latency_start();

	d.qmp = mig_qmp_server_new(g_str_has_prefix(qmp, "unix:") ? qmp + 5 : qmp, &migd_version, &err);
	if (d.qmp)
		mig_qmp_set_max_clients(d.qmp, (guint)qmp_max_clients);
	if (!d.qmp) {
		g_printerr("migd: QMP socket %s: %s\n", qmp, err->message);
		return 1;
	}
	d.guest = migd_guest_new(&cfg, &err);
	if (!d.guest) {
		g_printerr("migd: guest memory: %s\n", err->message);
		mig_qmp_server_free(d.qmp);
		return 1;
	}
	d.session = mig_session_new(name ? name : "migd");
	mig_session_set_log_cb(d.session, log_stderr, NULL);
	if (dirty_log)
		mig_session_set_dirty_tracker(d.session, log_tracker_new, NULL);
	vm_ops.query = migd_vm_query;
	mig_session_set_vm(d.session, &vm_ops, d.guest,
			   cfg.incoming ? MIG_RUN_INMIGRATE : paused ? MIG_RUN_PRELAUNCH : MIG_RUN_RUNNING);
	mig_session_set_vm_live(d.session, &migd_guest_vm_live_ops);
	mig_session_set_autostart(d.session, !paused);
	mig_session_add_ram(d.session, migd_guest_ram(d.guest));
	{
		pid_t tids[256];

		mig_session_set_vcpus(d.session, tids, migd_guest_vcpu_tids(d.guest, tids, G_N_ELEMENTS(tids)));
	}
	for (guint i = 0; i < d.devices->len; i++) {
		MigdSimDev *dev = g_ptr_array_index(d.devices, i);

		if (!mig_session_add_device(d.session, migd_simdev_id(dev), &migd_simdev_ops, dev, &err)) {
			g_printerr("migd: --device: %s\n", err->message);
			mig_session_free(d.session);
			g_ptr_array_free(d.devices, TRUE);
			migd_guest_free(d.guest);
			mig_qmp_server_free(d.qmp);
			return 2;
		}
	}
	for (guint i = 0; object_specs && object_specs[i]; i++) {
		if (!add_object(d.session, object_specs[i], &err)) {
			g_printerr("migd: --object: %s\n", err->message);
			mig_session_free(d.session);
			g_ptr_array_free(d.devices, TRUE);
			migd_guest_free(d.guest);
			mig_qmp_server_free(d.qmp);
			return 2;
		}
	}
	migd_guest_set_fail_cb(d.guest, on_integrity_failure, &d);
	mig_session_set_incoming_failed_cb(d.session, on_incoming_failed, &d);
	mig_qmp_add_session_commands(d.qmp, d.session);
	mig_qmp_register(d.qmp, "quit", h_quit, &d);
	mig_qmp_register(d.qmp, "query-version", h_query_version, &d);
	mig_qmp_register(d.qmp, "x-guest-check", h_guest_check, &d);
	if (incoming && strcmp(incoming, "defer") && !mig_session_incoming(d.session, incoming, &err)) {
		g_printerr("migd: --incoming %s: %s\n", incoming, err->message);
		return 1;
	}
	if (!cfg.incoming && !paused)
		migd_guest_cont(d.guest);

	sigt = g_thread_new("migd/signals", signal_thread, &d);
	quiet = mig_qmp_server_run(d.qmp);

	g_mutex_init(&guard.lock);
	g_cond_init(&guard.cond);
	guard.qmp_path = g_str_has_prefix(qmp, "unix:") ? qmp + 5 : qmp;
	guard.exit_status = &d.exit_status;
	guard.step = "stopping the vCPUs";
	guard_thread = g_thread_new("migd/exit", exit_guard_thread, &guard);
	kill(getpid(), SIGUSR1);   /* releases the signal thread if no signal came */
	g_thread_join(sigt);
	/* The vCPUs end first: a vCPU waiting for a page stays blocked while the session
	 * lives, and freeing it would release the vCPU onto memory that was never sent.
	 * Such a vCPU, or a QMP command stuck in the engine, leaves only _exit. */
	if (!quiet || !migd_guest_quit(d.guest, MIGD_VCPU_QUIT_MS * G_TIME_SPAN_MILLISECOND)) {
		g_printerr("migd: %s; exiting without teardown\n",
			   quiet ? "a vCPU still waits for a page" : "a QMP command is still running");
		unlink(guard.qmp_path);
		_exit(g_atomic_int_get(&d.exit_status));
	}
	/* A migration thread may wait on a silent peer until its bound; freeing a large guest
	 * may take seconds on a starved host: the guard's message says which it was. */
	exit_guard_step(&guard, "ending the migration session: joining its threads");
	mig_session_free(d.session);
	exit_guard_step(&guard, "freeing the devices and the guest's memory");
	g_ptr_array_free(d.devices, TRUE);   /* after the session: it used them until now */
	migd_guest_free(d.guest);
	exit_guard_step(&guard, "freeing the QMP server");
	mig_qmp_server_free(d.qmp);
	g_mutex_lock(&guard.lock);
	guard.done = TRUE;
	g_cond_signal(&guard.cond);
	g_mutex_unlock(&guard.lock);
	g_thread_join(guard_thread);
	g_mutex_clear(&guard.lock);
	g_cond_clear(&guard.cond);
	fl_unload(trace_latency.skel);
	g_free(trace_latency.error);
	return g_atomic_int_get(&d.exit_status);
}
