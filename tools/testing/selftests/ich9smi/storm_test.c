// SPDX-License-Identifier: GPL-2.0
/*
 * SMI storm: every vCPU of an 8-vCPU guest writes APM_CNT in a tight loop
 * while the VMM's threads flip SMI_EN, read and rewrite the device state,
 * read and clear the statistics and change the exit set, and a heartbeat
 * thread checks that the host stays responsive.
 *
 * vCPU n writes its own command byte, CMD(n), and records per write
 * whether its own SMM entry count went up across the OUT (guest.S). The
 * ich9smi_apm_write tracepoint records what the device did with each write,
 * each vCPU's writes in order. The checks are exact:
 *
 * - the device saw exactly the writes the guest made, and its counters,
 *   summed over every clear, equal the tracepoint's tally by action;
 * - every write that raised an SMI put its writer into SMM before the next
 *   instruction; with unicast, no other write did;
 * - every write whose value was in the exit set reached the VMM, and only
 *   those;
 * - no vCPU entered SMM more often than an SMI was requested for it.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define STORM_VCPUS		STORM_MAX_VCPUS
#define STORM_MS		3000
#define DRAIN_MS		20000
#define HEARTBEAT_MS		10
/* A host kernel wedged by the storm would stall the heartbeat for long. */
#define STALL_MS		2000
/* vCPU n writes CMD(n): never 2 or 3, which are always in the exit set. */
#define CMD(n)			(0x40 + (n))
#define TRACE_EVENT		"ich9smi/ich9smi_apm_write"

static_assert(STORM_SIZE == 1 << STORM_SHIFT, "storm record size");
static_assert(CMD(STORM_VCPUS - 1) < 0x80, "CMD(n) in exit_set word 1");

static const u64 default_exits = 1ull << ICH9SMI_APM_ACPI_ENABLE |
				 1ull << ICH9SMI_APM_ACPI_DISABLE;

/* The actions of the ich9smi_apm_write event, in its numbering. */
enum action { ACT_STORE, ACT_EXIT, ACT_SUPPRESSED, ACT_UNICAST,
	      ACT_BROADCAST, NR_ACTIONS };
static const char *const action_names[NR_ACTIONS] = {
	"store", "exit", "suppressed", "unicast", "broadcast",
};

struct storm;

/* A VMM thread: runs @step until told to stop or until a step fails. */
struct vmm_thread {
	struct storm *storm;
	const char *name;
	bool (*step)(struct vmm_thread *t);
	unsigned int pause_ms;
	pthread_t thread;
	u64 rng;
	unsigned long steps;
	bool failed;
};

enum { T_SMI_EN, T_STATE, T_STATS, T_EXIT_SET, T_HEARTBEAT, NR_THREADS };

struct storm {
	struct vm *vm;
	int dev_fd;
	u64 features;
	bool stop;
	/* vCPU n's APM_CNT writes that exited to the VMM, by its thread. */
	u64 vmm_exits[STORM_VCPUS];
	/* T_STATS: the sum of every clear, and the reading since the last. */
	struct ich9smi_stats cleared;
	struct ich9smi_stats last;
	/* T_HEARTBEAT */
	struct timespec last_tick;
	u64 max_gap_ns;
	struct vmm_thread threads[NR_THREADS];
};

static bool broadcast(const struct storm *s)
{
	return s->features & ICH9SMI_F_BROADCAST;
}

static bool __printf(3, 4) check(struct vmm_thread *t, bool ok,
				 const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return true;
	printf("# %s thread, step %lu: ", t->name, t->steps);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return false;
}

static bool flip_smi_en(struct vmm_thread *t)
{
	u32 smi_en = ich9smi_rand(&t->rng) & 1 ? ICH9SMI_SMI_EN_APMC_EN : 0;
	int ret = ich9smi_set_smi_en(t->storm->dev_fd, smi_en);

	return check(t, !ret, "SET_SMI_EN: %s", strerror(-ret));
}

static bool set_exit_set(struct vmm_thread *t)
{
	u64 values[4] = { default_exits, ich9smi_rand(&t->rng) & 0xff };
	int ret = ich9smi_set_exit_set(t->storm->dev_fd, values);

	return check(t, !ret, "SET_EXIT_SET: %s", strerror(-ret));
}

/* A state this test's device can be in: only SMI_EN, APM_CNT and the
 * storm commands' exit set bits ever change.
 */
