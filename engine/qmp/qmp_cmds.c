/* QMP command handlers: argument checking in QEMU's words, then a call of the public
 * API (<mig/mig.h>); the JSON of capabilities and parameters lives here, their checks in
 * the engine. */
#include "engine/qmp/qmp_cmds.h"
#include "engine/qmp/qmp_yank.h"
#include <mig/mig.h>
#include <string.h>

static gboolean only_members(JsonObject *args, const char *const *allowed, GError **err)
{
	g_autoptr(GList) members = json_object_get_members(args);

	for (GList *l = members; l; l = l->next) {
		if (!g_strv_contains(allowed, l->data)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected", (char *)l->data);
			return FALSE;
		}
	}
	return TRUE;
}

/* NULL with *err set when present but not a string, or missing and required. */
static const char *string_arg(JsonObject *args, const char *name, gboolean required, GError **err)
{
	JsonNode *n = json_object_get_member(args, name);

	if (!n) {
		if (required)
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is missing", name);
		return NULL;
	}
	if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: string", name);
		return NULL;
	}
	return json_node_get_string(n);
}

static void add_value(JsonBuilder *b, const MigValue *v)
{
	if (v->name)
		json_builder_set_member_name(b, v->name);
	switch (v->type) {
	case MIG_VALUE_INT: json_builder_add_int_value(b, v->i); break;
	case MIG_VALUE_DOUBLE: json_builder_add_double_value(b, v->d); break;
	case MIG_VALUE_BOOL: json_builder_add_boolean_value(b, v->b); break;
	case MIG_VALUE_STR: json_builder_add_string_value(b, v->s); break;
	case MIG_VALUE_OBJECT:
		json_builder_begin_object(b);
		mig_qmp_add_value_members(b, v);
		json_builder_end_object(b);
		break;
	case MIG_VALUE_ARRAY:
		json_builder_begin_array(b);
		for (guint i = 0; i < v->items->len; i++)
			add_value(b, g_ptr_array_index(v->items, i));
		json_builder_end_array(b);
		break;
	}
}

void mig_qmp_add_value_members(JsonBuilder *b, const MigValue *obj)
{
	for (guint i = 0; obj && i < obj->items->len; i++)
		add_value(b, g_ptr_array_index(obj->items, i));
}

static JsonNode *h_query_status(JsonObject *args, gpointer s, GError **err)
{
	MigRunState r = mig_session_runstate(s);
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	JsonObject *o = json_object_new();

	json_object_set_string_member(o, "status", mig_runstate_str(r));
	json_object_set_boolean_member(o, "running", r == MIG_RUN_RUNNING);
	json_object_set_boolean_member(o, "singlestep", FALSE);
	json_node_take_object(n, o);
	return n;
}

static JsonNode *h_stop(JsonObject *args, gpointer s, GError **err)
{
	mig_session_vm_stop(s, err);
	return NULL;
}

static JsonNode *h_cont(JsonObject *args, gpointer s, GError **err)
{
	mig_session_vm_cont(s, err);
	return NULL;
}

/* [{"capability": name, "state": bool}, ...] */
static JsonNode *h_set_caps(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "capabilities", NULL };
	JsonNode *n = json_object_get_member(args, "capabilities");
	g_autofree MigCapSetting *set = NULL;
	JsonArray *list;
	guint len;

	if (!only_members(args, ok, err))
		return NULL;
	if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
			    n ? "Invalid parameter type for 'capabilities', expected: array" : "Parameter 'capabilities' is missing");
		return NULL;
	}
	list = json_node_get_array(n);
	len = json_array_get_length(list);
	set = g_new0(MigCapSetting, MAX(len, 1));
	for (guint i = 0; i < len; i++) {
		JsonNode *e = json_array_get_element(list, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
		JsonNode *cap = o ? json_object_get_member(o, "capability") : NULL;
		JsonNode *st = o ? json_object_get_member(o, "state") : NULL;

		if (!cap || !st || json_node_get_value_type(cap) != G_TYPE_STRING ||
		    json_node_get_value_type(st) != G_TYPE_BOOLEAN) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
				    "Invalid parameter type for 'capabilities[%u]', expected: {capability: string, state: bool}", i);
			return NULL;
		}
		if (!mig_cap_from_name(json_node_get_string(cap), &set[i].cap)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter 'capability' does not accept value '%s'",
				    json_node_get_string(cap));
			return NULL;
		}
		set[i].state = json_node_get_boolean(st);
	}
	mig_session_set_caps(s, set, len, err);
	return NULL;
}

