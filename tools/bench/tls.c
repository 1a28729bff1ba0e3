/* Scenario tls: what TLS costs a migration, against plaintext in the same run. Precopy
 * of an idle guest on loopback over 1 and 4 multifd channels, with each migd's CPU
 * seconds per GiB and the ceiling the negotiated cipher allows (openssl speed, measured
 * in the same run); and the 4K postcopy fault latency on the netns bed, by
 * postcopy-latency's machinery. docs/benchmarks.md explains the method and columns. */
#include "tools/bench/postcopy-latency.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TLS_HOST "localhost"        /* the server certificate's name; the bed's address is not in it */
#define SPEED_SECONDS "2"

static const guint tls_channels[] = { 1, 4 };
#define N_CH G_N_ELEMENTS(tls_channels)

typedef struct TlsSample {
	double gbps;                /* as precopy-throughput: ram.total / active time */
	double src_cpu, dst_cpu;    /* CPU seconds per GiB of guest, from /proc/PID/stat */
	guint64 ram_total;
	gint64 total_ms;
} TlsSample;

typedef struct TlsRow {
	guint channels;
	GArray *plain, *tls;        /* TlsSample, one per run while the row is OK */
	RowStatus status;
	char *error;
} TlsRow;

typedef struct TlsRun {
	TlsRow rows[N_CH];
	GArray *cipher_gbps;        /* double per run: openssl speed of the negotiated cipher */
	char *cipher, *evp, *mode, *version;   /* the source's x-tls, openssl's name of its cipher */
	PcNet net;                  /* postcopy: the bed */
	PcRow *pc[2];               /* plaintext, TLS */
	guint64 guest, pc_guest;
} TlsRun;

/* ---- credentials and the pair ---- */

/* The commands docs/design.md gives: a CA, and a server and a client certificate it
 * signed, in one directory under QEMU's names (a server reads server-*, a client
 * client-*, both ca-cert.pem). */
static const char make_certs[] =
	"set -e\n"
	"key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out \"$1\"; }\n"
	"key ca-key.pem\n"
	"openssl req -x509 -new -key ca-key.pem -out ca-cert.pem -subj '/CN=migbench CA' -days 2\n"
	"printf 'subjectAltName=DNS:" TLS_HOST ",IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
	"printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
	"for r in server client; do\n"
	"  key $r-key.pem\n"
	"  openssl req -new -key $r-key.pem -subj \"/O=mig/CN=$r\" -out $r.csr\n"
	"  openssl x509 -req -in $r.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial -days 2 \\\n"
	"    -extfile $r.ext -out $r-cert.pem\n"
	"done\n";

static gboolean tls_certs(Bench *b, GError **err)
{
	g_autofree char *dir = g_build_filename(b->tmpdir, "tls", NULL), *out = NULL, *errs = NULL;
	const char *argv[] = { "/bin/sh", "-c", make_certs, NULL };
	int status = 0;

	if (g_mkdir_with_parents(dir, 0700) < 0 ||
	    !g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errs, &status, err))
		return FALSE;
	if (!g_spawn_check_wait_status(status, NULL)) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "making certificates with openssl failed: %s",
			    g_strstrip(errs));
		return FALSE;
	}
	b->tls_dir = g_steal_pointer(&dir);
	return TRUE;
}

gboolean bench_tls_enable(Bench *b, MigPair *p, GError **err)
{
	g_autofree char *server = g_strdup_printf("{\"qom-type\":\"tls-creds-x509\",\"id\":\"tls0\",\"dir\":\"%s\","
						  "\"endpoint\":\"server\",\"verify-peer\":true}", b->tls_dir);
	g_autofree char *client = g_strdup_printf("{\"qom-type\":\"tls-creds-x509\",\"id\":\"tls0\",\"dir\":\"%s\","
						  "\"endpoint\":\"client\",\"verify-peer\":true}", b->tls_dir);

	/* the destination's first: it reads its parameters per connection */
	return bench_qmp_run(p->qdst, "destination", "object-add", server, err) &&
	       bench_qmp_run(p->qdst, "destination", "migrate-set-parameters", "{\"tls-creds\":\"tls0\"}", err) &&
	       bench_qmp_run(p->qsrc, "source", "object-add", client, err) &&
	       bench_qmp_run(p->qsrc, "source", "migrate-set-parameters",
			     "{\"tls-creds\":\"tls0\",\"tls-hostname\":\"" TLS_HOST "\"}", err);
}