static bool state_possible(const struct storm *s, const struct ich9smi_state *st)
{
	return !st->reserved0 && !st->reserved1 && st->features_ok == 1 &&
	       st->host_features == s->features &&
	       st->requested_features == s->features &&
	       st->negotiated_features == s->features &&
	       (!st->smi_en || st->smi_en == ICH9SMI_SMI_EN_APMC_EN) &&
	       (!st->apm_cnt ||
		(st->apm_cnt >= CMD(0) && st->apm_cnt < CMD(STORM_VCPUS))) &&
	       !st->apm_sts && st->exit_set[0] == default_exits &&
	       !(st->exit_set[1] & ~0xffull) && !st->exit_set[2] &&
	       !st->exit_set[3];
}

/* Migration's save and load, as far as the device is concerned. */
static bool rewrite_state(struct vmm_thread *t)
{
	struct storm *s = t->storm;
	struct ich9smi_state st;
	int ret;

	ret = ich9smi_get_state(s->dev_fd, &st);
	if (!check(t, !ret, "GET_STATE: %s", strerror(-ret)))
		return false;
	if (!check(t, state_possible(s, &st),
		   "impossible state: apm_cnt %#x apm_sts %#x smi_en %#x features %#llx/%#llx/%#llx ok %u exit set %#llx %#llx",
		   st.apm_cnt, st.apm_sts, st.smi_en, st.host_features,
		   st.requested_features, st.negotiated_features,
		   st.features_ok, st.exit_set[0], st.exit_set[1]))
		return false;
	ret = ich9smi_set_state(s->dev_fd, &st);
	return check(t, !ret, "SET_STATE of what GET_STATE returned: %s",
		     strerror(-ret));
}

static void stats_add(struct ich9smi_stats *to,
		      const struct ich9smi_stats *from)
{
	to->cnt_writes += from->cnt_writes;
	to->sts_writes += from->sts_writes;
	to->reads += from->reads;
	to->smis_unicast += from->smis_unicast;
	to->smis_broadcast += from->smis_broadcast;
	to->vcpus_signalled += from->vcpus_signalled;
	to->exits_to_vmm += from->exits_to_vmm;
	to->smis_suppressed += from->smis_suppressed;
}

/* What any one reading of the counters must satisfy, atomic as it is. */
static bool stats_consistent(const struct storm *s,
			     const struct ich9smi_stats *st)
{
	return st->cnt_writes == st->exits_to_vmm + st->smis_suppressed +
				 st->smis_unicast + st->smis_broadcast &&
	       st->vcpus_signalled == st->smis_unicast +
				      STORM_VCPUS * st->smis_broadcast &&
	       !(broadcast(s) ? st->smis_unicast : st->smis_broadcast) &&
	       !st->sts_writes && !st->reads;
}

static bool stats_grew(const struct ich9smi_stats *now,
		       const struct ich9smi_stats *then)
{
	return now->cnt_writes >= then->cnt_writes &&
	       now->smis_unicast >= then->smis_unicast &&
	       now->smis_broadcast >= then->smis_broadcast &&
	       now->exits_to_vmm >= then->exits_to_vmm &&
	       now->smis_suppressed >= then->smis_suppressed;
}

/* Read the counters, clearing them every other time; nothing may be lost. */
static bool read_stats(struct vmm_thread *t)
{
	struct storm *s = t->storm;
	bool clear = ich9smi_rand(&t->rng) & 1;
	struct ich9smi_stats st;
	int ret;

	ret = ich9smi_get_stats(s->dev_fd, &st, clear ? ICH9SMI_STATS_CLEAR : 0);
	if (!check(t, !ret, "GET_STATS: %s", strerror(-ret)))
		return false;
	if (!check(t, stats_consistent(s, &st),
		   "inconsistent counters: writes %llu = exits %llu + suppressed %llu + unicast %llu + broadcast %llu? signalled %llu, sts_writes %llu, reads %llu",
		   st.cnt_writes, st.exits_to_vmm, st.smis_suppressed,
		   st.smis_unicast, st.smis_broadcast, st.vcpus_signalled,
		   st.sts_writes, st.reads))
		return false;
	if (!check(t, stats_grew(&st, &s->last),
		   "a counter went down since the last reading"))
		return false;
	if (clear) {
		stats_add(&s->cleared, &st);
		memset(&s->last, 0, sizeof(s->last));
	} else {
		s->last = st;
	}
	return true;
}