static JsonNode *h_query_caps(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_array(b);
	for (int i = 0; i < MIG_CAP__MAX; i++) {
		/* a client turns on what it sees listed (libvirt does): list only what works */
		if (!mig_cap_supported(i))
			continue;
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "capability");
		json_builder_add_string_value(b, mig_cap_name(i));
		json_builder_set_member_name(b, "state");
		json_builder_add_boolean_value(b, mig_session_get_cap(s, i));
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	return json_builder_get_root(b);
}

/* One member of migrate-set-parameters as a typed setting, checked on its own so the
 * first bad member is the one reported, as QEMU does. */
static gboolean param_from_json(const char *name, JsonNode *n, MigParamSetting *out, GError **err)
{
	GType t = JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n) : G_TYPE_INVALID;
	static const char *const expect[] = {
		[MIG_PARAM_TYPE_U64] = "integer", [MIG_PARAM_TYPE_BOOL] = "boolean", [MIG_PARAM_TYPE_STR] = "string",
	};
	gboolean typed;

	if (!mig_param_from_name(name, &out->param)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected", name);
		return FALSE;
	}
	switch (mig_param_type(out->param)) {
	case MIG_PARAM_TYPE_U64:
		/* a negative value is out of every range */
		if ((typed = t == G_TYPE_INT64))
			out->u64 = (guint64)json_node_get_int(n);
		break;
	case MIG_PARAM_TYPE_BOOL:
		if ((typed = t == G_TYPE_BOOLEAN))
			out->boolean = json_node_get_boolean(n);
		break;
	case MIG_PARAM_TYPE_STR:
		/* QEMU's StrOrNull: null resets a TLS parameter */
		if (JSON_NODE_HOLDS_NULL(n) && g_str_has_prefix(name, "tls-")) {
			out->str = "";
			typed = TRUE;
		} else if ((typed = t == G_TYPE_STRING)) {
			out->str = json_node_get_string(n);
		}
		break;
	case MIG_PARAM_TYPE_ENUM:
		/* any other JSON is a value the enum does not have */
		out->str = t == G_TYPE_STRING ? json_node_get_string(n) : NULL;
		typed = TRUE;
		break;
	}
	if (!typed) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: %s", name,
			    expect[mig_param_type(out->param)]);
		return FALSE;
	}
	return mig_param_check(out, err);
}

static JsonNode *h_set_params(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(GList) members = json_object_get_members(args);
	g_autofree MigParamSetting *set = g_new0(MigParamSetting, MAX(g_list_length(members), 1));
	guint n = 0;

	for (GList *l = members; l; l = l->next, n++)
		if (!param_from_json(l->data, json_object_get_member(args, l->data), &set[n], err))
			return NULL;
	mig_session_set_params(s, set, n, err);
	return NULL;
}

