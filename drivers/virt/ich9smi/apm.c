// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi: the guest-facing side. APM_CNT and APM_STS as a KVM PIO bus
 * device, and the SMI feature negotiation rules.
 *
 * The semantics follow the ICH9 LPC bridge as QEMU emulates it: a write to
 * APM_CNT raises an SMI when SMI_EN.APMC_EN is set, on the writing vCPU or,
 * once BROADCAST is negotiated, on every vCPU. Values in the exit set (ACPI
 * enable/disable by default) are left to the VMM.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/kvm_host.h>

#include "ich9smi.h"
#include "trace.h"

#ifndef KVM_REQ_SMI
#error "ich9smi needs KVM's SMM support (CONFIG_KVM_SMM)"
#endif

/* Accesses must fall wholly inside 0xB2-0xB3; others are not ours. */
static bool ich9smi_access_ok(gpa_t addr, int len)
{
	return addr >= ICH9SMI_PORT_BASE && len > 0 &&
	       addr + len <= ICH9SMI_PORT_BASE + ICH9SMI_PORT_LEN;
}

static u8 *ich9smi_reg(struct ich9smi_dev *dev, gpa_t port)
{
	return port == ICH9SMI_APM_CNT_PORT ? &dev->apm_cnt : &dev->apm_sts;
}

static enum ich9smi_action ich9smi_cnt_action(struct ich9smi_dev *dev, u8 value)
{
	lockdep_assert_held(&dev->lock);

	if (test_bit(value, dev->exit_set))
		return ICH9SMI_ACT_EXIT;
	if (!(dev->smi_en & ICH9SMI_SMI_EN_APMC_EN))
		return ICH9SMI_ACT_SUPPRESSED;
	if (dev->negotiated & ICH9SMI_F_BROADCAST)
		return ICH9SMI_ACT_BROADCAST;
	return ICH9SMI_ACT_UNICAST;
}

static void ich9smi_count_locked(struct ich9smi_dev *dev,
				 enum ich9smi_action action,
				 unsigned int nr_vcpus)
{
	struct ich9smi_counters *stats = &dev->counters;

	lockdep_assert_held(&dev->lock);

	if (action == ICH9SMI_ACT_NONE) {
		stats->sts_writes++;
		return;
	}

	stats->cnt_writes++;
	switch (action) {
	case ICH9SMI_ACT_EXIT:
		stats->exits_to_vmm++;
		break;
	case ICH9SMI_ACT_SUPPRESSED:
		stats->smis_suppressed++;
		break;
	case ICH9SMI_ACT_UNICAST:
		stats->smis_unicast++;
		stats->vcpus_signalled++;
		break;
	case ICH9SMI_ACT_BROADCAST:
		stats->smis_broadcast++;
		stats->vcpus_signalled += nr_vcpus;
		break;
	default:
		break;
	}
}

static void ich9smi_raise_smi(struct kvm_vcpu *vcpu, enum ich9smi_action action,
			      unsigned int nr_vcpus)
{
	/*
	 * The request is checked before the writer re-enters the guest, so
	 * the writer takes its SMI before the instruction after its OUT.
	 * Unicast needs no kick: this handler runs in the writer's own thread.
	 * Nor does a broadcast to a VM whose only vCPU is the writer; the
	 * cpumask walk of kvm_make_all_cpus_request() costs it about 400
	 * instructions per SMI (smi_bench under icount).
	 */
	if (action == ICH9SMI_ACT_BROADCAST && nr_vcpus > 1)
		ich9smi_kvm(kvm_make_all_cpus_request)(vcpu->kvm, KVM_REQ_SMI);
	else
		kvm_make_request(KVM_REQ_SMI, vcpu);
	trace_ich9smi_inject(vcpu->vcpu_id, action == ICH9SMI_ACT_BROADCAST,
			     action == ICH9SMI_ACT_BROADCAST ? nr_vcpus : 1);
}