static u64 ns_since(const struct timespec *then, struct timespec *now)
{
	clock_gettime(CLOCK_MONOTONIC, now);
	return (now->tv_sec - then->tv_sec) * 1000000000ull +
	       now->tv_nsec - then->tv_nsec;
}

static bool heartbeat(struct vmm_thread *t)
{
	struct storm *s = t->storm;
	struct timespec now;
	u64 gap = ns_since(&s->last_tick, &now);

	if (gap > s->max_gap_ns)
		s->max_gap_ns = gap;
	s->last_tick = now;
	return true;
}

static void *vmm_thread(void *arg)
{
	struct vmm_thread *t = arg;

	while (!__atomic_load_n(&t->storm->stop, __ATOMIC_ACQUIRE)) {
		if (!t->step(t)) {
			t->failed = true;
			break;
		}
		t->steps++;
		sleep_ms(t->pause_ms);
	}
	return NULL;
}

static void start_vmm_threads(struct storm *s, u64 seed)
{
	static const struct {
		const char *name;
		bool (*step)(struct vmm_thread *t);
		unsigned int pause_ms;
	} kinds[NR_THREADS] = {
		[T_SMI_EN] = { "SMI_EN", flip_smi_en, 1 },
		[T_STATE] = { "state", rewrite_state, 1 },
		[T_STATS] = { "stats", read_stats, 1 },
		[T_EXIT_SET] = { "exit set", set_exit_set, 2 },
		[T_HEARTBEAT] = { "heartbeat", heartbeat, HEARTBEAT_MS },
	};
	unsigned int i;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &s->last_tick);
	for (i = 0; i < NR_THREADS; i++) {
		struct vmm_thread *t = &s->threads[i];

		t->storm = s;
		t->name = kinds[i].name;
		t->step = kinds[i].step;
		t->pause_ms = kinds[i].pause_ms;
		t->rng = seed + i;
		err = pthread_create(&t->thread, NULL, vmm_thread, t);
		if (err)
			ksft_exit_fail_msg("pthread_create: %s\n", strerror(err));
	}
}

static void stop_vmm_threads(struct storm *s)
{
	unsigned int i;

	__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
	for (i = 0; i < NR_THREADS; i++)
		pthread_join(s->threads[i].thread, NULL);
}

/* A storm write whose value is in the exit set: count it, carry on. */
static bool storm_exit(struct vcpu *vcpu)
{
	struct storm *s = vcpu->priv;
	struct kvm_run *run = vcpu->run;

	if (run->exit_reason != KVM_EXIT_IO ||
	    run->io.port != ICH9SMI_APM_CNT_PORT ||
	    run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 1 ||
	    run->io.count != 1 || *(u8 *)vcpu_io_data(vcpu) != CMD(vcpu->id))
		return false;
	s->vmm_exits[vcpu->id]++;
	return true;
}

/* What the tracepoint says the device did, checked against the guest. */
struct tally {
	u64 writes[STORM_VCPUS];
	u64 due[STORM_VCPUS];
	u64 exits[STORM_VCPUS];
	u64 actions[NR_ACTIONS];
	u64 foreign;	/* events that are no storm write */
	u64 excess;	/* events beyond the writes a vCPU made */
	u64 missed;	/* SMIs raised but not taken before the next insn */
	u64 spurious;	/* unicast: SMM entered with no SMI raised */
};

static bool rose(struct vm *vm, unsigned int vcpu, u64 write)
{
	const u8 *bitmap = vm_mem(vm, STORM_ROSE(vcpu));

	return bitmap[write / 8] & (1u << (write % 8));
}

static int action_of(const char *name)
{
	int i;

	for (i = 0; i < NR_ACTIONS; i++)
		if (!strcmp(name, action_names[i]))
			return i;
	return -1;
}

