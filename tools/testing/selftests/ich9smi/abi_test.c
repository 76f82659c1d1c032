// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi ABI tests: every ioctl's argument validation and errno, the
 * feature negotiation rules, state validation, and fd lifetimes. No guest
 * code runs here; see apm_test.c for that.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"

#define F_BC	ICH9SMI_F_BROADCAST
#define F_HP	ICH9SMI_F_CPU_HOTPLUG
#define F_HU	ICH9SMI_F_CPU_HOT_UNPLUG

/* From Linux 6.10's <linux/kvm.h>: the VM types KVM_CREATE_VM takes. */
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES	235
#endif
#define MAX_VM_TYPES		32

FIXTURE(ich9smi) {
	int kvm_fd;
	int ctl_fd;
	int vm_fd;
	int dev_fd;
};

FIXTURE_SETUP(ich9smi)
{
	self->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (self->kvm_fd < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
	self->ctl_fd = ich9smi_open();
	if (self->ctl_fd < 0)
		SKIP(return, ICH9SMI_DEV_PATH ": %s", strerror(-self->ctl_fd));
	self->vm_fd = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, self->vm_fd);
	self->dev_fd = ich9smi_attach_vm(self->ctl_fd, self->vm_fd);
	ASSERT_LE(0, self->dev_fd);
}

FIXTURE_TEARDOWN(ich9smi)
{
	if (self->dev_fd >= 0)
		close(self->dev_fd);
	if (self->vm_fd >= 0)
		close(self->vm_fd);
	if (self->ctl_fd >= 0)
		close(self->ctl_fd);
	if (self->kvm_fd >= 0)
		close(self->kvm_fd);
}

#define ARG_BUF_SIZE	8192

/* A valid all-zero argument of @size bytes, the VM fd filled in for ATTACH. */
static void fill_arg(char *buf, const struct ich9smi_cmd_desc *d, u32 size,
		     int other_vm_fd)
{
	memset(buf, 0, ARG_BUF_SIZE);
	memcpy(buf, &size, sizeof(size));
	if (d->cmd == ICH9SMI_ATTACH)
		memcpy(buf + offsetof(struct ich9smi_attach, vm_fd),
		       &other_vm_fd, sizeof(other_vm_fd));
}

/*
 * Run one command on @fd with a @size-byte argument that @mangle may spoil;
 * ATTACH gets a fresh VM made on @kvm_fd.
 */
static int run_cmd(int fd, int kvm_fd, const struct ich9smi_cmd_desc *d, u32 size,
		   void (*mangle)(char *buf, const void *ctx), const void *ctx)
{
	static char buf[ARG_BUF_SIZE];
	int vm_fd = -1, ret;

	if (d->cmd == ICH9SMI_ATTACH) {
		vm_fd = ich9smi_create_vm(kvm_fd);
		if (vm_fd < 0)
			return vm_fd;
	}
	fill_arg(buf, d, size, vm_fd);
	if (mangle)
		mangle(buf, ctx);
	ret = ich9smi_ioctl(fd, d->cmd, buf);
	if (d->cmd == ICH9SMI_ATTACH && ret >= 0) {
		close(ret);
		ret = 0;
	}
	if (vm_fd >= 0)
		close(vm_fd);
	return ret;
}

static void set_flags(char *buf, const void *ctx)
{
	memcpy(buf + 4, ctx, sizeof(u32));
}

static void set_tail(char *buf, const void *ctx)
{
	const struct ich9smi_cmd_desc *d = ctx;

	buf[d->size + 3] = 1;
}

static void set_reserved(char *buf, const void *ctx)
{
	const size_t *off = ctx;

	buf[*off] = 1;
}

