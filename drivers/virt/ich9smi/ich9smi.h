/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ich9smi private definitions.
 */
#ifndef __ICH9SMI_H
#define __ICH9SMI_H

#include <linux/kref.h>
#include <linux/kvm_host.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <kvm/iodev.h>
#include <linux/ich9smi.h>

/* The device decodes APM_CNT and APM_STS: two byte ports from 0xB2. */
#define ICH9SMI_PORT_BASE	ICH9SMI_APM_CNT_PORT
#define ICH9SMI_PORT_LEN	2

#define ICH9SMI_EXIT_SET_BITS	256

/**
 * enum ich9smi_action - what a guest write of APM_CNT caused
 * @ICH9SMI_ACT_NONE: APM_STS alone was written
 * @ICH9SMI_ACT_EXIT: the value is in the exit set, passed on to the VMM
 * @ICH9SMI_ACT_SUPPRESSED: SMI_EN.APMC_EN is clear, no SMI
 * @ICH9SMI_ACT_UNICAST: SMI raised on the writing vCPU
 * @ICH9SMI_ACT_BROADCAST: SMI raised on every vCPU
 */
enum ich9smi_action {
	ICH9SMI_ACT_NONE,
	ICH9SMI_ACT_EXIT,
	ICH9SMI_ACT_SUPPRESSED,
	ICH9SMI_ACT_UNICAST,
	ICH9SMI_ACT_BROADCAST,
};

/**
 * struct ich9smi_counters - guest activity, reported by ICH9SMI_GET_STATS
 * @cnt_writes: writes that covered APM_CNT
 * @sts_writes: writes of APM_STS alone
 * @reads: reads served
 * @smis_unicast: SMIs raised on the writing vCPU
 * @smis_broadcast: SMIs raised on every vCPU
 * @vcpus_signalled: vCPUs an SMI was requested on
 * @exits_to_vmm: APM_CNT writes left to the VMM (exit set)
 * @smis_suppressed: APM_CNT writes with SMI_EN.APMC_EN clear
 */
struct ich9smi_counters {
	u64 cnt_writes;
	u64 sts_writes;
	u64 reads;
	u64 smis_unicast;
	u64 smis_broadcast;
	u64 vcpus_signalled;
	u64 exits_to_vmm;
	u64 smis_suppressed;
};

/**
 * struct ich9smi_dev - the APM block of one VM
 * @iodev: KVM PIO bus device covering 0xB2-0xB3
 * @kvm: the VM
 * @vm_file: the VM's file, held for the life of this struct: it keeps the VM
 *           and KVM's modules (kvm and kvm-amd/kvm-intel) alive
 * @refs: one reference for the device fd, one while on the PIO bus
 * @node: entry in ich9smi_devices, under ich9smi_devices_lock
 * @id: number naming this device in debugfs
 * @debugfs: this device's debugfs directory
 * @same_mm: only the VM's own process may use the device fd
 * @on_bus: @iodev is registered on the PIO bus; written under
 *          kvm->slots_lock or by the bus destructor once no vCPU can reach it
 * @lock: protects every field below it; taken by vCPUs on guest accesses and
 *        by the ioctls, never sleeps
 * @apm_cnt: APM_CNT register
 * @apm_sts: APM_STS register
 * @smi_en: SMI_EN mirror set by the VMM
 * @host_features: SMI features the VMM offers
 * @requested: SMI features the guest last requested
 * @negotiated: SMI features in force
 * @features_ok: @negotiated is locked until reset
 * @exit_set: APM_CNT values passed on to the VMM
 * @counters: what the guest did; under @lock with the registers, so that
 *            reading and clearing them loses nothing
 */
struct ich9smi_dev {
	struct kvm_io_device iodev;
	struct kvm *kvm;
	struct file *vm_file;
	struct kref refs;
	struct list_head node;
	unsigned int id;
	bool same_mm;
	bool on_bus;
	struct dentry *debugfs;

	spinlock_t lock; /* see @lock above */
	u8 apm_cnt;
	u8 apm_sts;
	u32 smi_en;
	u64 host_features;
	u64 requested;
	u64 negotiated;
	bool features_ok;
	DECLARE_BITMAP(exit_set, ICH9SMI_EXIT_SET_BITS);
	struct ich9smi_counters counters;
};

static inline struct ich9smi_dev *to_ich9smi_dev(struct kvm_io_device *iodev)
{
	return container_of(iodev, struct ich9smi_dev, iodev);
}

