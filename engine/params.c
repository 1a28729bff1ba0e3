/* Capabilities and parameters, with QEMU's names, defaults and checks. A request is
 * validated whole before anything is applied, so a bad member changes nothing. */
#include "engine/session_int.h"
#include "engine/dst/dst.h"
#include "channels/io.h"
#include <stddef.h>
#include <string.h>

static const struct {
	const char *name;
	gboolean supported;   /* mig implements it (today) */
} caps[MIG_CAP__MAX] = {
	[MIG_CAP_XBZRLE] = { "xbzrle", FALSE },
	[MIG_CAP_RDMA_PIN_ALL] = { "rdma-pin-all", FALSE },
	[MIG_CAP_AUTO_CONVERGE] = { "auto-converge", FALSE },
	[MIG_CAP_EVENTS] = { "events", TRUE },
	[MIG_CAP_POSTCOPY_RAM] = { "postcopy-ram", TRUE },
	[MIG_CAP_X_COLO] = { "x-colo", FALSE },
	[MIG_CAP_RELEASE_RAM] = { "release-ram", FALSE },
	[MIG_CAP_RETURN_PATH] = { "return-path", TRUE },   /* mig always has one */
	[MIG_CAP_PAUSE_BEFORE_SWITCHOVER] = { "pause-before-switchover", FALSE },
	[MIG_CAP_MULTIFD] = { "multifd", TRUE },
	[MIG_CAP_DIRTY_BITMAPS] = { "dirty-bitmaps", FALSE },
	[MIG_CAP_POSTCOPY_BLOCKTIME] = { "postcopy-blocktime", FALSE },
	[MIG_CAP_LATE_BLOCK_ACTIVATE] = { "late-block-activate", FALSE },
	[MIG_CAP_X_IGNORE_SHARED] = { "x-ignore-shared", FALSE },
	[MIG_CAP_VALIDATE_UUID] = { "validate-uuid", FALSE },
	[MIG_CAP_BACKGROUND_SNAPSHOT] = { "background-snapshot", FALSE },
	[MIG_CAP_ZERO_COPY_SEND] = { "zero-copy-send", FALSE },
	[MIG_CAP_POSTCOPY_PREEMPT] = { "postcopy-preempt", TRUE },
	[MIG_CAP_SWITCHOVER_ACK] = { "switchover-ack", FALSE },
	[MIG_CAP_DIRTY_LIMIT] = { "dirty-limit", FALSE },
	[MIG_CAP_MAPPED_RAM] = { "mapped-ram", FALSE },
	[MIG_CAP_X_DEVICE_STATE_LANE] = { "x-device-state-lane", TRUE },
};

static int cap_lookup(const char *name)
{
	for (int i = 0; i < MIG_CAP__MAX; i++)
		if (!g_strcmp0(caps[i].name, name))
			return i;
	return -1;
}

static gboolean migration_busy(MigSession *s, GError **err)
{
	/* a destination that only listens may still be configured, as in QEMU */
	gboolean started = mig_dst_started(s);
	gboolean listening = s->dst && !started;

	if ((mig_status_is_active(s->status) && !listening) || started) {
		g_set_error(err, MIG_ERROR, EBUSY, "There's a migration process in progress");
		return TRUE;
	}
	return FALSE;
}

gboolean mig_session_set_caps(MigSession *s, JsonArray *list, GError **err)
{
	gboolean want[MIG_CAP__MAX];
	gboolean ok = FALSE;

	g_mutex_lock(&s->lock);
	if (migration_busy(s, err))
		goto out;
	memcpy(want, s->caps, sizeof(want));
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonNode *n = json_array_get_element(list, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
		JsonNode *cap = o ? json_object_get_member(o, "capability") : NULL;
		JsonNode *st = o ? json_object_get_member(o, "state") : NULL;
		int idx;

		if (!cap || !st || json_node_get_value_type(cap) != G_TYPE_STRING ||
		    json_node_get_value_type(st) != G_TYPE_BOOLEAN) {
			g_set_error(err, MIG_ERROR, EINVAL,
				    "Invalid parameter type for 'capabilities[%u]', expected: {capability: string, state: bool}", i);
			goto out;
		}
		idx = cap_lookup(json_node_get_string(cap));
		if (idx < 0) {
			g_set_error(err, MIG_ERROR, EINVAL, "Parameter 'capability' does not accept value '%s'",
				    json_node_get_string(cap));
			goto out;
		}
		if (json_node_get_boolean(st) && !caps[idx].supported) {
			g_set_error(err, MIG_ERROR, ENOTSUP, "Capability '%s' is not supported by mig yet", caps[idx].name);
			goto out;
		}
		want[idx] = json_node_get_boolean(st);
	}
	if (want[MIG_CAP_POSTCOPY_PREEMPT] && !want[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "Postcopy preempt requires postcopy-ram");
		goto out;
	}
	memcpy(s->caps, want, sizeof(want));
	ok = TRUE;
out:
	g_mutex_unlock(&s->lock);
	return ok;
}

