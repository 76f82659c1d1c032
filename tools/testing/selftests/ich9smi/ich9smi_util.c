// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for the ich9smi selftests.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "../kselftest.h"
#include "ich9smi_util.h"

#define CMD(_cmd, _type, _on_dev, ...)					\
	{ .name = #_cmd, .cmd = ICH9SMI_##_cmd,				\
	  .size = sizeof(struct ich9smi_##_type), .on_dev = _on_dev,	\
	  __VA_ARGS__ }
#define RSV(_type, _field, _len) \
	{ .off = offsetof(struct ich9smi_##_type, _field), .len = _len }

const struct ich9smi_cmd_desc ich9smi_cmds[] = {
	CMD(INFO, info, false, .output = true),
	CMD(ATTACH, attach, false, .reserved = { RSV(attach, reserved, 4) },
	    .flags_ok = ICH9SMI_ATTACH_SAME_MM),
	CMD(SET_HOST_FEATURES, host_features, true),
	CMD(NEGOTIATE, negotiate, true, .output = true,
	    .reserved = { RSV(negotiate, reserved, 4) }),
	CMD(RESET, reset, true),
	CMD(SET_SMI_EN, smi_en, true, .reserved = { RSV(smi_en, reserved, 4) }),
	CMD(SET_EXIT_SET, exit_set, true),
	CMD(GET_STATE, state, true, .output = true),
	CMD(SET_STATE, state, true,
	    .reserved = { RSV(state, reserved0, 2), RSV(state, reserved1, 4) }),
	CMD(GET_STATS, stats, true, .output = true,
	    .flags_ok = ICH9SMI_STATS_CLEAR),
};

const unsigned int ich9smi_nr_cmds = ARRAY_SIZE(ich9smi_cmds);

const struct ich9smi_cmd_desc *ich9smi_cmd_find(unsigned long cmd)
{
	unsigned int i;

	for (i = 0; i < ich9smi_nr_cmds; i++)
		if (ich9smi_cmds[i].cmd == cmd)
			return &ich9smi_cmds[i];
	return NULL;
}

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

const char *ich9smi_unsupported(void)
{
	static char why[64];
	int fd = ich9smi_open();

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(why, sizeof(why), ICH9SMI_DEV_PATH ": %s", strerror(-fd));
	return why;
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

u64 ich9smi_rand(u64 *state)
{
	u64 z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

u64 ich9smi_seed(const char *env)
{
	const char *value = getenv(env);
	struct timespec now;
	u64 seed;

	if (value && *value)
		return strtoull(value, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &now);
	seed = (u64)now.tv_sec * 1000000000ull + now.tv_nsec;
	seed ^= (u64)getpid() << 32;
	return ich9smi_rand(&seed);
}

int ich9smi_trace_set(const char *dir, const char *file, const char *value)
{
	size_t len = strlen(value);
	char path[256];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		ret = -errno;
	close(fd);
	return ret;
}

char *ich9smi_trace_open(const char *events)
{
	static const char *const roots[] = {
		"/sys/kernel/tracing", "/sys/kernel/debug/tracing",
	};
	static unsigned int nr;
	char dir[128], enable[128];
	size_t i;

	snprintf(enable, sizeof(enable), "events/%s/enable", events);
	for (i = 0; i < ARRAY_SIZE(roots); i++) {
		snprintf(dir, sizeof(dir), "%s/instances/ich9smi_test_%d_%u",
			 roots[i], getpid(), nr++);
		if (mkdir(dir, 0700))
			continue;
		if (!ich9smi_trace_set(dir, enable, "1"))
			return strdup(dir);
		rmdir(dir);
	}
	return NULL;
}

void ich9smi_trace_close(char *dir)
{
	rmdir(dir);
	free(dir);
}
