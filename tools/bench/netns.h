/* The shaped-network test bed of migbench (docs/benchmarks.md, "The netns bed"): two
 * network namespaces, mig-src-<pid> and mig-dst-<pid>, joined by a veth pair whose ends
 * are created inside them (nothing ever appears in the host's namespace), with the
 * link-local addresses 169.254.77.1/30 and .2/30, loopback up in each, and each end's
 * egress shaped by tbf (this kernel has no netem) at BENCH_NET_RATE unless the scenario
 * asks for another rate. Processes go in with
 * `ip netns exec NS ...`. tests/integration/netbed.py is the same bed in Python: keep
 * the two in step.
 *
 * Every ip(8) and tc(8) command runs with a bounded wait and is killed if it hangs. The
 * namespaces are ours to delete on every exit path; a bed whose owner was SIGKILLed is
 * left behind, so bench_net_new() first deletes every mig-*-<pid> namespace whose pid is
 * gone. */
#pragma once
#include <glib.h>

#define BENCH_NET_RATE "1gbit"
#define BENCH_NET_RATE_BPS 1e9   /* BENCH_NET_RATE in bits per second */
#define BENCH_NET_SHAPING "tbf rate " BENCH_NET_RATE " burst 256kb latency 20ms"

typedef enum { BENCH_NET_SRC, BENCH_NET_DST } BenchNetSide;

typedef struct BenchNet {
	char *ip;           /* path of ip(8) */
	char *ns[2];        /* by BenchNetSide: "mig-src-<pid>", "mig-dst-<pid>" */
	char *dev[2];       /* the veth end inside each: "mig-src", "mig-dst" */
	char *addr[2];      /* "169.254.77.1", "169.254.77.2" */
	char *rate;         /* tbf's rate on each end, in tc(8)'s words */
	gboolean made[2];   /* namespaces we created, so must delete */
} BenchNet;

/* Deletes the namespaces named mig-WORD-PID whose PID no longer exists. Returns how many
 * it deleted; failures to delete one are reported on stderr and skipped. */
guint bench_net_reap_stale(void);

/* Reaps stale beds, then builds ours, each end shaped at rate (tc(8)'s syntax, e.g.
 * "2147483648bit"; NULL: BENCH_NET_RATE). NULL with err set if ip/tc are missing or a
 * command fails (whatever was built is deleted again). */
BenchNet *bench_net_new(const char *rate, GError **err);

/* Deletes the namespaces (the veth pair goes with them) and frees. Kill the processes
 * inside first: a namespace lives on while a process is in it. NULL is fine. */
void bench_net_free(BenchNet *n);

/* A new NULL-terminated argv that runs argv inside the side's namespace:
 * { ip, "netns", "exec", NS, argv... }. Free the array with g_free; the strings are
 * borrowed from n and argv. */
const char **bench_net_wrap(const BenchNet *n, BenchNetSide side, const char *const *argv);

/* Cuts the link (FALSE) or mends it (TRUE): the veth end in the source's namespace goes
 * down or up (postcopy-recovery). */
gboolean bench_net_set_link(BenchNet *n, gboolean up, GError **err);