JsonNode *mig_session_query_caps(MigSession *s)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_array(b);
	g_mutex_lock(&s->lock);
	for (int i = 0; i < MIG_CAP__MAX; i++) {
		json_builder_begin_object(b);
		json_builder_set_member_name(b, "capability");
		json_builder_add_string_value(b, caps[i].name);
		json_builder_set_member_name(b, "state");
		json_builder_add_boolean_value(b, s->caps[i]);
		json_builder_end_object(b);
	}
	g_mutex_unlock(&s->lock);
	json_builder_end_array(b);
	return json_builder_get_root(b);
}

/* ---- parameters ---- */

/* MIG_TCP_CONGESTION_DEFAULT (channels/io.h): mig's channels are long bulk flows whose
 * rate mig sets itself where it matters (max-bandwidth, postcopy pacing). BBR, a common
 * system default, needs pacing, and without an fq qdisc (loopback has none) TCP paces
 * it with a timer per packet: that took a third of the device lane's downtime here
 * (docs/benchmarks.md). */

typedef enum { P_UINT, P_SIZE, P_BOOL, P_STR, P_ENUM, P_TCP_CC } ParamType;

static const char *const zero_page_names[] = { "none", "legacy", "multifd", NULL };
static const char *const compression_names[] = { "none", NULL };
static const char *const mode_names[] = { "normal", NULL };

static const struct param {
	const char *name;
	ParamType type;
	size_t off;
	guint64 min, max;
	const char *const *enum_names;
} params[] = {
#define U(n, f, lo, hi) { n, P_UINT, offsetof(MigParams, f), lo, hi, NULL }
#define SZ(n, f, lo, hi) { n, P_SIZE, offsetof(MigParams, f), lo, hi, NULL }
	U("announce-initial", announce_initial, 1, 100000),
	U("announce-max", announce_max, 1, 100000),
	U("announce-rounds", announce_rounds, 1, 1000),
	U("announce-step", announce_step, 1, 10000),
	U("throttle-trigger-threshold", throttle_trigger_threshold, 1, 100),
	U("cpu-throttle-initial", cpu_throttle_initial, 1, 99),
	U("cpu-throttle-increment", cpu_throttle_increment, 1, 99),
	{ "cpu-throttle-tailslow", P_BOOL, offsetof(MigParams, cpu_throttle_tailslow), 0, 1, NULL },
	{ "tls-creds", P_STR, offsetof(MigParams, tls_creds), 0, 0, NULL },
	{ "tls-hostname", P_STR, offsetof(MigParams, tls_hostname), 0, 0, NULL },
	{ "tls-authz", P_STR, offsetof(MigParams, tls_authz), 0, 0, NULL },
	SZ("max-bandwidth", max_bandwidth, 0, G_MAXINT64),
	SZ("avail-switchover-bandwidth", avail_switchover_bandwidth, 0, G_MAXINT64),
	U("downtime-limit", downtime_limit, 0, 2000000),
	U("multifd-channels", multifd_channels, 1, 64),
	SZ("xbzrle-cache-size", xbzrle_cache_size, 0, G_MAXINT64),
	SZ("max-postcopy-bandwidth", max_postcopy_bandwidth, 0, G_MAXINT64),
	U("max-cpu-throttle", max_cpu_throttle, 1, 99),
	{ "multifd-compression", P_ENUM, offsetof(MigParams, multifd_compression), 0, 0, compression_names },
	{ "mode", P_ENUM, offsetof(MigParams, mode), 0, 0, mode_names },
	{ "zero-page-detection", P_ENUM, offsetof(MigParams, zero_page_detection), 0, 0, zero_page_names },
	U("x-debug-drop-pages", x_debug_drop_pages, 0, G_MAXUINT32),
	U("x-postcopy-after-passes", x_postcopy_after_passes, 0, 1000000),
	{ "x-postcopy-pace", P_BOOL, offsetof(MigParams, x_postcopy_pace), 0, 1, NULL },
	{ "x-postcopy-preempt-break-huge", P_BOOL, offsetof(MigParams, x_postcopy_preempt_break_huge), 0, 1, NULL },
	SZ("x-device-max-queued", x_device_max_queued, 2u << 20, G_MAXINT64),
	U("x-device-load-threads", x_device_load_threads, 1, 64),
	U("x-device-chunks-in-flight", x_device_chunks_in_flight, 0, 1024),
	U("x-preempt-channels", x_preempt_channels, 1, MIG_PREEMPT_MAX),
	{ "x-tcp-congestion", P_TCP_CC, offsetof(MigParams, x_tcp_congestion), 0, 0, NULL },
#undef U
#undef SZ
};

