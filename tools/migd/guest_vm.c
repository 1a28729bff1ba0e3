/* MigVmOps over the synthetic guest (guest_vm.h). */
#include "tools/migd/guest_vm.h"

static void vm_stop(gpointer g) { migd_guest_stop(g); }
static void vm_cont(gpointer g) { migd_guest_cont(g); }

static GBytes *vm_save(gpointer g, GError **err)
{
	return migd_guest_save_record(g);
}

static gboolean vm_load(gpointer g, GBytes *state, GError **err)
{
	gsize len;
	const guint8 *p = g_bytes_get_data(state, &len);

	return migd_guest_load_record(g, p, len, err);
}

void migd_guest_vm_query(gpointer g, MigValue *obj)
{
	guint64 checked, failed, total, writes = migd_guest_writes(g);
	MigValue *o;

	if (writes)
		mig_value_add_int(obj, "x-guest-writes", (gint64)writes);
	migd_guest_integrity(g, &checked, &failed, &total);
	if (!total)
		return;
	o = mig_value_add_object(obj, "x-integrity");
	mig_value_add_int(o, "checked", (gint64)checked);
	mig_value_add_int(o, "failed", (gint64)failed);
	mig_value_add_int(o, "total", (gint64)total);
}

static void vm_incoming_done(gpointer g)
{
	migd_guest_start_verifier(g);
}

const MigVmOps migd_guest_vm_ops = {
	.stop = vm_stop,
	.cont = vm_cont,
	.save_state = vm_save,
	.load_state = vm_load,
	.query = migd_guest_vm_query,
	.incoming_done = vm_incoming_done,
};

static void vm_save_begin(gpointer g) { migd_guest_save_begin(g); }
static gboolean vm_save_part(gpointer g, GByteArray *out, gsize max) { return migd_guest_save_part(g, out, max); }
static void vm_load_begin(gpointer g) { migd_guest_load_begin(g); }

static gboolean vm_load_part(gpointer g, const guint8 *data, gsize len, GError **err)
{
	return migd_guest_load_part(g, data, len, err);
}

const MigVmLiveOps migd_guest_vm_live_ops = {
	.save_begin = vm_save_begin,
	.save_part = vm_save_part,
	.load_begin = vm_load_begin,
	.load_part = vm_load_part,
};
