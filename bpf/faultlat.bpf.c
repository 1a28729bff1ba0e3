// SPDX-License-Identifier: (MIT OR GPL-2.0)
/* faultlat: how long the threads of one process wait on userfaultfd.
 *
 * Two ways in; the loader takes the first that loads and attaches.
 *
 * fentry: handle_userfault() entry to exit. Simple, but needs BPF trampolines.
 *
 * tracepoints, per thread of the target (the page fault ones attach as BTF
 * raw tracepoints, tp_btf, else as classic ones: same logic, two entry points):
 *  - start: a page fault (exceptions:page_fault_user, or _kernel on a user address)
 *    records time and address;
 *  - the wait is a userfaultfd one only if a uffd ioctl (UFFDIO_COPY, ZEROPAGE,
 *    CONTINUE, WAKE, ...) wakes the thread (sched_waking runs in the waker's context,
 *    whose saved syscall registers say it is inside that ioctl, and whose argument
 *    gives the range) and the ioctl's range covers the fault address. Only that path
 *    wakes userfaultfd waiters: a fault that sleeps on I/O or a lock and is woken by
 *    anyone else is never counted;
 *  - end: the thread's return to running, its first switch-in after the wakeup (or
 *    the wakeup itself if it was still running), as handle_userfault() returns; if
 *    no switch-in is reported, the retry dropping mmap_lock (in its own context);
 *  - a page placed before its thread got to sleep leaves nothing to wake: a
 *    not-present (or write-protect) fault in a uffd-registered VMA that is retried,
 *    still in the same exception, without having slept, counts when the retry drops
 *    mmap_lock (handle_userfault() returns VM_FAULT_RETRY either way);
 *  - waits with no fault address (get_user_pages() from a syscall or from KVM) are
 *    recognised by handle_userfault() on the sleeping thread's kernel stack when the
 *    uffd ioctl wakes it, and start when the thread went to sleep.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "faultlat.h"

#define TASK_INTERRUPTIBLE	0x1
#define TASK_UNINTERRUPTIBLE	0x2
#define VM_HUGETLB		0x00400000
#define VM_UFFD_WP		0x00001000
#define FL_PF_PROT		0x1	/* x86 page fault error code: page was present */
#define FL_PF_WRITE		0x2
#define PAGE_SHIFT		12
#define EBUSY			16
#define FL_TS_COMPAT		0x0002	/* x86 thread_info.status: in a 32-bit syscall */

const volatile pid_t targ_tgid = 0;
const volatile pid_t targ_tid = 0;	/* 0: every thread */
const volatile __u64 min_ns = 0;
/* handle_userfault()'s text, from kallsyms; 0/0 turns the no-address path off. */
const volatile __u64 uf_text_start = 0;
const volatile __u64 uf_text_end = 0;
/* Every program returns at once (records nothing): what the hooks alone cost, for
 * overhead measurements. Read-only after load, so the verifier drops the test. */
const volatile bool hooks_only = false;

struct vma_info {
	__u64 start;
	__u64 end;
	__u32 shift;		/* 0 if unknown */
	__u32 uffd;		/* registered with a userfaultfd: FL_VMA_UFFD, | VM_UFFD_WP */
};

#define FL_VMA_UFFD	0x1

struct thread_state {
	__u64 fault_ts;		/* page fault entry; 0 when no fault is open */
	__u64 fault_addr;
	__u64 block_ts;		/* last blocking switch-out; 0 once seen running */
	__u64 wait_start;	/* a uffd ioctl woke us: the wait began here; else 0 */
	__u64 wake_ts;		/* when that ioctl woke us */
	__u32 woke_running;	/* that ioctl found us running: the wait ended at wake_ts,
				 * unless schedule() takes us off the runqueue after all */
	__u32 slept;		/* blocked since fault_ts: a fault record this old may
				 * be stale, so it needs a wakeup to count */
	__u32 fault_shift;	/* page shift of fault_addr's VMA, 0 if unknown */
	__u32 wait_shift;
	/* The fault might be a userfaultfd one (see uffd_fault()), and the kernel entry
	 * it came in with (saved ip and orig_ax), to tell its retry from anything the
	 * thread does later under mmap_lock. */
	__u32 fault_uffd;
	/* bpf_find_vma() took mmap_lock: its unlock, left to an irq_work when irqs are off
	 * (as in the page fault tracepoints), is this thread's next release. */
	__u32 unlock_deferred;
	__u64 fault_ip;
	__u64 fault_orig_ax;
	/* The VMA this thread last faulted in: bpf_find_vma() costs microseconds
	 * (its unlock is deferred to an irq_work), too much to pay on every fault. */
	struct vma_info vma;
};