TEST_F(ich9smi, arg_validation)
{
	const u32 unknown_flag = 1u << 31;
	size_t i, r;

	for (i = 0; i < ich9smi_nr_cmds; i++) {
		const struct ich9smi_cmd_desc *d = &ich9smi_cmds[i];
		int fd = d->on_dev ? self->dev_fd : self->ctl_fd;
		int other_fd = d->on_dev ? self->ctl_fd : self->dev_fd;
		int kvm = self->kvm_fd;
		u32 flag;

		TH_LOG("%s", d->name);
		/* The exact size and a longer one with a zero tail work. */
		EXPECT_EQ(0, run_cmd(fd, kvm, d, d->size, NULL, NULL));
		EXPECT_EQ(0, run_cmd(fd, kvm, d, d->size + 64, NULL, NULL));
		/* Too short, a non-zero tail, more than a page. */
		EXPECT_EQ(-EINVAL, run_cmd(fd, kvm, d, d->size - 1, NULL, NULL));
		EXPECT_EQ(-EINVAL, run_cmd(fd, kvm, d, 0, NULL, NULL));
		EXPECT_EQ(-E2BIG, run_cmd(fd, kvm, d, d->size + 8, set_tail, d));
		EXPECT_EQ(-E2BIG, run_cmd(fd, kvm, d, 4097, NULL, NULL));
		/* Unknown flags fail, known ones work. */
		EXPECT_EQ(-EINVAL, run_cmd(fd, kvm, d, d->size, set_flags,
					   &unknown_flag));
		for (flag = 1; flag; flag <<= 1) {
			if (flag & d->flags_ok)
				EXPECT_EQ(0, run_cmd(fd, kvm, d, d->size,
						     set_flags, &flag));
		}
		/* Each reserved field. */
		for (r = 0; r < 2 && d->reserved[r].len; r++) {
			size_t off = d->reserved[r].off + d->reserved[r].len - 1;

			EXPECT_EQ(-EINVAL, run_cmd(fd, kvm, d, d->size,
						   set_reserved, &off));
		}
		/* Bad pointers. */
		EXPECT_EQ(-EFAULT, ich9smi_ioctl(fd, d->cmd, NULL));
		EXPECT_EQ(-EFAULT, ich9smi_ioctl(fd, d->cmd, (void *)8));
		/* The other fd does not know the command. */
		EXPECT_EQ(-ENOTTY, ich9smi_ioctl(other_fd, d->cmd, NULL));
	}
}

TEST_F(ich9smi, unknown_commands)
{
	char buf[64] = { 0 };

	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->ctl_fd, _IO(ICH9SMI_TYPE, 0x3f),
					 buf));
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->dev_fd, _IO(ICH9SMI_TYPE, 0x3f),
					 buf));
	/* Past the last command; a command's number with other bits. */
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->dev_fd,
					 _IO(ICH9SMI_TYPE,
					     ICH9SMI_CMD_GET_STATS + 1), buf));
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->ctl_fd,
					 _IOWR(ICH9SMI_TYPE, ICH9SMI_CMD_INFO,
					       struct ich9smi_info), buf));
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->ctl_fd,
					 _IO(ICH9SMI_TYPE + 1,
					     ICH9SMI_CMD_INFO), buf));
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->dev_fd, KVM_CREATE_VCPU, 0));
	EXPECT_EQ(-ENOTTY, ich9smi_ioctl(self->ctl_fd, KVM_GET_API_VERSION,
					 0));
}

TEST_F(ich9smi, info)
{
	struct ich9smi_info info;

	ASSERT_EQ(0, ich9smi_get_info(self->ctl_fd, &info));
	EXPECT_EQ(ICH9SMI_API_VERSION, info.api_version);
	EXPECT_EQ(ICH9SMI_F_ALL, info.features);
	EXPECT_EQ(sizeof(info), info.size);
	EXPECT_LE(1, info.instances);
	TH_LOG("api_version %u features %#llx instances %u",
	       info.api_version, (unsigned long long)info.features,
	       info.instances);
}

/* Version 1 of every struct, as published: offsets a client relies on. */
static_assert(sizeof(struct ich9smi_info) == 24, "ich9smi_info");
static_assert(offsetof(struct ich9smi_info, instances) == 12, "instances");
static_assert(offsetof(struct ich9smi_info, features) == 16, "features");
static_assert(sizeof(struct ich9smi_attach) == 16, "ich9smi_attach");
static_assert(sizeof(struct ich9smi_host_features) == 16, "host_features");
static_assert(sizeof(struct ich9smi_negotiate) == 32, "ich9smi_negotiate");
static_assert(sizeof(struct ich9smi_reset) == 8, "ich9smi_reset");
static_assert(sizeof(struct ich9smi_smi_en) == 16, "ich9smi_smi_en");
static_assert(sizeof(struct ich9smi_exit_set) == 40, "ich9smi_exit_set");
static_assert(sizeof(struct ich9smi_state) == 80, "ich9smi_state");
static_assert(sizeof(struct ich9smi_stats) == 72, "ich9smi_stats");