void mig_params_init(MigParams *p)
{
	*p = (MigParams){
		.downtime_limit = 300,
		.max_bandwidth = 128u << 20,   /* QEMU's default, so QEMU scripts behave as they expect */
		.multifd_channels = 2,
		.announce_initial = 50, .announce_max = 550, .announce_rounds = 5, .announce_step = 100,
		.throttle_trigger_threshold = 50, .cpu_throttle_initial = 20, .cpu_throttle_increment = 10,
		.max_cpu_throttle = 99,
		.xbzrle_cache_size = 64u << 20,
		.zero_page_detection = 2,
		.x_postcopy_pace = TRUE,
		.x_postcopy_preempt_break_huge = TRUE,
		.x_device_max_queued = 64u << 20,
		.x_device_load_threads = 8,
		.x_preempt_channels = 1,
		.tls_creds = g_strdup(""), .tls_hostname = g_strdup(""), .tls_authz = g_strdup(""),
		/* a kernel without it keeps its own */
		.x_tcp_congestion = g_strdup(mig_io_congestion_default()),
	};
}

void mig_params_clear(MigParams *p)
{
	g_free(p->tls_creds);
	g_free(p->tls_hostname);
	g_free(p->tls_authz);
	g_free(p->x_tcp_congestion);
}

void mig_params_copy(MigParams *to, const MigParams *from)
{
	*to = *from;
	to->tls_creds = g_strdup(from->tls_creds);
	to->tls_hostname = g_strdup(from->tls_hostname);
	to->tls_authz = g_strdup(from->tls_authz);
	to->x_tcp_congestion = g_strdup(from->x_tcp_congestion);
}

static const struct param *param_lookup(const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(params); i++)
		if (!strcmp(params[i].name, name))
			return &params[i];
	return NULL;
}

static gboolean parse_value(const struct param *p, JsonNode *n, MigParams *dst, GError **err)
{
	gpointer field = (char *)dst + p->off;
	GType t = JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n) : G_TYPE_INVALID;

	switch (p->type) {
	case P_UINT:
	case P_SIZE: {
		gint64 v;

		if (t != G_TYPE_INT64) {
			g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: integer", p->name);
			return FALSE;
		}
		v = json_node_get_int(n);
		if (v < 0 || (guint64)v < p->min || (guint64)v > p->max) {
			g_set_error(err, MIG_ERROR, ERANGE,
				    "Parameter '%s' expects a value between %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT,
				    p->name, p->min, p->max);
			return FALSE;
		}
		*(guint64 *)field = (guint64)v;
		return TRUE;
	}
	case P_BOOL:
		if (t != G_TYPE_BOOLEAN) {
			g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: boolean", p->name);
			return FALSE;
		}
		*(gboolean *)field = json_node_get_boolean(n);
		return TRUE;
	case P_STR:
		if (JSON_NODE_HOLDS_NULL(n)) {
			g_free(*(char **)field);
			*(char **)field = g_strdup("");
			return TRUE;
		}
		if (t != G_TYPE_STRING) {
			g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: string", p->name);
			return FALSE;
		}
		if (*json_node_get_string(n)) {
			g_set_error(err, MIG_ERROR, ENOTSUP, "Parameter '%s': TLS is not supported by mig yet", p->name);
			return FALSE;
		}
		return TRUE;
	case P_TCP_CC: {
		const char *algo = t == G_TYPE_STRING ? json_node_get_string(n) : NULL;
		int rc;

		if (!algo) {
			g_set_error(err, MIG_ERROR, EINVAL, "Invalid parameter type for '%s', expected: string", p->name);
			return FALSE;
		}
		/* refused now, not when the channels open in the middle of a migration */
		if (*algo && (rc = mig_io_congestion_usable(algo)) < 0) {
			g_set_error(err, MIG_ERROR, -rc, "Parameter '%s': '%s' cannot be used: %s (see %s)", p->name, algo,
				    g_strerror(-rc), rc == -EPERM ? "net.ipv4.tcp_allowed_congestion_control"
								   : "net.ipv4.tcp_available_congestion_control");
			return FALSE;
		}
		g_free(*(char **)field);
		*(char **)field = g_strdup(algo);
		return TRUE;
	}
	case P_ENUM:
		if (t == G_TYPE_STRING) {
			for (guint i = 0; p->enum_names[i]; i++) {
				if (!strcmp(p->enum_names[i], json_node_get_string(n))) {
					*(guint64 *)field = i;
					return TRUE;
				}
			}
		}
		g_set_error(err, MIG_ERROR, EINVAL, "Parameter '%s' does not accept this value", p->name);
		return FALSE;
	}
	return FALSE;
}

