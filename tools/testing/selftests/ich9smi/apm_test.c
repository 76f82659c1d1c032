// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi from the guest's side: guests that write and read the APM ports
 * with the device attached, and check which vCPUs entered SMM, when, how
 * often, what the VMM saw, and what the statistics say.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define CMD_SMI			0x42
#define SMM_WAIT_MS		10000

/* guest_apm_loop's argument: @count writes of @cmd. */
#define LOOP_ARG(cmd, count)	((u32)(count) << 16 | (cmd))

static const u64 no_exits[4];

static u64 exit_set_word(int value)
{
	return 1ull << (value % 64);
}

FIXTURE(apm) {
	struct vm *vm;
	int ctl_fd;
	int dev_fd;
};

FIXTURE_VARIANT(apm) {
	unsigned int nr_vcpus;
	unsigned int flags;
	u64 features;
};

/* Unicast: the device as firmware finds it before negotiating. */
FIXTURE_VARIANT_ADD(apm, unicast_1) { .nr_vcpus = 1, .flags = 0 };
FIXTURE_VARIANT_ADD(apm, unicast_2) {
	.nr_vcpus = 2, .flags = VM_IRQCHIP,
};

FIXTURE_VARIANT_ADD(apm, broadcast_1) {
	.nr_vcpus = 1, .flags = VM_IRQCHIP, .features = ICH9SMI_F_BROADCAST,
};

FIXTURE_VARIANT_ADD(apm, broadcast_2) {
	.nr_vcpus = 2, .flags = VM_IRQCHIP, .features = ICH9SMI_F_BROADCAST,
};

FIXTURE_VARIANT_ADD(apm, broadcast_4) {
	.nr_vcpus = 4, .flags = VM_IRQCHIP, .features = ICH9SMI_F_BROADCAST,
};

FIXTURE_VARIANT_ADD(apm, broadcast_8) {
	.nr_vcpus = 8, .flags = VM_IRQCHIP, .features = ICH9SMI_F_BROADCAST,
};

FIXTURE_SETUP(apm)
{
	const char *why = vm_smm_unsupported();

	self->vm = NULL;
	self->dev_fd = -1;
	if (why)
		SKIP(return, "%s", why);
	self->ctl_fd = ich9smi_open();
	if (self->ctl_fd < 0)
		SKIP(return, ICH9SMI_DEV_PATH ": %s", strerror(-self->ctl_fd));
	self->vm = vm_create(variant->nr_vcpus, variant->flags);
	self->dev_fd = ich9smi_attach_vm(self->ctl_fd, self->vm->fd);
	ASSERT_LE(0, self->dev_fd);
	ASSERT_EQ(0, ich9smi_setup_smi(self->dev_fd, variant->features));
}

FIXTURE_TEARDOWN(apm)
{
	if (self->vm)
		vm_destroy(self->vm);
	if (self->dev_fd >= 0)
		close(self->dev_fd);
	if (self->ctl_fd >= 0)
		close(self->ctl_fd);
}

static bool broadcast(u64 features)
{
	return features & ICH9SMI_F_BROADCAST;
}

/* Park every vCPU but the first in HLT, in its own thread. */
static void start_halted_aps(struct vm *vm)
{
	unsigned int i;

	for (i = 1; i < vm->nr_vcpus; i++) {
		vcpu_start(&vm->vcpus[i], guest_halt, 0);
		vcpu_thread_start(&vm->vcpus[i]);
	}
}

/* The APs must still be halted in the kernel: nothing made them exit. */
static void stop_aps(struct __test_metadata *_metadata, struct vm *vm)
{
	unsigned int i;

	for (i = 1; i < vm->nr_vcpus; i++)
		EXPECT_EQ(VCPU_STOPPED, vcpu_thread_stop(&vm->vcpus[i]));
}

/*
 * The writer (vCPU 0) writes APM_CNT again and again; every write must put
 * the writer into SMM before its next instruction, and the others too when
 * broadcast is negotiated, each exactly once per write.
 */