TEST_F(ich9smi, attach_errors)
{
	int null_fd, vcpu_fd, dev2, vm2;

	/* Not a file descriptor. */
	EXPECT_EQ(-EBADF, ich9smi_attach_vm(self->ctl_fd, -1));
	EXPECT_EQ(-EBADF, ich9smi_attach_vm(self->ctl_fd, 1000000));
	/* Files that are not a KVM VM. */
	null_fd = open("/dev/null", O_RDWR);
	ASSERT_LE(0, null_fd);
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(self->ctl_fd, null_fd));
	close(null_fd);
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(self->ctl_fd, self->kvm_fd));
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(self->ctl_fd, self->ctl_fd));
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(self->ctl_fd, self->dev_fd));
	vcpu_fd = ich9smi_ioctl(self->vm_fd, KVM_CREATE_VCPU, 0);
	ASSERT_LE(0, vcpu_fd);
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(self->ctl_fd, vcpu_fd));
	close(vcpu_fd);
	/* One device per VM, however many times asked. */
	EXPECT_EQ(-EEXIST, ich9smi_attach_vm(self->ctl_fd, self->vm_fd));
	EXPECT_EQ(-EEXIST, ich9smi_attach_vm(self->ctl_fd, self->vm_fd));
	/* Another VM is fine, and so is re-attaching after close. */
	vm2 = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, vm2);
	dev2 = ich9smi_attach_vm(self->ctl_fd, vm2);
	ASSERT_LE(0, dev2);
	EXPECT_EQ(FD_CLOEXEC, fcntl(dev2, F_GETFD) & FD_CLOEXEC);
	close(dev2);
	dev2 = ich9smi_attach_vm(self->ctl_fd, vm2);
	EXPECT_LE(0, dev2);
	close(dev2);
	close(vm2);
}

/*
 * A VM without SMM (KVM_CAP_X86_SMM is 0 for it: SEV-ES, SEV-SNP, TDX) is
 * refused with EOPNOTSUPP; every other VM is accepted. Each VM type this
 * host can create is tried; a test machine without protected guests has
 * only SMM-capable ones. The answer must not depend on the caller's mm, as
 * KVM's own VM ioctls do: a child process attaches the parent's VM too.
 */
/* In a child (its own mm): 0 when every check on the fds holds. */
static int same_mm_child(int ctl_fd, const struct ich9smi_attach *at,
			 int same_mm_dev, int plain_dev)
{
	struct ich9smi_attach again = *at;
	struct ich9smi_state st;

	/* Neither attach nor use a SAME_MM device of another process... */
	if (ich9smi_ioctl(ctl_fd, ICH9SMI_ATTACH, &again) != -EIO)
		return 1;
	if (ich9smi_get_state(same_mm_dev, &st) != -EIO ||
	    ich9smi_set_smi_en(same_mm_dev, ICH9SMI_SMI_EN_APMC_EN) != -EIO)
		return 2;
	/* ...where a wrong command is still ENOTTY, checked first... */
	if (ich9smi_ioctl(same_mm_dev, ICH9SMI_INFO, &st) != -ENOTTY)
		return 3;
	/* ...while a device attached without the flag serves anyone. */
	if (ich9smi_get_state(plain_dev, &st))
		return 4;
	return 0;
}

