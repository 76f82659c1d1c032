/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ich9smi: the ICH9 APM control port (0xB2/0xB3) of a KVM guest, served in
 * the host kernel.
 *
 * Every ioctl takes a pointer to a struct that starts with __u32 size and
 * __u32 flags; the caller sets size to the sizeof() of the struct it was
 * built with. The kernel accepts any size from the command's first published
 * version up to one page: a shorter struct is -EINVAL, a longer one than the
 * kernel knows must have a zero tail (-E2BIG otherwise). Output is written up
 * to the smaller of the caller's and the kernel's size, and size is left as
 * the caller set it. Unknown flags and non-zero reserved fields are -EINVAL.
 * See Documentation/virt/ich9smi.rst.
 */
#ifndef _UAPI_LINUX_ICH9SMI_H
#define _UAPI_LINUX_ICH9SMI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define ICH9SMI_API_VERSION		1

/* I/O ports of the APM block, fixed by the ICH9 datasheet. */
#define ICH9SMI_APM_CNT_PORT		0xb2
#define ICH9SMI_APM_STS_PORT		0xb3

/* APM_CNT commands that the VMM sees by default (ICH9 ACPI enable/disable). */
#define ICH9SMI_APM_ACPI_ENABLE		0x02
#define ICH9SMI_APM_ACPI_DISABLE	0x03

/* SMI_EN (PMBASE + 0x30) bit that gates SMIs from APM_CNT writes. */
#define ICH9SMI_SMI_EN_APMC_EN		(1U << 5)

/* SMI features, bit numbers as in QEMU's fw_cfg "etc/smi" negotiation. */
#define ICH9SMI_F_BROADCAST		(1ULL << 0)
#define ICH9SMI_F_CPU_HOTPLUG		(1ULL << 1)
#define ICH9SMI_F_CPU_HOT_UNPLUG	(1ULL << 2)
#define ICH9SMI_F_ALL			(ICH9SMI_F_BROADCAST | \
					 ICH9SMI_F_CPU_HOTPLUG | \
					 ICH9SMI_F_CPU_HOT_UNPLUG)

/**
 * struct ich9smi_info - ICH9SMI_INFO: what this module supports
 * @size: sizeof(struct ich9smi_info)
 * @flags: must be 0
 * @api_version: out, ICH9SMI_API_VERSION
 * @instances: out, number of devices currently attached to VMs
 * @features: out, every SMI feature bit the module implements
 */
struct ich9smi_info {
	__u32 size;
	__u32 flags;
	__u32 api_version;
	__u32 instances;
	__u64 features;
};

/* ich9smi_attach.flags */
#define ICH9SMI_ATTACH_SAME_MM		(1U << 0)

/**
 * struct ich9smi_attach - ICH9SMI_ATTACH: serve a VM's APM port in kernel
 * @size: sizeof(struct ich9smi_attach)
 * @flags: 0 or ICH9SMI_ATTACH_SAME_MM: only the process that created the VM
 *         (its address space) may attach, and the device fd then answers
 *         -EIO to every other process, as KVM's VM fd does
 * @vm_fd: a KVM VM file descriptor (from KVM_CREATE_VM)
 * @reserved: must be 0
 *
 * Returns a new device file descriptor (O_CLOEXEC) on success. The device
 * lives until that descriptor is closed.
 */
struct ich9smi_attach {
	__u32 size;
	__u32 flags;
	__s32 vm_fd;
	__u32 reserved;
};

/**
 * struct ich9smi_host_features - ICH9SMI_SET_HOST_FEATURES
 * @size: sizeof(struct ich9smi_host_features)
 * @flags: must be 0
 * @supported: SMI features the VMM offers to the guest, ICH9SMI_F_*
 *
 * -EINVAL for an unknown bit or CPU_HOT_UNPLUG without CPU_HOTPLUG; -EBUSY
 * while a negotiated set is locked (until ICH9SMI_RESET).
 */
struct ich9smi_host_features {
	__u32 size;
	__u32 flags;
	__u64 supported;
};

/**
 * struct ich9smi_negotiate - ICH9SMI_NEGOTIATE: the guest's "features ok"
 * @size: sizeof(struct ich9smi_negotiate)
 * @flags: must be 0
 * @requested: in, the feature set the guest requested
 * @negotiated: out, the negotiated set after validation
 * @features_ok: out, 1 when a set is negotiated and locked, else 0
 * @reserved: must be 0
 *
 * The input values of @negotiated and @features_ok are ignored.
 */
struct ich9smi_negotiate {
	__u32 size;
	__u32 flags;
	__u64 requested;
	__u64 negotiated;
	__u32 features_ok;
	__u32 reserved;
};

/**
 * struct ich9smi_reset - ICH9SMI_RESET: platform reset of the SMI features
 * @size: sizeof(struct ich9smi_reset)
 * @flags: must be 0
 */
struct ich9smi_reset {
	__u32 size;
	__u32 flags;
};

/**
 * struct ich9smi_smi_en - ICH9SMI_SET_SMI_EN: mirror of the SMI_EN register
 * @size: sizeof(struct ich9smi_smi_en)
 * @flags: must be 0
 * @smi_en: the value the VMM emulates; only ICH9SMI_SMI_EN_APMC_EN matters
 * @reserved: must be 0
 */