static JsonNode *h_query_params(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	for (int i = 0; i < MIG_PARAM__MAX; i++) {
		json_builder_set_member_name(b, mig_param_name(i));
		switch (mig_param_type(i)) {
		case MIG_PARAM_TYPE_U64:
			json_builder_add_int_value(b, (gint64)mig_session_get_param_u64(s, i));
			break;
		case MIG_PARAM_TYPE_BOOL:
			json_builder_add_boolean_value(b, mig_session_get_param_bool(s, i));
			break;
		case MIG_PARAM_TYPE_STR:
		case MIG_PARAM_TYPE_ENUM: {
			g_autofree char *v = mig_session_get_param_str(s, i);

			json_builder_add_string_value(b, v);
			break;
		}
		}
	}
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

/* QEMU's "channels" form: [{"channel-type":"main","addr":{"transport":"socket",...}}],
 * or {"transport":"file","filename":PATH,"offset":N}. */
static char *uri_from_channels(JsonNode *n, GError **err)
{
	JsonArray *a = JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
	JsonObject *ch, *addr;
	const char *type;

	if (!a || json_array_get_length(a) != 1 || !JSON_NODE_HOLDS_OBJECT(json_array_get_element(a, 0))) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Channel list must have exactly one 'main' channel");
		return NULL;
	}
	ch = json_array_get_object_element(a, 0);
	addr = json_object_has_member(ch, "addr") && JSON_NODE_HOLDS_OBJECT(json_object_get_member(ch, "addr"))
		       ? json_object_get_object_member(ch, "addr") : NULL;
	if (addr && !g_strcmp0(json_object_get_string_member_with_default(ch, "channel-type", "main"), "main") &&
	    !g_strcmp0(json_object_get_string_member_with_default(addr, "transport", ""), "file"))
		return g_strdup_printf("file:%s,offset=%" G_GINT64_FORMAT,
				       json_object_get_string_member_with_default(addr, "filename", ""),
				       json_object_get_int_member_with_default(addr, "offset", 0));
	if (!addr || g_strcmp0(json_object_get_string_member_with_default(ch, "channel-type", "main"), "main") ||
	    g_strcmp0(json_object_get_string_member_with_default(addr, "transport", ""), "socket")) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Only a 'main' channel with a 'socket' or 'file' address is supported");
		return NULL;
	}
	type = json_object_get_string_member_with_default(addr, "type", "");
	if (!strcmp(type, "inet"))
		return g_strdup_printf("tcp:%s:%s", json_object_get_string_member_with_default(addr, "host", ""),
				       json_object_get_string_member_with_default(addr, "port", ""));
	if (!strcmp(type, "unix"))
		return g_strdup_printf("unix:%s", json_object_get_string_member_with_default(addr, "path", ""));
	g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Socket address type '%s' is not supported", type);
	return NULL;
}

static char *uri_arg(JsonObject *args, GError **err)
{
	GError *e = NULL;
	const char *uri = string_arg(args, "uri", FALSE, &e);
	JsonNode *chans = json_object_get_member(args, "channels");

	if (e) {
		g_propagate_error(err, e);
		return NULL;
	}
	if (!!uri == !!chans) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Exactly one of 'uri' or 'channels' is required");
		return NULL;
	}
	return uri ? g_strdup(uri) : uri_from_channels(chans, err);
}

static JsonNode *h_migrate(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "uri", "channels", "detach", "resume", NULL };
	g_autofree char *uri = NULL;
	JsonNode *resume = json_object_get_member(args, "resume");

	if (!only_members(args, ok, err))
		return NULL;
	if (resume && (!JSON_NODE_HOLDS_VALUE(resume) || json_node_get_value_type(resume) != G_TYPE_BOOLEAN)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for 'resume', expected: boolean");
		return NULL;
	}
	uri = uri_arg(args, err);
	if (uri && resume && json_node_get_boolean(resume))
		mig_session_resume(s, uri, err);   /* a paused postcopy reconnects */
	else if (uri)
		mig_session_migrate(s, uri, err);
	return NULL;
}

static JsonNode *h_migrate_incoming(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "uri", "channels", "exit-on-error", NULL };
	g_autofree char *uri = NULL;
	JsonNode *eoe = json_object_get_member(args, "exit-on-error");

	if (!only_members(args, ok, err))
		return NULL;
	/* QEMU's default is true; what a failure then does is the host's (migd exits) */
	if (eoe && (!JSON_NODE_HOLDS_VALUE(eoe) || json_node_get_value_type(eoe) != G_TYPE_BOOLEAN)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for 'exit-on-error', expected: boolean");
		return NULL;
	}
	uri = uri_arg(args, err);
	if (uri)
		mig_session_incoming_full(s, uri, eoe ? json_node_get_boolean(eoe) : TRUE, err);
	return NULL;
}

static void add_int(JsonBuilder *b, const char *name, gint64 v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, v);
}