static void tally_event(struct __test_metadata *_metadata, struct storm *s,
			struct tally *t, const u64 *guest_writes,
			unsigned int vcpu, unsigned int port, unsigned int len,
			unsigned int value, int action)
{
	bool due = action == ACT_UNICAST || action == ACT_BROADCAST;
	u64 i;

	if (vcpu >= STORM_VCPUS || port != ICH9SMI_APM_CNT_PORT || len != 1 ||
	    value != CMD(vcpu) || action < 0) {
		if (!t->foreign++)
			TH_LOG("foreign event: vcpu %u port %#x len %u value %#x",
			       vcpu, port, len, value);
		return;
	}
	t->actions[action]++;
	i = t->writes[vcpu]++;
	if (i >= guest_writes[vcpu]) {
		t->excess++;
		return;
	}
	t->due[vcpu] += due;
	t->exits[vcpu] += action == ACT_EXIT;
	if (due && !rose(s->vm, vcpu, i) && !t->missed++)
		TH_LOG("vCPU %u write %llu: SMI raised (%s), not taken",
		       vcpu, i, action_names[action]);
	if (!broadcast(s) && !due && rose(s->vm, vcpu, i) && !t->spurious++)
		TH_LOG("vCPU %u write %llu: no SMI raised (%s), SMM entered",
		       vcpu, i, action_names[action]);
}

static bool tally_trace(struct __test_metadata *_metadata, struct storm *s,
			const char *dir, const u64 *guest_writes,
			struct tally *t)
{
	unsigned int vcpu, port, len, value;
	char path[256], line[512], action[16];
	const char *event;
	FILE *trace;

	snprintf(path, sizeof(path), "%s/trace", dir);
	trace = fopen(path, "r");
	if (!trace)
		return false;
	while (fgets(line, sizeof(line), trace)) {
		event = strstr(line, "ich9smi_apm_write: ");
		if (!event)
			continue;
		if (sscanf(event, "ich9smi_apm_write: vcpu %u port %x len %u value %x action %15s",
			   &vcpu, &port, &len, &value, action) != 5) {
			TH_LOG("cannot parse: %s", line);
			t->foreign++;
			continue;
		}
		tally_event(_metadata, s, t, guest_writes, vcpu, port, len,
			    value, action_of(action));
	}
	fclose(trace);
	return true;
}

/* Lost events would spoil the tally; the ring buffer must hold them all. */
static u64 trace_overruns(const char *dir)
{
	char path[256], line[128];
	unsigned long long n;
	u64 sum = 0;
	unsigned int cpu;
	FILE *f;

	for (cpu = 0;; cpu++) {
		snprintf(path, sizeof(path), "%s/per_cpu/cpu%u/stats", dir, cpu);
		f = fopen(path, "r");
		if (!f)
			return sum;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "overrun: %llu", &n) == 1 ||
			    sscanf(line, "dropped events: %llu", &n) == 1)
				sum += n;
		fclose(f);
	}
}

FIXTURE(storm) {
	struct storm s;
	char *trace;
};

FIXTURE_VARIANT(storm) {
	u64 features;
};

FIXTURE_VARIANT_ADD(storm, broadcast) { .features = ICH9SMI_F_BROADCAST };
FIXTURE_VARIANT_ADD(storm, unicast) { .features = 0 };

FIXTURE_SETUP(storm)
{
	const char *why = vm_smm_unsupported();
	int ctl_fd;

	self->s.dev_fd = -1;
	if (why)
		SKIP(return, "%s", why);
	ctl_fd = ich9smi_open();
	if (ctl_fd < 0)
		SKIP(return, ICH9SMI_DEV_PATH ": %s", strerror(-ctl_fd));
	self->trace = ich9smi_trace_open(TRACE_EVENT);
	if (!self->trace) {
		close(ctl_fd);
		SKIP(return, "no tracefs instance with " TRACE_EVENT);
	}
	/* One clock for all CPUs: a vCPU's events stay in order. */
	ASSERT_EQ(0, ich9smi_trace_set(self->trace, "trace_clock", "mono"));
	ASSERT_EQ(0, ich9smi_trace_set(self->trace, "buffer_size_kb", "8192"));
	self->s.features = variant->features;
	self->s.vm = vm_create(STORM_VCPUS, VM_IRQCHIP);
	self->s.dev_fd = ich9smi_attach_vm(ctl_fd, self->s.vm->fd);
	close(ctl_fd);
	ASSERT_LE(0, self->s.dev_fd);
	ASSERT_EQ(0, ich9smi_setup_smi(self->s.dev_fd, variant->features));
}

FIXTURE_TEARDOWN(storm)
{
	if (self->s.vm)
		vm_destroy(self->s.vm);
	if (self->s.dev_fd >= 0)
		close(self->s.dev_fd);
	if (self->trace)
		ich9smi_trace_close(self->trace);
}