TEST_F(apm, smi_per_write)
{
	const unsigned int writes = 5;
	struct vm *vm = self->vm;
	struct ich9smi_stats st;
	unsigned int i, v;

	start_halted_aps(vm);
	vcpu_start(&vm->vcpus[0], guest_apm_loop, LOOP_ARG(CMD_SMI, writes));
	for (i = 1; i <= writes; i++) {
		/* No exit but the guest's report: 0xB2 stayed in kernel. */
		EXPECT_EQ(i, vcpu_sync(&vm->vcpus[0]));
		if (broadcast(variant->features))
			EXPECT_TRUE(vm_wait_smm_counts(vm, i, SMM_WAIT_MS));
	}
	if (!broadcast(variant->features)) {
		/* Give a wrongly signalled AP time to show up. */
		sleep_ms(100);
		for (v = 1; v < vm->nr_vcpus; v++)
			EXPECT_EQ(0, vm_smm_count(vm, v));
	}
	for (v = 0; v < vm->nr_vcpus; v++)
		EXPECT_EQ(v && !broadcast(variant->features) ? 0 : writes,
			  vm_smm_count(vm, v));
	stop_aps(_metadata, vm);

	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(writes, st.cnt_writes);
	EXPECT_EQ(0, st.sts_writes);
	EXPECT_EQ(broadcast(variant->features) ? 0 : writes, st.smis_unicast);
	EXPECT_EQ(broadcast(variant->features) ? writes : 0, st.smis_broadcast);
	EXPECT_EQ(broadcast(variant->features) ? writes * vm->nr_vcpus : writes,
		  st.vcpus_signalled);
	EXPECT_EQ(0, st.exits_to_vmm + st.smis_suppressed + st.reads);
}

/* OVMF's Trigger(): data to APM_STS, command to APM_CNT, both in kernel. */
TEST_F(apm, ovmf_trigger)
{
	struct vcpu *vcpu = &self->vm->vcpus[0];
	struct ich9smi_state state;
	struct ich9smi_stats st;

	start_halted_aps(self->vm);
	vcpu_start(vcpu, guest_apm_smi, 0x99 << 8 | CMD_SMI);
	EXPECT_EQ(1, vcpu_sync(vcpu));
	stop_aps(_metadata, self->vm);

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	EXPECT_EQ(CMD_SMI, state.apm_cnt);
	EXPECT_EQ(0x99, state.apm_sts);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, ICH9SMI_STATS_CLEAR));
	EXPECT_EQ(1, st.cnt_writes);
	EXPECT_EQ(1, st.sts_writes);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(0, st.cnt_writes + st.sts_writes);
}

/* SMI_EN.APMC_EN clear: the command is stored, no vCPU enters SMM. */
TEST_F(apm, apmc_en_clear)
{
	struct vm *vm = self->vm;
	struct ich9smi_state state;
	struct ich9smi_stats st;

	ASSERT_EQ(0, ich9smi_set_smi_en(self->dev_fd,
					~ICH9SMI_SMI_EN_APMC_EN));
	start_halted_aps(vm);
	vcpu_start(&vm->vcpus[0], guest_apm_loop, LOOP_ARG(CMD_SMI, 3));
	EXPECT_EQ(0, vcpu_sync(&vm->vcpus[0]));
	EXPECT_EQ(0, vcpu_sync(&vm->vcpus[0]));
	/* Set again: the next write raises the SMI. */
	ASSERT_EQ(0, ich9smi_set_smi_en(self->dev_fd, ICH9SMI_SMI_EN_APMC_EN));
	EXPECT_EQ(1, vcpu_sync(&vm->vcpus[0]));
	if (broadcast(variant->features))
		EXPECT_TRUE(vm_wait_smm_counts(vm, 1, SMM_WAIT_MS));
	stop_aps(_metadata, vm);

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	EXPECT_EQ(CMD_SMI, state.apm_cnt);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(3, st.cnt_writes);
	EXPECT_EQ(2, st.smis_suppressed);
	EXPECT_EQ(1, st.smis_unicast + st.smis_broadcast);
}

/*
 * Values in the exit set reach the VMM as KVM_EXIT_IO and raise no SMI;
 * ACPI enable (2) and disable (3) are in it by default.
 */
TEST_F(apm, exit_set)
{
	struct vcpu *vcpu = &self->vm->vcpus[0];
	u64 only_smi[4] = { 0 };
	struct ich9smi_state state;
	struct ich9smi_stats st;

	vcpu_start(vcpu, guest_apm_loop,
		   LOOP_ARG(ICH9SMI_APM_ACPI_ENABLE, 2));
	EXPECT_EQ(ICH9SMI_APM_ACPI_ENABLE,
		  vcpu_run_out(vcpu, ICH9SMI_APM_CNT_PORT));
	EXPECT_EQ(0, vcpu_sync(vcpu));
	/* The write was wholly the VMM's: the device did not store it. */
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	EXPECT_EQ(0, state.apm_cnt);

	/* Without 2 in the set, the same write raises an SMI in kernel. */
	ASSERT_EQ(0, ich9smi_set_exit_set(self->dev_fd, no_exits));
	EXPECT_EQ(1, vcpu_sync(vcpu));

	/* Any value can be handed to the VMM. */
	only_smi[CMD_SMI / 64] = exit_set_word(CMD_SMI);
	ASSERT_EQ(0, ich9smi_set_exit_set(self->dev_fd, only_smi));
	vcpu_start(vcpu, guest_apm_loop, LOOP_ARG(CMD_SMI, 1));
	EXPECT_EQ(CMD_SMI, vcpu_run_out(vcpu, ICH9SMI_APM_CNT_PORT));
	EXPECT_EQ(1, vcpu_sync(vcpu));

	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(3, st.cnt_writes);
	EXPECT_EQ(2, st.exits_to_vmm);
	EXPECT_EQ(1, st.smis_unicast + st.smis_broadcast);
}

