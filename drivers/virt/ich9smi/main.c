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

#include <linux/cpufeature.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kvm_host.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "ich9smi.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

/*
 * Every argument struct starts with __u32 size and __u32 flags; flags
 * outside @valid_flags are -EINVAL. Later versions of a struct
 * only grow: sizes from the first version's up are accepted, a longer
 * struct than the kernel knows must end in zeroes, and the fields the
 * caller's version lacks read as zero.
 */
int ich9smi_copy_in(void *karg, size_t ksize, size_t minsz, u32 valid_flags,
		    void __user *uarg, u32 *usize)
{
	const u32 *hdr = karg;	/* size, flags */
	u32 size;
	int ret;

	if (get_user(size, (u32 __user *)uarg))
		return -EFAULT;
	if (size < minsz)
		return -EINVAL;
	if (size > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(karg, ksize, uarg, size);
	if (ret)
		return ret;
	if (hdr[1] & ~valid_flags)
		return -EINVAL;
	if (usize)
		*usize = size;
	return 0;
}

int ich9smi_copy_out(void __user *uarg, u32 usize, const void *karg,
		     size_t ksize)
{
	if (copy_to_user(uarg, karg, min_t(size_t, usize, ksize)))
		return -EFAULT;
	return 0;
}

static long ich9smi_info(void __user *argp)
{
	struct ich9smi_info arg;
	u32 usize;
	int ret;

	ret = ich9smi_copy_in(&arg, sizeof(arg),
			      ICH9SMI_MINSZ(info, instances), 0,
			      argp, &usize);
	if (ret)
		return ret;

	memset(&arg, 0, sizeof(arg));
	arg.size = usize;
	arg.api_version = ICH9SMI_API_VERSION;
	arg.resolution = ich9smi_resolution();
	arg.features = ICH9SMI_F_ALL;
	arg.info_flags = ich9smi_symbols_info();
	if (cpu_feature_enabled(X86_FEATURE_IBT))
		arg.info_flags |= ICH9SMI_INFO_IBT_ACTIVE;
	arg.instances = ich9smi_instances();

	return ich9smi_copy_out(argp, usize, &arg, sizeof(arg));
}

static long ich9smi_ioctl_attach(void __user *argp)
{
	struct ich9smi_attach arg;
	struct file *vm_file;
	int ret;

	ret = ich9smi_copy_in(&arg, sizeof(arg),
			      ICH9SMI_MINSZ(attach, reserved), 0,
			      argp, NULL);
	if (ret)
		return ret;
	if (arg.reserved)
		return -EINVAL;

	vm_file = fget(arg.vm_fd);
	if (!vm_file)
		return -EBADF;

	if (ich9smi_kvm(file_is_kvm)(vm_file)) {
		ret = ich9smi_attach(vm_file);
	} else {
		pr_info_ratelimited("pid %d: fd %d is not a KVM VM\n",
				    task_pid_nr(current), arg.vm_fd);
		ret = -EINVAL;
	}

	fput(vm_file);
	return ret;
}

static long ich9smi_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case ICH9SMI_INFO:
		return ich9smi_info(argp);
	case ICH9SMI_ATTACH:
		return ich9smi_ioctl_attach(argp);
	default:
		return -ENOTTY;
	}
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

const char *ich9smi_resolution_name(enum ich9smi_resolution resolution)
{
	static const char * const names[] = {
		[ICH9SMI_RESOLVE_LINKED] = "LINKED",
		[ICH9SMI_RESOLVE_SYMBOL_GET] = "SYMBOL_GET",
		[ICH9SMI_RESOLVE_KALLSYMS] = "KALLSYMS",
	};

	if (resolution >= ARRAY_SIZE(names) || !names[resolution])
		return "none";
	return names[resolution];
}

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
	pr_info("/dev/ich9smi ready, KVM I/O bus resolution: %s\n",
		ich9smi_resolution_name(ich9smi_resolution()));
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
