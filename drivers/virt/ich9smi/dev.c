// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi: one device per VM, reached through the fd ICH9SMI_ATTACH returns.
 *
 * Lifetime: the device holds a reference on its VM's file from attach until
 * it is freed, so the VM, and the KVM modules its file pins, outlive the
 * device whatever the close order. The device itself
 * is referenced by its fd and by KVM's PIO bus while registered there.
 * Closing the fd takes the device off the bus; once KVM's destructor (or
 * ours, on kernels whose unregister does not call it) has run, no vCPU can
 * reach the device and the last reference frees it. The fd's f_op->owner
 * pins the module for as long as any device exists.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/kvm_host.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "ich9smi.h"

/* Attached devices, for the one-per-VM rule and for debugfs. */
static LIST_HEAD(ich9smi_devices);
/* Protects ich9smi_devices and ich9smi_nr_devices. */
static DEFINE_MUTEX(ich9smi_devices_lock);
static unsigned int ich9smi_nr_devices;
static DEFINE_IDA(ich9smi_ida);

unsigned int ich9smi_instances(void)
{
	unsigned int nr;

	mutex_lock(&ich9smi_devices_lock);
	nr = ich9smi_nr_devices;
	mutex_unlock(&ich9smi_devices_lock);
	return nr;
}

static void ich9smi_dev_free(struct kref *kref)
{
	struct ich9smi_dev *dev = container_of(kref, struct ich9smi_dev, refs);

	fput(dev->vm_file);
	ida_free(&ich9smi_ida, dev->id);
	kfree(dev);
}

void ich9smi_dev_put(struct ich9smi_dev *dev)
{
	kref_put(&dev->refs, ich9smi_dev_free);
}

static int ich9smi_io_bus_register(struct kvm *kvm,
				   struct kvm_io_device *iodev)
{
	lockdep_assert_held(&kvm->slots_lock);

	return ich9smi_kvm(kvm_io_bus_register_dev)(kvm, KVM_PIO_BUS,
						    ICH9SMI_PORT_BASE,
						    ICH9SMI_PORT_LEN, iodev);
}

static int ich9smi_io_bus_unregister(struct kvm *kvm,
				     struct kvm_io_device *iodev)
{
	lockdep_assert_held(&kvm->slots_lock);

	return ich9smi_kvm(kvm_io_bus_unregister_dev)(kvm, KVM_PIO_BUS, iodev);
}

/* Take the device off the VM's PIO bus; idempotent. */
static void ich9smi_dev_unplug(struct ich9smi_dev *dev)
{
	struct kvm *kvm = dev->kvm;
	int ret;

	mutex_lock(&kvm->slots_lock);
	if (dev->on_bus) {
		ret = ich9smi_io_bus_unregister(kvm, &dev->iodev);
		/*
		 * From Linux 6.3 or so KVM calls the destructor itself, also
		 * when it fails and drops the whole bus; older kernels leave
		 * it to the caller. on_bus tells which happened.
		 */
		if (dev->on_bus)
			dev->iodev.ops->destructor(&dev->iodev);
		if (ret)
			pr_warn_ratelimited("KVM dropped the VM's PIO bus while detaching: %d\n",
					    ret);
	}
	mutex_unlock(&kvm->slots_lock);
}

/* Publish the device on the bus and in the device list. */
static int ich9smi_dev_plug(struct ich9smi_dev *dev)
{
	struct kvm *kvm = dev->kvm;
	struct ich9smi_dev *other;
	int ret;

	mutex_lock(&ich9smi_devices_lock);
	list_for_each_entry(other, &ich9smi_devices, node) {
		if (other->kvm == kvm) {
			ret = -EEXIST;
			goto unlock;
		}
	}

	mutex_lock(&kvm->slots_lock);
	kref_get(&dev->refs);
	dev->on_bus = true;
	ret = ich9smi_io_bus_register(kvm, &dev->iodev);
	if (ret) {
		dev->on_bus = false;
		kref_put(&dev->refs, ich9smi_dev_free);
	}
	mutex_unlock(&kvm->slots_lock);
	if (ret)
		goto unlock;

	list_add_tail(&dev->node, &ich9smi_devices);
	ich9smi_nr_devices++;
unlock:
	mutex_unlock(&ich9smi_devices_lock);
	return ret;
}

/*
 * Off the bus first, so that a new device never meets this one there. A
 * device whose attach failed was never plugged: its node is empty.
 */
