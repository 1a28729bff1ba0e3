// SPDX-License-Identifier: (MIT OR GPL-2.0)
#include "bpf/faultlat-loader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/faultlat.skel.h"
#include "uffd/compat.h"

/* The BPF side matches ioctl commands by number; make sure they are the uAPI's. */
_Static_assert(FL_UFFDIO_WAKE == UFFDIO_WAKE, "UFFDIO_WAKE");
_Static_assert(FL_UFFDIO_COPY == UFFDIO_COPY, "UFFDIO_COPY");
_Static_assert(FL_UFFDIO_ZEROPAGE == UFFDIO_ZEROPAGE, "UFFDIO_ZEROPAGE");
_Static_assert(FL_UFFDIO_MOVE == UFFDIO_MOVE, "UFFDIO_MOVE");
_Static_assert(FL_UFFDIO_WRITEPROTECT == UFFDIO_WRITEPROTECT, "UFFDIO_WRITEPROTECT");
_Static_assert(FL_UFFDIO_CONTINUE == UFFDIO_CONTINUE, "UFFDIO_CONTINUE");
_Static_assert(FL_UFFDIO_POISON == UFFDIO_POISON, "UFFDIO_POISON");
_Static_assert(FL_NR_IOCTL == SYS_ioctl, "SYS_ioctl");

#define TRACEFS		"/sys/kernel/tracing"
#define DEBUGFS_TRACING	"/sys/kernel/debug/tracing"

const char *fl_method_desc(enum fl_method m)
{
	switch (m) {
	case FL_METHOD_FENTRY:
		return "fentry";
	case FL_METHOD_TP_BTF:
		return "tracepoints (tp_btf)";
	case FL_METHOD_TP_CLASSIC:
		return "tracepoints (classic page fault tracepoints)";
	case FL_METHOD_TRACEPOINTS:
		return "tracepoints";
	default:
		return "auto";
	}
}

/* libbpf's printf-like callbacks; the attribute lets -Wformat=2 accept vfprintf. */
__attribute__((format(printf, 2, 0)))
static int print_all(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return vfprintf(stderr, fmt, args);
}

__attribute__((format(printf, 2, 0)))
static int print_warnings(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, args);
}

__attribute__((format(printf, 2, 0)))
static int print_nothing(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return 0;
}