/*
 * String I/O over APM_CNT: every element of REP OUTSB is wholly the
 * device's or wholly the VMM's. The exit-set values, and only they, reach
 * the VMM, one each and in order; the others raise an SMI each and are
 * stored; REP INSB then reads the last value the device stored.
 */
TEST_F(apm, string_io)
{
	static const u8 out[] = {
		CMD_SMI, ICH9SMI_APM_ACPI_ENABLE, CMD_SMI + 1,
		ICH9SMI_APM_ACPI_DISABLE, ICH9SMI_APM_ACPI_DISABLE,
		CMD_SMI + 2, ICH9SMI_APM_ACPI_ENABLE,
	};
	const unsigned int len = sizeof(out), smis = 3, exits = 4;
	struct vcpu *vcpu = &self->vm->vcpus[0];
	struct kvm_run *run = vcpu->run;
	struct ich9smi_state state;
	struct ich9smi_stats st;
	u8 seen[STRING_MAX], *in;
	unsigned int nr_seen = 0, i;
	int reason;

	memcpy(vm_mem(self->vm, STRING_OUT), out, len);
	in = vm_mem(self->vm, STRING_IN);
	memset(in, 0xff, len);
	vcpu_start(vcpu, guest_apm_string, len);
	for (;;) {
		reason = vcpu_run(vcpu);
		ASSERT_EQ(KVM_EXIT_IO, reason);
		ASSERT_EQ(KVM_EXIT_IO_OUT, run->io.direction);
		if (run->io.port == GUEST_SYNC_PORT)
			break;
		ASSERT_EQ(ICH9SMI_APM_CNT_PORT, run->io.port);
		ASSERT_EQ(1, run->io.size);
		ASSERT_GE(STRING_MAX - nr_seen, run->io.count);
		memcpy(seen + nr_seen, vcpu_io_data(vcpu), run->io.count);
		nr_seen += run->io.count;
	}
	/* The sync: the writer's SMM entries. */
	EXPECT_EQ(smis, *(u32 *)vcpu_io_data(vcpu));

	ASSERT_EQ(exits, nr_seen);
	EXPECT_EQ(ICH9SMI_APM_ACPI_ENABLE, seen[0]);
	EXPECT_EQ(ICH9SMI_APM_ACPI_DISABLE, seen[1]);
	EXPECT_EQ(ICH9SMI_APM_ACPI_DISABLE, seen[2]);
	EXPECT_EQ(ICH9SMI_APM_ACPI_ENABLE, seen[3]);
	for (i = 0; i < len; i++)
		EXPECT_EQ(CMD_SMI + 2, in[i]);

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	EXPECT_EQ(CMD_SMI + 2, state.apm_cnt);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(len, st.cnt_writes);
	EXPECT_EQ(exits, st.exits_to_vmm);
	EXPECT_EQ(smis, st.smis_unicast + st.smis_broadcast);
	EXPECT_EQ(len, st.reads);
	EXPECT_EQ(0, st.sts_writes + st.smis_suppressed);
}

/* Reads of 0xB2/0xB3, byte and 16-bit, and a 16-bit write, in kernel. */
TEST_F(apm, read_and_word_access)
{
	struct vcpu *vcpu = &self->vm->vcpus[0];
	struct ich9smi_state state;
	struct ich9smi_stats st;

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	state.apm_cnt = 0x12;
	state.apm_sts = 0x34;
	ASSERT_EQ(0, ich9smi_set_state(self->dev_fd, &state));

	vcpu_start(vcpu, guest_apm_rw, 0xbeef);
	EXPECT_EQ(0x3412, vcpu_sync(vcpu));
	EXPECT_EQ(0x3412, vcpu_sync(vcpu));
	/* The word write stores both bytes; APM_CNT (0xef) raises the SMI. */
	EXPECT_EQ(1, vcpu_sync(vcpu));

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &state));
	EXPECT_EQ(0xef, state.apm_cnt);
	EXPECT_EQ(0xbe, state.apm_sts);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(3, st.reads);
	EXPECT_EQ(1, st.cnt_writes);
	EXPECT_EQ(0, st.sts_writes);
}

/* Run a storm of APM_CNT writes on every vCPU, each in its own thread. */
static void start_storm(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++) {
		vcpu_start(&vm->vcpus[i], guest_apm_storm, CMD_SMI);
		vcpu_thread_start(&vm->vcpus[i]);
	}
}