/* utime + stime of pid in seconds; NAN when it cannot be read. */
static double proc_cpu_s(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid), *text = NULL;
	unsigned long long ut, st;
	const char *p;

	if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')')))
		return NAN;
	/* after the name: state, ppid, pgrp, session, tty, tpgid, flags, 4 fault counts */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* openssl's EVP name of a TLS 1.3 suite; NULL for one we cannot time. */
static const char *evp_of(const char *suite)
{
	static const char *const map[][2] = {
		{ "TLS_AES_128_GCM_SHA256", "aes-128-gcm" },
		{ "TLS_AES_256_GCM_SHA384", "aes-256-gcm" },
		{ "TLS_CHACHA20_POLY1305_SHA256", "chacha20-poly1305" },
	};

	for (guint i = 0; suite && i < G_N_ELEMENTS(map); i++)
		if (!strcmp(suite, map[i][0]))
			return map[i][1];
	return NULL;
}

/* The source's x-tls once a TLS migration completed: it must be there (else TLS was
 * not used and the row would measure plaintext twice). */
static gboolean note_x_tls(TlsRun *t, JsonObject *done, GError **err)
{
	JsonObject *x = bench_obj_obj(done, "x-tls");

	if (!x || !bench_obj_str(x, "cipher")) {
		g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "the source's query-migrate has no x-tls: TLS was not used");
		return FALSE;
	}
	if (!t->cipher) {
		t->cipher = g_strdup(bench_obj_str(x, "cipher"));
		t->mode = g_strdup(bench_obj_str(x, "mode"));
		t->version = g_strdup(bench_obj_str(x, "version"));
	}
	return TRUE;
}

static gboolean precopy_run(Bench *b, TlsRun *t, guint channels, gboolean tls, TlsSample *s, GError **err)
{
	guint seq = ++b->seq;
	MigdSpec src = { .backend = "anon", .guest_bytes = t->guest, .workload = "idle", .seed = seq, .side = -1 };
	MigdSpec dst = { .backend = "anon", .guest_bytes = t->guest, .prealloc = TRUE, .incoming = "tcp:127.0.0.1:0",
			 .side = -1 };
	g_autofree char *port = NULL, *uri = NULL;
	g_autoptr(JsonObject) done = NULL;
	MigPair p = { 0 };
	MigSample ms = { 0 };
	double src0 = NAN, dst0 = NAN, src1 = NAN, dst1 = NAN;
	gboolean ok;

	ok = bench_pair_start(b, &src, &dst, &p, err) && bench_set_multifd(p.qdst, "destination", channels, err) &&
	     bench_set_multifd(p.qsrc, "source", channels, err) &&
	     bench_qmp_run(p.qsrc, "source", "migrate-set-parameters", "{\"max-bandwidth\":0,\"downtime-limit\":300}", err) &&
	     (!tls || bench_tls_enable(b, &p, err)) && (port = bench_dst_port(b, &p, err)) != NULL;
	if (ok) {
		uri = g_strdup_printf("{\"uri\":\"tcp:127.0.0.1:%s\"}", port);
		src0 = proc_cpu_s(p.src->pid);
		dst0 = proc_cpu_s(p.dst->pid);
		ok = bench_qmp_run(p.qsrc, "source", "migrate", uri, err) && (done = bench_wait_source(b, &p, err)) != NULL;
		/* before the integrity check, which reads the guest on the destination */
		src1 = proc_cpu_s(p.src->pid);
		dst1 = proc_cpu_s(p.dst->pid);
		ok = ok && bench_mig_sample(done, &ms, err) && bench_wait_integrity(b, &p, &ms, err) &&
		     (!tls || note_x_tls(t, done, err));
	}
	bench_pair_stop(b, &p);
	if (ok) {
		s->gbps = ms.gbps;
		s->ram_total = ms.ram_total;
		s->total_ms = ms.total_ms;
		s->src_cpu = (src1 - src0) / ((double)ms.ram_total / (double)GiB);
		s->dst_cpu = (dst1 - dst0) / ((double)ms.ram_total / (double)GiB);
	}
	return ok;
}

