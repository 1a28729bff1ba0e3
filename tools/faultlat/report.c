#include "tools/faultlat/report.h"

#include <string.h>

#define BAR_WIDTH 40

static const char *const ps_names[FL_NR_PS] = { "4K", "2M", "1G", "other" };

const char *fl_page_size_name(enum fl_page_size ps)
{
	return ps < FL_NR_PS ? ps_names[ps] : "?";
}

double fl_percentile_ns(const struct fl_hist *h, double p)
{
	double want = p / 100.0 * (double)h->count, mid;
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	/* Nearest rank: the smallest value with at least p % of the waits at or
	 * below it, so a percentile is always a wait that happened. */
	rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (uint32_t i = 0; i < FL_FINE_SLOTS; i++) {
		seen += h->fine[i];
		if (seen < rank)
			continue;
		mid = (double)fl_fine_lo(i) + (double)(fl_fine_width(i) - 1) / 2.0;
		return mid < (double)h->max_ns ? mid : (double)h->max_ns;
	}
	/* Counters read while the BPF side was adding: the last wait will do. */
	return (double)h->max_ns;
}

void fl_summarize(const struct fl_hist *h, struct fl_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->count = h->count;
	if (!h->count)
		return;
	s->p50_us = fl_percentile_ns(h, 50) / 1e3;
	s->p90_us = fl_percentile_ns(h, 90) / 1e3;
	s->p99_us = fl_percentile_ns(h, 99) / 1e3;
	s->max_us = (double)h->max_ns / 1e3;
	s->mean_us = (double)h->sum_ns / (double)h->count / 1e3;
}

/* Slots [*first, *last] hold every non-zero count; false if there is none. */
static int log2_span(const struct fl_hist *h, int *first, int *last)
{
	*first = -1;
	*last = -1;
	for (int i = 0; i < FL_LOG2_SLOTS; i++) {
		if (!h->log2_us[i])
			continue;
		if (*first < 0)
			*first = i;
		*last = i;
	}
	return *first >= 0;
}

static uint64_t log2_lo(int slot)
{
	return slot ? 1ULL << slot : 0;
}

static uint64_t log2_hi(int slot)
{
	return (1ULL << (slot + 1)) - 1;
}

static void print_bar(FILE *out, uint32_t n, uint32_t max)
{
	int stars = max ? (int)((uint64_t)n * BAR_WIDTH / max) : 0;

	fputc('|', out);
	for (int i = 0; i < BAR_WIDTH; i++)
		fputc(i < stars ? '*' : ' ', out);
	fputc('|', out);
}

static void print_log2(FILE *out, const struct fl_hist *h)
{
	uint32_t max = 0;
	int first, last;

	if (!log2_span(h, &first, &last))
		return;
	for (int i = first; i <= last; i++)
		if (h->log2_us[i] > max)
			max = h->log2_us[i];
	/* Lined up with the rows below: 14 + " -> " + 10 columns before the colon. */
	fprintf(out, "%*s%-*s : count    distribution\n", 9, "", 19, "usecs");
	for (int i = first; i <= last; i++) {
		fprintf(out, "%*llu -> %-*llu : %-8u ", 14, (unsigned long long)log2_lo(i), 10,
			(unsigned long long)log2_hi(i), h->log2_us[i]);
		print_bar(out, h->log2_us[i], max);
		fputc('\n', out);
	}
}

void fl_report_text(FILE *out, const struct fl_report *r)
{
	int any = 0;

	for (int ps = 0; ps < FL_NR_PS; ps++) {
		const struct fl_hist *h = &r->hist[ps];
		struct fl_summary s;

		if (!h->count)
			continue;
		any = 1;
		fl_summarize(h, &s);
		fprintf(out, "\npage size %s: %llu waits  p50 %.1f us  p90 %.1f us  p99 %.1f us"
			"  max %.1f us  mean %.1f us\n", fl_page_size_name(ps),
			(unsigned long long)s.count, s.p50_us, s.p90_us, s.p99_us, s.max_us,
			s.mean_us);
		print_log2(out, h);
	}
	if (!any)
		fprintf(out, "\nno userfaultfd waits in %.1f s\n", r->seconds);
	fflush(out);
}

static void json_hist(FILE *out, const struct fl_hist *h)
{
	int first, last, sep = 0;

	fputs("\"hist_us\":[", out);
	if (log2_span(h, &first, &last))
		for (int i = first; i <= last; i++, sep = 1)
			fprintf(out, "%s{\"lo\":%llu,\"hi\":%llu,\"count\":%u}", sep ? "," : "",
				(unsigned long long)log2_lo(i), (unsigned long long)log2_hi(i),
				h->log2_us[i]);
	fputc(']', out);
}

void fl_report_json(FILE *out, const struct fl_report *r)
{
	int sep = 0;

	fprintf(out, "{\"pid\":%d,\"method\":\"%s\",\"seconds\":%.3f,\"page_sizes\":{",
		(int)r->pid, r->method, r->seconds);
	for (int ps = 0; ps < FL_NR_PS; ps++) {
		const struct fl_hist *h = &r->hist[ps];
		struct fl_summary s;

		/* The three x86 sizes always appear, so a reader can index them. */
		if (ps == FL_PS_OTHER && !h->count)
			continue;
		fl_summarize(h, &s);
		fprintf(out, "%s\"%s\":{\"count\":%llu,\"p50_us\":%.3f,\"p90_us\":%.3f,"
			"\"p99_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f,", sep ? "," : "",
			fl_page_size_name(ps), (unsigned long long)s.count, s.p50_us, s.p90_us,
			s.p99_us, s.max_us, s.mean_us);
		json_hist(out, h);
		fputc('}', out);
		sep = 1;
	}
	fputs("}}\n", out);
	fflush(out);
}
