// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi out of tree: the KVM functions the driver calls, found when the
 * module loads and called through static calls.
 *
 * The module links to no KVM symbol. file_is_kvm() and
 * kvm_make_all_cpus_request() are taken with symbol_get(), which also pins
 * kvm.ko; from 6.18 KVM exports them to kvm-amd and kvm-intel only, which
 * modpost enforces but symbol_get() does not. kvm_io_bus_register_dev(),
 * kvm_io_bus_unregister_dev() and kvm_vm_ioctl_check_extension() are taken
 * with symbol_get() where a kernel carries the export patch, else found
 * through kallsyms by a kprobe that is registered only to read its address.
 *
 * Each static call is then pointed at its function, and the kernel patches
 * every call site into a direct call (or jmp) to it: no pointer is called,
 * so the sealed ENDBR of a function whose address KVM never takes, and CFI,
 * do not matter. Before /dev/ich9smi exists the module reads its call sites
 * back and refuses to load unless each is such a direct branch.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/static_call.h>
#include <linux/uaccess.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>
#include <asm/text-patching.h>

#include "ich9smi.h"

MODULE_SOFTDEP("pre: kvm");

DEFINE_STATIC_CALL_NULL(ich9smi_file_is_kvm, file_is_kvm);
DEFINE_STATIC_CALL_NULL(ich9smi_kvm_make_all_cpus_request,
			kvm_make_all_cpus_request);
DEFINE_STATIC_CALL_NULL(ich9smi_kvm_io_bus_register_dev,
			kvm_io_bus_register_dev);
DEFINE_STATIC_CALL_NULL(ich9smi_kvm_io_bus_unregister_dev,
			kvm_io_bus_unregister_dev);
DEFINE_STATIC_CALL_NULL(ich9smi_kvm_vm_ioctl_check_extension,
			kvm_vm_ioctl_check_extension);

/**
 * struct ich9smi_kvm_fn - a KVM function called through a static call
 * @name: the function's name
 * @key: its static call
 * @tramp: the static call's trampoline
 * @unexported: not exported by stock kernels, so looked up through
 *	kallsyms when symbol_get() does not find it
 * @addr: where the function starts, found at load
 * @held: a symbol_get() reference is held on @name
 * @sites: the module's static call sites that call it
 *
 * Written only by ich9smi_symbols_init(), before /dev/ich9smi exists.
 */
struct ich9smi_kvm_fn {
	const char *name;
	struct static_call_key *key;
	void *tramp;
	bool unexported;
	void *addr;
	bool held;
	unsigned int sites;
};