static int ich9smi_write(struct kvm_vcpu *vcpu, struct kvm_io_device *iodev,
			 gpa_t addr, int len, const void *val)
{
	struct ich9smi_dev *dev = to_ich9smi_dev(iodev);
	enum ich9smi_action action = ICH9SMI_ACT_NONE;
	unsigned int nr_vcpus = 0;
	const u8 *bytes = val;
	int i;

	if (!vcpu || !ich9smi_access_ok(addr, len))
		return -EOPNOTSUPP;

	spin_lock(&dev->lock);
	if (addr == ICH9SMI_APM_CNT_PORT)
		action = ich9smi_cnt_action(dev, bytes[0]);
	/*
	 * An access is wholly ours or wholly the VMM's: one that exits is
	 * neither stored nor acted on here, only counted. KVM may hand the
	 * VMM a whole string when its first element exits, and drops the
	 * rest of a string when a later element fails, so half-handling
	 * one would lose or double writes.
	 */
	if (action != ICH9SMI_ACT_EXIT)
		for (i = 0; i < len; i++)
			*ich9smi_reg(dev, addr + i) = bytes[i];
	if (action == ICH9SMI_ACT_BROADCAST)
		nr_vcpus = atomic_read(&vcpu->kvm->online_vcpus);
	ich9smi_count_locked(dev, action, nr_vcpus);
	spin_unlock(&dev->lock);

	trace_ich9smi_apm_write(vcpu->vcpu_id, addr, len, bytes[0], action);

	switch (action) {
	case ICH9SMI_ACT_EXIT:
		/* Passed on to userspace, untouched, as KVM_EXIT_IO. */
		return -EOPNOTSUPP;
	case ICH9SMI_ACT_UNICAST:
	case ICH9SMI_ACT_BROADCAST:
		ich9smi_raise_smi(vcpu, action, nr_vcpus);
		break;
	default:
		break;
	}
	return 0;
}

static int ich9smi_read(struct kvm_vcpu *vcpu, struct kvm_io_device *iodev,
			gpa_t addr, int len, void *val)
{
	struct ich9smi_dev *dev = to_ich9smi_dev(iodev);
	u8 *bytes = val;
	int i;

	if (!ich9smi_access_ok(addr, len))
		return -EOPNOTSUPP;

	spin_lock(&dev->lock);
	for (i = 0; i < len; i++)
		bytes[i] = *ich9smi_reg(dev, addr + i);
	dev->counters.reads++;
	spin_unlock(&dev->lock);
	return 0;
}

/*
 * Called once the device is off the bus and no vCPU can reach it any more:
 * by KVM itself on kernels whose unregister (or bus teardown) destroys the
 * device, else by dev.c after unregistering.
 */
static void ich9smi_destructor(struct kvm_io_device *iodev)
{
	struct ich9smi_dev *dev = to_ich9smi_dev(iodev);

	WRITE_ONCE(dev->on_bus, false);
	ich9smi_dev_put(dev);
}

const struct kvm_io_device_ops ich9smi_iodev_ops = {
	.read = ich9smi_read,
	.write = ich9smi_write,
	.destructor = ich9smi_destructor,
};

/* A feature set a VMM may offer: known bits, HOT_UNPLUG only with HOTPLUG. */
bool ich9smi_features_valid(u64 features)
{
	if (features & ~ICH9SMI_F_ALL)
		return false;
	if ((features & ICH9SMI_F_CPU_HOT_UNPLUG) &&
	    !(features & ICH9SMI_F_CPU_HOTPLUG))
		return false;
	return true;
}

/* A negotiated set must also have BROADCAST under either hotplug bit. */
bool ich9smi_negotiation_valid(u64 features)
{
	if (!ich9smi_features_valid(features))
		return false;
	if ((features & (ICH9SMI_F_CPU_HOTPLUG | ICH9SMI_F_CPU_HOT_UNPLUG)) &&
	    !(features & ICH9SMI_F_BROADCAST))
		return false;
	return true;
}

/*
 * The guest's "features ok": QEMU's rules. The requested set is always
 * recorded (the guest may rewrite it at any time); a locked negotiation does
 * not change until reset; a request that is not a subset of the host set or
 * breaks a dependency is rejected and leaves features_ok clear.
 */
void ich9smi_negotiate_locked(struct ich9smi_dev *dev, u64 requested)
{
	lockdep_assert_held(&dev->lock);

	dev->requested = requested;
	if (dev->features_ok)
		return;
	if (requested & ~dev->host_features)
		return;
	if (!ich9smi_negotiation_valid(requested))
		return;
	dev->negotiated = requested;
	dev->features_ok = true;
}

/* Platform reset: the negotiation starts over. */
void ich9smi_reset_locked(struct ich9smi_dev *dev)
{
	lockdep_assert_held(&dev->lock);

	dev->requested = 0;
	dev->negotiated = 0;
	dev->features_ok = false;
}

/* Power-on state: no features, APMC_EN clear, ACPI enable/disable exit. */
void ich9smi_init_locked(struct ich9smi_dev *dev)
{
	lockdep_assert_held(&dev->lock);

	dev->apm_cnt = 0;
	dev->apm_sts = 0;
	dev->smi_en = 0;
	dev->host_features = 0;
	ich9smi_reset_locked(dev);
	bitmap_zero(dev->exit_set, ICH9SMI_EXIT_SET_BITS);
	__set_bit(ICH9SMI_APM_ACPI_ENABLE, dev->exit_set);
	__set_bit(ICH9SMI_APM_ACPI_DISABLE, dev->exit_set);
}
