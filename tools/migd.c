/* migd: hosts one migration session and a synthetic guest, controlled over QMP. */
#include "engine/guest.h"
#include "engine/qmp.h"
#include "engine/qmp_cmds.h"
#include "engine/session.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct Migd {
	MigGuest *guest;
	MigSession *session;
	MigQmpServer *qmp;
} Migd;

static void vm_stop(gpointer g) { mig_guest_stop(g); }
static void vm_cont(gpointer g) { mig_guest_cont(g); }

static GBytes *vm_save(gpointer g, GError **err)
{
	return mig_guest_save_record(g);
}

static gboolean vm_load(gpointer g, GBytes *state, GError **err)
{
	gsize len;
	const guint8 *p = g_bytes_get_data(state, &len);

	return mig_guest_load_record(g, p, len, err);
}

static void vm_query(gpointer g, JsonBuilder *b)
{
	guint64 checked, failed, total;

	mig_guest_integrity(g, &checked, &failed, &total);
	if (!total)
		return;
	json_builder_set_member_name(b, "x-integrity");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "checked");
	json_builder_add_int_value(b, (gint64)checked);
	json_builder_set_member_name(b, "failed");
	json_builder_add_int_value(b, (gint64)failed);
	json_builder_set_member_name(b, "total");
	json_builder_add_int_value(b, (gint64)total);
	json_builder_end_object(b);
}

static void vm_incoming_done(gpointer g)
{
	mig_guest_start_verifier(g);
}

static const MigVmOps guest_ops = {
	.incoming_done = vm_incoming_done,
	.stop = vm_stop,
	.cont = vm_cont,
	.save_state = vm_save,
	.load_state = vm_load,
	.query = vm_query,
};

static void on_integrity_failure(gpointer opaque, guint64 unit, const char *what)
{
	Migd *d = opaque;

	mig_session_report_error(d->session, "integrity check failed at unit %" G_GUINT64_FORMAT ": %s", unit, what);
}

static JsonNode *h_quit(JsonObject *args, gpointer opaque, GError **err)
{
	mig_qmp_server_stop(((Migd *)opaque)->qmp);
	return NULL;
}

static JsonNode *h_query_version(JsonObject *args, gpointer opaque, GError **err)
{
	JsonBuilder *b = json_builder_new();
	JsonNode *n;

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "qemu");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "major");
	json_builder_add_int_value(b, 10);
	json_builder_set_member_name(b, "minor");
	json_builder_add_int_value(b, 1);
	json_builder_set_member_name(b, "micro");
	json_builder_add_int_value(b, 0);
	json_builder_end_object(b);
	json_builder_set_member_name(b, "package");
	json_builder_add_string_value(b, "mig " MIG_VERSION);
	json_builder_end_object(b);
	n = json_builder_get_root(b);
	g_object_unref(b);
	return n;
}

