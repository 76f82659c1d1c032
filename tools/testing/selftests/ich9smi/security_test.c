// SPDX-License-Identifier: GPL-2.0
/*
 * The security model of Documentation/virt/ich9smi.rst, section 10:
 * /dev/ich9smi is root's (mode 0600) as the module creates it, and group
 * kvm's too (0660) where udev applies packaging/60-ich9smi.rules, as for
 * /dev/kvm. The test checks the policy in force: ICH9SMI_NODE_POLICY
 * ("module" or "udev") names it, else a running udev with the rule
 * installed means "udev". File descriptors carry the rights, so
 * a process that holds the control fd and a VM's fd (inherited, or passed
 * with SCM_RIGHTS) can attach after dropping every privilege, while one
 * that holds only the control fd cannot reach a VM it has no fd for; the
 * debugfs view is root's; and a guest's writes reach only its own vCPUs.
 *
 * The unprivileged side runs in a child that drops to nobody; its
 * EXPECT()s count, the harness shares _metadata with children.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define NOBODY			65534
#define RULE			"60-ich9smi.rules"
#define DEBUGFS_INSTANCES	"/sys/kernel/debug/ich9smi/instances"
#define CMD_SMI			0x42
#define WRITES			3
#define SMM_WAIT_MS		10000

/* guest_apm_loop's argument: @count writes of @cmd. */
#define LOOP_ARG(cmd, count)	((u32)(count) << 16 | (cmd))

static int open_errno(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

typedef void (*child_fn)(struct __test_metadata *_metadata, void *arg);

/*
 * Fork a child that drops to nobody, with no groups and no capabilities,
 * and runs @fn(@arg). Children use EXPECT(), never ASSERT().
 */
static pid_t start_as_nobody(struct __test_metadata *_metadata, child_fn fn,
			     void *arg)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		_exit(KSFT_FAIL);
	/* Dropped for good: root's files are out of reach. */
	EXPECT_EQ(NOBODY, geteuid());
	EXPECT_EQ(-EACCES, open_errno(ICH9SMI_DEV_PATH));
	fn(_metadata, arg);
	_exit(0);
}

static void wait_child(struct __test_metadata *_metadata, pid_t pid)
{
	int status;

	ASSERT_LT(0, pid);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

static void as_nobody(struct __test_metadata *_metadata, child_fn fn,
		      void *arg)
{
	wait_child(_metadata, start_as_nobody(_metadata, fn, arg));
}

/* The fds a test hands to the unprivileged child. */
struct fds {
	int ctl;
	int vm;
	int sock;
};

FIXTURE(security) {
	int kvm_fd;
	struct fds fds;
};

FIXTURE_SETUP(security)
{
	const char *why = ich9smi_unsupported();

	self->kvm_fd = -1;
	self->fds.ctl = -1;
	self->fds.vm = -1;
	if (why)
		SKIP(return, "%s", why);
	if (geteuid())
		SKIP(return, "needs root, to drop privileges");
	self->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (self->kvm_fd < 0)
		SKIP(return, "/dev/kvm: %s", strerror(errno));
}

FIXTURE_TEARDOWN(security)
{
	if (self->fds.ctl >= 0)
		close(self->fds.ctl);
	if (self->fds.vm >= 0)
		close(self->fds.vm);
	if (self->kvm_fd >= 0)
		close(self->kvm_fd);
}

/* Whether udev runs with the rule installed in one of its rule folders. */
static bool udev_rule_installed(void)
{
	static const char * const dirs[] = {
		"/etc/udev/rules.d", "/run/udev/rules.d",
		"/usr/lib/udev/rules.d", "/lib/udev/rules.d",
	};
	char path[128];
	unsigned int i;

	if (access("/run/udev/control", F_OK))
		return false;
	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], RULE);
		if (!access(path, R_OK))
			return true;
	}
	return false;
}

/* True when the udev rule's policy is in force, false for the module's. */
static bool udev_policy(struct __test_metadata *_metadata)
{
	const char *policy = getenv("ICH9SMI_NODE_POLICY");

	if (!policy)
		return udev_rule_installed();
	if (strcmp(policy, "udev") && strcmp(policy, "module"))
		ksft_exit_fail_msg("ICH9SMI_NODE_POLICY=%s: not udev or module\n",
				   policy);
	EXPECT_EQ(!strcmp(policy, "udev"), udev_rule_installed());
	return !strcmp(policy, "udev");
}

/* The kvm group's id, or -1 where there is none. */
static gid_t kvm_gid(void)
{
	struct group *gr = getgrnam("kvm");

	return gr ? gr->gr_gid : (gid_t)-1;
}