struct uffd_range {
	__u64 start;
	__u64 len;
};

/* Per-thread state lives in task-local storage, not a hash map: the lookup is a pointer
 * walk from the task instead of a hash and a bucket lock, it is paid on every event of
 * a traced fault, and the kernel frees it with the thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_NR_HISTS);
	__type(key, __u32);
	__type(value, struct fl_hist);
} hists SEC(".maps");

struct stack_buf {
	__u64 ip[FL_STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_buf);
} stacks SEC(".maps");

static __always_inline bool wanted(pid_t tgid, pid_t tid)
{
	return tgid == targ_tgid && (!targ_tid || tid == targ_tid);
}

/* base: 0, or FL_WOKEN for the histograms that end at the wakeup */
static void record_in(__u32 base, __u64 ns, __u32 shift)
{
	__u32 key = base + fl_page_size_of(shift);
	struct fl_hist *h;
	__u64 slot;

	if (ns < min_ns)
		return;
	h = bpf_map_lookup_elem(&hists, &key);
	if (!h)
		return;
	/* Per-CPU copies: plain increments, userspace adds the CPUs up. */
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	/* barrier_var: keep clang from bounds-checking one copy of the index and
	 * indexing with another, which the verifier cannot follow. */
	slot = fl_log2_slot(ns);
	barrier_var(slot);
	if (slot < FL_LOG2_SLOTS)
		h->log2_us[slot]++;
	slot = fl_fine_slot(ns);
	barrier_var(slot);
	if (slot < FL_FINE_SLOTS)
		h->fine[slot]++;
}

static void record(__u64 ns, __u32 shift)
{
	record_in(0, ns, shift);
}

/* A hugetlb VMA's page size lives in its hugetlbfs superblock's hstate. */
static __u32 vma_page_shift(struct vm_area_struct *vma)
{
	struct hugetlbfs_sb_info *sbi;

	if (!(BPF_CORE_READ(vma, vm_flags) & VM_HUGETLB))
		return PAGE_SHIFT;
	sbi = BPF_CORE_READ(vma, vm_file, f_inode, i_sb, s_fs_info);
	return sbi ? PAGE_SHIFT + BPF_CORE_READ(sbi, hstate, order) : 0;
}

static long find_vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_info *vi = data;

	vi->start = BPF_CORE_READ(vma, vm_start);
	vi->end = BPF_CORE_READ(vma, vm_end);
	vi->shift = vma_page_shift(vma);
	vi->uffd = 0;
	if (bpf_core_field_exists(vma->vm_userfaultfd_ctx) &&
	    BPF_CORE_READ(vma, vm_userfaultfd_ctx.ctx))
		vi->uffd = FL_VMA_UFFD | (BPF_CORE_READ(vma, vm_flags) & VM_UFFD_WP);
	return 0;
}

/* The VMA at addr, cached or looked up; all zero if unknown. */
static const struct vma_info *fault_vma(struct thread_state *ts, __u64 addr)
{
	struct vma_info vi = {};

	if (addr - ts->vma.start < ts->vma.end - ts->vma.start)
		return &ts->vma;
	/* Set first: with irqs on, the unlock happens before the helper returns. */
	ts->unlock_deferred = 1;
	/* Fails (-EBUSY) when mmap_lock is taken: the ioctl's range decides then. */
	if (bpf_find_vma(bpf_get_current_task_btf(), addr, find_vma_cb, &vi, 0) == -EBUSY)
		ts->unlock_deferred = 0;
	ts->vma = vi;
	return &ts->vma;
}

/* Could handle_userfault() take this fault? A missing or minor fault is not-present; a
 * write-protect one is a write to a present page of a VMA registered for it. */
static __u32 uffd_fault(const struct vma_info *vi, __u64 err)
{
	if (!(vi->uffd & FL_VMA_UFFD))
		return 0;
	if (!(err & FL_PF_PROT))
		return 1;
	return (err & FL_PF_WRITE) && (vi->uffd & VM_UFFD_WP);
}

/* Without a VMA (mmap_lock contended, or a GUP wait) the ioctl's alignment is the best
 * guess: UFFDIO_COPY on hugetlb must cover whole, aligned huge pages. */
static __u32 range_page_shift(const struct uffd_range *r)
{
	if (!((r->start | r->len) & ((1ULL << 30) - 1)))
		return 30;
	if (!((r->start | r->len) & ((1ULL << 21) - 1)))
		return 21;
	return PAGE_SHIFT;
}

