/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the ich9smi selftests: the control device, attach, and ioctl
 * wrappers that return 0 or -errno.
 */
#ifndef SELFTEST_ICH9SMI_UTIL_H
#define SELFTEST_ICH9SMI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/ich9smi.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;

#define ICH9SMI_DEV_PATH	"/dev/ich9smi"

/* ioctl(fd, cmd, arg): 0 or a non-negative result, else -errno. */
int ich9smi_ioctl(int fd, unsigned long cmd, void *arg);

/* Open /dev/ich9smi; -errno on failure. */
int ich9smi_open(void);

/* Why /dev/ich9smi cannot be used here (a reason to skip), or NULL. */
const char *ich9smi_unsupported(void);

/* KVM_CREATE_VM on an open /dev/kvm fd; -errno on failure. */
int ich9smi_create_vm(int kvm_fd);

/* ICH9SMI_ATTACH: the device fd, else -errno. */
int ich9smi_attach_vm(int ctl_fd, int vm_fd);

int ich9smi_get_info(int ctl_fd, struct ich9smi_info *info);
int ich9smi_get_state(int dev_fd, struct ich9smi_state *state);
int ich9smi_set_state(int dev_fd, const struct ich9smi_state *state);
int ich9smi_get_stats(int dev_fd, struct ich9smi_stats *stats, u32 flags);
int ich9smi_set_host_features(int dev_fd, u64 supported);
int ich9smi_set_smi_en(int dev_fd, u32 smi_en);
int ich9smi_set_exit_set(int dev_fd, const u64 values[4]);
int ich9smi_reset(int dev_fd);

/*
 * ICH9SMI_NEGOTIATE with @requested; on success the outcome is in
 * *negotiated and *features_ok.
 */
int ich9smi_negotiate(int dev_fd, u64 requested, u64 *negotiated,
		      u32 *features_ok);

/*
 * Configure a device for SMIs: host features = negotiated = @features (0
 * for unicast), SMI_EN.APMC_EN set. Returns 0 or -errno.
 */
int ich9smi_setup_smi(int dev_fd, u64 features);

/*
 * Fork a child that runs @setup(@arg) (a VMM holding a device, say), tells
 * the parent it is ready and waits to be killed. Returns the child's pid
 * once it is ready, or -errno (-ECHILD when @setup failed).
 */
int ich9smi_fork_holder(int (*setup)(void *arg), void *arg);

/* SIGKILL a holder and reap it: 0 when it died of that signal. */
int ich9smi_kill_holder(int pid);

/*
 * The argument rules of every command. @size is the struct's (version 1)
 * size, @reserved lists byte offset and width of reserved fields, @flags_ok
 * the flags the command accepts; @output commands copy the struct back.
 */
struct ich9smi_cmd_desc {
	const char *name;
	unsigned long cmd;
	size_t size;
	bool on_dev;
	bool output;
	u32 flags_ok;
	struct {
		size_t off;
		size_t len;
	} reserved[2];
};

extern const struct ich9smi_cmd_desc ich9smi_cmds[];
extern const unsigned int ich9smi_nr_cmds;

/* The descriptor of @cmd, or NULL if it is not an ich9smi command. */
const struct ich9smi_cmd_desc *ich9smi_cmd_find(unsigned long cmd);

/*
 * A small PRNG (splitmix64) for the fuzzers and storms, so that a run
 * repeats from its seed. ich9smi_seed() takes the seed from the
 * environment variable @env (any strtoull() base) or else from the clock.
 */
u64 ich9smi_rand(u64 *state);
u64 ich9smi_seed(const char *env);

/*
 * A private tracefs instance with @events ("ich9smi" or
 * "ich9smi/<event>") enabled: its directory, or NULL without tracefs or
 * the events. ich9smi_trace_set() writes @value to the instance's @file;
 * ich9smi_trace_close() removes the instance.
 */
char *ich9smi_trace_open(const char *events);
int ich9smi_trace_set(const char *dir, const char *file, const char *value);
void ich9smi_trace_close(char *dir);

#endif /* SELFTEST_ICH9SMI_UTIL_H */
