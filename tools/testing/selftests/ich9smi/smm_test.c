// SPDX-License-Identifier: GPL-2.0
/*
 * SMM with KVM alone, the ground ich9smi stands on. Without the module, a
 * guest's write to APM_CNT exits to userspace, which raises the SMI with
 * KVM_SMI (what QEMU does) or KVM_SIGNAL_MSI in SMI delivery mode; the vCPUs
 * must run their handler at SMBASE + 0x8000 and return with RSM before the
 * guest's next instruction.
 */
#include <time.h>

#include "../kselftest_harness.h"
#include "vm.h"

/* guest_apm_smi writes APM_DATA to APM_STS, then APM_COMMAND to APM_CNT. */
#define APM_COMMAND		0x5a
#define APM_DATA		0xa5

/* An MSI every LAPIC accepts (destination 0xff), delivery mode SMI. */
#define MSI_ADDR_BROADCAST	(0xfee00000u | 0xffu << 12)
#define MSI_DATA_DM_SMI		(2u << 8)

#define SMM_WAIT_MS		10000

static void assert_smi_state(struct __test_metadata *_metadata,
			     struct vcpu *vcpu, int smm, int pending)
{
	struct kvm_vcpu_events events;

	vcpu_ioctl(vcpu, KVM_GET_VCPU_EVENTS, &events);
	ASSERT_EQ(smm, events.smi.smm);
	ASSERT_EQ(pending, events.smi.pending);
	ASSERT_EQ(smm, !!(vcpu->run->flags & KVM_RUN_X86_SMM));
}

FIXTURE(raw_smi) {
	struct vm *vm;
	struct vcpu *vcpu;
};

FIXTURE_SETUP(raw_smi)
{
	const char *why = vm_smm_unsupported();

	if (why)
		SKIP(return, "%s", why);
	self->vm = vm_create(1, VM_SMM_SYNC);
	self->vcpu = &self->vm->vcpus[0];
	vcpu_start(self->vcpu, guest_apm_smi, APM_DATA << 8 | APM_COMMAND);

	/* No one in the kernel takes the APM ports: both writes exit. */
	ASSERT_EQ(APM_DATA, vcpu_run_out(self->vcpu, APM_STS_PORT));
	ASSERT_EQ(APM_COMMAND, vcpu_run_out(self->vcpu, APM_CNT_PORT));
	assert_smi_state(_metadata, self->vcpu, 0, 0);
	ASSERT_EQ(0, vm_smm_count(self->vm, 0));
}

FIXTURE_TEARDOWN(raw_smi)
{
	if (self->vm)
		vm_destroy(self->vm);
}

/* The SMI that QEMU raises for an APM_CNT write, taken before the next
 * instruction: the handler reports from SMM, the guest sees its count.
 */
TEST_F(raw_smi, kvm_smi_after_apm_cnt_exit)
{
	struct kvm_sregs sregs;

	vcpu_ioctl(self->vcpu, KVM_SMI, NULL);
	assert_smi_state(_metadata, self->vcpu, 0, 1);

	ASSERT_EQ(1, vcpu_sync(self->vcpu));
	assert_smi_state(_metadata, self->vcpu, 1, 0);
	vcpu_ioctl(self->vcpu, KVM_GET_SREGS, &sregs);
	ASSERT_EQ(GUEST_SMBASE(0), sregs.cs.base);
	ASSERT_EQ(1, vm_smm_count(self->vm, 0));

	ASSERT_EQ(1, vcpu_sync(self->vcpu));
	assert_smi_state(_metadata, self->vcpu, 0, 0);
	ASSERT_EQ(KVM_EXIT_HLT, vcpu_run(self->vcpu));
	ASSERT_EQ(1, vm_smm_count(self->vm, 0));
}

/* An SMI raised in SMM stays pending until RSM, then is taken at once. */
TEST_F(raw_smi, smi_in_smm_waits_for_rsm)
{
	vcpu_ioctl(self->vcpu, KVM_SMI, NULL);
	ASSERT_EQ(1, vcpu_sync(self->vcpu));
	vcpu_ioctl(self->vcpu, KVM_SMI, NULL);
	assert_smi_state(_metadata, self->vcpu, 1, 1);

	ASSERT_EQ(2, vcpu_sync(self->vcpu));
	assert_smi_state(_metadata, self->vcpu, 1, 0);

	ASSERT_EQ(2, vcpu_sync(self->vcpu));
	assert_smi_state(_metadata, self->vcpu, 0, 0);
}

/*
 * One broadcast SMI by KVM_SIGNAL_MSI, the better userspace design, reaches
 * every vCPU, each in its own thread and halted in the in-kernel irqchip.
 */
FIXTURE(msi_broadcast) {
	struct vm *vm;
};

FIXTURE_VARIANT(msi_broadcast) {
	unsigned int nr_vcpus;
};

FIXTURE_VARIANT_ADD(msi_broadcast, vcpus_1) { .nr_vcpus = 1 };
FIXTURE_VARIANT_ADD(msi_broadcast, vcpus_2) { .nr_vcpus = 2 };
FIXTURE_VARIANT_ADD(msi_broadcast, vcpus_4) { .nr_vcpus = 4 };
FIXTURE_VARIANT_ADD(msi_broadcast, vcpus_8) { .nr_vcpus = 8 };

FIXTURE_SETUP(msi_broadcast)
{
	/* Time for the vCPU threads to reach HLT; correct either way. */
	const struct timespec settle = { .tv_nsec = 100 * 1000 * 1000 };
	const char *why = vm_smm_unsupported();
	unsigned int i;

	if (why)
		SKIP(return, "%s", why);
	self->vm = vm_create(variant->nr_vcpus, VM_IRQCHIP);
	for (i = 0; i < variant->nr_vcpus; i++) {
		vcpu_start(&self->vm->vcpus[i], guest_halt, 0);
		vcpu_thread_start(&self->vm->vcpus[i]);
	}
	nanosleep(&settle, NULL);
}

FIXTURE_TEARDOWN(msi_broadcast)
{
	if (self->vm)
		vm_destroy(self->vm);
}

TEST_F(msi_broadcast, every_vcpu_enters_smm_once)
{
	struct kvm_msi msi = {
		.address_lo = MSI_ADDR_BROADCAST,
		.data = MSI_DATA_DM_SMI,
	};
	unsigned int i;

	ASSERT_EQ(variant->nr_vcpus, vm_ioctl(self->vm, KVM_SIGNAL_MSI, &msi));
	ASSERT_TRUE(vm_wait_smm_counts(self->vm, 1, SMM_WAIT_MS));
	for (i = 0; i < variant->nr_vcpus; i++)
		ASSERT_EQ(VCPU_STOPPED,
			  vcpu_thread_stop(&self->vm->vcpus[i]));
	ASSERT_TRUE(vm_wait_smm_counts(self->vm, 1, 0));
}

TEST_HARNESS_MAIN