#define ICH9SMI_KVM_FN(fn, stock_unexported) {				\
	.name = #fn,							\
	.key = &STATIC_CALL_KEY(ich9smi_##fn),				\
	.tramp = STATIC_CALL_TRAMP_ADDR(ich9smi_##fn),			\
	.unexported = stock_unexported,					\
}

static struct ich9smi_kvm_fn ich9smi_kvm_fns[] = {
	ICH9SMI_KVM_FN(file_is_kvm, false),
	ICH9SMI_KVM_FN(kvm_make_all_cpus_request, false),
	ICH9SMI_KVM_FN(kvm_io_bus_register_dev, true),
	ICH9SMI_KVM_FN(kvm_io_bus_unregister_dev, true),
	ICH9SMI_KVM_FN(kvm_vm_ioctl_check_extension, true),
};

#define ICH9SMI_KVM_FNS_END	(ich9smi_kvm_fns + ARRAY_SIZE(ich9smi_kvm_fns))

/**
 * enum ich9smi_resolution - how the module found KVM's functions
 * @ICH9SMI_RESOLVE_SYMBOL_GET: KVM exports them (the series' export patch)
 * @ICH9SMI_RESOLVE_KALLSYMS: stock KVM; the unexported ones found by name
 *
 * Not ABI: printed at load and shown in debugfs. In tree they are linked.
 */
enum ich9smi_resolution {
	ICH9SMI_RESOLVE_SYMBOL_GET = 1,
	ICH9SMI_RESOLVE_KALLSYMS,
};

static enum ich9smi_resolution ich9smi_resolved_by;
/* How many of the functions start with a sealed ENDBR (a NOP). */
static unsigned int ich9smi_nr_sealed;

/*
 * "enforced" or "off", for the load line and debugfs. 6.1 has no
 * DISABLE_IBT: the CPU's bit alone does not mean enforced.
 */
static const char *ich9smi_ibt_state(void)
{
	return IS_ENABLED(CONFIG_X86_KERNEL_IBT) &&
	       cpu_feature_enabled(X86_FEATURE_IBT) ? "enforced" : "off";
}

static const char *ich9smi_resolution_name(enum ich9smi_resolution how)
{
	static const char * const names[] = {
		[ICH9SMI_RESOLVE_SYMBOL_GET] = "SYMBOL_GET",
		[ICH9SMI_RESOLVE_KALLSYMS] = "KALLSYMS",
	};

	if (how >= ARRAY_SIZE(names) || !names[how])
		return "none";
	return names[how];
}

/*
 * debugfs "resolution", for humans and tests, not ABI: how the module
 * reached KVM, whether IBT is enforced, and how many of the functions it
 * calls have their ENDBR sealed (an indirect call to those would fault).
 */
int ich9smi_resolution_show(struct seq_file *m, void *unused)
{
	seq_printf(m, "resolution: %s\nibt: %s\nsealed_endbr: %u\n",
		   ich9smi_resolution_name(ich9smi_resolved_by),
		   ich9smi_ibt_state(),
		   ich9smi_nr_sealed);
	return 0;
}

#ifdef CONFIG_X86_KERNEL_IBT
/*
 * kprobes give a function's address behind its ENDBR, sealed or not. What
 * sealing writes differs between kernels: take both from <asm/ibt.h>.
 * (is_endbr() would do, but takes the instruction up to 6.14 and its
 * address from 6.15.)
 */
static void *ich9smi_func_start(void *addr)
{
	void *start = addr - ENDBR_INSN_SIZE;
	u32 insn;

	if (!copy_from_kernel_nofault(&insn, start, sizeof(insn)) &&
	    (insn == gen_endbr() || insn == gen_endbr_poison()))
		return start;
	return addr;
}

/* Did the kernel seal (overwrite) the ENDBR that starts @addr? */
static bool ich9smi_endbr_sealed(const void *addr)
{
	u32 insn;

	return !copy_from_kernel_nofault(&insn, addr, sizeof(insn)) &&
	       insn == gen_endbr_poison();
}
#else
static void *ich9smi_func_start(void *addr)
{
	return addr;
}

static bool ich9smi_endbr_sealed(const void *addr)
{
	return false;
}
#endif

#ifdef CONFIG_KPROBES
/*
 * @name's address by kallsyms, through a kprobe registered disabled: it is
 * never armed, so it never fires.
 */
static int ich9smi_kallsyms_lookup(const char *name, void **addr)
{
	struct kprobe kp = {
		.symbol_name = name,
		.flags = KPROBE_FLAG_DISABLED,
	};
	int ret;

	ret = register_kprobe(&kp);
	if (ret)
		return ret;
	*addr = ich9smi_func_start(kp.addr);
	unregister_kprobe(&kp);
	return 0;
}
#else
static int ich9smi_kallsyms_lookup(const char *name, void **addr)
{
	return -EOPNOTSUPP;
}
#endif

static void ich9smi_put(struct ich9smi_kvm_fn *fn)
{
	if (fn->held)
		__symbol_put(fn->name);
	fn->held = false;
	fn->addr = NULL;
}

static void ich9smi_put_all(void)
{
	struct ich9smi_kvm_fn *fn;

	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++)
		ich9smi_put(fn);
}

/* symbol_get() found no @name: is KVM missing, or does it refuse us? */
static int ich9smi_not_exported(const char *name)
{
	void *addr;

	if (ich9smi_kallsyms_lookup(name, &addr)) {
		pr_err("%s not found: load kvm first\n", name);
		return -ENOENT;
	}
	pr_err("%s is loaded but symbol_get() refuses it to this module; use ich9smi built in tree\n",
	       name);
	return -EPERM;
}

static int ich9smi_lookup_unexported(struct ich9smi_kvm_fn *fn)
{
	int ret;

	ret = ich9smi_kallsyms_lookup(fn->name, &fn->addr);
	if (ret == -EOPNOTSUPP)
		pr_err("cannot find %s: it is not exported and this kernel has no kprobes (CONFIG_KPROBES)\n",
		       fn->name);
	else if (ret)
		pr_err("cannot find %s through kprobes: %d\n", fn->name, ret);
	return ret ? -ENOENT : 0;
}