static void add_opt(JsonBuilder *b, const char *name, gint64 v)
{
	if (v >= 0)
		add_int(b, name, v);
}

/* query-migrate's ram: every member of QEMU's MigrationStats, in its order (all are
 * mandatory in QEMU's schema: libvirt fails without transferred, remaining, total),
 * then mig's x- members. */
#define RAM(name, field) { name, G_STRUCT_OFFSET(MigRamInfo, field) }
static const struct ram_member {
	const char *name;
	glong off;
} ram_head[] = {
	RAM("transferred", transferred), RAM("remaining", remaining), RAM("total", total),
	RAM("duplicate", duplicate), RAM("normal", normal), RAM("normal-bytes", normal_bytes),
	RAM("dirty-pages-rate", dirty_pages_rate),
}, ram_tail[] = {
	RAM("dirty-sync-count", dirty_sync_count), RAM("postcopy-requests", postcopy_requests),
	RAM("page-size", page_size), RAM("multifd-bytes", multifd_bytes),
	RAM("pages-per-second", pages_per_second), RAM("precopy-bytes", precopy_bytes),
	RAM("downtime-bytes", downtime_bytes), RAM("postcopy-bytes", postcopy_bytes),
}, ram_x[] = {
	RAM("x-bulk-pacing", bulk_pacing), RAM("x-device-chunks-in-flight-peak", device_chunks_in_flight_peak),
	RAM("x-break-huge-drops", break_huge_drops), RAM("x-urgent-skipped", urgent_skipped),
};
#undef RAM

static void add_ram_members(JsonBuilder *b, const MigRamInfo *r, const struct ram_member *m, gsize n)
{
	for (gsize i = 0; i < n; i++)
		add_int(b, m[i].name, (gint64)G_STRUCT_MEMBER(guint64, r, m[i].off));
}

static void add_ram(JsonBuilder *b, const MigInfo *in)
{
	MigRamInfo r = in->ram;

	/* as QEMU: what is left and the dirty rate are 0 once completed */
	if (in->status == MIG_STATUS_COMPLETED)
		r.remaining = r.dirty_pages_rate = 0;
	json_builder_set_member_name(b, "ram");
	json_builder_begin_object(b);
	add_ram_members(b, &r, ram_head, G_N_ELEMENTS(ram_head));
	json_builder_set_member_name(b, "mbps");
	json_builder_add_double_value(b, r.mbps);
	add_ram_members(b, &r, ram_tail, G_N_ELEMENTS(ram_tail));
	add_int(b, "dirty-sync-missed-zero-copy", 0);   /* mig has no zero-copy send */
	add_ram_members(b, &r, ram_x, G_N_ELEMENTS(ram_x));
	if (r.preempt_channels) {
		json_builder_set_member_name(b, "x-preempt-channel-requests");
		json_builder_begin_array(b);
		for (guint i = 0; i < r.preempt_channels; i++)
			json_builder_add_int_value(b, (gint64)r.preempt_channel_requests[i]);
		json_builder_end_array(b);
	}
	json_builder_end_object(b);
}

/* QEMU's socket-address: the address the destination listens on. */
static void add_socket_address(JsonBuilder *b, const MigInfo *in)
{
	json_builder_set_member_name(b, "socket-address");
	json_builder_begin_array(b);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "type");
	if (in->listen_path) {
		json_builder_add_string_value(b, "unix");
		json_builder_set_member_name(b, "path");
		json_builder_add_string_value(b, in->listen_path);
	} else {
		json_builder_add_string_value(b, "inet");
		json_builder_set_member_name(b, "host");
		json_builder_add_string_value(b, in->listen_host);
		json_builder_set_member_name(b, "port");
		json_builder_add_string_value(b, in->listen_port);
	}
	json_builder_end_object(b);
	json_builder_end_array(b);
}

