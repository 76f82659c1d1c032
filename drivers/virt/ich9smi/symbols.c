// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi out of tree: reach kvm_io_bus_register_dev() and
 * kvm_io_bus_unregister_dev(), which stock kernels do not export.
 *
 * In order of preference:
 *  1. symbol_get(): a kernel carrying the export patch exports both;
 *  2. a kprobe on each function, registered only to read the address kprobes
 *     resolved through kallsyms, and removed at once.
 *
 * A pointer found the second way is called indirectly. With
 * CONFIG_X86_KERNEL_IBT the kernel seals (overwrites) the ENDBR of every
 * function whose address was never taken, and an indirect call to such a
 * function faults when IBT is active. Each pointer is therefore checked for
 * an ENDBR first; without one the module refuses to load while IBT is
 * active and only notes it otherwise.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <asm/cpufeature.h>

#include "ich9smi.h"

/*
 * From 6.18 KVM exports most of what ich9smi links against
 * (file_is_kvm(), kvm_make_all_cpus_request(), the vCPU kick) to kvm-amd
 * and kvm-intel only; no load-time lookup can stand in for all of them.
 */
#ifdef EXPORT_SYMBOL_FOR_KVM_INTERNAL
#error "KVM exports only to kvm-amd/kvm-intel here: build ich9smi in tree"
#endif

/* endbr64: f3 0f 1e fa; what the kernel seals it with: 66 0f 1f 00 */
#define ICH9SMI_ENDBR64		0xfa1e0ff3U
#define ICH9SMI_ENDBR_POISON	0x001f0f66U
#define ICH9SMI_ENDBR_SIZE	4

typedef int (*ich9smi_register_fn)(struct kvm *kvm, enum kvm_bus bus_idx,
				   gpa_t addr, int len,
				   struct kvm_io_device *dev);
typedef int (*ich9smi_unregister_fn)(struct kvm *kvm, enum kvm_bus bus_idx,
				     struct kvm_io_device *dev);

/* Written once by ich9smi_symbols_init(), before /dev/ich9smi exists. */
static ich9smi_register_fn ich9smi_register_dev;
static ich9smi_unregister_fn ich9smi_unregister_dev;
static enum ich9smi_resolution ich9smi_resolved_by;
static u32 ich9smi_info_flags;

enum ich9smi_resolution ich9smi_resolution(void)
{
	return ich9smi_resolved_by;
}

u32 ich9smi_symbols_info(void)
{
	return ich9smi_info_flags;
}

int ich9smi_io_bus_register(struct kvm *kvm, struct kvm_io_device *iodev)
{
	lockdep_assert_held(&kvm->slots_lock);

	return ich9smi_register_dev(kvm, KVM_PIO_BUS, ICH9SMI_PORT_BASE,
				    ICH9SMI_PORT_LEN, iodev);
}

int ich9smi_io_bus_unregister(struct kvm *kvm, struct kvm_io_device *iodev)
{
	lockdep_assert_held(&kvm->slots_lock);

	return ich9smi_unregister_dev(kvm, KVM_PIO_BUS, iodev);
}

static u32 ich9smi_insn(unsigned long addr)
{
	u32 insn;

	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)))
		return 0;
	return insn;
}

static bool ich9smi_has_endbr(unsigned long addr)
{
	return ich9smi_insn(addr) == ICH9SMI_ENDBR64;
}

static bool ich9smi_get_exports(void)
{
	ich9smi_register_dev = symbol_get(kvm_io_bus_register_dev);
	ich9smi_unregister_dev = symbol_get(kvm_io_bus_unregister_dev);
	if (ich9smi_register_dev && ich9smi_unregister_dev)
		return true;

	if (ich9smi_register_dev)
		symbol_put(kvm_io_bus_register_dev);
	if (ich9smi_unregister_dev)
		symbol_put(kvm_io_bus_unregister_dev);
	ich9smi_register_dev = NULL;
	ich9smi_unregister_dev = NULL;
	return false;
}

#ifdef CONFIG_KPROBES
static unsigned long ich9smi_kprobe_lookup(const char *name)
{
	struct kprobe kp = { .symbol_name = name };
	unsigned long addr;
	int ret;

	ret = register_kprobe(&kp);
	if (ret) {
		pr_err("cannot find %s through kprobes: %d\n", name, ret);
		return 0;
	}
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);

	/*
	 * With IBT, kprobes place a probe at a function's entry after its
	 * ENDBR, or after the NOP that replaced it when it was sealed.
	 */
	if (IS_ENABLED(CONFIG_X86_KERNEL_IBT)) {
		u32 insn = ich9smi_insn(addr - ICH9SMI_ENDBR_SIZE);

		if (insn == ICH9SMI_ENDBR64 || insn == ICH9SMI_ENDBR_POISON)
			addr -= ICH9SMI_ENDBR_SIZE;
	}
	return addr;
}
#else
static unsigned long ich9smi_kprobe_lookup(const char *name)
{
	pr_err("cannot find %s: this kernel has no kprobes (CONFIG_KPROBES) and does not export it\n",
	       name);
	return 0;
}
#endif

/* May the module call @addr indirectly? */
static int ich9smi_check_callable(const char *name, unsigned long addr)
{
	if (!IS_ENABLED(CONFIG_X86_KERNEL_IBT) || ich9smi_has_endbr(addr))
		return 0;

	ich9smi_info_flags |= ICH9SMI_INFO_ENDBR_SEALED;
	if (cpu_feature_enabled(X86_FEATURE_IBT)) {
		pr_err("%s has no ENDBR (sealed at load) and IBT is active: an indirect call would fault; boot with ibt=off or use a kernel that exports it\n",
		       name);
		return -EOPNOTSUPP;
	}
	pr_notice("%s has no ENDBR (sealed at load); IBT is not active, so calling it is safe\n",
		  name);
	return 0;
}

static int ich9smi_lookup(const char *name, unsigned long *addr)
{
	*addr = ich9smi_kprobe_lookup(name);
	if (!*addr)
		return -ENOENT;
	return ich9smi_check_callable(name, *addr);
}

int ich9smi_symbols_init(void)
{
	unsigned long reg, unreg;
	int ret;

	if (ich9smi_get_exports()) {
		ich9smi_resolved_by = ICH9SMI_RESOLVE_SYMBOL_GET;
		pr_info("KVM I/O bus functions resolved by symbol_get (exported)\n");
		return 0;
	}

	ret = ich9smi_lookup("kvm_io_bus_register_dev", &reg);
	if (ret)
		return ret;
	ret = ich9smi_lookup("kvm_io_bus_unregister_dev", &unreg);
	if (ret)
		return ret;

	ich9smi_register_dev = (ich9smi_register_fn)reg;
	ich9smi_unregister_dev = (ich9smi_unregister_fn)unreg;
	ich9smi_resolved_by = ICH9SMI_RESOLVE_KALLSYMS;
	pr_info("KVM I/O bus functions resolved through kallsyms (not exported)\n");
	return 0;
}

void ich9smi_symbols_exit(void)
{
	if (ich9smi_resolved_by != ICH9SMI_RESOLVE_SYMBOL_GET)
		return;
	symbol_put(kvm_io_bus_register_dev);
	symbol_put(kvm_io_bus_unregister_dev);
}