struct ich9smi_smi_en {
	__u32 size;
	__u32 flags;
	__u32 smi_en;
	__u32 reserved;
};

/**
 * struct ich9smi_exit_set - ICH9SMI_SET_EXIT_SET: APM_CNT values for the VMM
 * @size: sizeof(struct ich9smi_exit_set)
 * @flags: must be 0
 * @values: bitmap; bit V (values[V / 64] bit V % 64) set means a guest write
 *          of V to APM_CNT is not stored, raises no SMI and exits to the VMM
 *          as KVM_EXIT_IO
 */
struct ich9smi_exit_set {
	__u32 size;
	__u32 flags;
	__u64 values[4];
};

/**
 * struct ich9smi_state - ICH9SMI_GET_STATE / ICH9SMI_SET_STATE (migration)
 * @size: sizeof(struct ich9smi_state)
 * @flags: must be 0
 * @apm_cnt: APM_CNT register (port 0xB2)
 * @apm_sts: APM_STS register (port 0xB3)
 * @reserved0: must be 0
 * @smi_en: SMI_EN mirror
 * @host_features: features offered by the VMM
 * @requested_features: features the guest last requested
 * @negotiated_features: features in force
 * @features_ok: 1 when @negotiated_features is locked, else 0
 * @reserved1: must be 0
 * @exit_set: APM_CNT values passed on to the VMM, as in ich9smi_exit_set
 */
struct ich9smi_state {
	__u32 size;
	__u32 flags;
	__u8 apm_cnt;
	__u8 apm_sts;
	__u16 reserved0;
	__u32 smi_en;
	__u64 host_features;
	__u64 requested_features;
	__u64 negotiated_features;
	__u32 features_ok;
	__u32 reserved1;
	__u64 exit_set[4];
};

/* ich9smi_stats.flags */
#define ICH9SMI_STATS_CLEAR		(1U << 0)

/**
 * struct ich9smi_stats - ICH9SMI_GET_STATS: counters since attach or clear
 * @size: sizeof(struct ich9smi_stats)
 * @flags: 0 or ICH9SMI_STATS_CLEAR (zero the counters after reading them)
 * @cnt_writes: guest writes that covered APM_CNT (0xB2)
 * @sts_writes: guest writes of APM_STS alone (0xB3)
 * @reads: guest reads served
 * @smis_unicast: SMIs raised on the writing vCPU only
 * @smis_broadcast: SMIs raised on every vCPU
 * @vcpus_signalled: vCPUs an SMI was requested on, summed over all SMIs
 * @exits_to_vmm: APM_CNT writes passed on to the VMM (exit set)
 * @smis_suppressed: APM_CNT writes that raised no SMI because APMC_EN was 0
 */
struct ich9smi_stats {
	__u32 size;
	__u32 flags;
	__u64 cnt_writes;
	__u64 sts_writes;
	__u64 reads;
	__u64 smis_unicast;
	__u64 smis_broadcast;
	__u64 vcpus_signalled;
	__u64 exits_to_vmm;
	__u64 smis_suppressed;
};

#define ICH9SMI_TYPE			0xB2

enum {
	ICH9SMI_CMD_BASE = 0x40,
	ICH9SMI_CMD_INFO = ICH9SMI_CMD_BASE,
	ICH9SMI_CMD_ATTACH,
	ICH9SMI_CMD_SET_HOST_FEATURES,
	ICH9SMI_CMD_NEGOTIATE,
	ICH9SMI_CMD_RESET,
	ICH9SMI_CMD_SET_SMI_EN,
	ICH9SMI_CMD_SET_EXIT_SET,
	ICH9SMI_CMD_GET_STATE,
	ICH9SMI_CMD_SET_STATE,
	ICH9SMI_CMD_GET_STATS,
};

/* On /dev/ich9smi */
#define ICH9SMI_INFO		_IO(ICH9SMI_TYPE, ICH9SMI_CMD_INFO)
#define ICH9SMI_ATTACH		_IO(ICH9SMI_TYPE, ICH9SMI_CMD_ATTACH)

/* On a device fd returned by ICH9SMI_ATTACH */
#define ICH9SMI_SET_HOST_FEATURES _IO(ICH9SMI_TYPE, ICH9SMI_CMD_SET_HOST_FEATURES)
#define ICH9SMI_NEGOTIATE	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_NEGOTIATE)
#define ICH9SMI_RESET		_IO(ICH9SMI_TYPE, ICH9SMI_CMD_RESET)
#define ICH9SMI_SET_SMI_EN	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_SET_SMI_EN)
#define ICH9SMI_SET_EXIT_SET	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_SET_EXIT_SET)
#define ICH9SMI_GET_STATE	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_GET_STATE)
#define ICH9SMI_SET_STATE	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_SET_STATE)
#define ICH9SMI_GET_STATS	_IO(ICH9SMI_TYPE, ICH9SMI_CMD_GET_STATS)

#endif /* _UAPI_LINUX_ICH9SMI_H */
