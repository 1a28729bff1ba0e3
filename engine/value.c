/* MigValue: the typed tree queries are returned in (value.h). */
#include <mig/value.h>

static MigValue *value_new(MigValueType type, const char *name)
{
	MigValue *v = g_new0(MigValue, 1);

	v->type = type;
	v->name = g_strdup(name);
	if (type == MIG_VALUE_OBJECT || type == MIG_VALUE_ARRAY)
		v->items = g_ptr_array_new_with_free_func((GDestroyNotify)mig_value_free);
	return v;
}

MigValue *mig_value_new_object(void)
{
	return value_new(MIG_VALUE_OBJECT, NULL);
}

void mig_value_free(MigValue *v)
{
	if (!v)
		return;
	if (v->type == MIG_VALUE_OBJECT || v->type == MIG_VALUE_ARRAY)
		g_ptr_array_free(v->items, TRUE);
	else if (v->type == MIG_VALUE_STR)
		g_free(v->s);
	g_free(v->name);
	g_free(v);
}

static MigValue *add(MigValue *parent, MigValueType type, const char *name)
{
	MigValue *v;

	g_return_val_if_fail(parent->type == MIG_VALUE_OBJECT || parent->type == MIG_VALUE_ARRAY, NULL);
	g_return_val_if_fail(parent->type == MIG_VALUE_ARRAY || name, NULL);
	v = value_new(type, parent->type == MIG_VALUE_OBJECT ? name : NULL);
	g_ptr_array_add(parent->items, v);
	return v;
}

void mig_value_add_int(MigValue *parent, const char *name, gint64 i)
{
	MigValue *v = add(parent, MIG_VALUE_INT, name);

	if (v)
		v->i = i;
}

void mig_value_add_double(MigValue *parent, const char *name, double d)
{
	MigValue *v = add(parent, MIG_VALUE_DOUBLE, name);

	if (v)
		v->d = d;
}

void mig_value_add_bool(MigValue *parent, const char *name, gboolean b)
{
	MigValue *v = add(parent, MIG_VALUE_BOOL, name);

	if (v)
		v->b = !!b;
}

void mig_value_add_str(MigValue *parent, const char *name, const char *s)
{
	MigValue *v = add(parent, MIG_VALUE_STR, name);

	if (v)
		v->s = g_strdup(s ? s : "");
}

MigValue *mig_value_add_object(MigValue *parent, const char *name)
{
	return add(parent, MIG_VALUE_OBJECT, name);
}

MigValue *mig_value_add_array(MigValue *parent, const char *name)
{
	return add(parent, MIG_VALUE_ARRAY, name);
}

const MigValue *mig_value_get(const MigValue *obj, const char *name)
{
	if (!obj || obj->type != MIG_VALUE_OBJECT)
		return NULL;
	for (guint i = 0; i < obj->items->len; i++) {
		const MigValue *v = g_ptr_array_index(obj->items, i);

		if (!g_strcmp0(v->name, name))
			return v;
	}
	return NULL;
}
