/* Typed configuration: QEMU's migration capabilities and parameters as enums, with
 * setters and getters. Names (mig_cap_name, mig_param_name) are QEMU's; mig's own
 * start with x-. Every value is checked by one table in the engine (engine/params.c):
 * ranges, enum members, what needs which capability. A QMP layer maps JSON onto these
 * calls and nothing else. */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

typedef struct MigSession MigSession;

/* QEMU's MigrationCapability, in QEMU's order (query order). */
typedef enum MigCap {
	MIG_CAP_XBZRLE, MIG_CAP_RDMA_PIN_ALL, MIG_CAP_AUTO_CONVERGE, MIG_CAP_EVENTS,
	MIG_CAP_POSTCOPY_RAM, MIG_CAP_X_COLO, MIG_CAP_RELEASE_RAM, MIG_CAP_RETURN_PATH,
	MIG_CAP_PAUSE_BEFORE_SWITCHOVER, MIG_CAP_MULTIFD, MIG_CAP_DIRTY_BITMAPS,
	MIG_CAP_POSTCOPY_BLOCKTIME, MIG_CAP_LATE_BLOCK_ACTIVATE, MIG_CAP_X_IGNORE_SHARED,
	MIG_CAP_VALIDATE_UUID, MIG_CAP_BACKGROUND_SNAPSHOT, MIG_CAP_ZERO_COPY_SEND,
	MIG_CAP_POSTCOPY_PREEMPT, MIG_CAP_SWITCHOVER_ACK, MIG_CAP_DIRTY_LIMIT, MIG_CAP_MAPPED_RAM,
	MIG_CAP_X_DEVICE_STATE_LANE,
	MIG_CAP__MAX
} MigCap;

const char *mig_cap_name(MigCap cap);
gboolean mig_cap_from_name(const char *name, MigCap *out);
/* Can it be turned on? (QEMU has capabilities mig does not implement.) */
gboolean mig_cap_supported(MigCap cap);

typedef struct MigCapSetting {
	MigCap cap;
	gboolean state;
} MigCapSetting;

/* All or nothing: n settings are checked together (an unsupported capability,
 * postcopy-preempt without postcopy-ram, a migration in progress) before any applies. */
gboolean mig_session_set_caps(MigSession *s, const MigCapSetting *settings, guint n, GError **err);
gboolean mig_session_set_cap(MigSession *s, MigCap cap, gboolean state, GError **err);
gboolean mig_session_get_cap(MigSession *s, MigCap cap);

/* QEMU's MigrationParameters members mig knows, in query-migrate-parameters' order. */
typedef enum MigParam {
	MIG_PARAM_ANNOUNCE_INITIAL, MIG_PARAM_ANNOUNCE_MAX, MIG_PARAM_ANNOUNCE_ROUNDS,
	MIG_PARAM_ANNOUNCE_STEP, MIG_PARAM_THROTTLE_TRIGGER_THRESHOLD, MIG_PARAM_CPU_THROTTLE_INITIAL,
	MIG_PARAM_CPU_THROTTLE_INCREMENT, MIG_PARAM_CPU_THROTTLE_TAILSLOW, MIG_PARAM_TLS_CREDS,
	MIG_PARAM_TLS_HOSTNAME, MIG_PARAM_TLS_AUTHZ, MIG_PARAM_MAX_BANDWIDTH,
	MIG_PARAM_AVAIL_SWITCHOVER_BANDWIDTH, MIG_PARAM_DOWNTIME_LIMIT, MIG_PARAM_MULTIFD_CHANNELS,
	MIG_PARAM_XBZRLE_CACHE_SIZE, MIG_PARAM_MAX_POSTCOPY_BANDWIDTH, MIG_PARAM_MAX_CPU_THROTTLE,
	MIG_PARAM_MULTIFD_COMPRESSION, MIG_PARAM_MODE, MIG_PARAM_ZERO_PAGE_DETECTION,
	MIG_PARAM_X_DEBUG_DROP_PAGES, MIG_PARAM_X_POSTCOPY_AFTER_PASSES, MIG_PARAM_X_POSTCOPY_PACE,
	MIG_PARAM_X_POSTCOPY_PREEMPT_BREAK_HUGE, MIG_PARAM_X_DEVICE_MAX_QUEUED,
	MIG_PARAM_X_DEVICE_LOAD_THREADS, MIG_PARAM_X_DEVICE_CHUNKS_IN_FLIGHT,
	MIG_PARAM_X_PREEMPT_CHANNELS, MIG_PARAM_X_TCP_CONGESTION, MIG_PARAM_DIRECT_IO,
	MIG_PARAM_X_CHANNEL_TIMEOUT, MIG_PARAM_X_POSTCOPY_AUTO, MIG_PARAM_X_POSTCOPY_RT_PRIORITY,
	MIG_PARAM__MAX
} MigParam;

/* How a parameter's value is held: U64 (counts, sizes in bytes, ms), BOOL, STR, or ENUM
 * (a string naming one of QEMU's enum members, e.g. zero-page-detection "multifd"). */
typedef enum MigParamType {
	MIG_PARAM_TYPE_U64,
	MIG_PARAM_TYPE_BOOL,
	MIG_PARAM_TYPE_STR,
	MIG_PARAM_TYPE_ENUM,
} MigParamType;

const char *mig_param_name(MigParam p);
gboolean mig_param_from_name(const char *name, MigParam *out);
MigParamType mig_param_type(MigParam p);

typedef struct MigParamSetting {
	MigParam param;
	union {
		guint64 u64;
		gboolean boolean;
		const char *str;   /* STR and ENUM; NULL matches no ENUM member */
	};
} MigParamSetting;

/* Is this value acceptable for its parameter, whatever the session's state? The
 * error names the parameter in QEMU's words. */
gboolean mig_param_check(const MigParamSetting *setting, GError **err);
/* All or nothing, like migrate-set-parameters: every setting is checked, then the
 * session's state (what may not change during a migration), then all apply. */
gboolean mig_session_set_params(MigSession *s, const MigParamSetting *settings, guint n, GError **err);
gboolean mig_session_set_param_u64(MigSession *s, MigParam p, guint64 v, GError **err);
gboolean mig_session_set_param_bool(MigSession *s, MigParam p, gboolean v, GError **err);
/* STR and ENUM parameters. */
gboolean mig_session_set_param_str(MigSession *s, MigParam p, const char *v, GError **err);

/* Getters of a parameter of another type return 0, FALSE or NULL. */
guint64 mig_session_get_param_u64(MigSession *s, MigParam p);
gboolean mig_session_get_param_bool(MigSession *s, MigParam p);
/* STR and ENUM (the member's name); free with g_free. */
char *mig_session_get_param_str(MigSession *s, MigParam p);

MIG_END_PUBLIC