static u32 total_smm_entries(struct vm *vm)
{
	u32 sum = 0;
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++)
		sum += vm_smm_count(vm, i);
	return sum;
}

/*
 * Closing the device fd while every vCPU writes 0xB2 takes the device off
 * the bus: from then on the writes exit to userspace.
 */
TEST_F(apm, detach_while_running)
{
	struct vm *vm = self->vm;
	unsigned int i;

	start_storm(vm);
	sleep_ms(300);
	EXPECT_LT(0, total_smm_entries(vm));
	ASSERT_EQ(0, close(self->dev_fd));
	self->dev_fd = -1;
	for (i = 0; i < vm->nr_vcpus; i++) {
		int exit = vcpu_thread_wait(&vm->vcpus[i], SMM_WAIT_MS);

		EXPECT_EQ(KVM_EXIT_IO, exit);
		EXPECT_EQ(ICH9SMI_APM_CNT_PORT, vm->vcpus[i].run->io.port);
	}
}

/* The VM fd closed while vCPUs run: the device goes on serving them. */
TEST_F(apm, vm_fd_closed_while_running)
{
	struct vm *vm = self->vm;
	struct ich9smi_stats before, after;
	unsigned int i;

	start_storm(vm);
	ASSERT_EQ(0, close(vm->fd));
	vm->fd = -1;
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &before, 0));
	sleep_ms(300);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &after, 0));
	EXPECT_LT(before.cnt_writes, after.cnt_writes);
	for (i = 0; i < vm->nr_vcpus; i++)
		EXPECT_EQ(VCPU_STOPPED, vcpu_thread_stop(&vm->vcpus[i]));
}

/* A VMM killed mid-storm leaves no device behind. */
struct storm_vmm {
	const FIXTURE_VARIANT(apm) * variant;
	int ctl_fd;
};

static int run_storm_vmm(void *arg)
{
	const struct storm_vmm *s = arg;
	struct vm *vm = vm_create(s->variant->nr_vcpus, s->variant->flags);
	int dev = ich9smi_attach_vm(s->ctl_fd, vm->fd);

	if (dev < 0 || ich9smi_setup_smi(dev, s->variant->features))
		return 1;
	start_storm(vm);
	while (!total_smm_entries(vm))
		sleep_ms(10);
	return 0;
}

TEST_F(apm, killed_while_running)
{
	struct storm_vmm vmm = { .variant = variant, .ctl_fd = self->ctl_fd };
	struct ich9smi_info info;
	unsigned int base;
	int pid;

	ASSERT_EQ(0, ich9smi_get_info(self->ctl_fd, &info));
	base = info.instances;
	pid = ich9smi_fork_holder(run_storm_vmm, &vmm);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, ich9smi_get_info(self->ctl_fd, &info));
	EXPECT_EQ(base + 1, info.instances);
	ASSERT_EQ(0, ich9smi_kill_holder(pid));
	ASSERT_EQ(0, ich9smi_get_info(self->ctl_fd, &info));
	EXPECT_EQ(base, info.instances);
}

static char *read_trace(const char *dir)
{
	static char buf[65536];
	char path[192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/trace", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

/* The tracepoints carry vCPU id, port, value and what the write did. */
TEST_F(apm, tracepoints)
{
	struct vcpu *vcpu = &self->vm->vcpus[0];
	bool bc = broadcast(variant->features);
	char *dir, *trace, want[128];

	dir = ich9smi_trace_open("ich9smi");
	if (!dir)
		SKIP(return, "no tracefs with ich9smi events");
	vcpu_start(vcpu, guest_apm_smi, 0x99 << 8 | CMD_SMI);
	EXPECT_EQ(1, vcpu_sync(vcpu));
	trace = read_trace(dir);
	ich9smi_trace_close(dir);
	ASSERT_NE(NULL, trace);
	TH_LOG("%s", trace);
	snprintf(want, sizeof(want), "%s%s", "ich9smi_apm_write: vcpu 0 ",
		 "port 0xb3 len 1 value 0x99 action store");
	EXPECT_NE(NULL, strstr(trace, want));
	snprintf(want, sizeof(want),
		 "ich9smi_apm_write: vcpu 0 port 0xb2 len 1 value 0x%02x action %s",
		 CMD_SMI, bc ? "broadcast" : "unicast");
	EXPECT_NE(NULL, strstr(trace, want));
	snprintf(want, sizeof(want), "ich9smi_inject: vcpu 0 %s nr_vcpus %u",
		 bc ? "broadcast" : "unicast", bc ? variant->nr_vcpus : 1);
	EXPECT_NE(NULL, strstr(trace, want));
}

TEST_HARNESS_MAIN
