/* Small numeric helpers of migbench. */
#include "tools/bench/stats.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(const double *v, gsize n)
{
	g_autofree double *s = NULL;

	if (!n)
		return NAN;
	/* sorted copy: callers keep their samples in run order for the JSON output */
	s = g_memdup2(v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
}

gboolean bench_parse_size(const char *s, guint64 *out)
{
	static const char units[] = "KMGT";
	guint64 v, mult = 1;
	char *end = NULL;
	const char *u;

	if (!s || !g_ascii_isdigit(*s))
		return FALSE;
	v = g_ascii_strtoull(s, &end, 10);
	if (*end && (u = strchr(units, g_ascii_toupper(*end))) != NULL) {
		mult = 1ull << (10 * (u - units + 1));
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end || !v || v > G_MAXUINT64 / mult)
		return FALSE;
	*out = v * mult;
	return TRUE;
}
