// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for the ich9smi selftests.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "ich9smi_util.h"

int ich9smi_ioctl(int fd, unsigned long cmd, void *arg)
{
	int ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

int ich9smi_open(void)
{
	int fd = open(ICH9SMI_DEV_PATH, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int ich9smi_create_vm(int kvm_fd)
{
	int ret;

	/* KVM_CREATE_VM can fail transiently with EINTR. */
	do {
		ret = ich9smi_ioctl(kvm_fd, KVM_CREATE_VM, 0);
	} while (ret == -EINTR);
	return ret;
}

int ich9smi_attach_vm(int ctl_fd, int vm_fd)
{
	struct ich9smi_attach arg = { .size = sizeof(arg), .vm_fd = vm_fd };

	return ich9smi_ioctl(ctl_fd, ICH9SMI_ATTACH, &arg);
}

int ich9smi_get_info(int ctl_fd, struct ich9smi_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	return ich9smi_ioctl(ctl_fd, ICH9SMI_INFO, info);
}

int ich9smi_get_state(int dev_fd, struct ich9smi_state *state)
{
	memset(state, 0, sizeof(*state));
	state->size = sizeof(*state);
	return ich9smi_ioctl(dev_fd, ICH9SMI_GET_STATE, state);
}

int ich9smi_set_state(int dev_fd, const struct ich9smi_state *state)
{
	struct ich9smi_state arg = *state;

	arg.size = sizeof(arg);
	arg.flags = 0;
	return ich9smi_ioctl(dev_fd, ICH9SMI_SET_STATE, &arg);
}

int ich9smi_get_stats(int dev_fd, struct ich9smi_stats *stats, u32 flags)
{
	memset(stats, 0, sizeof(*stats));
	stats->size = sizeof(*stats);
	stats->flags = flags;
	return ich9smi_ioctl(dev_fd, ICH9SMI_GET_STATS, stats);
}

int ich9smi_set_host_features(int dev_fd, u64 supported)
{
	struct ich9smi_host_features arg = {
		.size = sizeof(arg),
		.supported = supported,
	};

	return ich9smi_ioctl(dev_fd, ICH9SMI_SET_HOST_FEATURES, &arg);
}

int ich9smi_set_smi_en(int dev_fd, u32 smi_en)
{
	struct ich9smi_smi_en arg = { .size = sizeof(arg), .smi_en = smi_en };

	return ich9smi_ioctl(dev_fd, ICH9SMI_SET_SMI_EN, &arg);
}

int ich9smi_set_exit_set(int dev_fd, const u64 values[4])
{
	struct ich9smi_exit_set arg = { .size = sizeof(arg) };

	memcpy(arg.values, values, sizeof(arg.values));
	return ich9smi_ioctl(dev_fd, ICH9SMI_SET_EXIT_SET, &arg);
}

int ich9smi_reset(int dev_fd)
{
	struct ich9smi_reset arg = { .size = sizeof(arg) };

	return ich9smi_ioctl(dev_fd, ICH9SMI_RESET, &arg);
}

int ich9smi_negotiate(int dev_fd, u64 requested, u64 *negotiated,
		      u32 *features_ok)
{
	struct ich9smi_negotiate arg = {
		.size = sizeof(arg),
		.requested = requested,
	};
	int ret;

	ret = ich9smi_ioctl(dev_fd, ICH9SMI_NEGOTIATE, &arg);
	if (ret)
		return ret;
	*negotiated = arg.negotiated;
	*features_ok = arg.features_ok;
	return 0;
}

int ich9smi_setup_smi(int dev_fd, u64 features)
{
	u32 features_ok;
	u64 negotiated;
	int ret;

	ret = ich9smi_set_host_features(dev_fd, features);
	if (ret)
		return ret;
	ret = ich9smi_negotiate(dev_fd, features, &negotiated, &features_ok);
	if (ret)
		return ret;
	if (!features_ok || negotiated != features)
		return -EPROTO;
	return ich9smi_set_smi_en(dev_fd, ICH9SMI_SMI_EN_APMC_EN);
}

int ich9smi_fork_holder(int (*setup)(void *arg), void *arg)
{
	int pipefd[2], pid;
	char c;

	if (pipe(pipefd))
		return -errno;
	pid = fork();
	if (pid < 0) {
		pid = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return pid;
	}
	if (!pid) {
		close(pipefd[0]);
		if (setup(arg) || write(pipefd[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	if (read(pipefd[0], &c, 1) != 1) {
		close(pipefd[0]);
		waitpid(pid, NULL, 0);
		return -ECHILD;
	}
	close(pipefd[0]);
	return pid;
}

int ich9smi_kill_holder(int pid)
{
	int status;

	if (kill(pid, SIGKILL) || waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -EPROTO;
}