/* A cached VMA can be stale (unmapped and mapped again differently); a huge page
 * size the resolving range is not aligned to is certainly wrong. */
static __u32 resolved_page_shift(__u32 shift, const struct uffd_range *r)
{
	if (!shift || (shift > PAGE_SHIFT && ((r->start | r->len) & ((1ULL << shift) - 1))))
		return range_page_shift(r);
	return shift;
}

static struct thread_state *thread_get(struct task_struct *t)
{
	return bpf_task_storage_get(&threads, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

static struct thread_state *thread_find(struct task_struct *t)
{
	return bpf_task_storage_get(&threads, t, 0, 0);
}

/* ---- tracepoint method ---- */

static void finish_wait(struct thread_state *ts, __u64 end)
{
	record(end - ts->wait_start, ts->wait_shift);
	if (ts->wake_ts >= ts->wait_start && ts->wake_ts <= end)
		record_in(FL_WOKEN, ts->wake_ts - ts->wait_start, ts->wait_shift);
	ts->wait_start = 0;
	ts->woke_running = 0;
	ts->fault_ts = 0;
}

static int on_fault(__u64 addr, __u64 err)
{
	__u64 id = bpf_get_current_pid_tgid(), now;
	const struct vma_info *vi;
	struct thread_state *ts;
	struct pt_regs *regs;

	/* every page fault on the machine comes here: filter before anything else */
	if (!wanted(id >> 32, (__u32)id))
		return 0;
	ts = thread_get(bpf_get_current_task_btf());
	if (!ts)
		return 0;
	now = bpf_ktime_get_ns();
	/* A wait whose end was never seen (no switch-in reported, no retry under
	 * mmap_lock): the thread ran again somewhere between its wakeup and now; the
	 * wakeup is the closer bound when the switch-in raced with it. */
	if (ts->wait_start)
		finish_wait(ts, ts->wake_ts);
	ts->block_ts = 0;
	ts->slept = 0;
	ts->fault_ts = now;
	ts->fault_addr = addr;
	/* From the faulting thread, before it takes mmap_lock: later we would be in
	 * someone else's context. */
	vi = fault_vma(ts, addr);
	ts->fault_shift = vi->shift;
	ts->fault_uffd = uffd_fault(vi, err);
	/* The registers saved on entry to the kernel: a user fault's own, or those of the
	 * system call a kernel-mode fault happened in (x86 orig_ax: the system call
	 * number, or -1 for an exception). */
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	ts->fault_ip = regs->ip;
	ts->fault_orig_ax = regs->orig_ax;
	return 0;
}

/* A kernel address: no userfaultfd there. */
static __always_inline bool kernel_addr(unsigned long addr)
{
	return addr >> 63;
}

/* The BTF raw tracepoints get the tracepoint's arguments as they are: no perf record is
 * filled before the program runs, on any page fault of the machine. */
SEC("tp_btf/page_fault_user")
int BPF_PROG(fault_user_btf, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	if (hooks_only)
		return 0;
	return on_fault(address, error_code);
}

/* copy_{to,from}_user() on registered memory faults in kernel mode. */
SEC("tp_btf/page_fault_kernel")
int BPF_PROG(fault_kern_btf, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	if (hooks_only)
		return 0;
	if (kernel_addr(address))
		return 0;
	return on_fault(address, error_code);
}

/* The classic fallback. exceptions:* are not in vmlinux BTF as a struct; their layout
 * is stable ABI. */
struct fl_fault_args {
	__u64 common;
	unsigned long address;
	unsigned long ip;
	unsigned long error_code;
};

SEC("tracepoint/exceptions/page_fault_user")
int page_fault_user(struct fl_fault_args *ctx)
{
	if (hooks_only)
		return 0;
	return on_fault(ctx->address, ctx->error_code);
}

SEC("tracepoint/exceptions/page_fault_kernel")
int page_fault_kernel(struct fl_fault_args *ctx)
{
	if (hooks_only)
		return 0;
	if (kernel_addr(ctx->address))
		return 0;
	return on_fault(ctx->address, ctx->error_code);
}

/* The range a uffd ioctl works on, from its argument in user memory. */
static bool uffd_ioctl_range(__u32 cmd, const void *arg, struct uffd_range *r)
{
	__u64 dst_len[3];
	long err;

	switch (cmd) {
	case FL_UFFDIO_COPY:
	case FL_UFFDIO_MOVE:
		err = bpf_probe_read_user(dst_len, sizeof(dst_len), arg);
		r->start = dst_len[0];
		r->len = dst_len[2];
		break;
	case FL_UFFDIO_WAKE:
	case FL_UFFDIO_ZEROPAGE:
	case FL_UFFDIO_CONTINUE:
	case FL_UFFDIO_WRITEPROTECT:
	case FL_UFFDIO_POISON:
		err = bpf_probe_read_user(r, sizeof(*r), arg);
		break;
	default:
		return false;
	}
	return !err && r->len;
}

/* A 32-bit task's system call numbers are another table (16 is lchown there). */
static __always_inline bool in_compat_syscall(void)
{
	struct task_struct *t = bpf_get_current_task_btf();

	if (!bpf_core_field_exists(t->thread_info.status))
		return false;
	return t->thread_info.status & FL_TS_COMPAT;
}

/* Is the current task inside a uffd ioctl, and on which range? x86 keeps the system
 * call number in orig_ax, and the arguments in their registers, until the return to
 * user mode; the argument was just copied in by the ioctl, so it is resident. Reading
 * it here, when a wakeup needs it, spares a sys_enter program, which would put every
 * system call of the machine on the slow path. */
static bool current_uffd_ioctl(struct uffd_range *r)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	if (regs->orig_ax != FL_NR_IOCTL || in_compat_syscall())
		return false;
	return uffd_ioctl_range((__u32)PT_REGS_PARM2_SYSCALL(regs),
				(const void *)PT_REGS_PARM3_SYSCALL(regs), r);
}

static bool in_handle_userfault(struct task_struct *p)
{
	struct stack_buf *buf;
	__u32 zero = 0;
	long n;

	buf = bpf_map_lookup_elem(&stacks, &zero);
	if (!buf)
		return false;
	n = bpf_get_task_stack(p, buf->ip, sizeof(buf->ip), 0);
	for (int i = 0; i < FL_STACK_DEPTH; i++) {
		if (i * (long)sizeof(__u64) >= n)
			break;
		if (buf->ip[i] >= uf_text_start && buf->ip[i] < uf_text_end)
			return true;
	}
	return false;
}

/* Runs in the waker's context. A wakeup from inside a uffd ioctl is how a userfaultfd
 * wait ends; the range check ties it to this thread's fault. */
SEC("tp_btf/sched_waking")
int BPF_PROG(sched_waking, struct task_struct *p)
{
	struct uffd_range r;
	struct thread_state *ts;

	if (hooks_only)
		return 0;
	if (!wanted(p->tgid, p->pid) || !current_uffd_ioctl(&r))
		return 0;
	ts = thread_find(p);
	if (!ts || ts->wait_start)
		return 0;
	if (ts->fault_ts && ts->fault_addr - r.start < r.len) {
		__u32 shift = resolved_page_shift(ts->fault_shift, &r);

		ts->wait_start = ts->fault_ts;
		ts->wait_shift = shift;
		ts->wake_ts = bpf_ktime_get_ns();
		/* Still running (resolved between queueing and schedule()): it never
		 * stops, and the wait ended now; that is settled at its next event.
		 * Otherwise it ends at its switch-in. on_cpu alone is not enough: a
		 * thread that schedule() has already taken off the runqueue stays on_cpu
		 * until the switch away is done, and is switched in again only later.
		 * Nor is this read final: schedule() can still dequeue the thread before
		 * this wakeup takes the runqueue lock, and then it blocks (note_block()).
		 * (A preempted thread being switched back in gets on_cpu just after the
		 * switch-in tracepoint; a wakeup in between ends at the retry.) */
		ts->woke_running = p->on_cpu && p->on_rq;
		return 0;
	}
	/* No fault address: a get_user_pages() wait, if the stack says so. Its
	 * start is when the thread went to sleep. */
	if (ts->block_ts && uf_text_end && in_handle_userfault(p)) {
		ts->wait_start = ts->block_ts;
		ts->wait_shift = range_page_shift(&r);
		ts->wake_ts = bpf_ktime_get_ns();
		ts->woke_running = 0;
	}
	return 0;
}

static void note_block(struct task_struct *t)
{
	struct thread_state *ts;

	/* GUP waits need the block time of threads that have no fault open. */
	ts = uf_text_end ? thread_get(t) : thread_find(t);
	if (!ts)
		return;
	ts->block_ts = bpf_ktime_get_ns();
	if (ts->fault_ts)
		ts->slept = 1;
	/* Woken while running, but it blocks after all: it waits for its switch-in. */
	ts->woke_running = 0;
}

static void note_run(struct task_struct *t)
{
	struct thread_state *ts = thread_find(t);

	if (!ts)
		return;
	/* Back on a CPU after the wakeup: the wait is over (or was at the wakeup, if
	 * it came while the thread ran and this is the end of a preemption). */
	if (ts->wait_start)
		finish_wait(ts, ts->woke_running ? ts->wake_ts : bpf_ktime_get_ns());
	ts->block_ts = 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	bool out, in;

	if (hooks_only)
		return 0;
	/* Both filters read task fields only: the common case (another process) costs
	 * no map access. */
	out = !preempt && (prev_state & (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE)) &&
	      wanted(prev->tgid, prev->pid);
	in = wanted(next->tgid, next->pid);
	if (out)
		note_block(prev);
	if (in)
		note_run(next);
	return 0;
}

/* The fault path and GUP alike retry a fault a userfaultfd wait ended under mmap_lock
 * and drop it when done: the last thing the thread does before going on. */
SEC("tp_btf/mmap_lock_released")
int BPF_PROG(mmap_lock_released, struct mm_struct *mm, bool write)
{
	struct task_struct *t;
	struct thread_state *ts;
	struct pt_regs *regs;
	__u64 id, now;

	if (hooks_only)
		return 0;
	id = bpf_get_current_pid_tgid();
	if (!wanted(id >> 32, (__u32)id))
		return 0;
	t = bpf_get_current_task_btf();
	ts = thread_find(t);
	if (!ts)
		return 0;
	if (ts->unlock_deferred) {
		ts->unlock_deferred = 0;
		return 0;
	}
	/* handle_userfault() drops the lock after it has queued the fault and set the
	 * thread's state, before it sleeps: that is not the end. */
	if (t->__state)
		return 0;
	/* Woken but no switch-in reported (tracing misses some): the retry under
	 * mmap_lock is the first sign of it running again. Woken while running, it
	 * never stopped: the wakeup was the end. */
	if (ts->wait_start) {
		finish_wait(ts, ts->woke_running ? ts->wake_ts : bpf_ktime_get_ns());
		return 0;
	}
	if (!ts->fault_ts)
		return 0;
	/* Never slept and no wakeup: the page was placed between the fault and
	 * handle_userfault()'s last look. If this is still the same exception and it could
	 * be a uffd fault, the release is its retry's: a VM_FAULT_RETRY that any other cause
	 * would have (a contended VMA lock, an anon_vma to prepare) needs a registered VMA
	 * to be taken for one. */
	if (ts->slept || !ts->fault_uffd)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	if (regs->ip != ts->fault_ip || regs->orig_ax != ts->fault_orig_ax)
		return 0;
	/* never slept, so never woken: both windows end here */
	now = bpf_ktime_get_ns();
	record(now - ts->fault_ts, ts->fault_shift ? ts->fault_shift : PAGE_SHIFT);
	record_in(FL_WOKEN, now - ts->fault_ts, ts->fault_shift ? ts->fault_shift : PAGE_SHIFT);
	ts->fault_ts = 0;
	return 0;
}

/* ---- fentry method ---- */

SEC("fentry/handle_userfault")
int BPF_PROG(uf_enter, struct vm_fault *vmf, unsigned long reason)
{
	struct thread_state *ts;
	__u64 id;

	if (hooks_only)
		return 0;
	id = bpf_get_current_pid_tgid();
	if (!wanted(id >> 32, (__u32)id))
		return 0;
	/* KVM's async page fault asks first with RETRY_NOWAIT: that call never sleeps,
	 * the wait (if any) happens later in a worker. */
	if (BPF_CORE_READ(vmf, flags) & FAULT_FLAG_RETRY_NOWAIT)
		return 0;
	ts = thread_get(bpf_get_current_task_btf());
	if (!ts)
		return 0;
	ts->fault_ts = bpf_ktime_get_ns();
	ts->fault_addr = BPF_CORE_READ(vmf, address);
	ts->fault_shift = vma_page_shift(BPF_CORE_READ(vmf, vma));
	return 0;
}

SEC("fexit/handle_userfault")
int BPF_PROG(uf_exit, struct vm_fault *vmf, unsigned long reason, vm_fault_t ret)
{
	struct thread_state *ts;

	if (hooks_only)
		return 0;
	ts = thread_find(bpf_get_current_task_btf());
	if (!ts || !ts->fault_ts)
		return 0;
	/* VM_FAULT_RETRY: the fault was queued to the handler (SIGBUS otherwise). */
	if (ret & VM_FAULT_RETRY)
		record(bpf_ktime_get_ns() - ts->fault_ts, ts->fault_shift);
	ts->fault_ts = 0;
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