static void add_devices(JsonBuilder *b, const MigInfo *in)
{
	json_builder_set_member_name(b, "x-devices");
	json_builder_begin_array(b);
	for (guint i = 0; i < in->devices->len; i++) {
		const MigDeviceInfo *d = g_ptr_array_index(in->devices, i);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "id");
		json_builder_add_string_value(b, d->id);
		json_builder_set_member_name(b, "state");
		json_builder_add_string_value(b, mig_dev_state_str(d->state));
		add_int(b, "bytes", (gint64)d->bytes);
		if (in->source)
			add_int(b, "precopy-bytes", (gint64)d->precopy_bytes);
		add_opt(b, "save-ms", d->save_ms);
		add_opt(b, "transfer-ms", d->transfer_ms);
		add_opt(b, "load-ms", d->load_ms);
		mig_qmp_add_value_members(b, d->extra);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
}

/* The source statuses QEMU reports times and ram in (fill_source_migration_info):
 * not setup (nothing measured yet), not failed or cancelled (status and error only). */
static gboolean src_reports_stats(MigStatus st)
{
	switch (st) {
	case MIG_STATUS_ACTIVE:
	case MIG_STATUS_CANCELLING:
	case MIG_STATUS_POSTCOPY_DEVICE:
	case MIG_STATUS_POSTCOPY_ACTIVE:
	case MIG_STATUS_POSTCOPY_PAUSED:
	case MIG_STATUS_POSTCOPY_RECOVER_SETUP:
	case MIG_STATUS_POSTCOPY_RECOVER:
	case MIG_STATUS_PRE_SWITCHOVER:
	case MIG_STATUS_DEVICE:
	case MIG_STATUS_COMPLETED:
		return TRUE;
	default:
		return FALSE;
	}
}

/* QEMU's populate_time_info: setup-time and total-time always; downtime once the guest
 * runs on the destination (postcopy-active, completed), expected-downtime before. */
static void add_src_times(JsonBuilder *b, const MigInfo *in)
{
	add_int(b, "total-time", MAX(in->total_time_ms, 0));
	if (in->status == MIG_STATUS_POSTCOPY_ACTIVE || in->status == MIG_STATUS_COMPLETED)
		add_int(b, "downtime", MAX(in->downtime_ms, 0));
	else
		add_int(b, "expected-downtime", MAX(in->expected_downtime_ms, 0));
	add_int(b, "setup-time", MAX(in->setup_time_ms, 0));
}

static void add_src_info(JsonBuilder *b, const MigInfo *in)
{
	if (!src_reports_stats(in->status))
		return;
	add_ram(b, in);
	add_src_times(b, in);
	if (in->downtime_devices_ms >= 0) {
		json_builder_set_member_name(b, "x-downtime-split");
		json_builder_begin_object(b);
		add_int(b, "devices-ms", in->downtime_devices_ms);
		add_int(b, "ram-ms", in->downtime_ram_ms);
		add_int(b, "other-ms", in->downtime_other_ms);
		json_builder_end_object(b);
	}
	add_opt(b, "x-migration-thread-cpu-ms", in->thread_cpu_ms);
	if (in->converging >= 0) {
		json_builder_set_member_name(b, "x-converging");
		json_builder_add_boolean_value(b, in->converging);
	}
}

/* QEMU's destination reports no ram (fill_destination_migration_info): its status,
 * the addresses it listens on until the incoming migration ends (QEMU frees them
 * with the incoming state), and once completed its postcopy figures (in extra). */
static void add_dst_info(JsonBuilder *b, const MigInfo *in)
{
	gboolean ended = in->status == MIG_STATUS_COMPLETED || in->status == MIG_STATUS_FAILED ||
			 in->status == MIG_STATUS_CANCELLED;

	if ((in->listen_path || in->listen_host) && !ended)
		add_socket_address(b, in);
	add_opt(b, "x-device-queued-peak", in->device_queued_peak);
	add_int(b, "x-ram-transferred", (gint64)in->ram.transferred);
}