/* SAME_MM keeps KVM's rule: a VM's fds work in the VM's process only. */
TEST_F(ich9smi, same_mm)
{
	struct ich9smi_attach at = {
		.size = sizeof(at),
		.flags = ICH9SMI_ATTACH_SAME_MM,
	};
	struct ich9smi_state st;
	int dev_fd, status;
	pid_t pid;

	at.vm_fd = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, at.vm_fd);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(ich9smi_ioctl(self->ctl_fd, ICH9SMI_ATTACH, &at) == -EIO ?
		      0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("a child attached with SAME_MM");

	dev_fd = ich9smi_ioctl(self->ctl_fd, ICH9SMI_ATTACH, &at);
	ASSERT_LE(0, dev_fd);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(same_mm_child(self->ctl_fd, &at, dev_fd, self->dev_fd));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child check %d failed", WEXITSTATUS(status));

	/* The VM's own process uses the device as usual. */
	EXPECT_EQ(0, ich9smi_set_smi_en(dev_fd, ICH9SMI_SMI_EN_APMC_EN));
	EXPECT_EQ(0, ich9smi_get_state(dev_fd, &st));
	EXPECT_EQ(ICH9SMI_SMI_EN_APMC_EN, st.smi_en);
	close(dev_fd);
	close(at.vm_fd);
}

TEST_F(ich9smi, vm_without_smm)
{
	int types, type, vm, smm, dev, pid, status, tried = 0;

	types = ich9smi_ioctl(self->kvm_fd, KVM_CHECK_EXTENSION,
			      (void *)KVM_CAP_VM_TYPES);
	if (types <= 0)
		types = 1;	/* before 6.10: the default type only */
	for (type = 0; type < MAX_VM_TYPES; type++) {
		if (!(types & (1 << type)))
			continue;
		vm = ich9smi_ioctl(self->kvm_fd, KVM_CREATE_VM,
				   (void *)(long)type);
		if (vm < 0) {
			TH_LOG("VM type %d: KVM_CREATE_VM: %s", type,
			       strerror(-vm));
			continue;
		}
		smm = ich9smi_ioctl(vm, KVM_CHECK_EXTENSION,
				    (void *)KVM_CAP_X86_SMM);
		dev = ich9smi_attach_vm(self->ctl_fd, vm);
		TH_LOG("VM type %d: KVM_CAP_X86_SMM %d, ATTACH %d", type, smm,
		       dev);
		EXPECT_EQ(smm > 0 ? 0 : -EOPNOTSUPP, dev < 0 ? dev : 0);
		if (dev >= 0)
			close(dev);
		close(vm);
		tried++;
	}
	EXPECT_LT(0, tried);

	vm = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, vm);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(ich9smi_attach_vm(self->ctl_fd, vm) >= 0 ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	close(vm);
}

TEST_F(ich9smi, default_state)
{
	struct ich9smi_state st;

	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
	EXPECT_EQ(0, st.apm_cnt);
	EXPECT_EQ(0, st.apm_sts);
	EXPECT_EQ(0, st.smi_en);
	EXPECT_EQ(0, st.host_features);
	EXPECT_EQ(0, st.requested_features);
	EXPECT_EQ(0, st.negotiated_features);
	EXPECT_EQ(0, st.features_ok);
	/* ACPI enable (2) and disable (3) go to the VMM by default. */
	EXPECT_EQ((1ull << 2) | (1ull << 3), st.exit_set[0]);
	EXPECT_EQ(0, st.exit_set[1] | st.exit_set[2] | st.exit_set[3]);
}

TEST_F(ich9smi, host_features)
{
	struct ich9smi_state st;
	u32 ok;
	u64 neg;

	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, 0));
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC));
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_HP));
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC | F_HP));
	EXPECT_EQ(-EINVAL, ich9smi_set_host_features(self->dev_fd, F_HU));
	EXPECT_EQ(-EINVAL, ich9smi_set_host_features(self->dev_fd,
						     F_BC | F_HU));
	EXPECT_EQ(-EINVAL, ich9smi_set_host_features(self->dev_fd, 1ull << 3));
	EXPECT_EQ(-EINVAL, ich9smi_set_host_features(self->dev_fd,
						     1ull << 63));
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, ICH9SMI_F_ALL));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
	EXPECT_EQ(ICH9SMI_F_ALL, st.host_features);

	/* Locked while a negotiation is in force, free again after reset. */
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, F_BC, &neg, &ok));
	ASSERT_EQ(1, ok);
	EXPECT_EQ(-EBUSY, ich9smi_set_host_features(self->dev_fd, F_BC));
	EXPECT_EQ(-EINVAL, ich9smi_set_host_features(self->dev_fd, F_HU));
	ASSERT_EQ(0, ich9smi_reset(self->dev_fd));
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC));
}

