// SPDX-License-Identifier: GPL-2.0
/*
 * smi_bench: SMI latency and rate of ich9smi against the ways a VMM raises
 * SMIs without it, side by side in one run, in the same guest.
 *
 * The guest is the edk2 pattern: a writer vCPU triggers an SMI; the handler
 * of every vCPU that enters records its entry TSC, checks in, and waits for
 * every vCPU expected (edk2's traditional rendezvous), then RSMs. Per SMI,
 * from the guest TSC: the trigger to the writer in SMM, to the last vCPU
 * in, and to the writer back out after RSM.
 *
 * Paths:
 *   ich9smi      OUT 0xB2 served in kernel, BROADCAST negotiated
 *   ich9smi-uc   the same, unicast (one vCPU only)
 *   qemu         OUT 0xB2 exits; the VMM marks every vCPU and kicks its
 *                thread, which leaves KVM_RUN, issues KVM_SMI, re-enters
 *   msi          OUT 0xB2 exits; one KVM_SIGNAL_MSI, SMI to all vCPUs
 *   floor        no port: the guest's own x2APIC ICR write (WRMSR), SMI
 *                to all including self, handled in kernel
 *   floor-mmio   the same through the xAPIC's MMIO ICR, which KVM decodes
 *   edk2-ap      ich9smi unicast, the writer is vCPU 1, and its handler
 *                pulls the others in with an SMI IPI (no broadcast)
 *
 * Every run checks that every expected vCPU entered SMM for every SMI and
 * exits non-zero if not.
 *
 * -T repeats the whole measurement. The report opens with a summary per
 * vCPU count: each path's round trip as a multiple of ich9smi's, pooled
 * over the passes, with a 95% interval, and the ratio of each pass. The
 * interval combines the distribution-free intervals of both medians (the
 * order statistics around n/2), so it is conservative; one that contains
 * 1.00, as printed (two decimals), is reported as no difference.
 *
 * Besides the clock, the work each path does per SMI is counted exactly
 * over a run of back-to-back SMIs: the VMM's own count of exits to
 * userspace, ioctls and signals, and, from tracepoints of this (L1)
 * kernel, exits to userspace, context switches of the VMM's threads, IPIs
 * sent, and guest exits by reason. -A asserts the defining counts:
 * ich9smi takes no exit to userspace per SMI, QEMU's path at least one
 * per vCPU.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest.h"
#include "ich9smi_util.h"
#include "vm.h"

#define KICK_SIGNAL		SIGUSR1
#define MSI_ADDR_BROADCAST	(0xfee00000u | 0xffu << 12)
#define MSI_DATA_DM_SMI		(2u << 8)

enum trigger { TRIG_IN_KERNEL, TRIG_QEMU, TRIG_MSI };

struct path {
	const char *name;
	enum trigger trigger;
	bool device;		/* attach ich9smi */
	u64 features;		/* negotiated on the device */
	u32 mode;		/* BENCH_MODE_* */
	unsigned int writer;
	bool ipi;		/* the writer's handler IPIs the others */
	unsigned int min_vcpus, max_vcpus;
};

static const struct path paths[] = {
	{ "ich9smi", TRIG_IN_KERNEL, true, ICH9SMI_F_BROADCAST,
	  BENCH_MODE_APM, 0, false, 1, GUEST_MAX_VCPUS },
	{ "ich9smi-uc", TRIG_IN_KERNEL, true, 0, BENCH_MODE_APM, 0, false,
	  1, 1 },
	{ "qemu", TRIG_QEMU, false, 0, BENCH_MODE_APM, 0, false, 1,
	  GUEST_MAX_VCPUS },
	{ "msi", TRIG_MSI, false, 0, BENCH_MODE_APM, 0, false, 1,
	  GUEST_MAX_VCPUS },
	{ "floor", TRIG_IN_KERNEL, false, 0, BENCH_MODE_X2APIC, 0, false, 1,
	  GUEST_MAX_VCPUS },
	{ "floor-mmio", TRIG_IN_KERNEL, false, 0, BENCH_MODE_ICR, 0, false, 1,
	  GUEST_MAX_VCPUS },
	{ "edk2-ap", TRIG_IN_KERNEL, true, 0, BENCH_MODE_APM, 1, true, 2,
	  GUEST_MAX_VCPUS },
};

#define NR_PATHS	ARRAY_SIZE(paths)

/* Measures per SMI, in TSC ticks. */
enum { M_WRITER, M_LAST, M_BACK, NR_MEASURES };
static const char *const measure_names[] = { "writer", "last", "back" };

/* Work counted per SMI; the first three by the VMM, the rest traced. */
enum {
	W_EXITS, W_IOCTLS, W_SIGNALS,
	W_TP_EXITS, W_SWITCHES, W_IPI_SENDS, W_GUEST_EXITS,
	NR_WORK
};

static const char *const work_names[] = {
	"user_exits", "ioctls", "signals",
	"tp_user_exits", "switches", "ipi_sends", "guest_exits",
};

#define MAX_REASONS	8

struct work {
	double per_smi[NR_WORK];	/* < 0: not available here */
	struct {
		char name[24];
		double per_smi;
	} reasons[MAX_REASONS];
	unsigned int nr_reasons;
};

struct result {
	struct work work;
	const struct path *path;
	unsigned int nr_vcpus;
	double usec[NR_MEASURES][3];	/* median, p90, p99 */
	double smis_per_sec;
	u64 tsc_khz;
	u64 *back;			/* round trips, ticks, sorted */
	unsigned int nr_back;
};

/* A pooled ratio to ich9smi: median ratio and its 95% interval. */
struct interval {
	double ratio, lo, hi;
};