int fl_kallsyms_range(const char *name, uint64_t *start, uint64_t *end)
{
	unsigned long long addr;
	char sym[256], type;
	bool found = false;
	int ret = -ENOENT;
	char line[512];
	FILE *f;

	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return -errno;
	/* Core kernel symbols are listed in address order: the function ends where the
	 * next symbol at a higher address starts. */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, sym) != 3)
			continue;
		if (!found) {
			if (strcmp(sym, name) || (type != 'T' && type != 't'))
				continue;
			if (!addr) {	/* kptr_restrict hides the addresses */
				ret = -EPERM;
				break;
			}
			*start = addr;
			found = true;
		} else if (addr > *start) {
			*end = addr;
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

int fl_ensure_tracefs(void)
{
	/* libbpf finds tracepoint ids under either path. */
	if (!access(TRACEFS "/events", F_OK) || !access(DEBUGFS_TRACING "/events", F_OK))
		return 0;
	if (mount("nodev", TRACEFS, "tracefs", 0, NULL))
		return -errno;
	return 0;
}

static void set_autoload(struct faultlat_bpf *skel, enum fl_method m)
{
	bool fentry = m == FL_METHOD_FENTRY;
	bool btf = m == FL_METHOD_TP_BTF;
	bool classic = m == FL_METHOD_TP_CLASSIC;

	bpf_program__set_autoload(skel->progs.uf_enter, fentry);
	bpf_program__set_autoload(skel->progs.uf_exit, fentry);
	bpf_program__set_autoload(skel->progs.fault_user_btf, btf);
	bpf_program__set_autoload(skel->progs.fault_kern_btf, btf);
	bpf_program__set_autoload(skel->progs.page_fault_user, classic);
	bpf_program__set_autoload(skel->progs.page_fault_kernel, classic);
	bpf_program__set_autoload(skel->progs.sched_waking, !fentry);
	bpf_program__set_autoload(skel->progs.sched_switch, !fentry);
	bpf_program__set_autoload(skel->progs.mmap_lock_released, !fentry);
}

static int try_method(const struct fl_config *cfg, enum fl_method m, struct faultlat_bpf **out)
{
	struct faultlat_bpf *skel;
	uint64_t start = 0, end = 0;
	int err;

	skel = faultlat_bpf__open();
	if (!skel)
		return -errno;
	skel->rodata->targ_tgid = cfg->tgid;
	skel->rodata->targ_tid = cfg->tid;
	skel->rodata->min_ns = cfg->min_ns;
	skel->rodata->hooks_only = cfg->hooks_only;
	/* Without handle_userfault's address the waits that have no fault address
	 * (get_user_pages) go unseen; the rest works. */
	if (m != FL_METHOD_FENTRY && !fl_kallsyms_range("handle_userfault", &start, &end)) {
		skel->rodata->uf_text_start = start;
		skel->rodata->uf_text_end = end;
	} else if (m != FL_METHOD_FENTRY && cfg->verbose) {
		fprintf(stderr, "handle_userfault not in /proc/kallsyms: get_user_pages waits are not seen\n");
	}
	set_autoload(skel, m);

	err = faultlat_bpf__load(skel);
	if (!err)
		err = faultlat_bpf__attach(skel);
	if (err) {
		err = err < 0 ? err : -errno;
		faultlat_bpf__destroy(skel);
		return err;
	}
	*out = skel;
	return 0;
}

/* A first choice the kernel may refuse: unless the user asked for this very method (or
 * -v), libbpf's complaints about it stay out of sight, as on kernels without trampolines
 * they are expected. */
static int try_preferred(const struct fl_config *cfg, enum fl_method m, const char *what,
			 struct faultlat_bpf **skel, enum fl_method *used)
{
	int err;

	libbpf_set_print(cfg->verbose ? print_all : cfg->method == m ? print_warnings : print_nothing);
	err = try_method(cfg, m, skel);
	if (!err)
		*used = m;
	else if (cfg->verbose && cfg->method != m)
		fprintf(stderr, "%s unavailable (%s), trying the next method\n", what, strerror(-err));
	return err;
}

int fl_load(const struct fl_config *cfg, struct faultlat_bpf **skel, enum fl_method *used)
{
	enum fl_method m = cfg->method;
	int err;

	if (m == FL_METHOD_AUTO || m == FL_METHOD_FENTRY) {
		err = try_preferred(cfg, FL_METHOD_FENTRY, "fentry/handle_userfault", skel, used);
		if (!err || m == FL_METHOD_FENTRY)
			return err;
	}
	if (m != FL_METHOD_TP_CLASSIC) {
		err = try_preferred(cfg, FL_METHOD_TP_BTF, "tp_btf page fault programs",
				    skel, used);
		if (!err || m == FL_METHOD_TP_BTF)
			return err;
	}

	/* Only the classic tracepoints need tracefs, for their ids. */
	libbpf_set_print(cfg->verbose ? print_all : print_warnings);
	err = fl_ensure_tracefs();
	if (err) {
		fprintf(stderr, "cannot mount tracefs on %s: %s\n", TRACEFS, strerror(-err));
		return err;
	}
	err = try_method(cfg, FL_METHOD_TP_CLASSIC, skel);
	if (!err)
		*used = FL_METHOD_TP_CLASSIC;
	return err;
}

void fl_unload(struct faultlat_bpf *skel)
{
	faultlat_bpf__destroy(skel);
}

static int read_hist(struct faultlat_bpf *skel, __u32 key, struct fl_hist *out)
{
	int ncpus = libbpf_num_possible_cpus();
	struct fl_hist *per_cpu;
	int err = 0;

	if (ncpus < 0)
		return ncpus;
	per_cpu = calloc((size_t)ncpus, sizeof(*per_cpu));
	if (!per_cpu)
		return -ENOMEM;
	if (bpf_map__lookup_elem(skel->maps.hists, &key, sizeof(key), per_cpu,
				 (size_t)ncpus * sizeof(*per_cpu), 0)) {
		err = -errno;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < ncpus; c++) {
		const struct fl_hist *h = &per_cpu[c];

		out->count += h->count;
		out->sum_ns += h->sum_ns;
		if (h->max_ns > out->max_ns)
			out->max_ns = h->max_ns;
		for (int i = 0; i < FL_LOG2_SLOTS; i++)
			out->log2_us[i] += h->log2_us[i];
		for (unsigned int i = 0; i < FL_FINE_SLOTS; i++)
			out->fine[i] += h->fine[i];
	}
out:
	free(per_cpu);
	return err;
}

int fl_read_hist(struct faultlat_bpf *skel, enum fl_page_size ps, struct fl_hist *out)
{
	return read_hist(skel, ps, out);
}

int fl_read_hist_woken(struct faultlat_bpf *skel, enum fl_page_size ps, struct fl_hist *out)
{
	return read_hist(skel, FL_WOKEN + ps, out);
}

int fl_reset_hists(struct faultlat_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus();
	struct fl_hist *zero;
	int err = 0;

	if (ncpus < 0)
		return ncpus;
	zero = calloc((size_t)ncpus, sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	for (__u32 key = 0; key < FL_NR_HISTS && !err; key++)
		if (bpf_map__update_elem(skel->maps.hists, &key, sizeof(key), zero,
					 (size_t)ncpus * sizeof(*zero), 0))
			err = -errno;
	free(zero);
	return err;
}