/* One negotiation from a fresh (reset) device. */
struct negotiation {
	u64 host;
	u64 requested;
	bool ok;
};

static const struct negotiation negotiations[] = {
	/* rule 5: accepted */
	{ F_BC, F_BC, true },
	{ F_BC, 0, true },
	{ F_BC | F_HP, F_BC | F_HP, true },
	{ ICH9SMI_F_ALL, ICH9SMI_F_ALL, true },
	{ ICH9SMI_F_ALL, F_BC, true },
	/* rule 2: a bit the host does not offer */
	{ 0, F_BC, false },
	{ F_BC, F_BC | F_HP, false },
	{ ICH9SMI_F_ALL, 1ull << 5, false },
	{ ICH9SMI_F_ALL, 1ull << 63, false },
	/* rule 3: hotplug bits without broadcast */
	{ F_BC | F_HP, F_HP, false },
	{ ICH9SMI_F_ALL, F_HP | F_HU, false },
	/* rule 4: hot unplug without hotplug */
	{ ICH9SMI_F_ALL, F_BC | F_HU, false },
};

TEST_F(ich9smi, negotiation_rules)
{
	struct ich9smi_state st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(negotiations); i++) {
		const struct negotiation *n = &negotiations[i];
		u32 ok;
		u64 neg;

		TH_LOG("host %#llx requested %#llx",
		       (unsigned long long)n->host,
		       (unsigned long long)n->requested);
		ASSERT_EQ(0, ich9smi_reset(self->dev_fd));
		ASSERT_EQ(0, ich9smi_set_host_features(self->dev_fd, n->host));
		ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, n->requested,
					       &neg, &ok));
		EXPECT_EQ(n->ok, ok);
		EXPECT_EQ(n->ok ? n->requested : 0, neg);
		ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
		EXPECT_EQ(n->requested, st.requested_features);
		EXPECT_EQ(n->ok ? n->requested : 0, st.negotiated_features);
		EXPECT_EQ(n->ok, st.features_ok);
	}
}

TEST_F(ich9smi, negotiation_lock_and_reset)
{
	struct ich9smi_state st;
	u32 ok;
	u64 neg;

	ASSERT_EQ(0, ich9smi_set_host_features(self->dev_fd, ICH9SMI_F_ALL));
	/* A rejected request leaves the negotiation open. */
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, F_HU, &neg, &ok));
	EXPECT_EQ(0, ok);
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, F_BC, &neg, &ok));
	EXPECT_EQ(1, ok);
	EXPECT_EQ(F_BC, neg);
	/* rule 1: once ok, nothing changes but the recorded request. */
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, F_BC | F_HP, &neg, &ok));
	EXPECT_EQ(1, ok);
	EXPECT_EQ(F_BC, neg);
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, 1ull << 40, &neg, &ok));
	EXPECT_EQ(1, ok);
	EXPECT_EQ(F_BC, neg);
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
	EXPECT_EQ(1ull << 40, st.requested_features);
	EXPECT_EQ(F_BC, st.negotiated_features);
	/* Reset clears requested, negotiated and ok; host stays. */
	ASSERT_EQ(0, ich9smi_reset(self->dev_fd));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
	EXPECT_EQ(0, st.requested_features);
	EXPECT_EQ(0, st.negotiated_features);
	EXPECT_EQ(0, st.features_ok);
	EXPECT_EQ(ICH9SMI_F_ALL, st.host_features);
	ASSERT_EQ(0, ich9smi_negotiate(self->dev_fd, F_BC | F_HP, &neg, &ok));
	EXPECT_EQ(1, ok);
	EXPECT_EQ(F_BC | F_HP, neg);
}

static struct ich9smi_state sample_state(void)
{
	struct ich9smi_state st = {
		.apm_cnt = 0x5a,
		.apm_sts = 0xa5,
		.smi_en = ICH9SMI_SMI_EN_APMC_EN | 0x1,
		.host_features = ICH9SMI_F_ALL,
		.requested_features = F_BC | F_HP,
		.negotiated_features = F_BC | F_HP,
		.features_ok = 1,
		.exit_set = { 0x8000000000000001ull, 2, 0, 1ull << 63 },
	};

