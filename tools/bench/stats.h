/* Small numeric helpers of migbench, kept apart so the unit tests can reach them. */
#pragma once
#include <glib.h>

/* Median of n values (the mean of the middle two when n is even); NAN when n == 0.
 * The input is not modified. */
double bench_median(const double *v, gsize n);

/* Parses SIZE as in migd: a decimal count with an optional K, M, G or T suffix (binary
 * units, optionally followed by "iB" or "B"). FALSE on junk, zero or overflow. */
gboolean bench_parse_size(const char *s, guint64 *out);
