/* What every scenario's report shares: number formatting and the JSON's head, null
 * conventions and saving. */
#include "tools/bench/runner.h"
#include "migbench-commit.h"
#include <math.h>
#include <stdio.h>
#include <sys/utsname.h>

char *bench_fmt_num(double v, int decimals)
{
	return isnan(v) ? g_strdup("-") : g_strdup_printf("%.*f", decimals, v);
}

char *bench_fmt_size(guint64 bytes)
{
	return bytes >= GiB ? g_strdup_printf("%" G_GUINT64_FORMAT " GiB", bytes / GiB)
			    : g_strdup_printf("%" G_GUINT64_FORMAT " MiB", bytes >> 20);
}

void bench_json_double(JsonBuilder *j, const char *name, double v)
{
	json_builder_set_member_name(j, name);
	if (isnan(v))
		json_builder_add_null_value(j);
	else
		json_builder_add_double_value(j, v);
}

void bench_json_int(JsonBuilder *j, const char *name, gint64 v)
{
	json_builder_set_member_name(j, name);
	json_builder_add_int_value(j, v);
}

void bench_json_str(JsonBuilder *j, const char *name, const char *v)
{
	json_builder_set_member_name(j, name);
	if (v)
		json_builder_add_string_value(j, v);
	else
		json_builder_add_null_value(j);
}

/* A row's "status" and "error" (null when it has none). */
void bench_json_status(JsonBuilder *j, RowStatus status, const char *error)
{
	bench_json_str(j, "status", bench_status_names[status]);
	bench_json_str(j, "error", error);
}

/* Opens the top object and writes what every scenario's JSON starts with. */
void bench_json_head(Bench *b, JsonBuilder *j, guint64 guest_bytes)
{
	struct utsname u;

	uname(&u);
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "scenario");
	json_builder_add_string_value(j, b->scenario);
	json_builder_set_member_name(j, "command");
	json_builder_add_string_value(j, b->command);
	json_builder_set_member_name(j, "quick");
	json_builder_add_boolean_value(j, b->quick);
	bench_json_int(j, "runs", b->runs);
	bench_json_int(j, "guest_bytes", (gint64)guest_bytes);
	json_builder_set_member_name(j, "mem_prealloc");   /* every destination pre-faults its memory */
	json_builder_add_boolean_value(j, TRUE);
	json_builder_set_member_name(j, "commit");
	json_builder_add_string_value(j, MIG_COMMIT);
	json_builder_set_member_name(j, "host");
	json_builder_begin_object(j);
	json_builder_set_member_name(j, "name");
	json_builder_add_string_value(j, g_get_host_name());
	bench_json_int(j, "cpus", g_get_num_processors());
	json_builder_set_member_name(j, "kernel");
	json_builder_add_string_value(j, u.release);
	json_builder_end_object(j);
	json_builder_set_member_name(j, "notes");
	json_builder_begin_array(j);
	for (guint i = 0; i < b->notes->len; i++)
		json_builder_add_string_value(j, g_ptr_array_index(b->notes, i));
	json_builder_end_array(j);
}

/* Draws the plots of the JSON beside it (tools/bench/plot, with gnuplot), which prints
 * their paths. A picture is a convenience: without one the benchmark stands. */
static void json_plot(const char *path)
{
	const char *plot = g_getenv("MIG_BENCH_PLOT");
	const char *argv[] = { NULL, path, NULL };
	g_autoptr(GError) e = NULL;
	int status;

	if (!plot)
		plot = g_file_test(MIG_BENCH_PLOT, G_FILE_TEST_IS_EXECUTABLE) ? MIG_BENCH_PLOT : MIG_BENCH_PLOT_INSTALLED;
	argv[0] = plot;
	fflush(stdout);
	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status, &e) ||
	    !g_spawn_check_wait_status(status, &e))
		g_printerr("migbench: warning: no plots of %s: %s: %s\n", path, plot, e->message);
}

/* Closes the top object, writes it to --json and plots it (if the plot script knows it). */
gboolean bench_json_save(Bench *b, JsonBuilder *j, GError **err)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *text = NULL;

	json_builder_end_object(j);
	root = json_builder_get_root(j);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	text = json_generator_to_data(gen, NULL);
	if (!g_file_set_contents(b->json_path, text, -1, err))
		return FALSE;
	if (!b->unplotted)
		json_plot(b->json_path);
	return TRUE;
}