gboolean mig_session_set_params(MigSession *s, JsonObject *o, GError **err)
{
	MigParams next;
	g_autoptr(GList) members = json_object_get_members(o);
	gboolean ok = TRUE;

	g_mutex_lock(&s->lock);
	mig_params_copy(&next, &s->params);
	for (GList *l = members; l && ok; l = l->next) {
		const struct param *p = param_lookup(l->data);

		if (!p) {
			g_set_error(err, MIG_ERROR, EINVAL, "Parameter '%s' is unexpected", (char *)l->data);
			ok = FALSE;
		} else {
			ok = parse_value(p, json_object_get_member(o, l->data), &next, err);
		}
	}
	if (ok && next.multifd_channels != s->params.multifd_channels && mig_dst_started(s)) {
		g_set_error(err, MIG_ERROR, EBUSY, "multifd-channels cannot change once incoming has started");
		ok = FALSE;
	}
	if (ok && next.x_preempt_channels != s->params.x_preempt_channels) {
		g_autoptr(GError) busy = NULL;

		/* the channels are opened (and counted in SETUP) when the migration starts */
		if (migration_busy(s, &busy)) {
			g_set_error(err, MIG_ERROR, EBUSY, "x-preempt-channels cannot change during a migration");
			ok = FALSE;
		}
	}
	if (ok) {
		mig_params_clear(&s->params);
		s->params = next;
	} else {
		mig_params_clear(&next);
	}
	g_mutex_unlock(&s->lock);
	return ok;
}

/* Several urgent channels without the preempt lane would be a setting that silently
 * does nothing; say so when the migration starts (either order of setting is fine). */
gboolean mig_params_check_lanes(MigSession *s, GError **err)
{
	if (s->params.x_preempt_channels > 1 && !s->caps[MIG_CAP_POSTCOPY_PREEMPT]) {
		g_set_error(err, MIG_ERROR, EINVAL, "x-preempt-channels=%" G_GUINT64_FORMAT " requires the postcopy-preempt capability",
			    s->params.x_preempt_channels);
		return FALSE;
	}
	return TRUE;
}

JsonNode *mig_session_query_params(MigSession *s)
{
	g_autoptr(JsonBuilder) b = json_builder_new();

	json_builder_begin_object(b);
	g_mutex_lock(&s->lock);
	for (gsize i = 0; i < G_N_ELEMENTS(params); i++) {
		const struct param *p = &params[i];
		gconstpointer field = (const char *)&s->params + p->off;

		json_builder_set_member_name(b, p->name);
		switch (p->type) {
		case P_UINT:
		case P_SIZE: json_builder_add_int_value(b, (gint64)*(const guint64 *)field); break;
		case P_BOOL: json_builder_add_boolean_value(b, *(const gboolean *)field); break;
		case P_STR:
		case P_TCP_CC: json_builder_add_string_value(b, *(char *const *)field); break;
		case P_ENUM: json_builder_add_string_value(b, p->enum_names[*(const guint64 *)field]); break;
		}
	}
	g_mutex_unlock(&s->lock);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}
