/* Capabilities and parameters, with QEMU's names, defaults and checks: the one table
 * every value goes through (engine/configure.c applies a request against it). */
#include "engine/session_int.h"
#include "channels/io.h"
#include "channels/uri.h"
#include "engine/mapfile.h"
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
	/* mig's main channel always carries one (docs/qmp.md says what false means) */
	[MIG_CAP_RETURN_PATH] = { "return-path", TRUE },
	[MIG_CAP_PAUSE_BEFORE_SWITCHOVER] = { "pause-before-switchover", TRUE },
	[MIG_CAP_MULTIFD] = { "multifd", TRUE },
	[MIG_CAP_DIRTY_BITMAPS] = { "dirty-bitmaps", FALSE },
	[MIG_CAP_POSTCOPY_BLOCKTIME] = { "postcopy-blocktime", TRUE },
	/* about block devices, which mig has none of: both states are honest */
	[MIG_CAP_LATE_BLOCK_ACTIVATE] = { "late-block-activate", TRUE },
	[MIG_CAP_X_IGNORE_SHARED] = { "x-ignore-shared", FALSE },
	[MIG_CAP_VALIDATE_UUID] = { "validate-uuid", FALSE },
	[MIG_CAP_BACKGROUND_SNAPSHOT] = { "background-snapshot", FALSE },
	[MIG_CAP_ZERO_COPY_SEND] = { "zero-copy-send", FALSE },
	[MIG_CAP_POSTCOPY_PREEMPT] = { "postcopy-preempt", TRUE },
	[MIG_CAP_SWITCHOVER_ACK] = { "switchover-ack", FALSE },
	[MIG_CAP_DIRTY_LIMIT] = { "dirty-limit", FALSE },
	[MIG_CAP_MAPPED_RAM] = { "mapped-ram", TRUE },
	[MIG_CAP_X_DEVICE_STATE_LANE] = { "x-device-state-lane", TRUE },
};

const char *mig_cap_name(MigCap cap)
{
	return (guint)cap < MIG_CAP__MAX ? caps[cap].name : "?";
}

gboolean mig_cap_from_name(const char *name, MigCap *out)
{
	for (int i = 0; i < MIG_CAP__MAX; i++) {
		if (!g_strcmp0(caps[i].name, name)) {
			*out = (MigCap)i;
			return TRUE;
		}
	}
	return FALSE;
}

gboolean mig_cap_supported(MigCap cap)
{
	return (guint)cap < MIG_CAP__MAX && caps[cap].supported;
}

