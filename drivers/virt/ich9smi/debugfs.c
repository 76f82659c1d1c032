// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi debugfs: a human-readable view of every device. Not ABI; the
 * ioctls are.
 *
 *   /sys/kernel/debug/ich9smi/instances    number of attached devices
 *   /sys/kernel/debug/ich9smi/<id>/state   registers, features, exit set,
 *                                          counters
 *   /sys/kernel/debug/ich9smi/kvm_calls    out of tree: every branch to KVM
 *   /sys/kernel/debug/ich9smi/resolution   out of tree: how KVM was reached
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "ich9smi.h"

static struct dentry *ich9smi_debugfs_root;

static int ich9smi_instances_show(struct seq_file *m, void *unused)
{
	seq_printf(m, "%u\n", ich9smi_instances());
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ich9smi_instances);

static int ich9smi_state_show(struct seq_file *m, void *unused)
{
	struct ich9smi_dev *dev = m->private;
	DECLARE_BITMAP(exit_set, ICH9SMI_EXIT_SET_BITS);
	struct ich9smi_counters stats;
	u64 host, requested, negotiated;
	u8 apm_cnt, apm_sts;
	bool features_ok;
	u32 smi_en;

	spin_lock(&dev->lock);
	apm_cnt = dev->apm_cnt;
	apm_sts = dev->apm_sts;
	smi_en = dev->smi_en;
	host = dev->host_features;
	requested = dev->requested;
	negotiated = dev->negotiated;
	features_ok = dev->features_ok;
	bitmap_copy(exit_set, dev->exit_set, ICH9SMI_EXIT_SET_BITS);
	stats = dev->counters;
	spin_unlock(&dev->lock);

	seq_printf(m, "apm_cnt: 0x%02x\napm_sts: 0x%02x\nsmi_en: 0x%08x\n",
		   apm_cnt, apm_sts, smi_en);
	seq_printf(m, "host_features: %#llx\nrequested: %#llx\n", host,
		   requested);
	seq_printf(m, "negotiated: %#llx\nfeatures_ok: %d\n", negotiated,
		   features_ok);
	seq_printf(m, "exit_set: %*pb\n", ICH9SMI_EXIT_SET_BITS, exit_set);
	seq_printf(m, "cnt_writes: %llu\nsts_writes: %llu\nreads: %llu\n",
		   stats.cnt_writes, stats.sts_writes, stats.reads);
	seq_printf(m, "smis_unicast: %llu\nsmis_broadcast: %llu\n",
		   stats.smis_unicast, stats.smis_broadcast);
	seq_printf(m, "vcpus_signalled: %llu\nexits_to_vmm: %llu\n",
		   stats.vcpus_signalled, stats.exits_to_vmm);
	seq_printf(m, "smis_suppressed: %llu\n", stats.smis_suppressed);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ich9smi_state);
#ifdef ICH9SMI_OOT
DEFINE_SHOW_ATTRIBUTE(ich9smi_kvm_calls);
DEFINE_SHOW_ATTRIBUTE(ich9smi_resolution);
#endif

void ich9smi_debugfs_add(struct ich9smi_dev *dev)
{
	char name[16];

	snprintf(name, sizeof(name), "%u", dev->id);
	dev->debugfs = debugfs_create_dir(name, ich9smi_debugfs_root);
	debugfs_create_file("state", 0400, dev->debugfs, dev,
			    &ich9smi_state_fops);
}

void ich9smi_debugfs_remove(struct ich9smi_dev *dev)
{
	debugfs_remove(dev->debugfs);
	dev->debugfs = NULL;
}

void ich9smi_debugfs_init(void)
{
	ich9smi_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
	debugfs_create_file("instances", 0400, ich9smi_debugfs_root, NULL,
			    &ich9smi_instances_fops);
#ifdef ICH9SMI_OOT
	debugfs_create_file("kvm_calls", 0400, ich9smi_debugfs_root, NULL,
			    &ich9smi_kvm_calls_fops);
	debugfs_create_file("resolution", 0400, ich9smi_debugfs_root, NULL,
			    &ich9smi_resolution_fops);
#endif
}

void ich9smi_debugfs_exit(void)
{
	debugfs_remove(ich9smi_debugfs_root);
}