static JsonNode *h_query_migrate(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	MigInfo in = { .size = sizeof(in) };

	mig_session_query(s, &in);
	json_builder_begin_object(b);
	if (in.started && (in.status != MIG_STATUS_NONE || !in.source)) {
		json_builder_set_member_name(b, "status");
		json_builder_add_string_value(b, mig_status_str(in.status));
		if (in.source)
			add_src_info(b, &in);
		else
			add_dst_info(b, &in);
		if (in.devices)
			add_devices(b, &in);
		if (in.session_id[0]) {
			json_builder_set_member_name(b, "x-session-id");
			json_builder_add_string_value(b, in.session_id);
		}
		if (in.error) {
			json_builder_set_member_name(b, "error-desc");
			json_builder_add_string_value(b, in.error);
		}
	}
	mig_qmp_add_value_members(b, in.extra);
	json_builder_end_object(b);
	mig_info_clear(&in);
	return json_builder_get_root(b);
}

/* One property value as the engine takes it: a string (booleans as on/off). */
static char *prop_string(const char *name, JsonNode *n, GError **err)
{
	if (JSON_NODE_HOLDS_VALUE(n)) {
		GType t = json_node_get_value_type(n);

		if (t == G_TYPE_STRING)
			return g_strdup(json_node_get_string(n));
		if (t == G_TYPE_BOOLEAN)
			return g_strdup(json_node_get_boolean(n) ? "on" : "off");
		if (t == G_TYPE_INT64)
			return g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
	}
	g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s'", name);
	return NULL;
}

/* QEMU's object-add: qom-type, id and the type's properties as members (or, as older
 * QEMUs took them, in "props"); authz-list's "rules" is an array of objects. */
static gboolean object_props(JsonObject *o, GPtrArray *kv, GError **err)
{
	g_autoptr(GList) members = json_object_get_members(o);

	for (GList *l = members; l; l = l->next) {
		const char *name = l->data;
		JsonNode *n = json_object_get_member(o, name);

		if (!strcmp(name, "qom-type") || !strcmp(name, "id"))
			continue;
		if (!strcmp(name, "props") && JSON_NODE_HOLDS_OBJECT(n)) {
			if (!object_props(json_node_get_object(n), kv, err))
				return FALSE;
			continue;
		}
		if (!strcmp(name, "rules") && JSON_NODE_HOLDS_ARRAY(n)) {
			JsonArray *a = json_node_get_array(n);

			for (guint i = 0; i < json_array_get_length(a); i++) {
				JsonNode *r = json_array_get_element(a, i);
				g_autoptr(GList) rm = NULL;

				if (!JSON_NODE_HOLDS_OBJECT(r)) {
					g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC,
						    "Invalid parameter type for 'rules', expected: array of objects");
					return FALSE;
				}
				rm = json_object_get_members(json_node_get_object(r));
				for (GList *k = rm; k; k = k->next) {
					char *v = prop_string(k->data, json_object_get_member(json_node_get_object(r), k->data), err);

					if (!v)
						return FALSE;
					g_ptr_array_add(kv, g_strdup_printf("rules.%u.%s", i, (char *)k->data));
					g_ptr_array_add(kv, v);
				}
			}
			continue;
		}
		{
			char *v = prop_string(name, n, err);

			if (!v)
				return FALSE;
			g_ptr_array_add(kv, g_strdup(name));
			g_ptr_array_add(kv, v);
		}
	}
	return TRUE;
}

static JsonNode *h_object_add(JsonObject *args, gpointer s, GError **err)
{
	const char *type = string_arg(args, "qom-type", TRUE, err);
	const char *id = type ? string_arg(args, "id", TRUE, err) : NULL;
	g_autoptr(GPtrArray) kv = g_ptr_array_new_with_free_func(g_free);

	if (!id || !object_props(args, kv, err))
		return NULL;
	g_ptr_array_add(kv, NULL);
	mig_session_object_add(s, type, id, (const char *const *)kv->pdata, err);
	return NULL;
}

static JsonNode *h_object_del(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "id", NULL };
	const char *id;

	if (!only_members(args, ok, err) || !(id = string_arg(args, "id", TRUE, err)))
		return NULL;
	mig_session_object_del(s, id, err);
	return NULL;
}

static JsonNode *h_start_postcopy(JsonObject *args, gpointer s, GError **err)
{
	mig_session_start_postcopy(s, err);
	return NULL;
}