/* The guest's own account: writes per vCPU, each reported on exit. */
static void end_storm(struct __test_metadata *_metadata, struct vm *vm,
		      u64 *writes)
{
	unsigned int i;

	vm_write32(vm, STORM_STOP, 1);
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];
		int exit = vcpu_thread_wait(vcpu, DRAIN_MS);

		writes[i] = vm_read32(vm, STORM_WRITES(i));
		EXPECT_EQ(KVM_EXIT_IO, exit);
		if (exit != KVM_EXIT_IO)
			continue;
		EXPECT_EQ(GUEST_SYNC_PORT, vcpu->run->io.port);
		EXPECT_EQ(writes[i], *(u32 *)vcpu_io_data(vcpu));
		EXPECT_LT(0, writes[i]);
	}
}

TEST_F_TIMEOUT(storm, counted, 60)
{
	struct storm *s = &self->s;
	struct vm *vm = s->vm;
	u64 writes[STORM_VCPUS], total = 0, smm, smm_total = 0, smis;
	struct ich9smi_stats st;
	struct tally t = { 0 };
	unsigned int i;
	u64 seed = ich9smi_seed("ICH9SMI_STORM_SEED");

	TH_LOG("seed %#llx (ICH9SMI_STORM_SEED)", seed);
	for (i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i].handle_exit = storm_exit;
		vm->vcpus[i].priv = s;
		vcpu_start(&vm->vcpus[i], guest_apm_storm_count, CMD(i));
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_thread_start(&vm->vcpus[i]);
	start_vmm_threads(s, seed);
	sleep_ms(STORM_MS);
	end_storm(_metadata, vm, writes);
	stop_vmm_threads(s);
	for (i = 0; i < NR_THREADS; i++) {
		TH_LOG("%s thread: %lu steps", s->threads[i].name,
		       s->threads[i].steps);
		EXPECT_FALSE(s->threads[i].failed);
		EXPECT_LT(0, s->threads[i].steps);
	}

	ASSERT_EQ(0, ich9smi_get_stats(s->dev_fd, &st, 0));
	stats_add(&st, &s->cleared);
	ASSERT_EQ(0, ich9smi_trace_set(self->trace, "tracing_on", "0"));
	EXPECT_EQ(0, trace_overruns(self->trace));
	ASSERT_TRUE(tally_trace(_metadata, s, self->trace, writes, &t));

	EXPECT_EQ(0, t.foreign);
	EXPECT_EQ(0, t.excess);
	EXPECT_EQ(0, t.missed);
	EXPECT_EQ(0, t.spurious);
	for (i = 0; i < vm->nr_vcpus; i++) {
		EXPECT_EQ(writes[i], t.writes[i]);
		EXPECT_EQ(s->vmm_exits[i], t.exits[i]);
		/* Every entry is an SMI requested for this vCPU. */
		smm = vm_smm_count(vm, i);
		EXPECT_GE(broadcast(s) ? t.actions[ACT_BROADCAST] : t.due[i],
			  smm);
		/* Each due write was followed by an entry of its own. */
		EXPECT_LE(t.due[i], smm);
		total += writes[i];
		smm_total += smm;
	}

	/* The counters, summed over every clear, are the trace's tally. */
	EXPECT_EQ(total, st.cnt_writes);
	EXPECT_EQ(t.actions[ACT_EXIT], st.exits_to_vmm);
	EXPECT_EQ(t.actions[ACT_SUPPRESSED], st.smis_suppressed);
	EXPECT_EQ(t.actions[ACT_UNICAST], st.smis_unicast);
	EXPECT_EQ(t.actions[ACT_BROADCAST], st.smis_broadcast);
	EXPECT_EQ(0, t.actions[ACT_STORE]);
	EXPECT_TRUE(stats_consistent(s, &st));
	smis = st.smis_unicast + st.smis_broadcast;
	EXPECT_LT(0, smis);
	EXPECT_GE(st.vcpus_signalled, smm_total);

	/* The host kept up. */
	EXPECT_GT(STALL_MS * 1000000ull, s->max_gap_ns);

	TH_LOG("%llu writes: %llu SMIs (%llu unicast, %llu broadcast)",
	       st.cnt_writes, smis, st.smis_unicast, st.smis_broadcast);
	TH_LOG("%llu suppressed, %llu exits to the VMM", st.smis_suppressed,
	       st.exits_to_vmm);
	TH_LOG("%llu vCPUs signalled, %llu SMM entries; heartbeat gap %llu ms",
	       st.vcpus_signalled, smm_total, s->max_gap_ns / 1000000);
}

TEST_HARNESS_MAIN
