/* An embedder of libmig, built out of tree against the installed headers, library and
 * mig.pc: its own guest memory and a trivial VM migrate from a source session to a
 * destination session in this one process, over a unix socket, and every byte must
 * arrive. It includes nothing but <mig/mig.h>, so a header that is not installed or a
 * symbol that is not exported breaks its build. */
#include <mig/mig.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RAM_SIZE (16u << 20)
#define PAGE 4096u

typedef struct Vm {
	const char *name;
	int stops, conts;
	gboolean state_loaded;
} Vm;

static const char vm_state[] = "embed: the VM's registers";

static void vm_stop(gpointer opaque) { __atomic_add_fetch(&((Vm *)opaque)->stops, 1, __ATOMIC_SEQ_CST); }
static void vm_cont(gpointer opaque) { __atomic_add_fetch(&((Vm *)opaque)->conts, 1, __ATOMIC_SEQ_CST); }

static GBytes *vm_save(gpointer opaque, GError **err)
{
	return g_bytes_new_static(vm_state, sizeof(vm_state));
}

static gboolean vm_load(gpointer opaque, GBytes *state, GError **err)
{
	gsize len;
	const void *p = g_bytes_get_data(state, &len);

	if (len != sizeof(vm_state) || memcmp(p, vm_state, len)) {
		g_set_error(err, MIG_ERROR, 22, "the VM state did not survive the trip");
		return FALSE;
	}
	((Vm *)opaque)->state_loaded = TRUE;
	return TRUE;
}

static const MigVmOps vm_ops = { .stop = vm_stop, .cont = vm_cont, .save_state = vm_save, .load_state = vm_load };

static void on_log(gpointer opaque, MigLogLevel level, const char *session, const char *msg)
{
	fprintf(stderr, "embed: %s: %s: %s\n", mig_log_level_str(level), session, msg);
}

static void on_event(gpointer opaque, const MigEvent *ev)
{
	if (ev->type == MIG_EVENT_MIGRATION && ev->status == MIG_STATUS_COMPLETED)
		__atomic_store_n((gboolean *)opaque, TRUE, __ATOMIC_SEQ_CST);
}

/* A pattern no two pages share, with every 8th page left zero. */
static void fill(guint8 *p)
{
	for (gsize i = 0; i < RAM_SIZE / sizeof(guint64); i++) {
		guint64 page = i * sizeof(guint64) / PAGE;

		((guint64 *)p)[i] = page % 8 ? (i + 1) * 0x9e3779b97f4a7c15ull : 0;
	}
}

static MigStatus wait_final(MigSession *s)
{
	gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
	MigStatus st;

	while ((st = mig_session_status(s)) != MIG_STATUS_COMPLETED && st != MIG_STATUS_FAILED &&
	       st != MIG_STATUS_CANCELLED && g_get_monotonic_time() < end)
		g_usleep(10000);
	return st;
}

static int fail(const char *what, GError *err)
{
	fprintf(stderr, "embed: FAIL: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
	g_clear_error(&err);
	return 1;
}

int main(void)
{
	g_autofree char *dir = g_dir_make_tmp("mig-embed-XXXXXX", NULL);
	g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", dir);
	g_autofree char *sock = g_strdup_printf("%s/mig.sock", dir);
	Vm src_vm = { .name = "src" }, dst_vm = { .name = "dst" };
	gboolean completed_event = FALSE;
	GError *err = NULL;
	MigRamBlock *src_ram, *dst_ram;
	MigSession *src, *dst;
	MigInfo info = { .size = sizeof(info) };
	MigStatus st;
	int rc = 0;

	src_ram = mig_ram_block_new("pc.ram", RAM_SIZE, MIG_MEM_ANON, 0, &err);
	dst_ram = src_ram ? mig_ram_block_new("pc.ram", RAM_SIZE, MIG_MEM_ANON, 0, &err) : NULL;
	if (!dst_ram)
		return fail("guest memory", err);
	fill(src_ram->host);

	src = mig_session_new("src");
	dst = mig_session_new("dst");
	mig_session_set_log_cb(src, on_log, NULL);
	mig_session_set_log_cb(dst, on_log, NULL);
	mig_session_set_vm(src, &vm_ops, &src_vm, MIG_RUN_RUNNING);
	mig_session_set_vm(dst, &vm_ops, &dst_vm, MIG_RUN_INMIGRATE);
	mig_session_add_ram(src, src_ram);
	mig_session_add_ram(dst, dst_ram);
	mig_session_set_event_cb(src, on_event, &completed_event);
	if (!mig_session_set_cap(src, MIG_CAP_EVENTS, TRUE, &err) ||
	    !mig_session_set_param_u64(src, MIG_PARAM_MAX_BANDWIDTH, 0, &err) ||
	    !mig_session_incoming(dst, uri, &err) || !mig_session_migrate(src, uri, &err)) {
		rc = fail("starting the migration", err);
		goto out;
	}
	if ((st = wait_final(src)) != MIG_STATUS_COMPLETED || (st = wait_final(dst)) != MIG_STATUS_COMPLETED) {
		fprintf(stderr, "embed: FAIL: migration ended %s\n", mig_status_str(st));
		rc = 1;
		goto out;
	}
	if (memcmp(src_ram->host, dst_ram->host, RAM_SIZE)) {
		gsize i = 0;

		while (src_ram->host[i] == dst_ram->host[i])
			i++;
		fprintf(stderr, "embed: FAIL: memory differs from byte %zu (page %zu)\n", i, i / PAGE);
		rc = 1;
	}
	if (!dst_vm.state_loaded || src_vm.stops != 1 || mig_session_runstate(dst) != MIG_RUN_RUNNING ||
	    !completed_event) {
		fprintf(stderr, "embed: FAIL: state loaded %d, source stops %d, destination %s, completed event %d\n",
			dst_vm.state_loaded, src_vm.stops, mig_runstate_str(mig_session_runstate(dst)), completed_event);
		rc = 1;
	}
	if (!mig_session_query(src, &info) || info.ram.total != RAM_SIZE || info.ram.transferred < RAM_SIZE * 7 / 8) {
		fprintf(stderr, "embed: FAIL: query: total %" G_GUINT64_FORMAT ", transferred %" G_GUINT64_FORMAT "\n",
			info.ram.total, info.ram.transferred);
		rc = 1;
	}
	if (!rc)
		printf("embed: %u bytes migrated and verified, %" G_GUINT64_FORMAT " on the wire\n", RAM_SIZE,
		       info.ram.transferred);
	mig_info_clear(&info);
out:
	mig_session_free(src);
	mig_session_free(dst);
	mig_ram_block_free(src_ram);
	mig_ram_block_free(dst_ram);
	unlink(sock);
	rmdir(dir);
	return rc;
}