struct options {
	unsigned int vcpus[16], nr_vcpu_counts;
	unsigned int scale[8], nr_scale;
	unsigned int reps, warmup, loops, scale_reps, count_smis, passes;
	bool assert_counts;
	const char *csv, *json;
	const char *only;	/* -p: comma-separated path names */
};

/* Whether -p (if given) names the path. */
static bool path_selected(const struct options *o, const char *name)
{
	size_t len = strlen(name);
	const char *s = o->only;

	if (!s)
		return true;
	for (; s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
		if (!strncmp(s, name, len) && (s[len] == ',' || !s[len]))
			return true;
	return false;
}

/* A vCPU other than the writer, run by its own thread. */
struct ap {
	struct bench *bench;
	struct vcpu *vcpu;
	pthread_t thread;
	int tid;		/* for the trace's pid filter */
	int pending_smi;	/* set by kick(), consumed by the thread */
	int stop;
	const char *error;
};

struct bench {
	const struct path *path;
	struct vm *vm;
	int dev_fd;
	struct vcpu *writer;
	struct ap aps[GUEST_MAX_VCPUS];
	unsigned int nr_aps;
	u64 tsc_khz;
	u64 smis;		/* SMIs raised so far */
	/* The VMM's work: W_EXITS, W_IOCTLS and W_SIGNALS, all threads. */
	u64 work[W_SIGNALS + 1];
};

/* -A: the counts need the tracepoints. */
static bool trace_required;

static void count_work(struct bench *b, unsigned int what)
{
	__atomic_add_fetch(&b->work[what], 1, __ATOMIC_RELAXED);
}

static void __noreturn __printf(1, 2) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "smi_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void kick_handler(int sig)
{
}

static void *guest_ptr(struct bench *b, u64 gpa)
{
	return vm_mem(b->vm, gpa);
}

static u32 *guest_u32(struct bench *b, u64 gpa)
{
	return guest_ptr(b, gpa);
}

static u64 guest_u64(struct bench *b, u64 gpa)
{
	return __atomic_load_n((u64 *)guest_ptr(b, gpa), __ATOMIC_ACQUIRE);
}

/*
 * What QEMU does for a vCPU: mark the SMI and kick the thread out of
 * KVM_RUN; immediate_exit covers a kick that lands before KVM_RUN.
 */
static void kick(struct ap *ap)
{
	count_work(ap->bench, W_SIGNALS);
	__atomic_store_n(&ap->pending_smi, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ap->vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(ap->thread, KICK_SIGNAL);
}

static void *ap_thread(void *arg)
{
	struct ap *ap = arg;
	struct vcpu *vcpu = ap->vcpu;

	__atomic_store_n(&ap->tid, gettid(), __ATOMIC_SEQ_CST);
	/* The first KVM_RUN starts the vCPU; every later one is work. */
	while (!__atomic_load_n(&ap->stop, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&vcpu->run->immediate_exit, 0,
				 __ATOMIC_SEQ_CST);
		if (__atomic_exchange_n(&ap->pending_smi, 0, __ATOMIC_SEQ_CST)) {
			count_work(ap->bench, W_IOCTLS);
			if (ioctl(vcpu->fd, KVM_SMI, NULL)) {
				ap->error = "KVM_SMI failed";
				return NULL;
			}
		}
		if (!ioctl(vcpu->fd, KVM_RUN, NULL)) {
			ap->error = "unexpected exit";
			return NULL;
		}
		if (errno != EINTR) {
			ap->error = "KVM_RUN failed";
			return NULL;
		}
		count_work(ap->bench, W_EXITS);
		count_work(ap->bench, W_IOCTLS);
	}
	return NULL;
}

/* Everything KVM supports, so that the writer may turn on x2APIC. */
static void set_cpuid(struct vcpu *vcpu)
{
	static struct kvm_cpuid2 *cpuid;
	const unsigned int max = 256;

	if (!cpuid) {
		cpuid = calloc(1, sizeof(*cpuid) +
				  max * sizeof(struct kvm_cpuid_entry2));
		if (!cpuid)
			fail("out of memory");
		cpuid->nent = max;
		if (ioctl(vcpu->vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid))
			fail("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	}
	vcpu_ioctl(vcpu, KVM_SET_CPUID2, cpuid);
}

/* Real mode with a 4 GiB ES limit, so the guest reaches its local APIC. */
static void start_vcpu(struct vcpu *vcpu, const u8 *entry)
{
	struct kvm_sregs sregs;

	set_cpuid(vcpu);
	vcpu_start(vcpu, entry, 0);
	vcpu_ioctl(vcpu, KVM_GET_SREGS, &sregs);
	sregs.es.limit = 0xffffffff;
	vcpu_ioctl(vcpu, KVM_SET_SREGS, &sregs);
}

static void bench_setup(struct bench *b, const struct path *path,
			unsigned int nr_vcpus, int ctl_fd)
{
	unsigned int i;

	memset(b, 0, sizeof(*b));
	b->path = path;
	b->dev_fd = -1;
	b->vm = vm_create(nr_vcpus, VM_IRQCHIP | VM_SMM_BENCH);
	b->writer = &b->vm->vcpus[path->writer];
	b->tsc_khz = vcpu_ioctl(b->writer, KVM_GET_TSC_KHZ, NULL);
	if (!b->tsc_khz)
		fail("KVM_GET_TSC_KHZ returned 0");

	if (path->device) {
		b->dev_fd = ich9smi_attach_vm(ctl_fd, b->vm->fd);
		if (b->dev_fd < 0)
			fail("attach: %s", strerror(-b->dev_fd));
		if (ich9smi_setup_smi(b->dev_fd, path->features))
			fail("device setup failed");
	}

	*guest_u32(b, BENCH_MODE) = path->mode;
	*guest_u32(b, BENCH_NR) = nr_vcpus;
	*guest_u32(b, BENCH_IPI_FROM) = path->ipi ? path->writer + 1 : 0;

	for (i = 0; i < nr_vcpus; i++) {
		struct ap *ap;

		if (i == path->writer)
			continue;
		ap = &b->aps[b->nr_aps++];
		ap->bench = b;
		ap->vcpu = &b->vm->vcpus[i];
		start_vcpu(ap->vcpu, guest_bench_ap);
		if (pthread_create(&ap->thread, NULL, ap_thread, ap))
			fail("pthread_create");
	}
	start_vcpu(b->writer, guest_bench);
}

static void bench_teardown(struct bench *b)
{
	unsigned int i;

	for (i = 0; i < b->nr_aps; i++) {
		struct ap *ap = &b->aps[i];

		__atomic_store_n(&ap->stop, 1, __ATOMIC_SEQ_CST);
		kick(ap);
		pthread_join(ap->thread, NULL);
		if (ap->error)
			fail("%s: vCPU %u: %s", b->path->name, ap->vcpu->id,
			     ap->error);
	}
	if (b->dev_fd >= 0)
		close(b->dev_fd);
	vm_destroy(b->vm);
}

/* Raise the SMI the writer asked for through the VMM. */
static void vmm_smi(struct bench *b)
{
	struct kvm_msi msi = {
		.address_lo = MSI_ADDR_BROADCAST,
		.data = MSI_DATA_DM_SMI,
	};
	unsigned int i;

	switch (b->path->trigger) {
	case TRIG_QEMU:
		for (i = 0; i < b->nr_aps; i++)
			kick(&b->aps[i]);
		count_work(b, W_IOCTLS);
		vcpu_ioctl(b->writer, KVM_SMI, NULL);
		break;
	case TRIG_MSI:
		count_work(b, W_IOCTLS);
		if (vm_ioctl(b->vm, KVM_SIGNAL_MSI, &msi) <= 0)
			fail("KVM_SIGNAL_MSI delivered to no vCPU");
		break;
	default:
		fail("%s: the writer's OUT to 0xB2 exited", b->path->name);
	}
}

/* Run the writer for @loops SMIs, until it reports. */
static void run_writer(struct bench *b, u32 loops)
{
	struct kvm_run *run = b->writer->run;

	*guest_u32(b, BENCH_LOOPS) = loops;
	for (;;) {
		int reason = vcpu_run(b->writer);

		if (reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT)
			fail("%s: writer exit %d", b->path->name, reason);
		if (run->io.port == GUEST_SYNC_PORT)
			break;
		if (run->io.port != ICH9SMI_APM_CNT_PORT)
			fail("%s: OUT to port 0x%x", b->path->name,
			     run->io.port);
		/* This exit, the VMM's SMI, and KVM_RUN again. */
		count_work(b, W_EXITS);
		vmm_smi(b);
		count_work(b, W_IOCTLS);
	}
	b->smis += loops;
}

/*
 * Every vCPU must have entered SMM once per SMI: called after every SMI of
 * the latency runs, the per-vCPU counts prove it for each SMI, and after
 * the rate and count runs for their totals. The entry TSCs cannot: where
 * the host's TSCs are not synchronized (nested under TCG, KVM warns "guest
 * TSC will not be reliable"), one vCPU's TSC may be behind the writer's,
 * which also skews "to the last vCPU in" there; make bench's -icount clock
 * is one counter for all vCPUs.
 */
static void check_arrivals(struct bench *b)
{
	unsigned int i, nr = b->vm->nr_vcpus;

	if (*guest_u32(b, BENCH_ARRIVALS) != *guest_u32(b, BENCH_TARGET))
		fail("%s, %u vCPUs: %u SMM entries, %u expected",
		     b->path->name, nr, *guest_u32(b, BENCH_ARRIVALS),
		     *guest_u32(b, BENCH_TARGET));
	for (i = 0; i < nr; i++) {
		if (vm_smm_count(b->vm, i) != b->smis)
			fail("%s: vCPU %u entered SMM %u times for %llu SMIs",
			     b->path->name, i, vm_smm_count(b->vm, i),
			     (unsigned long long)b->smis);
	}
}

/* The tracepoints of the count phase; the ipi events came with 6.6. */
static const char *const ipi_events[] = {
	"ipi/ipi_send_cpu", "ipi/ipi_send_cpumask",
};

static void trace_need(const char *dir, const char *file, const char *value)
{
	int ret = ich9smi_trace_set(dir, file, value);

	if (ret)
		fail("tracefs %s/%s: %s", dir, file, strerror(-ret));
}

/*
 * A private instance tracing the count phase's events of the bench's own
 * threads (@b's), buffer cleared; NULL without tracefs (not root, say).
 */
static char *trace_start(struct bench *b, bool *ipi)
{
	char file[96], pids[GUEST_MAX_VCPUS * 12], prev[GUEST_MAX_VCPUS * 24];
	size_t len, plen;
	unsigned int i;
	char *dir;
	int fd;

	dir = ich9smi_trace_open("kvm/kvm_userspace_exit");
	if (!dir)
		return NULL;
	trace_need(dir, "tracing_on", "0");
	len = snprintf(pids, sizeof(pids), "%d", getpid());
	plen = snprintf(prev, sizeof(prev), "prev_pid == %d", getpid());
	for (i = 0; i < b->nr_aps; i++) {
		int tid = __atomic_load_n(&b->aps[i].tid, __ATOMIC_SEQ_CST);

		len += snprintf(pids + len, sizeof(pids) - len, " %d", tid);
		plen += snprintf(prev + plen, sizeof(prev) - plen,
				 " || prev_pid == %d", tid);
	}
	trace_need(dir, "set_event_pid", pids);
	trace_need(dir, "buffer_size_kb", "8192");
	trace_need(dir, "events/kvm/kvm_exit/enable", "1");
	trace_need(dir, "events/sched/sched_switch/filter", prev);
	trace_need(dir, "events/sched/sched_switch/enable", "1");
	*ipi = true;
	for (i = 0; i < ARRAY_SIZE(ipi_events); i++) {
		snprintf(file, sizeof(file), "events/%s/enable", ipi_events[i]);
		if (ich9smi_trace_set(dir, file, "1"))
			*ipi = false;
	}
	snprintf(file, sizeof(file), "%s/trace", dir);
	fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		fail("%s: %s", file, strerror(errno));
	close(fd);
	trace_need(dir, "tracing_on", "1");
	return dir;
}

static void add_reason(struct work *w, const char *reason, double n)
{
	unsigned int i;

	for (i = 0; i < w->nr_reasons; i++)
		if (!strcmp(w->reasons[i].name, reason))
			break;
	if (i == MAX_REASONS) {
		/* The last slot, "other", gathers the reasons beyond. */
		i = MAX_REASONS - 1;
	} else if (i == w->nr_reasons) {
		if (i == MAX_REASONS - 1)
			reason = "other";
		snprintf(w->reasons[i].name, sizeof(w->reasons[i].name), "%s",
			 reason);
		w->nr_reasons++;
	}
	w->reasons[i].per_smi += n;
}

/*
 * Count the traced events of @smis SMIs. One exit to userspace (and its
 * guest exit) ends the phase: that report is not the path's work, and is
 * taken off kvm_userspace_exit; the guest exits are shown as traced.
 */
static void trace_count(char *dir, bool ipi, unsigned int smis,
			struct work *w)
{
	unsigned long in_buffer = 0, written = 0;
	bool have_totals = false;
	u64 n[NR_WORK] = { 0 };
	char file[96], line[512], reason[24];
	const char *at;
	FILE *f;

	trace_need(dir, "tracing_on", "0");
	snprintf(file, sizeof(file), "%s/trace", dir);
	f = fopen(file, "r");
	if (!f)
		fail("%s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#') {
			if (sscanf(line, "# entries-in-buffer/entries-written: %lu/%lu",
				   &in_buffer, &written) == 2)
				have_totals = true;
			continue;
		}
		at = strstr(line, " kvm_exit: ");
		if (strstr(line, " kvm_userspace_exit: ")) {
			n[W_TP_EXITS]++;
		} else if (at) {
			n[W_GUEST_EXITS]++;
			at = strstr(at, " reason ");
			if (at && sscanf(at, " reason %23s", reason) == 1)
				add_reason(w, reason, 1.0 / smis);
			else
				add_reason(w, "?", 1.0 / smis);
		} else if (strstr(line, " sched_switch: ")) {
			n[W_SWITCHES]++;
		} else if (strstr(line, " ipi_send_cpu")) {
			n[W_IPI_SENDS]++;
		}
	}
	fclose(f);
	if (!have_totals || in_buffer != written)
		fail("trace lost events: %lu of %lu kept", in_buffer, written);
	if (!n[W_TP_EXITS])
		fail("no kvm_userspace_exit traced for the end of the run");
	n[W_TP_EXITS]--;
	w->per_smi[W_TP_EXITS] = (double)n[W_TP_EXITS] / smis;
	w->per_smi[W_SWITCHES] = (double)n[W_SWITCHES] / smis;
	w->per_smi[W_IPI_SENDS] = ipi ? (double)n[W_IPI_SENDS] / smis : -1;
	w->per_smi[W_GUEST_EXITS] = (double)n[W_GUEST_EXITS] / smis;
}

/* Run @smis back-to-back SMIs and count the work they take. */
static void count_phase(struct bench *b, unsigned int smis, bool need_trace,
			struct work *w)
{
	u64 before[W_SIGNALS + 1];
	unsigned int i;
	bool ipi;
	char *dir;

	for (i = 0; i <= W_SIGNALS; i++)
		before[i] = __atomic_load_n(&b->work[i], __ATOMIC_SEQ_CST);
	dir = trace_start(b, &ipi);
	if (!dir && need_trace)
		fail("no tracefs instance with kvm:kvm_userspace_exit (needs root and tracefs)");
	run_writer(b, smis);
	/*
	 * The writer reports once it is back from SMM; the other vCPUs may
	 * still be on their way out (RSM). Their threads do nothing else
	 * once halted, and the writer's does nothing in userspace: a grace
	 * period adds no work of its own to the window, and puts every RSM
	 * of these SMIs in it.
	 */
	usleep(50 * 1000);
	if (dir) {
		trace_count(dir, ipi, smis, w);
		ich9smi_trace_close(dir);
	} else {
		for (i = W_TP_EXITS; i < NR_WORK; i++)
			w->per_smi[i] = -1;
	}
	check_arrivals(b);
	for (i = 0; i <= W_SIGNALS; i++)
		w->per_smi[i] = (double)(__atomic_load_n(&b->work[i],
							  __ATOMIC_SEQ_CST) -
					 before[i]) / smis;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static double ticks_to_usec(const struct bench *b, u64 ticks)
{
	return ticks * 1000.0 / b->tsc_khz;
}

static void percentiles(const struct bench *b, u64 *v, unsigned int n,
			double out[3])
{
	qsort(v, n, sizeof(*v), cmp_u64);
	out[0] = ticks_to_usec(b, v[n / 2]);
	out[1] = ticks_to_usec(b, v[(n * 90) / 100]);
	out[2] = ticks_to_usec(b, v[(n * 99) / 100]);
}

static void bench_one(const struct path *path, unsigned int nr_vcpus,
		      unsigned int warmup, unsigned int reps,
		      unsigned int loops, unsigned int count_smis, int ctl_fd,
		      struct result *res)
{
	u64 *samples[NR_MEASURES];
	struct bench b;
	unsigned int i, m, v;
	u64 t0, t1;

	for (m = 0; m < NR_MEASURES; m++) {
		samples[m] = calloc(reps, sizeof(u64));
		if (!samples[m])
			fail("out of memory");
	}
	bench_setup(&b, path, nr_vcpus, ctl_fd);

	for (i = 0; i < warmup + reps; i++) {
		u64 last = 0;

		run_writer(&b, 1);
		t0 = guest_u64(&b, BENCH_T0);
		t1 = guest_u64(&b, BENCH_T1);
		check_arrivals(&b);
		if (i < warmup)
			continue;
		for (v = 0; v < nr_vcpus; v++)
			if (guest_u64(&b, BENCH_ARRIVE(v)) > last)
				last = guest_u64(&b, BENCH_ARRIVE(v));
		samples[M_WRITER][i - warmup] =
			guest_u64(&b, BENCH_ARRIVE(path->writer)) - t0;
		samples[M_LAST][i - warmup] = last - t0;
		samples[M_BACK][i - warmup] = t1 - t0;
	}

	/* Rate: back-to-back SMIs, no exit to report between them. */
	res->smis_per_sec = 0;
	if (loops) {
		run_writer(&b, loops);
		check_arrivals(&b);
		t0 = guest_u64(&b, BENCH_T0);
		t1 = guest_u64(&b, BENCH_T1);
		res->smis_per_sec = loops * 1e6 / ticks_to_usec(&b, t1 - t0);
	}

	if (count_smis) {
		count_phase(&b, count_smis, trace_required, &res->work);
	} else {
		for (m = 0; m < NR_WORK; m++)
			res->work.per_smi[m] = -1;
	}

	res->path = path;
	res->nr_vcpus = nr_vcpus;
	res->tsc_khz = b.tsc_khz;
	for (m = 0; m < NR_MEASURES; m++) {
		percentiles(&b, samples[m], reps, res->usec[m]);
		if (m != M_BACK)
			free(samples[m]);
	}
	res->back = samples[M_BACK];
	res->nr_back = reps;
	bench_teardown(&b);
}

static const struct result *find(const struct result *r, unsigned int nr,
				 const char *name, unsigned int nr_vcpus)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (r[i].path && r[i].nr_vcpus == nr_vcpus &&
		    !strcmp(r[i].path->name, name))
			return &r[i];
	return NULL;
}

static double ratio(const struct result *all, unsigned int nr,
		    const struct result *r)
{
	const struct result *base = find(all, nr, "ich9smi", r->nr_vcpus);

	return base ? r->usec[M_BACK][0] / base->usec[M_BACK][0] : 0;
}

/* Every pass's round trips of one path and vCPU count, sorted. */
static u64 *pooled(const struct result *r, unsigned int per_pass,
		   unsigned int passes, const char *name, unsigned int nr_vcpus,
		   unsigned int *n)
{
	const struct result *x;
	unsigned int p;
	u64 *v = NULL;

	*n = 0;
	for (p = 0; p < passes; p++) {
		x = find(r + p * per_pass, per_pass, name, nr_vcpus);
		if (!x)
			continue;
		v = realloc(v, (*n + x->nr_back) * sizeof(*v));
		if (!v)
			fail("out of memory");
		memcpy(v + *n, x->back, x->nr_back * sizeof(*v));
		*n += x->nr_back;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_u64);
	return v;
}

/*
 * The median of sorted v[n] and its distribution-free 95% interval: the
 * order statistics n/2 -+ 1.96 sqrt(n)/2, clamped.
 */
static void median_interval(const u64 *v, unsigned int n, double out[3])
{
	unsigned int half = 0;
	int lo, hi;

	/* half = 0.98 sqrt(n), rounded down */
	while ((half + 1) * (half + 1) * 10000ull <= n * 9604ull)
		half++;
	lo = (int)(n / 2) - (int)half;
	hi = (int)(n / 2 + half + 1);
	if (lo < 0)
		lo = 0;
	if (hi > (int)n - 1)
		hi = n - 1;
	out[0] = v[n / 2];
	out[1] = v[lo];
	out[2] = v[hi];
}

static bool pooled_ratio(const struct result *r, unsigned int per_pass,
			 unsigned int passes, const struct result *x,
			 struct interval *iv)
{
	double a[3], b[3];
	unsigned int na, nb;
	u64 *va, *vb;

	va = pooled(r, per_pass, passes, x->path->name, x->nr_vcpus, &na);
	vb = pooled(r, per_pass, passes, "ich9smi", x->nr_vcpus, &nb);
	if (va && vb && na && nb) {
		median_interval(va, na, a);
		median_interval(vb, nb, b);
		iv->ratio = a[0] / b[0];
		iv->lo = a[1] / b[2];
		iv->hi = a[2] / b[1];
	}
	free(va);
	free(vb);
	return va && vb && na && nb;
}

/*
 * The summary: per vCPU count, the fastest path, and every path's round
 * trip as a multiple of ich9smi's, pooled over the passes, with its
 * interval and each pass's ratio of medians.
 */
static void print_summary(const struct result *r, unsigned int per_pass,
			  unsigned int passes)
{
	const char *fastest = "";
	unsigned int i, j, p;
	struct interval iv;

	printf("\n# summary: OUT->writer back (round trip), medians over %u pass%s;\n"
	       "# x ich9smi = the path's time / ich9smi's (above 1: ich9smi faster),\n"
	       "# with a conservative 95%% interval; 'no difference' when it holds 1.00;\n"
	       "# then each pass's ratio of medians, and their spread\n",
	       passes, passes > 1 ? "es" : "");
	printf("%5s %-11s %-11s %9s %16s %-15s %s\n", "vcpus", "fastest",
	       "path", "x ich9smi", "95% interval", "", "per pass (spread)");
	for (i = 0; i < per_pass; i++) {
		const struct result *x = &r[i];
		double best = 1e300, lo = 1e300, hi = 0, q;

		if (!i || r[i - 1].nr_vcpus != x->nr_vcpus) {
			for (j = i; j < per_pass &&
			     r[j].nr_vcpus == x->nr_vcpus; j++)
				if (pooled_ratio(r, per_pass, passes, &r[j],
						 &iv) && iv.ratio < best) {
					best = iv.ratio;
					fastest = r[j].path->name;
				}
		} else {
			fastest = "";
		}
		if (!pooled_ratio(r, per_pass, passes, x, &iv))
			continue;
		printf("%5u %-11s %-11s %9.2f   [%5.2f, %5.2f] %-15s",
		       x->nr_vcpus, fastest, x->path->name, iv.ratio, iv.lo,
		       iv.hi, !strcmp(x->path->name, "ich9smi") ? "" :
		       iv.lo < 1.005 && iv.hi >= 0.995 ? "no difference" :
		       iv.ratio > 1 ? "ich9smi faster" : "ich9smi slower");
		for (p = 0; p < passes; p++) {
			const struct result *y = r + p * per_pass;

			if (!y[i].path)
				continue;
			q = ratio(y, per_pass, &y[i]);
			printf(" %.3f", q);
			lo = q < lo ? q : lo;
			hi = q > hi ? q : hi;
		}
		printf(" (%.1f%%)\n", 100 * (hi - lo) / iv.ratio);
	}
}

static void print_table(const struct result *r, unsigned int nr)
{
	unsigned int i;

	printf("\n%-11s %5s %25s %25s %25s %8s %10s\n", "path", "vcpus",
	       "OUT->writer in SMM (us)", "OUT->last in SMM (us)",
	       "OUT->writer back (us)", "x ich9smi", "SMIs/s");
	printf("%-11s %5s %25s %25s %25s\n", "", "", "median/p90/p99",
	       "median/p90/p99", "median/p90/p99");
	for (i = 0; i < nr; i++) {
		const struct result *x = &r[i];
		char cell[NR_MEASURES][32];
		unsigned int m;

		for (m = 0; m < NR_MEASURES; m++)
			snprintf(cell[m], sizeof(cell[m]), "%.1f/%.1f/%.1f",
				 x->usec[m][0], x->usec[m][1], x->usec[m][2]);
		printf("%-11s %5u %25s %25s %25s %8.2f ", x->path->name,
		       x->nr_vcpus, cell[0], cell[1], cell[2], ratio(r, nr, x));
		if (x->smis_per_sec)
			printf("%10.0f\n", x->smis_per_sec);
		else
			printf("%10s\n", "-");
	}
}

static void print_count(double v)
{
	if (v < 0)
		printf(" %13s", "n/a");
	else
		printf(" %13.2f", v);
}

/* Work per SMI: the VMM's own counts, then the L1 kernel's tracepoints. */
static void print_work(const struct result *r, unsigned int nr,
		       unsigned int count_smis)
{
	unsigned int i, w, k;

	printf("\n# work per SMI over %u back-to-back SMIs: the VMM's exits to userspace, ioctls\n"
	       "# and signals; traced in this kernel: exits to userspace, switches away from\n"
	       "# the VMM's threads, IPIs sent, guest exits (and by reason)\n",
	       count_smis);
	printf("%-11s %5s", "path", "vcpus");
	for (w = 0; w < NR_WORK; w++)
		printf(" %13s", work_names[w]);
	printf("  guest exits by reason\n");
	for (i = 0; i < nr; i++) {
		const struct work *x = &r[i].work;

		printf("%-11s %5u", r[i].path->name, r[i].nr_vcpus);
		for (w = 0; w < NR_WORK; w++)
			print_count(x->per_smi[w]);
		printf(" ");
		for (k = 0; k < x->nr_reasons; k++)
			printf(" %s=%.2f", x->reasons[k].name,
			       x->reasons[k].per_smi);
		printf("\n");
	}
}

/*
 * -A: the counts that define the paths. ich9smi takes no exit to
 * userspace per SMI, by the VMM's count and by the tracepoint; QEMU's path
 * takes at least one per vCPU.
 */
static void assert_counts(const struct result *r, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		const struct path *p = r[i].path;
		const double *w = r[i].work.per_smi;

		if (p->device && (w[W_EXITS] != 0 || w[W_TP_EXITS] != 0))
			fail("%s, %u vCPUs: %.2f (traced %.2f) %s, expected 0",
			     p->name, r[i].nr_vcpus, w[W_EXITS], w[W_TP_EXITS],
			     "exits to userspace per SMI");
		if (p->trigger == TRIG_QEMU &&
		    (w[W_EXITS] < r[i].nr_vcpus ||
		     w[W_TP_EXITS] < r[i].nr_vcpus))
			fail("%s, %u vCPUs: %.2f (traced %.2f) %s, expected >= %u",
			     p->name, r[i].nr_vcpus, w[W_EXITS], w[W_TP_EXITS],
			     "exits to userspace per SMI", r[i].nr_vcpus);
	}
	printf("\n# counts hold: ich9smi 0 exits to userspace per SMI, qemu at least N\n");
}

static void write_csv(const char *file, const struct result *r,
		      unsigned int nr, unsigned int passes)
{
	struct interval iv;
	FILE *f = fopen(file, "w");
	unsigned int i, m;

	if (!f)
		fail("%s: %s", file, strerror(errno));
	fprintf(f, "path,vcpus");
	for (m = 0; m < NR_MEASURES; m++)
		fprintf(f, ",%s_median_us,%s_p90_us,%s_p99_us",
			measure_names[m], measure_names[m], measure_names[m]);
	fprintf(f, ",ratio_to_ich9smi,smis_per_sec");
	fprintf(f, ",pooled_ratio,pooled_ratio_lo,pooled_ratio_hi");
	for (m = 0; m < NR_WORK; m++)
		fprintf(f, ",%s_per_smi", work_names[m]);
	fprintf(f, "\n");
	for (i = 0; i < nr; i++) {
		fprintf(f, "%s,%u", r[i].path->name, r[i].nr_vcpus);
		for (m = 0; m < NR_MEASURES; m++)
			fprintf(f, ",%.3f,%.3f,%.3f", r[i].usec[m][0],
				r[i].usec[m][1], r[i].usec[m][2]);
		fprintf(f, ",%.3f,%.1f", ratio(r, nr, &r[i]),
			r[i].smis_per_sec);
		if (pooled_ratio(r, nr, passes, &r[i], &iv))
			fprintf(f, ",%.3f,%.3f,%.3f", iv.ratio, iv.lo, iv.hi);
		else
			fprintf(f, ",,,");
		for (m = 0; m < NR_WORK; m++) {
			/* Empty where not counted or not available. */
			if (r[i].work.per_smi[m] < 0)
				fprintf(f, ",");
			else
				fprintf(f, ",%.3f", r[i].work.per_smi[m]);
		}
		fprintf(f, "\n");
	}
	fclose(f);
}

static void write_json(const char *file, const struct result *r,
		       unsigned int nr, const struct options *o, u64 tsc_khz)
{
	FILE *f = fopen(file, "w");
	struct interval iv;
	unsigned int i, m;

	if (!f)
		fail("%s: %s", file, strerror(errno));
	fprintf(f, "{\n  \"clock\": \"guest TSC\",\n  \"tsc_khz\": %llu,\n",
		(unsigned long long)tsc_khz);
	fprintf(f, "  \"passes\": %u,\n", o->passes);
	fprintf(f, "  \"warmup\": %u,\n  \"reps\": %u,\n  \"rate_loops\": %u,\n",
		o->warmup, o->reps, o->loops);
	fprintf(f, "  \"count_smis\": %u,\n", o->count_smis);
	fprintf(f, "  \"results\": [\n");
	for (i = 0; i < nr; i++) {
		fprintf(f, "    { \"path\": \"%s\", \"vcpus\": %u",
			r[i].path->name, r[i].nr_vcpus);
		for (m = 0; m < NR_MEASURES; m++)
			fprintf(f, ", \"%s_us\": [%.3f, %.3f, %.3f]",
				measure_names[m], r[i].usec[m][0],
				r[i].usec[m][1], r[i].usec[m][2]);
		fprintf(f, ", \"ratio_to_ich9smi\": %.3f, \"smis_per_sec\": %.1f",
			ratio(r, nr, &r[i]), r[i].smis_per_sec);
		if (pooled_ratio(r, nr, o->passes, &r[i], &iv))
			fprintf(f, ", \"pooled_ratio\": [%.3f, %.3f, %.3f]",
				iv.ratio, iv.lo, iv.hi);
		fprintf(f, ", \"work_per_smi\": {");
		for (m = 0; m < NR_WORK; m++) {
			fprintf(f, "%s\"%s\": ", m ? ", " : "", work_names[m]);
			if (r[i].work.per_smi[m] < 0)
				fprintf(f, "null");
			else
				fprintf(f, "%.3f", r[i].work.per_smi[m]);
		}
		fprintf(f, "}, \"guest_exits_per_smi\": {");
		for (m = 0; m < r[i].work.nr_reasons; m++)
			fprintf(f, "%s\"%s\": %.3f", m ? ", " : "",
				r[i].work.reasons[m].name,
				r[i].work.reasons[m].per_smi);
		fprintf(f, "} }%s\n", i + 1 < nr ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	fclose(f);
}

static unsigned int parse_list(const char *s, unsigned int *out,
			       unsigned int max)
{
	unsigned int n = 0;
	char *end;

	while (*s && n < max) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || !v || v > GUEST_MAX_VCPUS)
			fail("bad vCPU count list '%s' (1..%d)", s,
			     GUEST_MAX_VCPUS);
		out[n++] = v;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

static void help(void)
{
	printf("smi_bench [options]\n"
	       "  -p LIST   only these paths, comma-separated (default all)\n"
	       "  -T N      passes: the -n list measured N times (default 1);\n"
	       "            the summary pools them\n"
	       "  -n LIST   vCPU counts, comma-separated (default 1,2,4,8)\n"
	       "  -s LIST   scaling run vCPU counts (default none), fewer reps\n"
	       "  -r N      measured SMIs per path and count (default 200)\n"
	       "  -w N      warm-up SMIs, not measured (default 20)\n"
	       "  -l N      back-to-back SMIs for the rate (default 200)\n"
	       "  -R N      measured SMIs in the scaling run (default 20)\n"
	       "  -k N      back-to-back SMIs whose work is counted (default 20,\n"
	       "            0: none)\n"
	       "  -A        fail unless ich9smi takes 0 exits to userspace per SMI\n"
	       "            and QEMU's path at least one per vCPU\n"
	       "  -c FILE   write the results as CSV\n"
	       "  -j FILE   write the results as JSON\n");
}

int main(int argc, char **argv)
{
	struct options o = {
		.vcpus = { 1, 2, 4, 8 }, .nr_vcpu_counts = 4,
		.reps = 200, .warmup = 20, .loops = 200, .scale_reps = 20,
		.count_smis = 20, .passes = 1,
	};
	struct sigaction sa = { .sa_handler = kick_handler };
	struct result *res;
	unsigned int i, p, pass, nr = 0, max, per_pass = 0;
	struct ich9smi_info info;
	int ctl_fd, opt;
	u64 tsc_khz = 0;

	while ((opt = getopt(argc, argv, "n:s:r:w:l:R:k:T:p:Ac:j:h")) != -1) {
		switch (opt) {
		case 'n':
			o.nr_vcpu_counts = parse_list(optarg, o.vcpus, 16);
			break;
		case 's':
			o.nr_scale = parse_list(optarg, o.scale, 8);
			break;
		case 'r':
			o.reps = strtoul(optarg, NULL, 10);
			break;
		case 'w':
			o.warmup = strtoul(optarg, NULL, 10);
			break;
		case 'l':
			o.loops = strtoul(optarg, NULL, 10);
			break;
		case 'R':
			o.scale_reps = strtoul(optarg, NULL, 10);
			break;
		case 'k':
			o.count_smis = strtoul(optarg, NULL, 10);
			break;
		case 'T':
			o.passes = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o.only = optarg;
			for (p = 0; p < NR_PATHS; p++)
				if (path_selected(&o, paths[p].name))
					break;
			if (p == NR_PATHS)
				fail("-p %s names no path", optarg);
			break;
		case 'A':
			o.assert_counts = true;
			trace_required = true;
			break;
		case 'c':
			o.csv = optarg;
			break;
		case 'j':
			o.json = optarg;
			break;
		default:
			help();
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!o.reps || !o.scale_reps || !o.passes)
		fail("-r, -R and -T must be at least 1");
	if (o.assert_counts && !o.count_smis)
		fail("-A needs counts: -k at least 1");
	if (vm_smm_unsupported())
		fail("%s", vm_smm_unsupported());
	ctl_fd = ich9smi_open();
	if (ctl_fd < 0)
		fail(ICH9SMI_DEV_PATH ": %s", strerror(-ctl_fd));
	if (ich9smi_get_info(ctl_fd, &info))
		fail("ICH9SMI_INFO failed");
	if (sigaction(KICK_SIGNAL, &sa, NULL))
		fail("sigaction: %s", strerror(errno));

	max = (o.nr_vcpu_counts + o.nr_scale) * NR_PATHS * o.passes;
	res = calloc(max, sizeof(*res));
	if (!res)
		fail("out of memory");

	printf("# smi_bench: clock guest TSC; per path and vCPU count\n");
	printf("# %u warm-up and %u measured SMIs (%u in the scaling run);\n",
	       o.warmup, o.reps, o.scale_reps);
	printf("# rate over %u back-to-back SMIs; %u pass%s\n", o.loops,
	       o.passes, o.passes > 1 ? "es" : "");
	/*
	 * Every pass measures the -n list; only the first counts work and
	 * runs the scaling list. Pass P's results start at P * per_pass.
	 */
	for (pass = 0; pass < o.passes; pass++) {
		nr = pass * per_pass;
		for (i = 0; i < o.nr_vcpu_counts + o.nr_scale; i++) {
			bool scaling = i >= o.nr_vcpu_counts;
			unsigned int n = scaling ?
				o.scale[i - o.nr_vcpu_counts] : o.vcpus[i];

			if (pass && scaling)
				break;
			for (p = 0; p < NR_PATHS; p++) {
				if (!path_selected(&o, paths[p].name) ||
				    n < paths[p].min_vcpus ||
				    n > paths[p].max_vcpus)
					continue;
				fprintf(stderr, "# pass %u: %s, %u vCPUs\n",
					pass + 1, paths[p].name, n);
				bench_one(&paths[p], n, o.warmup,
					  scaling ? o.scale_reps : o.reps,
					  scaling ? 0 : o.loops,
					  pass ? 0 : o.count_smis, ctl_fd,
					  &res[nr]);
				nr++;
			}
		}
		if (!pass)
			per_pass = nr;
	}
	if (per_pass)
		tsc_khz = res[0].tsc_khz;
	printf("# guest TSC %llu kHz\n", (unsigned long long)tsc_khz);
	print_summary(res, per_pass, o.passes);
	printf("\n# pass 1%s\n", o.passes > 1 ? " of the passes above" : "");
	print_table(res, per_pass);
	if (o.count_smis)
		print_work(res, per_pass, o.count_smis);
	if (o.csv)
		write_csv(o.csv, res, per_pass, o.passes);
	if (o.json)
		write_json(o.json, res, per_pass, &o, tsc_khz);
	printf("\n# every expected vCPU entered SMM for every SMI on every path\n");
	if (o.assert_counts)
		assert_counts(res, per_pass);
	for (i = 0; i < per_pass * o.passes; i++)
		free(res[i].back);
	free(res);
	close(ctl_fd);
	return 0;
}