gboolean mig_session_get_cap(MigSession *s, MigCap cap)
{
	gboolean on;

	g_return_val_if_fail((guint)cap < MIG_CAP__MAX, FALSE);
	g_mutex_lock(&s->lock);
	on = s->caps[cap];
	g_mutex_unlock(&s->lock);
	return on;
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
} params[MIG_PARAM__MAX] = {
#define U(n, f, lo, hi) { n, P_UINT, offsetof(MigParams, f), lo, hi, NULL }
#define SZ(n, f, lo, hi) { n, P_SIZE, offsetof(MigParams, f), lo, hi, NULL }
	[MIG_PARAM_ANNOUNCE_INITIAL] = U("announce-initial", announce_initial, 1, 100000),
	[MIG_PARAM_ANNOUNCE_MAX] = U("announce-max", announce_max, 1, 100000),
	[MIG_PARAM_ANNOUNCE_ROUNDS] = U("announce-rounds", announce_rounds, 1, 1000),
	[MIG_PARAM_ANNOUNCE_STEP] = U("announce-step", announce_step, 1, 10000),
	[MIG_PARAM_THROTTLE_TRIGGER_THRESHOLD] = U("throttle-trigger-threshold", throttle_trigger_threshold, 1, 100),
	[MIG_PARAM_CPU_THROTTLE_INITIAL] = U("cpu-throttle-initial", cpu_throttle_initial, 1, 99),
	[MIG_PARAM_CPU_THROTTLE_INCREMENT] = U("cpu-throttle-increment", cpu_throttle_increment, 1, 99),
	[MIG_PARAM_CPU_THROTTLE_TAILSLOW] = { "cpu-throttle-tailslow", P_BOOL, offsetof(MigParams, cpu_throttle_tailslow), 0, 1, NULL },
	[MIG_PARAM_TLS_CREDS] = { "tls-creds", P_STR, offsetof(MigParams, tls_creds), 0, 0, NULL },
	[MIG_PARAM_TLS_HOSTNAME] = { "tls-hostname", P_STR, offsetof(MigParams, tls_hostname), 0, 0, NULL },
	[MIG_PARAM_TLS_AUTHZ] = { "tls-authz", P_STR, offsetof(MigParams, tls_authz), 0, 0, NULL },
	[MIG_PARAM_MAX_BANDWIDTH] = SZ("max-bandwidth", max_bandwidth, 0, G_MAXINT64),
	[MIG_PARAM_AVAIL_SWITCHOVER_BANDWIDTH] = SZ("avail-switchover-bandwidth", avail_switchover_bandwidth, 0, G_MAXINT64),
	[MIG_PARAM_DOWNTIME_LIMIT] = U("downtime-limit", downtime_limit, 0, 2000000),
	[MIG_PARAM_MULTIFD_CHANNELS] = U("multifd-channels", multifd_channels, 1, 64),
	[MIG_PARAM_XBZRLE_CACHE_SIZE] = SZ("xbzrle-cache-size", xbzrle_cache_size, 0, G_MAXINT64),
	[MIG_PARAM_MAX_POSTCOPY_BANDWIDTH] = SZ("max-postcopy-bandwidth", max_postcopy_bandwidth, 0, G_MAXINT64),
	[MIG_PARAM_MAX_CPU_THROTTLE] = U("max-cpu-throttle", max_cpu_throttle, 1, 99),
	[MIG_PARAM_MULTIFD_COMPRESSION] = { "multifd-compression", P_ENUM, offsetof(MigParams, multifd_compression), 0, 0, compression_names },
	[MIG_PARAM_MODE] = { "mode", P_ENUM, offsetof(MigParams, mode), 0, 0, mode_names },
	[MIG_PARAM_ZERO_PAGE_DETECTION] = { "zero-page-detection", P_ENUM, offsetof(MigParams, zero_page_detection), 0, 0, zero_page_names },
	[MIG_PARAM_X_DEBUG_DROP_PAGES] = U("x-debug-drop-pages", x_debug_drop_pages, 0, G_MAXUINT32),
	[MIG_PARAM_X_POSTCOPY_AFTER_PASSES] = U("x-postcopy-after-passes", x_postcopy_after_passes, 0, 1000000),
	[MIG_PARAM_X_POSTCOPY_PACE] = { "x-postcopy-pace", P_BOOL, offsetof(MigParams, x_postcopy_pace), 0, 1, NULL },
	[MIG_PARAM_X_POSTCOPY_PREEMPT_BREAK_HUGE] = { "x-postcopy-preempt-break-huge", P_BOOL, offsetof(MigParams, x_postcopy_preempt_break_huge), 0, 1, NULL },
	[MIG_PARAM_X_DEVICE_MAX_QUEUED] = SZ("x-device-max-queued", x_device_max_queued, 2u << 20, G_MAXINT64),
	[MIG_PARAM_X_DEVICE_LOAD_THREADS] = U("x-device-load-threads", x_device_load_threads, 1, 64),
	[MIG_PARAM_X_DEVICE_CHUNKS_IN_FLIGHT] = U("x-device-chunks-in-flight", x_device_chunks_in_flight, 0, 1024),
	[MIG_PARAM_X_PREEMPT_CHANNELS] = U("x-preempt-channels", x_preempt_channels, 1, MIG_PREEMPT_MAX),
	[MIG_PARAM_X_TCP_CONGESTION] = { "x-tcp-congestion", P_TCP_CC, offsetof(MigParams, x_tcp_congestion), 0, 0, NULL },
	[MIG_PARAM_DIRECT_IO] = { "direct-io", P_BOOL, offsetof(MigParams, direct_io), 0, 1, NULL },
	[MIG_PARAM_X_CHANNEL_TIMEOUT] = U("x-channel-timeout", x_channel_timeout, MIG_CHANNEL_TIMEOUT_MIN, MIG_CHANNEL_TIMEOUT_MAX),
	[MIG_PARAM_X_POSTCOPY_AUTO] = { "x-postcopy-auto", P_BOOL, offsetof(MigParams, x_postcopy_auto), 0, 1, NULL },
	[MIG_PARAM_X_POSTCOPY_RT_PRIORITY] = U("x-postcopy-rt-priority", x_postcopy_rt_priority, 0, 99),
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
		/* a dead peer noticed within 15 s: well past a loaded host's hiccups, well
		 * inside what an operator waits before suspecting a hang */
		.x_channel_timeout = MIG_IO_TIMEOUT_DEFAULT_MS,
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

const char *mig_param_name(MigParam p)
{
	return (guint)p < MIG_PARAM__MAX ? params[p].name : "?";
}

gboolean mig_param_from_name(const char *name, MigParam *out)
{
	for (int i = 0; i < MIG_PARAM__MAX; i++) {
		if (!g_strcmp0(params[i].name, name)) {
			*out = (MigParam)i;
			return TRUE;
		}
	}
	return FALSE;
}

MigParamType mig_param_type(MigParam p)
{
	switch ((guint)p < MIG_PARAM__MAX ? params[p].type : P_UINT) {
	case P_BOOL: return MIG_PARAM_TYPE_BOOL;
	case P_STR:
	case P_TCP_CC: return MIG_PARAM_TYPE_STR;
	case P_ENUM: return MIG_PARAM_TYPE_ENUM;
	default: return MIG_PARAM_TYPE_U64;
	}
}

gboolean mig_params_apply(const MigParamSetting *v, MigParams *dst, GError **err)
{
	const struct param *p;
	gpointer field;

	if ((guint)v->param >= MIG_PARAM__MAX) {
		g_set_error(err, MIG_ERROR, EINVAL, "Parameter %d does not exist", (int)v->param);
		return FALSE;
	}
	p = &params[v->param];
	field = dst ? (char *)dst + p->off : NULL;
	switch (p->type) {
	case P_UINT:
	case P_SIZE:
		if (v->u64 < p->min || v->u64 > p->max) {
			g_set_error(err, MIG_ERROR, ERANGE,
				    "Parameter '%s' expects a value between %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT,
				    p->name, p->min, p->max);
			return FALSE;
		}
		if (field)
			*(guint64 *)field = v->u64;
		return TRUE;
	case P_BOOL:
		if (field)
			*(gboolean *)field = !!v->boolean;
		return TRUE;
	case P_STR:
		/* an object id: whether it exists is checked at migrate and migrate-incoming,
		 * as in QEMU, so the object may be created after the parameter is set */
		if (field) {
			g_free(*(char **)field);
			*(char **)field = g_strdup(v->str ? v->str : "");
		}
		return TRUE;
	case P_TCP_CC: {
		const char *algo = v->str ? v->str : "";
		int rc;

		/* refused now, not when the channels open in the middle of a migration */
		if (*algo && (rc = mig_io_congestion_usable(algo)) < 0) {
			g_set_error(err, MIG_ERROR, -rc, "Parameter '%s': '%s' cannot be used: %s (see %s)", p->name, algo,
				    g_strerror(-rc), rc == -EPERM ? "net.ipv4.tcp_allowed_congestion_control"
								   : "net.ipv4.tcp_available_congestion_control");
			return FALSE;
		}
		if (field) {
			g_free(*(char **)field);
			*(char **)field = g_strdup(algo);
		}
		return TRUE;
	}
	case P_ENUM:
		for (guint i = 0; v->str && p->enum_names[i]; i++) {
			if (!strcmp(p->enum_names[i], v->str)) {
				if (field)
					*(guint64 *)field = i;
				return TRUE;
			}
		}
		g_set_error(err, MIG_ERROR, EINVAL, "Parameter '%s' does not accept this value", p->name);
		return FALSE;
	}
	return FALSE;
}

gboolean mig_param_check(const MigParamSetting *v, GError **err)
{
	return mig_params_apply(v, NULL, err);
}

/* The field of p in s's parameters, if p has type t; read under the lock. */
static gconstpointer param_field(MigSession *s, MigParam p, MigParamType t)
{
	if ((guint)p >= MIG_PARAM__MAX || mig_param_type(p) != t)
		return NULL;
	return (const char *)&s->params + params[p].off;
}

guint64 mig_session_get_param_u64(MigSession *s, MigParam p)
{
	gconstpointer f;
	guint64 v = 0;

	g_mutex_lock(&s->lock);
	if ((f = param_field(s, p, MIG_PARAM_TYPE_U64)))
		v = *(const guint64 *)f;
	g_mutex_unlock(&s->lock);
	return v;
}

gboolean mig_session_get_param_bool(MigSession *s, MigParam p)
{
	gconstpointer f;
	gboolean v = FALSE;

	g_mutex_lock(&s->lock);
	if ((f = param_field(s, p, MIG_PARAM_TYPE_BOOL)))
		v = *(const gboolean *)f;
	g_mutex_unlock(&s->lock);
	return v;
}

char *mig_session_get_param_str(MigSession *s, MigParam p)
{
	gconstpointer f;
	char *v = NULL;

	g_mutex_lock(&s->lock);
	if ((f = param_field(s, p, MIG_PARAM_TYPE_STR)))
		v = g_strdup(*(char *const *)f);
	else if ((f = param_field(s, p, MIG_PARAM_TYPE_ENUM)))
		v = g_strdup(params[p].enum_names[*(const guint64 *)f]);
	g_mutex_unlock(&s->lock);
	return v;
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

/* x-postcopy-auto switches to postcopy: without postcopy-ram it could only do nothing. */
gboolean mig_params_check_auto(MigSession *s, GError **err)
{
	if (s->params.x_postcopy_auto && !s->caps[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "x-postcopy-auto requires the postcopy-ram capability");
		return FALSE;
	}
	return TRUE;
}

gboolean mig_params_check_fd_uri(MigSession *s, const MigUri *uri, GError **err)
{
	/* the extra channels connect to the address they were given; a passed socket has
	 * none (QEMU too takes multifd on fd: only for files) */
	if (uri->kind != MIG_URI_FD)
		return TRUE;
	if (s->caps[MIG_CAP_MULTIFD] || s->caps[MIG_CAP_POSTCOPY_PREEMPT]) {
		g_set_error(err, MIG_ERROR, EINVAL, "fd:%s is one socket: it cannot carry the channels of %s", uri->path,
			    s->caps[MIG_CAP_MULTIFD] ? "multifd" : "postcopy-preempt");
		return FALSE;
	}
	return TRUE;
}

gboolean mig_params_check_file(MigSession *s, const char *uri, gboolean source, GError **err)
{
	MigUri u;
	gboolean file = mig_uri_parse(uri, &u) == 0 && u.kind == MIG_URI_FILE;

	if (s->params.direct_io && !s->caps[MIG_CAP_MAPPED_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "direct-io needs the mapped-ram capability: only mapped-ram puts pages at "
			    "the aligned offsets O_DIRECT requires");
		return FALSE;
	}
	if (s->caps[MIG_CAP_MAPPED_RAM] && !file) {
		g_set_error(err, MIG_ERROR, EINVAL, "mapped-ram needs a file: URI: it lays RAM out at fixed offsets of a file");
		return FALSE;
	}
	if (!file)
		return TRUE;
	if (s->params.tls_creds && *s->params.tls_creds) {
		g_set_error(err, MIG_ERROR, EINVAL, "tls-creds does not apply to a file: mig reads and writes it "
			    "in the clear; unset tls-creds");
		return FALSE;
	}
	if (source && s->caps[MIG_CAP_POSTCOPY_RAM]) {
		g_set_error(err, MIG_ERROR, EINVAL, "postcopy-ram cannot save to a file: postcopy needs a destination that "
			    "runs the guest and asks for its pages; turn postcopy-ram off");
		return FALSE;
	}
	if (!s->caps[MIG_CAP_MAPPED_RAM]) {
		/* the streamed file: one channel's stream, with no way back (as QEMU's) */
		if (s->caps[MIG_CAP_MULTIFD]) {
			g_set_error(err, MIG_ERROR, EINVAL, "multifd to a file needs the mapped-ram capability: a streamed "
				    "file is one channel's stream; turn on mapped-ram or turn multifd off");
			return FALSE;
		}
		if (s->caps[MIG_CAP_POSTCOPY_RAM] || s->caps[MIG_CAP_POSTCOPY_PREEMPT]) {
			g_set_error(err, MIG_ERROR, EINVAL, "%s from a streamed file (no mapped-ram) is not possible: a lazy "
				    "restore finds each page at its fixed offset, which only mapped-ram gives; turn on "
				    "mapped-ram or turn %s off", s->caps[MIG_CAP_POSTCOPY_RAM] ? "postcopy-ram" : "postcopy-preempt",
				    s->caps[MIG_CAP_POSTCOPY_RAM] ? "postcopy-ram" : "postcopy-preempt");
			return FALSE;
		}
		return TRUE;
	}
	if (s->params.direct_io && u.offset % MIG_MAPF_ALIGN) {
		g_set_error(err, MIG_ERROR, EINVAL, "direct-io needs the file offset (%llu) to be a multiple of %u", u.offset,
			    MIG_MAPF_ALIGN);
		return FALSE;
	}
	return TRUE;
}