	return st;
}

TEST_F(ich9smi, state_round_trip)
{
	const u64 exit_set[4] = { 0, 0, 0, 5 };
	struct ich9smi_state in = sample_state(), out;
	int dev2, vm2;

	ASSERT_EQ(0, ich9smi_set_state(self->dev_fd, &in));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &out));
	in.size = out.size;
	EXPECT_EQ(0, memcmp(&in, &out, sizeof(in)));

	/* Migrate to a second device: byte-identical state. */
	vm2 = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, vm2);
	dev2 = ich9smi_attach_vm(self->ctl_fd, vm2);
	ASSERT_LE(0, dev2);
	ASSERT_EQ(0, ich9smi_set_state(dev2, &out));
	ASSERT_EQ(0, ich9smi_get_state(dev2, &in));
	EXPECT_EQ(0, memcmp(&in, &out, sizeof(in)));
	close(dev2);
	close(vm2);

	/* Single-purpose setters land in the same state. */
	ASSERT_EQ(0, ich9smi_set_smi_en(self->dev_fd, 0xdeadbeef));
	ASSERT_EQ(0, ich9smi_set_exit_set(self->dev_fd, exit_set));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &out));
	EXPECT_EQ(0xdeadbeef, out.smi_en);
	EXPECT_EQ(0, out.exit_set[0]);
	EXPECT_EQ(5, out.exit_set[3]);
}

static void break_reserved0(struct ich9smi_state *s) { s->reserved0 = 1; }
static void break_reserved1(struct ich9smi_state *s) { s->reserved1 = 1; }
static void break_ok(struct ich9smi_state *s) { s->features_ok = 2; }
static void break_host(struct ich9smi_state *s) { s->host_features = F_BC | F_HU; }
static void break_host_bit(struct ich9smi_state *s) { s->host_features |= 1ull << 9; }
static void break_subset(struct ich9smi_state *s) { s->host_features = F_BC; }
static void break_hp_no_bc(struct ich9smi_state *s) { s->negotiated_features = F_HP; }
static void break_hu_no_hp(struct ich9smi_state *s) { s->negotiated_features = F_BC | F_HU; }

static void break_unlocked(struct ich9smi_state *s)
{
	s->features_ok = 0;
}

TEST_F(ich9smi, state_validation)
{
	void (*const breakers[])(struct ich9smi_state *) = {
		break_reserved0, break_reserved1, break_ok, break_host,
		break_host_bit, break_subset, break_hp_no_bc, break_hu_no_hp,
		break_unlocked,
	};
	struct ich9smi_state good = sample_state(), before, after;
	size_t i;

	ASSERT_EQ(0, ich9smi_set_state(self->dev_fd, &good));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &before));
	for (i = 0; i < ARRAY_SIZE(breakers); i++) {
		struct ich9smi_state bad = good;

		breakers[i](&bad);
		EXPECT_EQ(-EINVAL, ich9smi_set_state(self->dev_fd, &bad))
			TH_LOG("breaker %zu accepted", i);
	}
	/* A refused state changes nothing. */
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &after));
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));

	/* Not locked and nothing negotiated, with any request: valid. */
	good.features_ok = 0;
	good.negotiated_features = 0;
	good.requested_features = ~0ull;
	EXPECT_EQ(0, ich9smi_set_state(self->dev_fd, &good));
}

TEST_F(ich9smi, stats_start_at_zero)
{
	struct ich9smi_stats st;

	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st, 0));
	EXPECT_EQ(0, st.cnt_writes + st.sts_writes + st.reads +
		     st.smis_unicast + st.smis_broadcast + st.vcpus_signalled +
		     st.exits_to_vmm + st.smis_suppressed);
	ASSERT_EQ(0, ich9smi_get_stats(self->dev_fd, &st,
				       ICH9SMI_STATS_CLEAR));
	EXPECT_EQ(ICH9SMI_STATS_CLEAR, st.flags);
}

