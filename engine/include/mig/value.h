/* A small tree of named, typed values: how a VMM's or a device's own figures join
 * the engine's in a query (MigVmOps.query, MigDeviceOps.query, MigInfo.extra) without
 * the API choosing a JSON library. An OBJECT holds named members in the order they
 * were added; an ARRAY holds unnamed ones. A QMP layer turns the tree into JSON as is. */
#pragma once
#include <mig/common.h>

MIG_BEGIN_PUBLIC

typedef enum MigValueType {
	MIG_VALUE_INT,
	MIG_VALUE_DOUBLE,
	MIG_VALUE_BOOL,
	MIG_VALUE_STR,
	MIG_VALUE_OBJECT,
	MIG_VALUE_ARRAY,
} MigValueType;

typedef struct MigValue {
	char *name;            /* the member's name; NULL in an array and at the root */
	MigValueType type;
	union {
		gint64 i;
		double d;
		gboolean b;
		char *s;
		GPtrArray *items;  /* OBJECT and ARRAY: MigValue*, owned */
	};
} MigValue;

MigValue *mig_value_new_object(void);
void mig_value_free(MigValue *v);

/* Add to an OBJECT (name required) or an ARRAY (name ignored). The add_object and
 * add_array forms return the new container, to fill in turn. */
void mig_value_add_int(MigValue *parent, const char *name, gint64 v);
void mig_value_add_double(MigValue *parent, const char *name, double v);
void mig_value_add_bool(MigValue *parent, const char *name, gboolean v);
void mig_value_add_str(MigValue *parent, const char *name, const char *v);
MigValue *mig_value_add_object(MigValue *parent, const char *name);
MigValue *mig_value_add_array(MigValue *parent, const char *name);

/* The member called name of an OBJECT, or NULL. */
const MigValue *mig_value_get(const MigValue *obj, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigValue, mig_value_free)

MIG_END_PUBLIC
