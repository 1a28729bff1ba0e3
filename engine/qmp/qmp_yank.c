/* QMP's yank and query-yank (QEMU 6.0's qapi/yank.json) for the one instance mig has, the
 * migration: "yank" cuts every migration channel at once to get a stuck migration
 * moving again; both run out-of-band, so they must not wait on anything slow. */
#include "engine/qmp/qmp_yank.h"
#include <string.h>

/* The members each instance type takes besides "type" (QEMU's YankInstance union);
 * mig has none of the block-node or chardev instances, but checks them as QEMU does. */
static const struct {
	const char *type;
	const char *member;   /* required string member, or NULL */
} yank_types[] = {
	{ "block-node", "node-name" },
	{ "chardev", "id" },
	{ "migration", NULL },
};

static gboolean is_string(JsonNode *n)
{
	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING;
}

/* Checks instances[i] in the order QEMU's input visitor does; *is_migration on success. */
static gboolean check_instance(JsonNode *n, guint i, gboolean *is_migration, GError **err)
{
	g_autofree char *path = g_strdup_printf("instances[%u]", i);
	g_autoptr(GList) members = NULL;
	JsonObject *o;
	JsonNode *type;
	guint t;

	if (!JSON_NODE_HOLDS_OBJECT(n)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s', expected: object", path);
		return FALSE;
	}
	o = json_node_get_object(n);
	type = json_object_get_member(o, "type");
	if (!type) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s.type' is missing", path);
		return FALSE;
	}
	if (!is_string(type)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s.type', expected: string", path);
		return FALSE;
	}
	for (t = 0; t < G_N_ELEMENTS(yank_types); t++)
		if (!strcmp(json_node_get_string(type), yank_types[t].type))
			break;
	if (t == G_N_ELEMENTS(yank_types)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s.type' does not accept value '%s'", path,
			    json_node_get_string(type));
		return FALSE;
	}
	if (yank_types[t].member) {
		JsonNode *m = json_object_get_member(o, yank_types[t].member);

		if (!m) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s.%s' is missing", path, yank_types[t].member);
			return FALSE;
		}
		if (!is_string(m)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for '%s.%s', expected: string",
				    path, yank_types[t].member);
			return FALSE;
		}
	}
	members = json_object_get_members(o);
	for (GList *l = members; l; l = l->next) {
		if (strcmp(l->data, "type") && g_strcmp0(l->data, yank_types[t].member)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s.%s' is unexpected", path, (char *)l->data);
			return FALSE;
		}
	}
	*is_migration = yank_types[t].member == NULL;
	return TRUE;
}

/* yank {instances: [YankInstance]}: every instance must exist before any is yanked. */
static JsonNode *h_yank(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(GList) members = json_object_get_members(args);
	JsonNode *n = json_object_get_member(args, "instances");
	gboolean migration = FALSE;
	JsonArray *a;

	for (GList *l = members; l; l = l->next) {
		if (strcmp(l->data, "instances")) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected", (char *)l->data);
			return NULL;
		}
	}
	if (!n) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter 'instances' is missing");
		return NULL;
	}
	if (!JSON_NODE_HOLDS_ARRAY(n)) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Invalid parameter type for 'instances', expected: array");
		return NULL;
	}
	a = json_node_get_array(n);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		gboolean is_migration;

		if (!check_instance(json_array_get_element(a, i), i, &is_migration, err))
			return NULL;
		/* a block node or chardev never exists here; the migration only while it
		 * has channels, as QEMU registers it */
		if (!is_migration || !mig_session_has_channels(s)) {
			g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_DEVICE_NOT_FOUND, "Instance not found");
			return NULL;
		}
		migration = TRUE;
	}
	if (migration)
		mig_session_yank(s);
	return NULL;
}

static JsonNode *h_query_yank(JsonObject *args, gpointer s, GError **err)
{
	g_autoptr(GList) members = json_object_get_members(args);
	JsonArray *a;

	if (members) {
		g_set_error(err, MIG_QMP_ERROR, MIG_QMP_ERROR_GENERIC, "Parameter '%s' is unexpected", (char *)members->data);
		return NULL;
	}
	a = json_array_new();
	if (mig_session_has_channels(s)) {
		JsonObject *o = json_object_new();

		json_object_set_string_member(o, "type", "migration");
		json_array_add_object_element(a, o);
	}
	return json_node_init_array(json_node_alloc(), a);
}

void mig_qmp_add_yank_commands(MigQmpServer *q, MigSession *s)
{
	mig_qmp_register(q, "yank", h_yank, s);
	mig_qmp_register(q, "query-yank", h_query_yank, s);
}