/* migrate-continue {state}: state must be the status the migration waits in */
static JsonNode *h_continue(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "state", NULL };
	const char *name;

	if (!only_members(args, ok, err) || !(name = string_arg(args, "state", TRUE, err)))
		return NULL;
	for (int st = MIG_STATUS_NONE; st <= MIG_STATUS_WAIT_UNPLUG; st++) {
		if (!strcmp(mig_status_str(st), name)) {
			mig_session_continue(s, st, err);
			return NULL;
		}
	}
	g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter 'state' does not accept value '%s'", name);
	return NULL;
}

static int take_fd(gpointer q, const char *name, GError **err)
{
	return mig_qmp_take_fd(q, name, err);
}

static int fdset_dup(gpointer q, gint64 id, int flags, GError **err)
{
	return mig_qmp_fdset_dup(q, id, flags, err);
}

static JsonNode *h_pause(JsonObject *args, gpointer s, GError **err)
{
	mig_session_pause(s, err);
	return NULL;
}

static JsonNode *h_recover(JsonObject *args, gpointer s, GError **err)
{
	static const char *const ok[] = { "uri", NULL };
	const char *uri;

	if (!only_members(args, ok, err))
		return NULL;
	uri = string_arg(args, "uri", TRUE, err);
	if (uri)
		mig_session_recover(s, uri, err);
	return NULL;
}

static JsonNode *h_cancel(JsonObject *args, gpointer s, GError **err)
{
	mig_session_cancel(s, err);
	return NULL;
}

static void forward_event(gpointer q, const MigEvent *ev)
{
	JsonNode *data = NULL;
	JsonObject *o;

	switch (ev->type) {
	case MIG_EVENT_MIGRATION:
	case MIG_EVENT_MIGRATION_PASS:
		o = json_object_new();
		if (ev->type == MIG_EVENT_MIGRATION)
			json_object_set_string_member(o, "status", mig_status_str(ev->status));
		else
			json_object_set_int_member(o, "pass", (gint64)ev->pass);
		data = json_node_new(JSON_NODE_OBJECT);
		json_node_take_object(data, o);
		break;
	case MIG_EVENT_STOP:
	case MIG_EVENT_RESUME:
		break;
	}
	mig_qmp_emit_event(q, mig_event_name(ev->type), data);
}

void mig_qmp_add_session_commands(MigQmpServer *q, MigSession *s)
{
	mig_qmp_register(q, "query-status", h_query_status, s);
	mig_qmp_register(q, "stop", h_stop, s);
	mig_qmp_register(q, "cont", h_cont, s);
	mig_qmp_register(q, "migrate-set-capabilities", h_set_caps, s);
	mig_qmp_register(q, "query-migrate-capabilities", h_query_caps, s);
	mig_qmp_register(q, "migrate-set-parameters", h_set_params, s);
	mig_qmp_register(q, "query-migrate-parameters", h_query_params, s);
	mig_qmp_register(q, "migrate", h_migrate, s);
	mig_qmp_register(q, "migrate-incoming", h_migrate_incoming, s);
	mig_qmp_register(q, "query-migrate", h_query_migrate, s);
	mig_qmp_register(q, "migrate_cancel", h_cancel, s);
	mig_qmp_register(q, "migrate-start-postcopy", h_start_postcopy, s);
	mig_qmp_register(q, "migrate-continue", h_continue, s);
	mig_qmp_register(q, "object-add", h_object_add, s);
	mig_qmp_register(q, "object-del", h_object_del, s);
	mig_qmp_add_yank_commands(q, s);
	mig_qmp_register(q, "migrate-pause", h_pause, s);
	mig_qmp_register(q, "migrate-recover", h_recover, s);
	mig_session_set_event_cb(s, forward_event, q);
	/* fd:NAME names a descriptor the same client passed with getfd */
	mig_session_set_fd_lookup(s, take_fd, q);
	/* file:/dev/fdset/N opens a descriptor of an fd set any client added (add-fd) */
	mig_session_set_fdset_dup(s, fdset_dup, q);
}
