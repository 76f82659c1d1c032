// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi: the ICH9 APM control port (0xB2 APM_CNT, 0xB3 APM_STS) of a KVM
 * guest served by an in-kernel PIO device, with SMIs raised on the writing
 * vCPU or broadcast to every vCPU.
 *
 * /dev/ich9smi takes a KVM VM fd (ICH9SMI_ATTACH) and returns a device fd
 * through which the VMM drives the device. See Documentation/virt/ich9smi.rst.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kvm_host.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "ich9smi.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

static int ich9smi_info(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_info *info = ucmd->cmd;

	*info = (struct ich9smi_info) {
		.api_version = ICH9SMI_API_VERSION,
		.instances = ich9smi_instances(),
		.features = ICH9SMI_F_ALL,
	};
	return ich9smi_ucmd_respond(ucmd);
}

static int ich9smi_ioctl_attach(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_attach *attach = ucmd->cmd;
	struct file *vm_file;
	int ret;

	if (attach->reserved)
		return -EINVAL;

	vm_file = fget(attach->vm_fd);
	if (!vm_file)
		return -EBADF;

	if (ich9smi_kvm(file_is_kvm)(vm_file)) {
		ret = ich9smi_attach(vm_file, ucmd->flags);
	} else {
		pr_info_ratelimited("pid %d: fd %d is not a KVM VM\n",
				    task_pid_nr(current), attach->vm_fd);
		ret = -EINVAL;
	}

	fput(vm_file);
	return ret;
}

/* Size and flags, the start of every command's struct. */
struct ich9smi_ucmd_hdr {
	u32 size;
	u32 flags;
};

union ich9smi_ucmd_buffer {
	struct ich9smi_ucmd_hdr hdr;
	struct ich9smi_info info;
	struct ich9smi_attach attach;
	struct ich9smi_host_features host_features;
	struct ich9smi_negotiate negotiate;
	struct ich9smi_reset reset;
	struct ich9smi_smi_en smi_en;
	struct ich9smi_exit_set exit_set;
	struct ich9smi_state state;
	struct ich9smi_stats stats;
};

/**
 * struct ich9smi_ioctl_op - one command
 * @size: sizeof its struct, as this kernel knows it
 * @min_size: the size of the struct's first version
 * @ioctl_num: the command
 * @valid_flags: the flags it accepts
 * @on_dev: a device-fd command; else a /dev/ich9smi command
 * @execute: its handler
 */
struct ich9smi_ioctl_op {
	u32 size;
	u32 min_size;
	unsigned int ioctl_num;
	u32 valid_flags;
	bool on_dev;
	int (*execute)(struct ich9smi_ucmd *ucmd);
};

/*
 * @_last is the last field of the struct's first version. Every struct
 * fits the buffer and starts with size and flags; that none has implicit
 * padding (which handlers copy out) abi_test's static_asserts pin down.
 */
#define ICH9SMI_IOCTL_OP(_ioctl, _fn, _struct, _last, _flags, _on_dev)	\
	{								\
		.size = sizeof(_struct) +				\
			BUILD_BUG_ON_ZERO(sizeof(union ich9smi_ucmd_buffer) < \
					  sizeof(_struct)) +		\
			BUILD_BUG_ON_ZERO(offsetof(_struct, size) != 0) + \
			BUILD_BUG_ON_ZERO(offsetof(_struct, flags) !=	\
					  offsetof(struct ich9smi_ucmd_hdr, flags)), \
		.min_size = offsetofend(_struct, _last),		\
		.ioctl_num = _ioctl,					\
		.valid_flags = _flags,					\
		.on_dev = _on_dev,					\
		.execute = _fn,						\
	}

static const struct ich9smi_ioctl_op ich9smi_ioctl_ops[] = {
	ICH9SMI_IOCTL_OP(ICH9SMI_INFO, ich9smi_info,
			 struct ich9smi_info, features, 0, false),
	ICH9SMI_IOCTL_OP(ICH9SMI_ATTACH, ich9smi_ioctl_attach,
			 struct ich9smi_attach, reserved,
			 ICH9SMI_ATTACH_SAME_MM, false),
	ICH9SMI_IOCTL_OP(ICH9SMI_SET_HOST_FEATURES, ich9smi_set_host_features,
			 struct ich9smi_host_features, supported, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_NEGOTIATE, ich9smi_negotiate,
			 struct ich9smi_negotiate, reserved, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_RESET, ich9smi_reset,
			 struct ich9smi_reset, flags, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_SET_SMI_EN, ich9smi_set_smi_en,
			 struct ich9smi_smi_en, reserved, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_SET_EXIT_SET, ich9smi_set_exit_set,
			 struct ich9smi_exit_set, values, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_GET_STATE, ich9smi_get_state,
			 struct ich9smi_state, exit_set, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_SET_STATE, ich9smi_set_state,
			 struct ich9smi_state, exit_set, 0, true),
	ICH9SMI_IOCTL_OP(ICH9SMI_GET_STATS, ich9smi_get_stats,
			 struct ich9smi_stats, smis_suppressed,
			 ICH9SMI_STATS_CLEAR, true),
};