/* The cipher's single-core GB/s, by `openssl speed -evp NAME -bytes 16384`: its
 * machine-readable form (-mr) gives bytes per second of the CPU time it used. */
static gboolean cipher_speed(const char *evp, double *gbps, GError **err)
{
	const char *argv[] = { "openssl", "speed", "-mr", "-evp", evp, "-bytes", "16384", "-seconds", SPEED_SECONDS, NULL };
	g_autofree char *out = NULL, *errs = NULL;
	g_auto(GStrv) lines = NULL;
	int status = 0;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &errs, &status, err))
		return FALSE;
	lines = g_strsplit(out, "\n", -1);
	for (guint i = 0; g_spawn_check_wait_status(status, NULL) && lines[i]; i++) {
		const char *v = strrchr(lines[i], ':');

		if (g_str_has_prefix(lines[i], "+F:") && v && (*gbps = g_ascii_strtod(v + 1, NULL) / 1e9) > 0)
			return TRUE;
	}
	g_set_error(err, BENCH_ERROR, BENCH_ERROR_FAILED, "openssl speed -evp %s gave no figure: %s", evp,
		    errs && *errs ? g_strstrip(errs) : "no +F line");
	return FALSE;
}

/* ---- medians ---- */

typedef double (*TlsGet)(const TlsRun *t, const TlsRow *r, guint i);

static double get_plain(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->plain, TlsSample, i).gbps; }
static double get_tls(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->tls, TlsSample, i).gbps; }
static double get_src_plain(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->plain, TlsSample, i).src_cpu; }
static double get_src_tls(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->tls, TlsSample, i).src_cpu; }
static double get_dst_plain(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->plain, TlsSample, i).dst_cpu; }
static double get_dst_tls(const TlsRun *t, const TlsRow *r, guint i) { return g_array_index(r->tls, TlsSample, i).dst_cpu; }

/* 1 / (1/plain + 2/cipher): each byte costs the plaintext path's time plus one
 * encryption and one decryption, both on this host's CPUs. Per run, with that run's
 * cipher figure. */
static double get_ceiling(const TlsRun *t, const TlsRow *r, guint i)
{
	double c = i < t->cipher_gbps->len ? g_array_index(t->cipher_gbps, double, i) : NAN;

	return 1.0 / (1.0 / get_plain(t, r, i) + 2.0 / c);
}

static double get_vs_plain(const TlsRun *t, const TlsRow *r, guint i) { return get_tls(t, r, i) / get_plain(t, r, i); }
static double get_vs_ceiling(const TlsRun *t, const TlsRow *r, guint i) { return get_tls(t, r, i) / get_ceiling(t, r, i); }

/* Over the runs that measured both arms. */
static double tls_median(const TlsRun *t, const TlsRow *r, TlsGet get)
{
	guint n = MIN(r->plain->len, r->tls->len);
	g_autofree double *v = g_new0(double, n + 1);

	for (guint i = 0; i < n; i++)
		v[i] = get(t, r, i);
	return n ? bench_median(v, n) : NAN;
}

