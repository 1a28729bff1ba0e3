#include "tools/faultlat/stages.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fs_records_add(struct fs_records *rs, const struct fs_record *r)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 1024;
		struct fs_record *v = realloc(rs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = *r;
	return 0;
}

void fs_records_free(struct fs_records *rs)
{
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

unsigned int fs_seen_mask(const struct fs_record *r)
{
	unsigned int m = 0;

	for (int s = 0; s < FS_NR_STAGES; s++)
		if (r->ts[s])
			m |= 1U << s;
	return m;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int64_t fs_percentile(const int64_t *sorted, size_t n, double p)
{
	double want = p / 100.0 * (double)n;
	size_t rank;

	if (!n)
		return 0;
	/* Nearest rank: the smallest value with at least p % of the values at or below. */
	rank = (size_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* Sorts v in place and fills d. */
static void dist_of(int64_t *v, size_t n, struct fs_dist *d)
{
	double sum = 0;

	memset(d, 0, sizeof(*d));
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_i64);
	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	d->count = n;
	d->p50_us = (double)fs_percentile(v, n, 50) / 1e3;
	d->p90_us = (double)fs_percentile(v, n, 90) / 1e3;
	d->p99_us = (double)fs_percentile(v, n, 99) / 1e3;
	d->min_us = (double)v[0] / 1e3;
	d->max_us = (double)v[n - 1] / 1e3;
	d->mean_us = sum / (double)n / 1e3;
}

static int64_t span(const struct fs_record *r, int from, int to)
{
	return (int64_t)(r->ts[to] - r->ts[from]);
}

/* Every stage seen, and the copy the destination read did not leave before the urgent
 * one: every probe that stands for a write fires before it, so on these requests no
 * hop is negative. Where page_received comes first, another copy of the page (bulk,
 * already on its way) answered the fault; its hops would mix two copies. */
static int complete(const struct fs_record *r)
{
	return fs_seen_mask(r) == FS_ALL_STAGES && r->ts[FS_PAGE_RECEIVED] >= r->ts[FS_PAGE_SENT];
}

/* The typical request: complete ones whose total is between the total's p40 and p60.
 * v has room for every record. */
static void typical(const struct fs_records *placed, int64_t *v, struct fs_summary *out)
{
	int64_t lo, hi;
	size_t k = 0;

	for (size_t i = 0; i < placed->n; i++)
		if (complete(&placed->v[i]))
			v[k++] = span(&placed->v[i], FS_FAULT_READ, FS_PAGE_PLACED);
	if (!k)
		return;
	qsort(v, k, sizeof(*v), cmp_i64);
	lo = fs_percentile(v, k, 40);
	hi = fs_percentile(v, k, 60);
	out->typical.lo_us = (double)lo / 1e3;
	out->typical.hi_us = (double)hi / 1e3;
	for (size_t i = 0; i < placed->n; i++) {
		const struct fs_record *r = &placed->v[i];
		int64_t t = span(r, FS_FAULT_READ, FS_PAGE_PLACED);

		if (!complete(r) || t < lo || t > hi)
			continue;
		out->typical.count++;
		for (int h = 0; h < FS_NR_HOPS; h++)
			out->typical.hop_mean_us[h] += (double)span(r, h, h + 1) / 1e3;
		out->typical.total_mean_us += (double)t / 1e3;
	}
	for (int h = 0; h < FS_NR_HOPS; h++)
		out->typical.hop_mean_us[h] /= (double)out->typical.count;
	out->typical.total_mean_us /= (double)out->typical.count;
}

int fs_summarize(const struct fs_records *placed, const struct fs_records *open,
		 struct fs_summary *out)
{
	size_t n = placed->n ? placed->n : 1, k = 0;
	int64_t *v = malloc(n * sizeof(*v));

	memset(out, 0, sizeof(*out));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < placed->n; i++) {
		unsigned int m = fs_seen_mask(&placed->v[i]);

		if (complete(&placed->v[i])) {
			out->complete++;
		} else if (m == FS_ALL_STAGES) {
			out->early++;
		} else {
			out->incomplete++;
			out->by_seen[m]++;
		}
	}
	for (size_t i = 0; i < open->n; i++) {
		out->unfinished++;
		out->by_seen[fs_seen_mask(&open->v[i])]++;
	}

	/* Every hop over the same set of requests, the complete ones, so that the hops
	 * add up to the total of each request. */
	for (int h = 0; h <= FS_NR_HOPS; h++) {
		int from = h < FS_NR_HOPS ? h : FS_FAULT_READ;
		int to = h < FS_NR_HOPS ? h + 1 : FS_PAGE_PLACED;

		k = 0;
		for (size_t i = 0; i < placed->n; i++)
			if (complete(&placed->v[i]))
				v[k++] = span(&placed->v[i], from, to);
		dist_of(v, k, h < FS_NR_HOPS ? &out->hop[h] : &out->total);
	}
	for (int h = 0; h < FS_NR_HOPS; h++)
		out->sum_hop_p50_us += out->hop[h].p50_us;
	typical(placed, v, out);
	k = 0;
	for (size_t i = 0; i < placed->n; i++)
		v[k++] = span(&placed->v[i], FS_FAULT_READ, FS_PAGE_PLACED);
	dist_of(v, k, &out->total_placed);
	free(v);
	return 0;
}

/* "a, b, c": the stages not in mask. */
static void print_missing(FILE *out, unsigned int seen, const char *sep, const char *quote)
{
	int first = 1;

	for (int s = 0; s < FS_NR_STAGES; s++) {
		if (seen & (1U << s))
			continue;
		fprintf(out, "%s%s%s%s", first ? "" : sep, quote, fs_stage_name(s), quote);
		first = 0;
	}
}

static double rel_diff_pct(double a, double b)
{
	return b ? (a - b) / b * 100.0 : 0;
}

static void text_row(FILE *out, const char *from, const char *to, const struct fs_dist *d)
{
	char name[64];

	snprintf(name, sizeof(name), "%s -> %s", from, to);
	fprintf(out, "%-36s %7llu %10.1f %10.1f %10.1f %10.1f %10.1f\n", name,
		(unsigned long long)d->count, d->p50_us, d->p90_us, d->p99_us, d->min_us, d->max_us);
}

void fs_report_text(FILE *out, const struct fs_report *r)
{
	const struct fs_summary *s = &r->sum;

	fprintf(out, "\nsource PID %d, destination PID %d, %.1f s\n", (int)r->src, (int)r->dst,
		r->seconds);
	fprintf(out, "requests: %llu complete, %llu early (placed from a copy read before the urgent "
		"one left), %llu incomplete (placed without passing every stage), "
		"%llu unfinished (not placed while traced)\n", (unsigned long long)s->complete,
		(unsigned long long)s->early, (unsigned long long)s->incomplete,
		(unsigned long long)s->unfinished);
	if (s->complete) {
		fprintf(out, "\n%-36s %7s %10s %10s %10s %10s %10s\n", "hop (complete requests)", "count",
			"p50 us", "p90 us", "p99 us", "min us", "max us");
		for (int h = 0; h < FS_NR_HOPS; h++)
			text_row(out, fs_stage_name(h), fs_stage_name(h + 1), &s->hop[h]);
		text_row(out, "total fault_read", fs_stage_name(FS_PAGE_PLACED), &s->total);
		fprintf(out, "sum of the hop p50s: %.1f us, total p50 %.1f us (%+.1f %%)\n",
			s->sum_hop_p50_us, s->total.p50_us, rel_diff_pct(s->sum_hop_p50_us, s->total.p50_us));
		fprintf(out, "\ntypical request (%llu complete ones with a total of %.1f to %.1f us, "
			"its p40 to p60), mean per hop:\n", (unsigned long long)s->typical.count,
			s->typical.lo_us, s->typical.hi_us);
		for (int h = 0; h < FS_NR_HOPS; h++)
			fprintf(out, "%s%.1f", h ? " + " : "  ", s->typical.hop_mean_us[h]);
		fprintf(out, " = %.1f us\n", s->typical.total_mean_us);
	}
	if (s->total_placed.count)
		fprintf(out, "every placed request, fault_read -> page_placed: %llu, p50 %.1f us, "
			"p90 %.1f us, p99 %.1f us\n", (unsigned long long)s->total_placed.count,
			s->total_placed.p50_us, s->total_placed.p90_us, s->total_placed.p99_us);
	if (s->incomplete || s->unfinished) {
		fprintf(out, "\nnot complete, by the stages not seen:\n");
		for (unsigned int m = 0; m < FS_NR_MASKS; m++) {
			if (!s->by_seen[m])
				continue;
			fprintf(out, "%8llu  %-10s missing ", (unsigned long long)s->by_seen[m],
				m & (1U << FS_PAGE_PLACED) ? "placed," : "unfinished,");
			print_missing(out, m, ", ", "");
			fputc('\n', out);
		}
	}
	fprintf(out, "\nprobe hits:");
	for (int st = 0; st < FS_NR_STAGES; st++)
		fprintf(out, " %s %llu", fs_stage_name(st), (unsigned long long)r->counters[st]);
	fprintf(out, "\nrepeated faults %llu, records lost %llu, requests not tracked (map full) %llu\n",
		(unsigned long long)r->counters[FS_CNT_REFAULT],
		(unsigned long long)r->counters[FS_CNT_LOST],
		(unsigned long long)r->counters[FS_CNT_MAP_FULL]);
	fflush(out);
}

static void json_dist(FILE *out, const char *from, const char *to, const struct fs_dist *d)
{
	fprintf(out, "{\"from\":\"%s\",\"to\":\"%s\",\"count\":%llu,\"p50_us\":%.3f,\"p90_us\":%.3f,"
		"\"p99_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f}", from, to,
		(unsigned long long)d->count, d->p50_us, d->p90_us, d->p99_us, d->min_us, d->max_us,
		d->mean_us);
}

void fs_report_json(FILE *out, const struct fs_report *r)
{
	const struct fs_summary *s = &r->sum;
	int sep = 0;

	fprintf(out, "{\"src_pid\":%d,\"dst_pid\":%d,\"method\":\"%s\",\"seconds\":%.3f,", (int)r->src,
		(int)r->dst, r->method, r->seconds);
	fprintf(out, "\"requests\":{\"complete\":%llu,\"early\":%llu,\"incomplete\":%llu,"
		"\"unfinished\":%llu,\"not_complete\":[", (unsigned long long)s->complete,
		(unsigned long long)s->early, (unsigned long long)s->incomplete,
		(unsigned long long)s->unfinished);
	for (unsigned int m = 0; m < FS_NR_MASKS; m++) {
		if (!s->by_seen[m])
			continue;
		fprintf(out, "%s{\"placed\":%s,\"count\":%llu,\"missing\":[", sep ? "," : "",
			m & (1U << FS_PAGE_PLACED) ? "true" : "false", (unsigned long long)s->by_seen[m]);
		print_missing(out, m, ",", "\"");
		fputs("]}", out);
		sep = 1;
	}
	fputs("]},\"hops\":[", out);
	for (int h = 0; h < FS_NR_HOPS; h++) {
		if (h)
			fputc(',', out);
		json_dist(out, fs_stage_name(h), fs_stage_name(h + 1), &s->hop[h]);
	}
	fputs("],\"total\":", out);
	json_dist(out, fs_stage_name(FS_FAULT_READ), fs_stage_name(FS_PAGE_PLACED), &s->total);
	fputs(",\"total_all_placed\":", out);
	json_dist(out, fs_stage_name(FS_FAULT_READ), fs_stage_name(FS_PAGE_PLACED), &s->total_placed);
	fprintf(out, ",\"sum_hop_p50_us\":%.3f,\"total_p50_us\":%.3f,", s->sum_hop_p50_us,
		s->total.p50_us);
	fprintf(out, "\"typical\":{\"count\":%llu,\"total_lo_us\":%.3f,\"total_hi_us\":%.3f,"
		"\"total_mean_us\":%.3f,\"hop_mean_us\":[", (unsigned long long)s->typical.count,
		s->typical.lo_us, s->typical.hi_us, s->typical.total_mean_us);
	for (int h = 0; h < FS_NR_HOPS; h++)
		fprintf(out, "%s%.3f", h ? "," : "", s->typical.hop_mean_us[h]);
	fputs("]},\"probe_hits\":{", out);
	for (int st = 0; st < FS_NR_STAGES; st++)
		fprintf(out, "%s\"%s\":%llu", st ? "," : "", fs_stage_name(st),
			(unsigned long long)r->counters[st]);
	fprintf(out, "},\"repeated_faults\":%llu,\"lost\":%llu,\"map_full\":%llu}\n",
		(unsigned long long)r->counters[FS_CNT_REFAULT],
		(unsigned long long)r->counters[FS_CNT_LOST],
		(unsigned long long)r->counters[FS_CNT_MAP_FULL]);
	fflush(out);
}