/* Root only as the module makes it; root and group kvm under the rule. */
TEST_F(security, device_node_mode)
{
	bool udev = udev_policy(_metadata);
	struct stat st;

	TH_LOG("policy in force: %s", udev ? "udev rule" : "module");
	ASSERT_EQ(0, stat(ICH9SMI_DEV_PATH, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0, st.st_uid);
	if (udev) {
		ASSERT_NE((gid_t)-1, kvm_gid());
		EXPECT_EQ(0660, st.st_mode & 07777);
		EXPECT_EQ(kvm_gid(), st.st_gid);
	} else {
		EXPECT_EQ(0600, st.st_mode & 07777);
		EXPECT_EQ(0, st.st_gid);
	}
}

/*
 * A member of group kvm, otherwise nobody, opens the node under the rule
 * and attaches a VM whose fd it inherited; without the rule it cannot
 * open the node.
 */
TEST_F(security, kvm_group_member)
{
	bool udev = udev_policy(_metadata);
	gid_t gid = kvm_gid();
	int vm_fd, dev_fd, ctl_fd, status;
	pid_t pid;

	if (gid == (gid_t)-1) {
		ASSERT_FALSE(udev);
		SKIP(return, "no group kvm on this system");
	}
	vm_fd = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, vm_fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (setgroups(1, &gid) || setgid(NOBODY) || setuid(NOBODY))
			_exit(KSFT_FAIL);
		ctl_fd = open(ICH9SMI_DEV_PATH, O_RDWR | O_CLOEXEC);
		if (!udev) {
			EXPECT_EQ(-1, ctl_fd);
			EXPECT_EQ(EACCES, errno);
			_exit(0);
		}
		EXPECT_LE(0, ctl_fd);
		dev_fd = ich9smi_attach_vm(ctl_fd, vm_fd);
		EXPECT_LE(0, dev_fd);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(vm_fd);
}

static void nothing(struct __test_metadata *_metadata, void *arg)
{
}

/* as_nobody() checks that the child cannot open the device. */
TEST_F(security, unprivileged_cannot_open)
{
	as_nobody(_metadata, nothing, NULL);
}

/* Attach with the fds held, and drive the device: no process check. */
static void attach_and_drive(struct __test_metadata *_metadata,
			     const struct fds *fds)
{
	struct ich9smi_info info;
	int dev_fd;

	EXPECT_EQ(0, ich9smi_get_info(fds->ctl, &info));
	dev_fd = ich9smi_attach_vm(fds->ctl, fds->vm);
	EXPECT_LE(0, dev_fd);
	if (dev_fd < 0)
		return;
	EXPECT_EQ(0, ich9smi_setup_smi(dev_fd, ICH9SMI_F_BROADCAST));
	EXPECT_EQ(0, close(dev_fd));
}

static void attach_inherited(struct __test_metadata *_metadata, void *arg)
{
	attach_and_drive(_metadata, arg);
}

TEST_F(security, inherited_fds_attach)
{
	self->fds.ctl = ich9smi_open();
	ASSERT_LE(0, self->fds.ctl);
	self->fds.vm = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, self->fds.vm);
	as_nobody(_metadata, attach_inherited, &self->fds);
}