static int ich9smi_resolve(void)
{
	struct ich9smi_kvm_fn *fn;
	bool exported = true;
	int ret;

	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++) {
		fn->addr = __symbol_get(fn->name);
		fn->held = !!fn->addr;
		if (!fn->held && !fn->unexported)
			return ich9smi_not_exported(fn->name);
		exported &= fn->held;
	}

	ich9smi_resolved_by = ICH9SMI_RESOLVE_SYMBOL_GET;
	if (!exported) {
		/* A kernel exports all of them (the export patch) or none. */
		for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++) {
			if (!fn->unexported)
				continue;
			ich9smi_put(fn);
			ret = ich9smi_lookup_unexported(fn);
			if (ret)
				return ret;
		}
		ich9smi_resolved_by = ICH9SMI_RESOLVE_KALLSYMS;
	}

	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++)
		if (ich9smi_endbr_sealed(fn->addr))
			ich9smi_nr_sealed++;
	return 0;
}

/* Point every static call at its function, or back at nothing. */
static void ich9smi_update_calls(bool resolved)
{
	struct ich9smi_kvm_fn *fn;

	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++)
		__static_call_update(fn->key, fn->tramp,
				     resolved ? fn->addr : NULL);
}

enum ich9smi_branch_kind {
	ICH9SMI_BRANCH_TRAMP,
	ICH9SMI_BRANCH_CALL,
	ICH9SMI_BRANCH_TAIL,
};

static const char * const ich9smi_branch_kinds[] = {
	[ICH9SMI_BRANCH_TRAMP] = "tramp",
	[ICH9SMI_BRANCH_CALL] = "call",
	[ICH9SMI_BRANCH_TAIL] = "tail",
};

/**
 * struct ich9smi_branch - one instruction of the module that enters KVM
 * @fn: the KVM function it must reach
 * @at: its address
 * @kind: a trampoline's jmp, a call site or a tail-call site
 * @insn: its bytes, as read back
 * @direct: @insn is a direct call (call site) or jmp (otherwise) to @fn
 */
struct ich9smi_branch {
	struct ich9smi_kvm_fn *fn;
	unsigned long at;
	enum ich9smi_branch_kind kind;
	u8 insn[CALL_INSN_SIZE];
	bool direct;
};

/*
 * With call depth tracking (retbleed=stuff) the kernel points calls at an
 * accounting thunk it writes into the padding before the function, and
 * the thunk runs on into the function.
 */
static bool ich9smi_call_thunk(unsigned long target, unsigned long func)
{
#ifdef CONFIG_CALL_THUNKS
	return cpu_feature_enabled(X86_FEATURE_CALL_DEPTH) &&
	       target < func && func - target <= CONFIG_FUNCTION_PADDING_BYTES;
#else
	return false;
#endif
}

static void ich9smi_branch_read(struct ich9smi_branch *br)
{
	unsigned long func = (unsigned long)br->fn->addr;
	bool call = br->kind == ICH9SMI_BRANCH_CALL;
	unsigned long target;
	s32 rel;

	br->direct = false;
	if (copy_from_kernel_nofault(br->insn, (void *)br->at,
				     sizeof(br->insn))) {
		memset(br->insn, 0, sizeof(br->insn));
		return;
	}
	if (br->insn[0] != (call ? CALL_INSN_OPCODE : JMP32_INSN_OPCODE))
		return;
	memcpy(&rel, &br->insn[1], sizeof(rel));
	target = br->at + sizeof(br->insn) + rel;
	br->direct = target == func || (call && ich9smi_call_thunk(target, func));
}

#ifdef CONFIG_HAVE_STATIC_CALL_INLINE
static struct ich9smi_kvm_fn *ich9smi_key_fn(unsigned long key)
{
	struct ich9smi_kvm_fn *fn;

	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++)
		if ((unsigned long)fn->key == key)
			return fn;
	return NULL;
}

/*
 * Branch @pos among the module's static call sites: 1 if it is one of
 * ours, 0 if it is another key's or lies in init text that is gone, -1
 * past the last site.
 */
static int ich9smi_site_get(unsigned int pos, struct ich9smi_branch *br)
{
	const struct static_call_site *site;
	unsigned long key;

	if (pos >= THIS_MODULE->num_static_call_sites)
		return -1;
	site = &THIS_MODULE->static_call_sites[pos];
	key = (unsigned long)&site->key + site->key;
	br->fn = ich9smi_key_fn(key & ~STATIC_CALL_SITE_FLAGS);
	if (!br->fn)
		return 0;
	if ((key & STATIC_CALL_SITE_INIT) &&
	    THIS_MODULE->state != MODULE_STATE_COMING)
		return 0;
	br->at = (unsigned long)&site->addr + site->addr;
	br->kind = key & STATIC_CALL_SITE_TAIL ? ICH9SMI_BRANCH_TAIL :
						 ICH9SMI_BRANCH_CALL;
	return 1;
}
#else
static int ich9smi_site_get(unsigned int pos, struct ich9smi_branch *br)
{
	return -1;
}
#endif