static void ich9smi_dev_detach(struct ich9smi_dev *dev)
{
	ich9smi_debugfs_remove(dev);
	ich9smi_dev_unplug(dev);

	mutex_lock(&ich9smi_devices_lock);
	if (!list_empty(&dev->node)) {
		list_del_init(&dev->node);
		ich9smi_nr_devices--;
	}
	mutex_unlock(&ich9smi_devices_lock);

	ich9smi_dev_put(dev);
}

static int ich9smi_dev_release(struct inode *inode, struct file *file)
{
	ich9smi_dev_detach(file->private_data);
	return 0;
}

int ich9smi_set_host_features(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_host_features *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;
	int ret = 0;

	if (!ich9smi_features_valid(arg->supported)) {
		pr_info_ratelimited("pid %d: SET_HOST_FEATURES: %#llx is not a valid feature set\n",
				    task_pid_nr(current), arg->supported);
		return -EINVAL;
	}

	spin_lock(&dev->lock);
	if (dev->features_ok)
		ret = -EBUSY;
	else
		dev->host_features = arg->supported;
	spin_unlock(&dev->lock);
	return ret;
}

int ich9smi_negotiate(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_negotiate *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;

	if (arg->reserved)
		return -EINVAL;

	spin_lock(&dev->lock);
	ich9smi_negotiate_locked(dev, arg->requested);
	arg->negotiated = dev->negotiated;
	arg->features_ok = dev->features_ok;
	spin_unlock(&dev->lock);

	return ich9smi_ucmd_respond(ucmd);
}

int ich9smi_reset(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_dev *dev = ucmd->dev;

	spin_lock(&dev->lock);
	ich9smi_reset_locked(dev);
	spin_unlock(&dev->lock);
	return 0;
}

int ich9smi_set_smi_en(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_smi_en *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;

	if (arg->reserved)
		return -EINVAL;

	spin_lock(&dev->lock);
	dev->smi_en = arg->smi_en;
	spin_unlock(&dev->lock);
	return 0;
}

int ich9smi_set_exit_set(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_exit_set *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;

	spin_lock(&dev->lock);
	bitmap_from_arr64(dev->exit_set, arg->values, ICH9SMI_EXIT_SET_BITS);
	spin_unlock(&dev->lock);
	return 0;
}

int ich9smi_get_state(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_state *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;

	*arg = (struct ich9smi_state) {};
	spin_lock(&dev->lock);
	arg->apm_cnt = dev->apm_cnt;
	arg->apm_sts = dev->apm_sts;
	arg->smi_en = dev->smi_en;
	arg->host_features = dev->host_features;
	arg->requested_features = dev->requested;
	arg->negotiated_features = dev->negotiated;
	arg->features_ok = dev->features_ok;
	bitmap_to_arr64(arg->exit_set, dev->exit_set, ICH9SMI_EXIT_SET_BITS);
	spin_unlock(&dev->lock);

	return ich9smi_ucmd_respond(ucmd);
}

/* A state another host could have produced: the negotiation rules hold. */
static bool ich9smi_state_valid(const struct ich9smi_state *s)
{
	if (s->reserved0 || s->reserved1 || s->features_ok > 1)
		return false;
	if (!ich9smi_features_valid(s->host_features))
		return false;
	if (!s->features_ok)
		return !s->negotiated_features;
	return !(s->negotiated_features & ~s->host_features) &&
	       ich9smi_negotiation_valid(s->negotiated_features);
}

int ich9smi_set_state(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_state *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;

	if (!ich9smi_state_valid(arg)) {
		pr_info_ratelimited("pid %d: SET_STATE: inconsistent device state refused\n",
				    task_pid_nr(current));
		return -EINVAL;
	}

	spin_lock(&dev->lock);
	dev->apm_cnt = arg->apm_cnt;
	dev->apm_sts = arg->apm_sts;
	dev->smi_en = arg->smi_en;
	dev->host_features = arg->host_features;
	dev->requested = arg->requested_features;
	dev->negotiated = arg->negotiated_features;
	dev->features_ok = arg->features_ok;
	bitmap_from_arr64(dev->exit_set, arg->exit_set, ICH9SMI_EXIT_SET_BITS);
	spin_unlock(&dev->lock);
	return 0;
}

static void ich9smi_counters_add(struct ich9smi_counters *to,
				 const struct ich9smi_counters *from)
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