/* SCM_RIGHTS: @nr fds over a socket. */
static int send_fds(int sock, const int *fds, unsigned int nr)
{
	char data = 'x', control[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control,
		.msg_controllen = CMSG_SPACE(nr * sizeof(int)),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(nr * sizeof(int));
	memcpy(CMSG_DATA(cmsg), fds, nr * sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

static int recv_fds(int sock, int *fds, unsigned int nr)
{
	char data, control[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control,
		.msg_controllen = sizeof(control),
	};
	struct cmsghdr *cmsg;

	if (recvmsg(sock, &msg, 0) != 1)
		return -errno;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS ||
	    cmsg->cmsg_len != CMSG_LEN(nr * sizeof(int)))
		return -EPROTO;
	memcpy(fds, CMSG_DATA(cmsg), nr * sizeof(int));
	return 0;
}

/* The child had neither fd when it dropped its privileges. */
static void attach_received(struct __test_metadata *_metadata, void *arg)
{
	const struct fds *parent = arg;
	int got[2];
	struct fds fds;

	EXPECT_EQ(0, recv_fds(parent->sock, got, 2));
	if (_metadata->exit_code)
		return;
	fds.ctl = got[0];
	fds.vm = got[1];
	attach_and_drive(_metadata, &fds);
}

TEST_F(security, passed_fds_attach)
{
	int sv[2], fds[2];
	pid_t pid;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	self->fds.sock = sv[1];
	pid = start_as_nobody(_metadata, attach_received, &self->fds);
	close(sv[1]);
	self->fds.ctl = ich9smi_open();
	ASSERT_LE(0, self->fds.ctl);
	self->fds.vm = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, self->fds.vm);
	fds[0] = self->fds.ctl;
	fds[1] = self->fds.vm;
	EXPECT_EQ(0, send_fds(sv[0], fds, 2));
	close(sv[0]);
	wait_child(_metadata, pid);
}

/*
 * The child keeps the control fd but not the VM's: the VM fd number means
 * nothing in its fd table, and the parent's fds are out of its reach.
 */
static void attach_without_vm_fd(struct __test_metadata *_metadata,
				 void *arg)
{
	const struct fds *fds = arg;
	char path[64];
	int null_fd, pidfd;

	EXPECT_EQ(-EBADF, ich9smi_attach_vm(fds->ctl, fds->vm));
	/* The same number naming another file of its own. */
	null_fd = open("/dev/null", O_RDWR);
	EXPECT_LE(0, null_fd);
	EXPECT_EQ(fds->vm, dup2(null_fd, fds->vm));
	EXPECT_EQ(-EINVAL, ich9smi_attach_vm(fds->ctl, fds->vm));
	close(fds->vm);
	close(null_fd);
	/* The parent's fd through /proc and pidfd_getfd(): ptrace rights. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", getppid(), fds->vm);
	EXPECT_EQ(-EACCES, open_errno(path));
	pidfd = syscall(SYS_pidfd_open, getppid(), 0);
	EXPECT_LE(0, pidfd);
	if (pidfd < 0)
		return;
	EXPECT_EQ(-1, syscall(SYS_pidfd_getfd, pidfd, fds->vm, 0));
	EXPECT_EQ(EPERM, errno);
	close(pidfd);
}

static void drop_vm_fd(struct __test_metadata *_metadata, void *arg)
{
	const struct fds *fds = arg;

	EXPECT_EQ(0, close(fds->vm));
	attach_without_vm_fd(_metadata, arg);
}

TEST_F(security, control_fd_alone_cannot_attach)
{
	struct ich9smi_info info;

	self->fds.ctl = ich9smi_open();
	ASSERT_LE(0, self->fds.ctl);
	self->fds.vm = ich9smi_create_vm(self->kvm_fd);
	ASSERT_LE(0, self->fds.vm);
	as_nobody(_metadata, drop_vm_fd, &self->fds);
	/* Nothing got attached, and the VM still takes a device. */
	ASSERT_EQ(0, ich9smi_get_info(self->fds.ctl, &info));
	EXPECT_EQ(0, info.instances);
	EXPECT_LE(0, ich9smi_attach_vm(self->fds.ctl, self->fds.vm));
}

static void debugfs_refused(struct __test_metadata *_metadata, void *arg)
{
	EXPECT_EQ(-EACCES, open_errno(DEBUGFS_INSTANCES));
}

TEST_F(security, debugfs_root_only)
{
	if (access(DEBUGFS_INSTANCES, R_OK))
		SKIP(return, DEBUGFS_INSTANCES ": %s", strerror(errno));
	as_nobody(_metadata, debugfs_refused, NULL);
}

/* Two VMs, both broadcast: A's guest writes; B sees nothing of it. */
TEST_F(security, guest_reaches_only_its_vm)
{
	struct vm *vms[2];
	int dev_fds[2], i, v;
	struct ich9smi_stats st;
	struct ich9smi_state state;

	if (vm_smm_unsupported())
		SKIP(return, "%s", vm_smm_unsupported());
	self->fds.ctl = ich9smi_open();
	ASSERT_LE(0, self->fds.ctl);
	for (i = 0; i < 2; i++) {
		vms[i] = vm_create(2, VM_IRQCHIP);
		dev_fds[i] = ich9smi_attach_vm(self->fds.ctl, vms[i]->fd);
		ASSERT_LE(0, dev_fds[i]);
		ASSERT_EQ(0, ich9smi_setup_smi(dev_fds[i], ICH9SMI_F_BROADCAST));
		/* Every vCPU but A's writer halts, taking SMIs. */
		for (v = !i; v < 2; v++) {
			vcpu_start(&vms[i]->vcpus[v], guest_halt, 0);
			vcpu_thread_start(&vms[i]->vcpus[v]);
		}
	}
	vcpu_start(&vms[0]->vcpus[0], guest_apm_loop,
		   LOOP_ARG(CMD_SMI, WRITES));
	for (i = 1; i <= WRITES; i++) {
		EXPECT_EQ(i, vcpu_sync(&vms[0]->vcpus[0]));
		/* Before the next write, lest SMIs merge on A's halted vCPU. */
		EXPECT_TRUE(vm_wait_smm_counts(vms[0], i, SMM_WAIT_MS));
	}
	/* Give a wrongly signalled vCPU of B time to show up. */
	sleep_ms(100);
	for (v = 0; v < 2; v++)
		EXPECT_EQ(0, vm_smm_count(vms[1], v));
	ASSERT_EQ(0, ich9smi_get_stats(dev_fds[1], &st, 0));
	EXPECT_EQ(0, st.cnt_writes + st.reads + st.vcpus_signalled);
	ASSERT_EQ(0, ich9smi_get_state(dev_fds[1], &state));
	EXPECT_EQ(0, state.apm_cnt);
	ASSERT_EQ(0, ich9smi_get_stats(dev_fds[0], &st, 0));
	EXPECT_EQ(WRITES, st.smis_broadcast);
	/* B's vCPUs are halted still: nothing made them leave the kernel. */
	for (v = 0; v < 2; v++)
		EXPECT_EQ(VCPU_STOPPED, vcpu_thread_stop(&vms[1]->vcpus[v]));
	for (i = 0; i < 2; i++) {
		vm_destroy(vms[i]);
		close(dev_fds[i]);
	}
}

TEST_HARNESS_MAIN