static JsonNode *h_guest_check(JsonObject *args, gpointer opaque, GError **err)
{
	Migd *d = opaque;
	guint64 checked, failed;
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	JsonObject *o = json_object_new();

	mig_guest_self_check(d->guest, &checked, &failed);
	json_object_set_int_member(o, "checked", (gint64)checked);
	json_object_set_int_member(o, "failed", (gint64)failed);
	json_node_take_object(n, o);
	return n;
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

int main(int argc, char **argv)
{
	g_autofree char *name = NULL, *qmp = NULL, *mem = NULL, *backend = NULL, *huge = NULL;
	g_autofree char *workload = NULL, *incoming = NULL;
	gint vcpus = 1;
	gboolean prealloc = FALSE;
	gint64 seed = 1;
	GOptionEntry entries[] = {
		{ "name", 0, 0, G_OPTION_ARG_STRING, &name, "Name of this VM", "NAME" },
		{ "qmp", 0, 0, G_OPTION_ARG_STRING, &qmp, "QMP socket (unix:PATH)", "URI" },
		{ "memory", 'm', 0, G_OPTION_ARG_STRING, &mem, "Guest memory size (default 256M)", "SIZE" },
		{ "mem-backend", 0, 0, G_OPTION_ARG_STRING, &backend, "anon (default), memfd or hugetlb", "KIND" },
		{ "hugepage-size", 0, 0, G_OPTION_ARG_STRING, &huge, "2M (default) or 1G", "SIZE" },
		{ "vcpus", 0, 0, G_OPTION_ARG_INT, &vcpus, "vCPU threads (default 1)", "N" },
		{ "workload", 0, 0, G_OPTION_ARG_STRING, &workload,
		  "idle|seq|random[,wss=SIZE][,rate=BYTES_PER_S][,zero=FRACTION][,read=PCT]", "SPEC" },
		{ "mem-prealloc", 0, 0, G_OPTION_ARG_NONE, &prealloc, "Fault all guest memory in at start", NULL },
		{ "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed of the guest's memory contents", "N" },
		{ "incoming", 0, 0, G_OPTION_ARG_STRING, &incoming, "Wait for a migration on URI, or 'defer'", "URI" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- mig engine host with a synthetic guest");
	g_autoptr(GError) err = NULL;
	MigGuestConfig cfg = { .mem_size = 256u << 20, .hugepage_size = 2u << 20, .seed = 1 };
	MigQmpVersion ver = { 10, 1, 0, "mig " MIG_VERSION };
	Migd d = { 0 };
	GThread *sigt;
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
	if ((mem && !mig_parse_size(mem, &cfg.mem_size)) ||
	    (backend && !mig_mem_backend_parse(backend, &cfg.backend)) ||
	    (huge && !mig_parse_size(huge, (guint64 *)&cfg.hugepage_size)) || vcpus < 1 || vcpus > 256) {
		g_printerr("migd: bad -m, --mem-backend, --hugepage-size or --vcpus value\n");
		return 2;
	}
	if (!mig_workload_parse(workload, &cfg.workload, &err)) {
		g_printerr("migd: %s\n", err->message);
		return 2;
	}
	cfg.vcpus = (guint)vcpus;
	cfg.seed = (guint64)seed;
	cfg.incoming = incoming != NULL;
	cfg.prealloc = prealloc;

	/* before any thread exists, so every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	d.qmp = mig_qmp_server_new(g_str_has_prefix(qmp, "unix:") ? qmp + 5 : qmp, &ver, &err);
	if (!d.qmp) {
		g_printerr("migd: QMP socket %s: %s\n", qmp, err->message);
		return 1;
	}
	d.guest = mig_guest_new(&cfg, &err);
	if (!d.guest) {
		g_printerr("migd: guest memory: %s\n", err->message);
		mig_qmp_server_free(d.qmp);
		return 1;
	}
	d.session = mig_session_new(name ? name : "migd");
	mig_session_set_vm(d.session, &guest_ops, d.guest, cfg.incoming ? MIG_RUN_INMIGRATE : MIG_RUN_RUNNING);
	mig_session_add_ram(d.session, mig_guest_ram(d.guest));
	mig_guest_set_fail_cb(d.guest, on_integrity_failure, &d);
	mig_qmp_add_session_commands(d.qmp, d.session);
	mig_qmp_register(d.qmp, "quit", h_quit, &d);
	mig_qmp_register(d.qmp, "query-version", h_query_version, &d);
	mig_qmp_register(d.qmp, "x-guest-check", h_guest_check, &d);
	if (incoming && strcmp(incoming, "defer") && !mig_session_incoming(d.session, incoming, &err)) {
		g_printerr("migd: --incoming %s: %s\n", incoming, err->message);
		return 1;
	}
	if (!cfg.incoming)
		mig_guest_cont(d.guest);

	sigt = g_thread_new("migd/signals", signal_thread, &d);
	mig_qmp_server_run(d.qmp);

	kill(getpid(), SIGUSR1);   /* releases the signal thread if no signal came */
	g_thread_join(sigt);
	mig_session_free(d.session);
	mig_guest_free(d.guest);
	mig_qmp_server_free(d.qmp);
	return 0;
}
