// SPDX-License-Identifier: (MIT OR GPL-2.0)
#include "bpf/faultstages-loader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/faultstages.skel.h"

#define PROVIDER "mig"

struct fs_tracer {
	struct faultstages_bpf *skel;
	struct ring_buffer *rb;
	fs_record_fn fn;
	void *ctx;
};

const char *fs_method_desc(void)
{
	return "usdt (libbpf bpf_program__attach_usdt: uprobes at the mig:* probe sites)";
}

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

/* The executable of pid, by a path that /proc/pid/maps also shows: libbpf looks the
 * binary up there to find where a PIE is loaded. A binary replaced since it started
 * ("... (deleted)") is reached through /proc/pid/exe instead. */
static void exe_path(pid_t pid, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, buf, len - 1);
	if (n <= 0 || (size_t)n >= len - 1 || strstr(buf, " (deleted)")) {
		snprintf(buf, len, "%s", link);
		return;
	}
	buf[n] = '\0';
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct fs_tracer *t = ctx;

	if (size >= sizeof(struct fs_record))
		t->fn(t->ctx, data);
	return 0;
}

int fs_open(const struct fs_config *cfg, fs_record_fn fn, void *ctx, struct fs_tracer **out,
	    char *why, size_t why_len)
{
	char src_exe[PATH_MAX], dst_exe[PATH_MAX];
	struct fs_tracer *t;
	int err;

	if (why && why_len)
		why[0] = '\0';
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fn = fn;
	t->ctx = ctx;
	libbpf_set_print(cfg->verbose ? print_all : print_warnings);
	t->skel = faultstages_bpf__open_and_load();
	if (!t->skel) {
		err = -errno;
		if (why)
			snprintf(why, why_len, "loading the BPF programs: %s", strerror(-err));
		goto fail;
	}

	exe_path(cfg->src, src_exe, sizeof(src_exe));
	exe_path(cfg->dst, dst_exe, sizeof(dst_exe));
	{
		/* One program per stage, in the process that fires it. */
		struct {
			struct bpf_program *prog;
			struct bpf_link **link;
		} at[FS_NR_STAGES] = {
			[FS_FAULT_READ] = { t->skel->progs.fault_read, &t->skel->links.fault_read },
			[FS_REQUEST_SENT] = { t->skel->progs.request_sent, &t->skel->links.request_sent },
			[FS_REQUEST_RECEIVED] = { t->skel->progs.request_received,
						  &t->skel->links.request_received },
			[FS_PAGE_QUEUED] = { t->skel->progs.page_queued, &t->skel->links.page_queued },
			[FS_PAGE_SENT] = { t->skel->progs.page_sent, &t->skel->links.page_sent },
			[FS_PAGE_RECEIVED] = { t->skel->progs.page_received,
					       &t->skel->links.page_received },
			[FS_PAGE_PLACED] = { t->skel->progs.page_placed, &t->skel->links.page_placed },
		};

		for (int s = 0; s < FS_NR_STAGES; s++) {
			bool on_src = fs_stage_on_source(s);
			pid_t pid = on_src ? cfg->src : cfg->dst;

			*at[s].link = bpf_program__attach_usdt(at[s].prog, pid, on_src ? src_exe : dst_exe,
							       PROVIDER, fs_stage_name(s), NULL);
			if (!*at[s].link) {
				err = -errno;
				if (why)
					snprintf(why, why_len, "USDT probe %s:%s in %s (pid %d): %s%s",
						 PROVIDER, fs_stage_name(s), on_src ? src_exe : dst_exe,
						 (int)pid, strerror(-err),
						 err == -ENOENT ? " (is it a migd built with sys/sdt.h?)" : "");
				goto fail;
			}
		}
	}

	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.done), on_record, t, NULL);
	if (!t->rb) {
		err = -errno;
		if (why)
			snprintf(why, why_len, "ring buffer: %s", strerror(-err));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	fs_close(t);
	return err;
}

void fs_close(struct fs_tracer *t)
{
	if (!t)
		return;
	ring_buffer__free(t->rb);
	faultstages_bpf__destroy(t->skel);
	free(t);
}

int fs_epoll_fd(struct fs_tracer *t)
{
	return ring_buffer__epoll_fd(t->rb);
}

int fs_consume(struct fs_tracer *t)
{
	return ring_buffer__consume(t->rb);
}

void fs_read_counters(struct fs_tracer *t, uint64_t out[FS_NR_COUNTERS])
{
	/* Plain loads of the mmapped .bss: each counter is a naturally aligned word. */
	for (int i = 0; i < FS_NR_COUNTERS; i++)
		out[i] = __atomic_load_n(&t->skel->bss->counters[i], __ATOMIC_RELAXED);
}

void fs_stop(struct fs_tracer *t)
{
	/* The programs check this first; detaching waits for fs_close(), because
	 * unregistering a uprobe takes about 0.1 s per probe site. */
	__atomic_store_n(&t->skel->bss->stopped, 1, __ATOMIC_SEQ_CST);
}

int fs_for_each_open(struct fs_tracer *t, fs_record_fn fn, void *ctx)
{
	int fd = bpf_map__fd(t->skel->maps.chains), n = 0;
	uint32_t bound = bpf_map__max_entries(t->skel->maps.chains);
	struct fs_key key, next;
	struct fs_record r;
	void *prev = NULL;

	/* After fs_stop() nothing changes the map (but a program already past its check
	 * on another CPU); the bound is for the careless. */
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		if (!bpf_map_lookup_elem(fd, &next, &r)) {
			fn(ctx, &r);
			n++;
		}
		key = next;
		prev = &key;
		if (!bound--)
			return n;
	}
	return errno == ENOENT ? n : -errno;
}