static double pc_median(const PcRow *r, PcGet get)
{
	g_autofree double *v = g_new0(double, r->samples->len + 1);

	for (guint i = 0; i < r->samples->len; i++)
		v[i] = get(&g_array_index(r->samples, PcSample, i));
	return r->samples->len ? bench_median(v, r->samples->len) : NAN;
}

/* ---- the runs ---- */

static void row_fail(TlsRow *r, const char *what, const GError *e)
{
	r->status = bench_status_of(e);
	r->error = g_strdup_printf("%s: %s", what, e->message);
}

static void precopy_cell(Bench *b, TlsRun *t, TlsRow *r, int run)
{
	TlsSample s[2] = { 0 };

	/* plaintext first on even runs, TLS first on odd ones: drift hits both */
	for (int k = 0; k < 2 && r->status == ROW_OK; k++) {
		gboolean tls = (k + run) % 2;
		g_autoptr(GError) err = NULL;

		if (bench_interrupted(b, &err) || !precopy_run(b, t, r->channels, tls, &s[tls], &err)) {
			row_fail(r, tls ? "tls" : "plain", err);
			g_printerr("migbench: tls precopy %u ch run %d/%d: %s\n", r->channels, run + 1, b->runs, r->error);
			return;
		}
	}
	g_array_append_val(r->plain, s[0]);
	g_array_append_val(r->tls, s[1]);
	g_printerr("migbench: tls precopy %u ch run %d/%d: plain %.2f GB/s, tls %.2f GB/s; CPU s/GiB src %.2f/%.2f, "
		   "dst %.2f/%.2f\n", r->channels, run + 1, b->runs, s[0].gbps, s[1].gbps, s[0].src_cpu, s[1].src_cpu,
		   s[0].dst_cpu, s[1].dst_cpu);
}

static void cipher_cell(Bench *b, TlsRun *t)
{
	g_autoptr(GError) err = NULL;
	double gbps = NAN;

	if (!t->cipher)
		return;   /* no TLS run completed: nothing negotiated to time */
	if (!t->evp && !(t->evp = g_strdup(evp_of(t->cipher)))) {
		bench_note(b, "cannot time the negotiated cipher %s with openssl speed", t->cipher);
		t->evp = g_strdup("");
	}
	if (*t->evp && !cipher_speed(t->evp, &gbps, &err))
		bench_note(b, "%s", err->message);
	g_array_append_val(t->cipher_gbps, gbps);
}

static void postcopy_cell(Bench *b, TlsRun *t, PcRow *row, int run)
{
	g_autoptr(GError) err = NULL;
	PcSample s = { 0 };

	if (row->status != ROW_OK)
		return;
	if (bench_interrupted(b, &err) || !pc_run(b, &t->net, row, t->pc_guest, &s, &err)) {
		row->status = bench_status_of(err);
		row->error = g_strdup(err->message);
		g_printerr("migbench: tls postcopy %s run %d/%d: %s\n", row->tls ? "tls" : "plain", run + 1, b->runs,
			   err->message);
		return;
	}
	g_array_append_val(row->samples, s);
	g_printerr("migbench: tls postcopy %s run %d/%d: 4K p50 %.3f p99 %.3f ms over %" G_GUINT64_FORMAT " faults\n",
		   row->tls ? "tls" : "plain", run + 1, b->runs, s.p50_us / 1e3, s.p99_us / 1e3, s.faults);
}

static void postcopy_net(Bench *b, TlsRun *t)
{
	g_autoptr(GError) err = NULL;

	for (int i = 0; i < 2; i++) {
		t->pc[i] = pc_row_new(0, ARM_PREEMPT);   /* 4K pages, preempt: postcopy as it is meant to run */
		t->pc[i]->untraced = TRUE;               /* no kernel tracer: it would cost both arms */
		t->pc[i]->tls = i;
	}
	if (!(b->net = bench_net_new(NULL, &err))) {
		t->net.error = g_strdup(err->message);
		return;
	}
	for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++)
		for (int k = 0; k < 2; k++)
			postcopy_cell(b, t, t->pc[(k + run) % 2], run);
	bench_net_free(b->net);
	b->net = NULL;
}