/* Ten commands: a search costs nothing beside an ioctl's copies. */
static const struct ich9smi_ioctl_op *ich9smi_find_op(unsigned int cmd)
{
	const struct ich9smi_ioctl_op *op;

	for (op = ich9smi_ioctl_ops;
	     op < ich9smi_ioctl_ops + ARRAY_SIZE(ich9smi_ioctl_ops); op++)
		if (op->ioctl_num == cmd)
			return op;
	return NULL;
}

/*
 * Every ioctl of both fds. Later versions of a struct only grow: sizes
 * from the first version's up to a page are accepted, a longer struct than
 * the kernel knows must end in zeroes, and the fields the caller's version
 * lacks read as zero. The checks run in this order: the command is this
 * fd's (-ENOTTY); a SAME_MM device is used from its VM's process (-EIO);
 * size readable (-EFAULT), at least the first version's (-EINVAL), at most
 * a page (-E2BIG); the struct readable (-EFAULT) with a zero tail (-E2BIG);
 * flags (-EINVAL); then the handler's own.
 */
long ich9smi_dispatch(struct ich9smi_dev *dev, unsigned int cmd,
		      unsigned long arg)
{
	const struct ich9smi_ioctl_op *op;
	union ich9smi_ucmd_buffer buf;
	struct ich9smi_ucmd ucmd = {
		.dev = dev,
		.ubuffer = (void __user *)arg,
		.cmd = &buf,
	};
	int ret;

	op = ich9smi_find_op(cmd);
	if (!op || op->on_dev != !!dev)
		return -ENOTTY;
	if (dev && dev->same_mm && current->mm != dev->kvm->mm) {
		pr_info_ratelimited("pid %d: device fd used outside the VM's process (SAME_MM)\n",
				    task_pid_nr(current));
		return -EIO;
	}

	if (get_user(ucmd.user_size, (u32 __user *)ucmd.ubuffer))
		return -EFAULT;
	if (ucmd.user_size < op->min_size)
		return -EINVAL;
	if (ucmd.user_size > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(ucmd.cmd, op->size, ucmd.ubuffer,
				    ucmd.user_size);
	if (ret)
		return ret;
	if (buf.hdr.flags & ~op->valid_flags)
		return -EINVAL;
	ucmd.flags = buf.hdr.flags;
	ucmd.size = op->size;
	return op->execute(&ucmd);
}

/*
 * Copy a command's struct back, up to the smaller of the caller's size and
 * the kernel's; size and flags read back as the caller set them.
 */
int ich9smi_ucmd_respond(struct ich9smi_ucmd *ucmd)
{
	struct ich9smi_ucmd_hdr *hdr = ucmd->cmd;

	hdr->size = ucmd->user_size;
	hdr->flags = ucmd->flags;
	if (copy_to_user(ucmd->ubuffer, ucmd->cmd,
			 min(ucmd->user_size, ucmd->size)))
		return -EFAULT;
	return 0;
}

static long ich9smi_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	return ich9smi_dispatch(NULL, cmd, arg);
}

static const struct file_operations ich9smi_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ich9smi_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice ich9smi_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "ich9smi",
	.fops = &ich9smi_fops,
	.mode = 0600,
};

static int __init ich9smi_init(void)
{
	int ret;

	ret = ich9smi_symbols_init();
	if (ret)
		return ret;

	ich9smi_debugfs_init();

	ret = misc_register(&ich9smi_misc);
	if (ret) {
		pr_err("cannot register /dev/ich9smi: %d\n", ret);
		goto remove_debugfs;
	}
	pr_info("/dev/ich9smi ready\n");
	return 0;

remove_debugfs:
	ich9smi_debugfs_exit();
	ich9smi_symbols_exit();
	return ret;
}

static void __exit ich9smi_exit(void)
{
	misc_deregister(&ich9smi_misc);
	ich9smi_debugfs_exit();
	ich9smi_symbols_exit();
}

module_init(ich9smi_init);
module_exit(ich9smi_exit);

MODULE_DESCRIPTION("ICH9 APM control port (0xB2/0xB3) for KVM guests, served in kernel");
MODULE_AUTHOR("The ich9smi developers");
MODULE_LICENSE("GPL");