/* Output is truncated to the caller's size; the kernel writes no further. */
TEST_F(ich9smi, short_output_is_not_overrun)
{
	struct {
		struct ich9smi_info info;
		u64 guard[4];
	} big;

	memset(&big, 0, sizeof(big));
	big.info.size = sizeof(big);
	ASSERT_EQ(0, ich9smi_ioctl(self->ctl_fd, ICH9SMI_INFO, &big));
	EXPECT_EQ(ICH9SMI_API_VERSION, big.info.api_version);
	EXPECT_EQ(0, big.guard[0] | big.guard[1] | big.guard[2] |
		     big.guard[3]);
}

static int instances(int ctl_fd)
{
	struct ich9smi_info info;

	if (ich9smi_get_info(ctl_fd, &info))
		return -1;
	return info.instances;
}

/* The device outlives the VM fd; the VM outlives the device. */
TEST_F(ich9smi, close_vm_fd_first)
{
	struct ich9smi_state st;
	int base = instances(self->ctl_fd);

	ASSERT_EQ(0, close(self->vm_fd));
	self->vm_fd = -1;
	ASSERT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC));
	ASSERT_EQ(0, ich9smi_get_state(self->dev_fd, &st));
	EXPECT_EQ(F_BC, st.host_features);
	EXPECT_EQ(base, instances(self->ctl_fd));
	ASSERT_EQ(0, close(self->dev_fd));
	self->dev_fd = -1;
	EXPECT_EQ(base - 1, instances(self->ctl_fd));
}

TEST_F(ich9smi, close_device_first)
{
	int base = instances(self->ctl_fd), dev;

	ASSERT_EQ(0, close(self->dev_fd));
	self->dev_fd = -1;
	EXPECT_EQ(base - 1, instances(self->ctl_fd));
	/* The VM is untouched and can take a new device. */
	dev = ich9smi_attach_vm(self->ctl_fd, self->vm_fd);
	ASSERT_LE(0, dev);
	EXPECT_EQ(base, instances(self->ctl_fd));
	self->dev_fd = dev;
}

TEST_F(ich9smi, close_control_first)
{
	ASSERT_EQ(0, close(self->ctl_fd));
	self->ctl_fd = -1;
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC));
}

/* Each attach and detach waits for an SRCU grace period: slow in a debug kernel. */
TEST_F_TIMEOUT(ich9smi, attach_detach_many, 300)
{
	int base = instances(self->ctl_fd), i;

	for (i = 0; i < 1000; i++) {
		int vm = ich9smi_create_vm(self->kvm_fd);
		int dev;

		ASSERT_LE(0, vm);
		dev = ich9smi_attach_vm(self->ctl_fd, vm);
		ASSERT_LE(0, dev);
		/* Alternate the close order. */
		if (i & 1) {
			close(vm);
			close(dev);
		} else {
			close(dev);
			close(vm);
		}
	}
	EXPECT_EQ(base, instances(self->ctl_fd));
}

/* A VMM killed with its fds open leaves nothing behind. */
struct holder {
	int kvm_fd;
	int ctl_fd;
};

static int hold_device(void *arg)
{
	const struct holder *h = arg;
	int vm = ich9smi_create_vm(h->kvm_fd);

	return vm < 0 || ich9smi_attach_vm(h->ctl_fd, vm) < 0;
}

TEST_F(ich9smi, killed_holder)
{
	struct holder h = { .kvm_fd = self->kvm_fd, .ctl_fd = self->ctl_fd };
	int base = instances(self->ctl_fd);
	int pid;

	pid = ich9smi_fork_holder(hold_device, &h);
	ASSERT_LT(0, pid);
	EXPECT_EQ(base + 1, instances(self->ctl_fd));
	ASSERT_EQ(0, ich9smi_kill_holder(pid));
	EXPECT_EQ(base, instances(self->ctl_fd));
}

/* The device fd alone pins the module: rmmod while attached is refused. */
TEST_F(ich9smi, unload_while_attached)
{
	if (geteuid())
		SKIP(return, "needs root for delete_module");
	/* /dev/ich9smi pins the module too; only the device fd is left. */
	ASSERT_EQ(0, close(self->ctl_fd));
	self->ctl_fd = -1;
	EXPECT_EQ(-1, syscall(SYS_delete_module, "ich9smi", O_NONBLOCK));
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_EQ(0, ich9smi_set_host_features(self->dev_fd, F_BC));
}

TEST_HARNESS_MAIN