int ich9smi_get_stats(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_stats *arg = ucmd->cmd;
	struct ich9smi_dev *dev = ucmd->dev;
	bool clear = ucmd->flags & ICH9SMI_STATS_CLEAR;
	struct ich9smi_counters c;
	int ret;

	spin_lock(&dev->lock);
	c = dev->counters;
	if (clear)
		dev->counters = (struct ich9smi_counters) {};
	spin_unlock(&dev->lock);

	*arg = (struct ich9smi_stats) {
		.cnt_writes = c.cnt_writes,
		.sts_writes = c.sts_writes,
		.reads = c.reads,
		.smis_unicast = c.smis_unicast,
		.smis_broadcast = c.smis_broadcast,
		.vcpus_signalled = c.vcpus_signalled,
		.exits_to_vmm = c.exits_to_vmm,
		.smis_suppressed = c.smis_suppressed,
	};
	ret = ich9smi_ucmd_respond(ucmd);
	if (ret && clear) {
		/* Nothing is lost: give the counts back. */
		spin_lock(&dev->lock);
		ich9smi_counters_add(&dev->counters, &c);
		spin_unlock(&dev->lock);
	}
	return ret;
}

static long ich9smi_dev_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	return ich9smi_dispatch(file->private_data, cmd, arg);
}

static const struct file_operations ich9smi_dev_fops = {
	.owner = THIS_MODULE,
	.release = ich9smi_dev_release,
	.unlocked_ioctl = ich9smi_dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct ich9smi_dev *ich9smi_dev_alloc(struct file *vm_file, u32 flags)
{
	struct ich9smi_dev *dev;
	int id;

	dev = kzalloc_obj(*dev, GFP_KERNEL_ACCOUNT);
	if (!dev)
		return ERR_PTR(-ENOMEM);

	id = ida_alloc(&ich9smi_ida, GFP_KERNEL);
	if (id < 0) {
		kfree(dev);
		return ERR_PTR(id);
	}

	dev->id = id;
	dev->same_mm = flags & ICH9SMI_ATTACH_SAME_MM;
	kref_init(&dev->refs);
	INIT_LIST_HEAD(&dev->node);
	spin_lock_init(&dev->lock);
	kvm_iodevice_init(&dev->iodev, &ich9smi_iodev_ops);
	spin_lock(&dev->lock);
	ich9smi_init_locked(dev);
	spin_unlock(&dev->lock);
	dev->vm_file = get_file(vm_file);
	dev->kvm = vm_file->private_data;
	return dev;
}

/*
 * KVM reports no SMM for VMs whose state it cannot enter SMM with:
 * SEV-ES, SEV-SNP and TDX guests. KVM_CHECK_EXTENSION on the VM fd would
 * answer EIO to the attach tool, which holds the VM's fd in another
 * process, so ask KVM directly.
 */
static bool ich9smi_vm_has_smm(struct kvm *kvm)
{
	return ich9smi_kvm(kvm_vm_ioctl_check_extension)(kvm,
							 KVM_CAP_X86_SMM) > 0;
}

/*
 * Attach a device to the VM of @vm_file, a KVM VM file the caller holds,
 * and return the device's fd. The device goes on the bus last and its fd
 * is installed after that, so a guest never meets a device that has no fd
 * yet, and a failure leaves nothing behind.
 */
int ich9smi_attach(struct file *vm_file, u32 flags)
{
	struct kvm *kvm = vm_file->private_data;
	struct ich9smi_dev *dev;
	struct file *file;
	int fd, ret;

	/* KVM refuses every ioctl of a VM it has killed; so do we. */
	if (READ_ONCE(kvm->vm_dead))
		return -EIO;
	if ((flags & ICH9SMI_ATTACH_SAME_MM) && kvm->mm != current->mm) {
		pr_info_ratelimited("pid %d: ATTACH with SAME_MM from outside the VM's process\n",
				    task_pid_nr(current));
		return -EIO;
	}
	if (!ich9smi_vm_has_smm(kvm)) {
		pr_info_ratelimited("pid %d: the VM has no SMM (KVM_CAP_X86_SMM is 0 for it)\n",
				    task_pid_nr(current));
		return -EOPNOTSUPP;
	}

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;

	dev = ich9smi_dev_alloc(vm_file, flags);
	if (IS_ERR(dev)) {
		ret = PTR_ERR(dev);
		goto put_fd;
	}

	/* From here the file owns the device: its release detaches it. */
	file = anon_inode_getfile("ich9smi-dev", &ich9smi_dev_fops, dev,
				  O_RDWR | O_CLOEXEC);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		ich9smi_dev_put(dev);
		goto put_fd;
	}

	ret = ich9smi_dev_plug(dev);
	if (ret) {
		fput(file);
		goto put_fd;
	}

	ich9smi_debugfs_add(dev);
	fd_install(fd, file);
	return fd;

put_fd:
	put_unused_fd(fd);
	return ret;
}