/* ---- the report ---- */

static void print_report(Bench *b, TlsRun *t)
{
	g_autofree char *size = bench_fmt_size(t->guest), *pcsize = bench_fmt_size(t->pc_guest);
	double cipher = t->cipher_gbps->len ? bench_median((double *)t->cipher_gbps->data, t->cipher_gbps->len) : NAN;
	g_autofree char *cs = bench_fmt_num(cipher, 2);

	printf("\n%s: precopy of a %s idle guest, loopback TCP, median of %d run%s, %u CPUs\n", b->scenario, size, b->runs,
	       b->runs == 1 ? "" : "s", g_get_num_processors());
	printf("negotiated: %s %s (%s); %s by openssl speed: %s GB/s per core\n", t->version ? t->version : "-",
	       t->cipher ? t->cipher : "-", t->mode ? t->mode : "-", t->evp && *t->evp ? t->evp : "no cipher",
	       cs);
	printf("%-8s %10s %8s %9s %12s %11s %15s %15s\n", "channels", "plain GB/s", "tls GB/s", "tls/plain",
	       "ceiling GB/s", "tls/ceiling", "src CPU s/GiB", "dst CPU s/GiB");
	printf("%-8s %10s %8s %9s %12s %11s %15s %15s\n", "", "", "", "", "", "", "plain / tls", "plain / tls");
	for (guint i = 0; i < N_CH; i++) {
		TlsRow *r = &t->rows[i];
		g_autofree char *pl = bench_fmt_num(tls_median(t, r, get_plain), 2), *tl = bench_fmt_num(tls_median(t, r, get_tls), 2);
		g_autofree char *vp = bench_fmt_num(tls_median(t, r, get_vs_plain), 2);
		g_autofree char *ce = bench_fmt_num(tls_median(t, r, get_ceiling), 2);
		g_autofree char *vc = bench_fmt_num(tls_median(t, r, get_vs_ceiling), 2);
		g_autofree char *sp = bench_fmt_num(tls_median(t, r, get_src_plain), 2), *st = bench_fmt_num(tls_median(t, r, get_src_tls), 2);
		g_autofree char *dp = bench_fmt_num(tls_median(t, r, get_dst_plain), 2), *dt = bench_fmt_num(tls_median(t, r, get_dst_tls), 2);
		g_autofree char *src = g_strdup_printf("%s / %s", sp, st), *dst = g_strdup_printf("%s / %s", dp, dt);

		printf("%-8u %10s %8s %9s %12s %11s %15s %15s\n", r->channels, pl, tl, vp, ce, vc, src, dst);
	}
	printf("ceiling = 1 / (1/plain + 2/cipher), per run: both ends encrypt or decrypt on this host's CPUs\n"
	       "target: tls/ceiling >= 0.8 at 4 channels\n");
	for (guint i = 0; i < N_CH; i++)
		if (t->rows[i].status != ROW_OK)
			printf("%u channels %s: %s\n", t->rows[i].channels, bench_status_names[t->rows[i].status], t->rows[i].error);

	printf("\n%s: postcopy 4K faults (preempt) on the netns bed, %s guest, median of %d run%s\n", b->scenario, pcsize,
	       b->runs, b->runs == 1 ? "" : "s");
	if (t->net.error) {
		printf("the bed: %s\n", t->net.error);
	} else {
		printf("%-6s %8s %8s %8s\n", "", "p50 ms", "p99 ms", "faults");
		for (int i = 0; i < 2; i++) {
			PcRow *r = t->pc[i];
			g_autofree char *p50 = bench_fmt_num(pc_median(r, get_p50) / 1e3, 3);
			g_autofree char *p99 = bench_fmt_num(pc_median(r, get_p99) / 1e3, 3);
			g_autofree char *n = bench_fmt_num(pc_median(r, get_faults), 0);

			printf("%-6s %8s %8s %8s\n", i ? "tls" : "plain", p50, p99, n);
			if (r->status != ROW_OK)
				printf("  %s: %s\n", bench_status_names[r->status], r->error);
		}
		printf("tls/plain: p50 %.2f (target <= 1.3), p99 %.2f\n",
		       pc_median(t->pc[1], get_p50) / pc_median(t->pc[0], get_p50),
		       pc_median(t->pc[1], get_p99) / pc_median(t->pc[0], get_p99));
	}
	for (guint i = 0; i < b->notes->len; i++)
		printf("note: %s\n", (char *)g_ptr_array_index(b->notes, i));
	fflush(stdout);
}