/* apm.c: the guest-facing side */
extern const struct kvm_io_device_ops ich9smi_iodev_ops;
bool ich9smi_features_valid(u64 features);
bool ich9smi_negotiation_valid(u64 features);
void ich9smi_negotiate_locked(struct ich9smi_dev *dev, u64 requested);
void ich9smi_reset_locked(struct ich9smi_dev *dev);
void ich9smi_init_locked(struct ich9smi_dev *dev);

/* dev.c: the device fd */
int ich9smi_attach(struct file *vm_file, u32 flags);
unsigned int ich9smi_instances(void);
void ich9smi_dev_put(struct ich9smi_dev *dev);

/* debugfs.c: for humans, not ABI */
void ich9smi_debugfs_init(void);
void ich9smi_debugfs_exit(void);
void ich9smi_debugfs_add(struct ich9smi_dev *dev);
void ich9smi_debugfs_remove(struct ich9smi_dev *dev);

/**
 * struct ich9smi_ucmd - one ioctl, as main.c's table hands it to a handler
 * @dev: the device of a device-fd command; NULL on /dev/ich9smi
 * @ubuffer: the caller's struct
 * @user_size: its size as the caller set it
 * @flags: its flags, already checked against the command's valid flags
 * @size: the kernel's size of the struct
 * @cmd: the struct, copied in: @size bytes, zero beyond the caller's
 */
struct ich9smi_ucmd {
	struct ich9smi_dev *dev;
	void __user *ubuffer;
	u32 user_size;
	u32 flags;
	u32 size;
	void *cmd;
};

/* main.c */
long ich9smi_dispatch(struct ich9smi_dev *dev, unsigned int cmd,
		      unsigned long arg);
int ich9smi_ucmd_respond(struct ich9smi_ucmd *ucmd);

/* dev.c: the device fd's commands */
int ich9smi_set_host_features(struct ich9smi_ucmd *ucmd);
int ich9smi_negotiate(struct ich9smi_ucmd *ucmd);
int ich9smi_reset(struct ich9smi_ucmd *ucmd);
int ich9smi_set_smi_en(struct ich9smi_ucmd *ucmd);
int ich9smi_set_exit_set(struct ich9smi_ucmd *ucmd);
int ich9smi_get_state(struct ich9smi_ucmd *ucmd);
int ich9smi_set_state(struct ich9smi_ucmd *ucmd);
int ich9smi_get_stats(struct ich9smi_ucmd *ucmd);

/*
 * The KVM functions the driver calls, which KVM exports to it:
 * file_is_kvm(), kvm_make_all_cpus_request(), kvm_io_bus_register_dev(),
 * kvm_io_bus_unregister_dev() and kvm_vm_ioctl_check_extension().
 */
#ifdef ICH9SMI_OOT
/*
 * Out of tree the module links to none of them. Every call goes through
 * ich9smi_kvm(fn): a static call, pointed at the function when the module
 * loads (symbols.c) and patched by the kernel into a direct call, which
 * needs neither an ENDBR nor a CFI hash at the callee. The upstream series
 * (scripts/patches.sh) leaves this block out and calls the functions.
 */
#include <linux/seq_file.h>
#include <linux/static_call.h>

#define ich9smi_kvm(fn)	static_call(ich9smi_##fn)

DECLARE_STATIC_CALL(ich9smi_file_is_kvm, file_is_kvm);
DECLARE_STATIC_CALL(ich9smi_kvm_make_all_cpus_request,
		    kvm_make_all_cpus_request);
DECLARE_STATIC_CALL(ich9smi_kvm_io_bus_register_dev, kvm_io_bus_register_dev);
DECLARE_STATIC_CALL(ich9smi_kvm_io_bus_unregister_dev,
		    kvm_io_bus_unregister_dev);
DECLARE_STATIC_CALL(ich9smi_kvm_vm_ioctl_check_extension,
		    kvm_vm_ioctl_check_extension);

int ich9smi_symbols_init(void);
void ich9smi_symbols_exit(void);
int ich9smi_kvm_calls_show(struct seq_file *m, void *unused);
int ich9smi_resolution_show(struct seq_file *m, void *unused);

/* The typed allocators came with 7.0 (and a few stable updates). */
#ifndef kzalloc_obj
#define kzalloc_obj(P, gfp)	kzalloc(sizeof(P), gfp)
#endif
#else
#define ich9smi_kvm(fn)	fn

static inline int ich9smi_symbols_init(void)
{
	return 0;
}

static inline void ich9smi_symbols_exit(void)
{
}
#endif

#endif /* __ICH9SMI_H */