/*
 * Branch @pos: the trampolines first, then the module's static call sites.
 * Returns 1 and fills @br if it enters KVM, 0 to skip it, -1 at the end.
 */
static int ich9smi_branch_get(unsigned int pos, struct ich9smi_branch *br)
{
	int ret = 1;

	if (pos < ARRAY_SIZE(ich9smi_kvm_fns)) {
		br->fn = &ich9smi_kvm_fns[pos];
		br->at = (unsigned long)br->fn->tramp;
		br->kind = ICH9SMI_BRANCH_TRAMP;
	} else {
		ret = ich9smi_site_get(pos - ARRAY_SIZE(ich9smi_kvm_fns), br);
	}
	if (ret > 0)
		ich9smi_branch_read(br);
	return ret;
}

/* The next branch into KVM from branch *@pos on; false past the last. */
static bool ich9smi_next_branch(unsigned int *pos, struct ich9smi_branch *br)
{
	int ret;

	do {
		ret = ich9smi_branch_get((*pos)++, br);
	} while (!ret);
	return ret > 0;
}

/*
 * The proof that no call into KVM is indirect: every trampoline and every
 * call site jumps or calls straight to its function, and every function
 * has a call site (so that no call was left out of the sites the kernel
 * patched).
 */
static int ich9smi_check_calls(unsigned int *nr_sites)
{
	struct ich9smi_kvm_fn *fn;
	struct ich9smi_branch br;
	unsigned int pos = 0;

	*nr_sites = 0;
	while (ich9smi_next_branch(&pos, &br)) {
		if (!br.direct) {
			pr_err("%s %s at %pS is not a direct branch to it (%pS): %*phN\n",
			       br.fn->name, ich9smi_branch_kinds[br.kind],
			       (void *)br.at, br.fn->addr,
			       (int)sizeof(br.insn), br.insn);
			return -ENOEXEC;
		}
		if (br.kind != ICH9SMI_BRANCH_TRAMP) {
			br.fn->sites++;
			(*nr_sites)++;
		}
	}

	if (!IS_ENABLED(CONFIG_HAVE_STATIC_CALL_INLINE))
		return 0;
	for (fn = ich9smi_kvm_fns; fn < ICH9SMI_KVM_FNS_END; fn++) {
		if (!fn->sites) {
			pr_err("no static call site calls %s: its calls cannot be checked\n",
			       fn->name);
			return -ENOEXEC;
		}
	}
	return 0;
}

/*
 * debugfs, root only: one line per branch into KVM, "<function> <function
 * address> <branch address> <instruction bytes> <call|tail|tramp>", with
 * raw addresses so that a test can compare them with /proc/kallsyms.
 */
int ich9smi_kvm_calls_show(struct seq_file *m, void *unused)
{
	struct ich9smi_branch br;
	unsigned int pos = 0;

	while (ich9smi_next_branch(&pos, &br))
		seq_printf(m, "%s %lx %lx %*phN %s\n", br.fn->name,
			   (unsigned long)br.fn->addr, br.at,
			   (int)sizeof(br.insn), br.insn,
			   ich9smi_branch_kinds[br.kind]);
	return 0;
}

int ich9smi_symbols_init(void)
{
	unsigned int nr_sites;
	int ret;

	if (!IS_ENABLED(CONFIG_HAVE_STATIC_CALL)) {
		pr_err("this kernel has no static calls (CONFIG_HAVE_STATIC_CALL), so calls into KVM would be indirect; use ich9smi built in tree\n");
		return -EOPNOTSUPP;
	}

	ret = ich9smi_resolve();
	if (ret)
		goto put_all;

	ich9smi_update_calls(true);
	ret = ich9smi_check_calls(&nr_sites);
	if (ret)
		goto reset_calls;

	pr_info("KVM calls resolved by %s: %zu functions, %u call sites, all direct calls; IBT %s, %u sealed ENDBR\n",
		ich9smi_resolution_name(ich9smi_resolved_by),
		ARRAY_SIZE(ich9smi_kvm_fns), nr_sites,
		ich9smi_ibt_state(),
		ich9smi_nr_sealed);
	return 0;

reset_calls:
	ich9smi_update_calls(false);
put_all:
	ich9smi_put_all();
	ich9smi_resolved_by = 0;
	ich9smi_nr_sealed = 0;
	return ret;
}

void ich9smi_symbols_exit(void)
{
	ich9smi_put_all();
}