static void json_tls_samples(JsonBuilder *j, const char *name, const GArray *a)
{
	json_builder_set_member_name(j, name);
	json_builder_begin_array(j);
	for (guint i = 0; i < a->len; i++) {
		const TlsSample *s = &g_array_index(a, TlsSample, i);

		json_builder_begin_object(j);
		bench_json_double(j, "gbps", s->gbps);
		bench_json_int(j, "ram_total", (gint64)s->ram_total);
		bench_json_int(j, "total_time_ms", s->total_ms);
		bench_json_double(j, "src_cpu_s_per_gib", s->src_cpu);
		bench_json_double(j, "dst_cpu_s_per_gib", s->dst_cpu);
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
}

static gboolean write_json(Bench *b, TlsRun *t, GError **err)
{
	g_autoptr(JsonBuilder) j = json_builder_new();
	static const struct { const char *name; TlsGet get; } medians[] = {
		{ "median_plain_gbps", get_plain }, { "median_tls_gbps", get_tls }, { "median_ceiling_gbps", get_ceiling },
		{ "ratio_tls_plain", get_vs_plain }, { "ratio_tls_ceiling", get_vs_ceiling },
		{ "median_src_cpu_s_per_gib_plain", get_src_plain }, { "median_src_cpu_s_per_gib_tls", get_src_tls },
		{ "median_dst_cpu_s_per_gib_plain", get_dst_plain }, { "median_dst_cpu_s_per_gib_tls", get_dst_tls },
	};

	bench_json_head(b, j, t->guest);
	json_builder_set_member_name(j, "tls");
	json_builder_begin_object(j);
	bench_json_str(j, "version", t->version);
	bench_json_str(j, "cipher", t->cipher);
	bench_json_str(j, "mode", t->mode);
	bench_json_str(j, "evp", t->evp && *t->evp ? t->evp : NULL);
	json_builder_set_member_name(j, "cipher_gbps");
	json_builder_begin_array(j);
	for (guint i = 0; i < t->cipher_gbps->len; i++)
		json_builder_add_double_value(j, g_array_index(t->cipher_gbps, double, i));
	json_builder_end_array(j);
	json_builder_end_object(j);
	json_builder_set_member_name(j, "precopy");
	json_builder_begin_array(j);
	for (guint i = 0; i < N_CH; i++) {
		TlsRow *r = &t->rows[i];

		json_builder_begin_object(j);
		bench_json_int(j, "channels", r->channels);
		bench_json_status(j, r->status, r->error);
		json_tls_samples(j, "plain", r->plain);
		json_tls_samples(j, "tls", r->tls);
		for (guint m = 0; m < G_N_ELEMENTS(medians); m++)
			bench_json_double(j, medians[m].name, tls_median(t, r, medians[m].get));
		json_builder_end_object(j);
	}
	json_builder_end_array(j);
	json_builder_set_member_name(j, "postcopy");
	json_builder_begin_object(j);
	bench_json_int(j, "guest_bytes", (gint64)t->pc_guest);
	bench_json_str(j, "error", t->net.error);
	for (int i = 0; i < 2 && t->pc[i]; i++) {
		PcRow *r = t->pc[i];

		json_builder_set_member_name(j, i ? "tls" : "plain");
		json_builder_begin_object(j);
		bench_json_status(j, r->status, r->error);
		json_builder_set_member_name(j, "samples");
		json_builder_begin_array(j);
		for (guint k = 0; k < r->samples->len; k++) {
			const PcSample *s = &g_array_index(r->samples, PcSample, k);

			json_builder_begin_object(j);
			bench_json_double(j, "p50_us", s->p50_us);
			bench_json_double(j, "p99_us", s->p99_us);
			bench_json_int(j, "faults", (gint64)s->faults);
			json_builder_end_object(j);
		}
		json_builder_end_array(j);
		bench_json_double(j, "median_p50_us", pc_median(r, get_p50));
		bench_json_double(j, "median_p99_us", pc_median(r, get_p99));
		json_builder_end_object(j);
	}
	if (t->pc[0] && t->pc[1])
		bench_json_double(j, "ratio_p50", pc_median(t->pc[1], get_p50) / pc_median(t->pc[0], get_p50));
	json_builder_end_object(j);
	return bench_json_save(b, j, err);
}

static int run_tls(Bench *b)
{
	TlsRun t = { .net = { .name = "netns", .bed = TRUE } };
	g_autoptr(GError) err = NULL;
	int rc = 0;

	b->unplotted = TRUE;
	t.guest = b->guest_bytes ? b->guest_bytes : b->quick ? 512 << 20 : 2 * GiB;
	t.pc_guest = b->quick ? 256 << 20 : 1 * GiB;
	t.cipher_gbps = g_array_new(FALSE, TRUE, sizeof(double));
	for (guint i = 0; i < N_CH; i++) {
		t.rows[i].channels = tls_channels[i];
		t.rows[i].plain = g_array_new(FALSE, TRUE, sizeof(TlsSample));
		t.rows[i].tls = g_array_new(FALSE, TRUE, sizeof(TlsSample));
	}
	if (!tls_certs(b, &err)) {
		g_printerr("migbench: tls: %s\n", err->message);
		rc = 2;
	} else {
		for (int run = 0; run < b->runs && !bench_procs_interrupted(b->procs); run++) {
			for (guint i = 0; i < N_CH; i++)
				precopy_cell(b, &t, &t.rows[i], run);
			cipher_cell(b, &t);   /* right after the rows it is the ceiling of */
		}
		if (!bench_procs_interrupted(b->procs))
			postcopy_net(b, &t);
		print_report(b, &t);
		if (b->json_path && !write_json(b, &t, &err)) {
			g_printerr("migbench: --json %s: %s\n", b->json_path, err->message);
			rc = 1;
		}
		for (guint i = 0; i < N_CH; i++)
			rc |= t.rows[i].status == ROW_ERROR;
		rc |= t.net.error != NULL || (t.pc[0] && t.pc[0]->status == ROW_ERROR) ||
		      (t.pc[1] && t.pc[1]->status == ROW_ERROR);
	}
	for (guint i = 0; i < N_CH; i++) {
		g_array_unref(t.rows[i].plain);
		g_array_unref(t.rows[i].tls);
		g_free(t.rows[i].error);
	}
	for (int i = 0; i < 2; i++)
		pc_row_free(t.pc[i]);
	g_array_unref(t.cipher_gbps);
	g_free(t.cipher);
	g_free(t.evp);
	g_free(t.mode);
	g_free(t.version);
	g_free(t.net.error);
	b->keep_tmp |= rc == 1;
	return bench_procs_interrupted(b->procs) ? 130 : rc;
}

const BenchScenario bench_tls = {
	"tls", "TLS against plaintext in the same run: precopy GB/s and CPU per GiB on 1 and 4 channels against the "
	"cipher's ceiling, postcopy 4K fault latency on the netns bed",
	run_tls, 0,
};
