// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures, as iommufd's fail_nth test makes them: every ioctl,
 * ATTACH included, runs with its first, second, ... n-th allocation failing
 * (the task's /proc/thread-self/fail-nth, with failslab and
 * fail_page_alloc told to fail sleeping allocations too) until a run
 * makes fewer than n allocations and succeeds. Each failed run must return
 * ENOMEM and leave everything as it was: no device, or the device still
 * attached and usable, which the same call without a fault then shows.
 * Leaks and warnings are the guest's kmemleak and log checks to find.
 *
 * Needs a kernel with CONFIG_FAULT_INJECTION_DEBUG_FS, CONFIG_FAILSLAB and
 * CONFIG_FAIL_PAGE_ALLOC (make check's debug kernel); it skips elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"

#define FAIL_NTH	"/proc/thread-self/fail-nth"
#define FAULT_DIR	"/sys/kernel/debug/"
#define MAX_NTH		1000

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * The calling thread's fail-nth, opened once so that setting and reading
 * it allocates nothing that would count.
 */
static int fail_nth_fd = -1;

/* The n-th allocation from now on fails; 0 turns that off. */
static int set_fail_nth(unsigned int nth)
{
	char buf[16];
	int len;

	len = snprintf(buf, sizeof(buf), "%u", nth);
	return pwrite(fail_nth_fd, buf, len, 0) == len ? 0 : -errno;
}

/* 0 once the planned fault has been injected, else what is left of it. */
static int fail_nth_left(void)
{
	char buf[16] = "";
	ssize_t n;

	n = pread(fail_nth_fd, buf, sizeof(buf) - 1, 0);
	return n > 0 ? atoi(buf) : -EIO;
}

/* Fail every kind of allocation, quietly, when fail-nth says so. */
static const char *setup_faults(void)
{
	static const char * const settings[][2] = {
		{ "failslab/ignore-gfp-wait", "N" },
		{ "failslab/verbose", "0" },
		{ "fail_page_alloc/ignore-gfp-wait", "N" },
		{ "fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "fail_page_alloc/min-order", "0" },
		{ "fail_page_alloc/verbose", "0" },
	};
	char path[128];
	unsigned int i;

	if (fail_nth_fd < 0)
		fail_nth_fd = open(FAIL_NTH, O_RDWR | O_CLOEXEC);
	if (fail_nth_fd < 0)
		return FAIL_NTH " is missing (CONFIG_FAULT_INJECTION)";
	for (i = 0; i < ARRAY_SIZE(settings); i++) {
		snprintf(path, sizeof(path), FAULT_DIR "%s", settings[i][0]);
		if (write_file(path, settings[i][1]))
			return "no failslab or fail_page_alloc in debugfs";
	}
	return NULL;
}

/* What the calls under test work on. */
struct target {
	int kvm_fd;
	int ctl_fd;
	int vm_fd;
	int dev_fd;
};

FIXTURE(fail_nth) {
	struct target t;
};

FIXTURE_SETUP(fail_nth)
{
	const char *why = ich9smi_unsupported();

	self->t.kvm_fd = -1;
	self->t.ctl_fd = -1;
	self->t.vm_fd = -1;
	self->t.dev_fd = -1;
	if (!why)
		why = setup_faults();
	if (why)
		SKIP(return, "%s", why);
	self->t.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->t.kvm_fd);
	self->t.ctl_fd = ich9smi_open();
	ASSERT_LE(0, self->t.ctl_fd);
	self->t.vm_fd = ich9smi_create_vm(self->t.kvm_fd);
	ASSERT_LE(0, self->t.vm_fd);
}

FIXTURE_TEARDOWN(fail_nth)
{
	if (fail_nth_fd >= 0)
		set_fail_nth(0);
	if (self->t.dev_fd >= 0)
		close(self->t.dev_fd);
	if (self->t.vm_fd >= 0)
		close(self->t.vm_fd);
	if (self->t.ctl_fd >= 0)
		close(self->t.ctl_fd);
	if (self->t.kvm_fd >= 0)
		close(self->t.kvm_fd);
}

/* One call under test: its return value, 0 or a -errno (or an fd). */
typedef int (*call_fn)(struct target *t);

/*
 * Run @call with its n-th allocation failing, n = 1, 2, ..., until the
 * fault is not reached. A run that reached it must fail with ENOMEM, or
 * succeed as if no fault had been (an allocation with a fallback);
 * @undo then takes back a success, and @check shows what a fault left
 * behind is still whole. Returns the number of faults injected.
 */
static unsigned int run_failing(struct __test_metadata *_metadata,
				struct target *t, const char *name,
				call_fn call, call_fn undo, call_fn check)
{
	unsigned int nth, injected = 0;
	int ret, left;

	for (nth = 1; nth <= MAX_NTH; nth++) {
		ASSERT_EQ(0, set_fail_nth(nth));
		ret = call(t);
		left = fail_nth_left();
		ASSERT_EQ(0, set_fail_nth(0));
		ASSERT_LE(0, left);
		if (left) {
			/* Fewer than nth allocations: a clean run. */
			EXPECT_LE(0, ret);
			if (ret >= 0 && undo)
				EXPECT_EQ(0, undo(t));
			TH_LOG("%s: %u faults injected, then a clean run", name,
			       injected);
			return injected;
		}
		injected++;
		EXPECT_EQ(ret < 0 ? -ENOMEM : ret, ret);
		if (ret >= 0 && undo)
			EXPECT_EQ(0, undo(t));
		if (check)
			EXPECT_EQ(0, check(t));
	}
	TH_LOG("%s: still allocating after %u faults", name, MAX_NTH);
	EXPECT_LE(nth, MAX_NTH);
	return injected;
}

static int attach(struct target *t)
{
	int fd = ich9smi_attach_vm(t->ctl_fd, t->vm_fd);

	if (fd >= 0)
		t->dev_fd = fd;
	return fd;
}

static int detach(struct target *t)
{
	int ret = close(t->dev_fd) ? -errno : 0;

	t->dev_fd = -1;
	return ret;
}

/* Nothing is attached after a failed attach, and the VM can be. */
static int nothing_attached(struct target *t)
{
	struct ich9smi_info info;
	int ret;

	ret = ich9smi_get_info(t->ctl_fd, &info);
	if (ret)
		return ret;
	if (info.instances)
		return -EEXIST;
	ret = attach(t);
	return ret < 0 ? ret : detach(t);
}

TEST_F(fail_nth, attach)
{
	EXPECT_LT(0, run_failing(_metadata, &self->t, "ATTACH", attach, detach,
				 nothing_attached));
}

static int info(struct target *t)
{
	struct ich9smi_info info;

	return ich9smi_get_info(t->ctl_fd, &info);
}

static int set_host_features(struct target *t)
{
	return ich9smi_set_host_features(t->dev_fd, ICH9SMI_F_BROADCAST);
}

static int negotiate(struct target *t)
{
	u64 negotiated;
	u32 ok;

	return ich9smi_negotiate(t->dev_fd, ICH9SMI_F_BROADCAST,
				 &negotiated, &ok);
}

static int reset(struct target *t)
{
	return ich9smi_reset(t->dev_fd);
}

static int set_smi_en(struct target *t)
{
	return ich9smi_set_smi_en(t->dev_fd, ICH9SMI_SMI_EN_APMC_EN);
}

static int set_exit_set(struct target *t)
{
	static const u64 values[4] = { 1ull << ICH9SMI_APM_ACPI_ENABLE };

	return ich9smi_set_exit_set(t->dev_fd, values);
}

static int state_round_trip(struct target *t)
{
	struct ich9smi_state state;
	int ret;

	ret = ich9smi_get_state(t->dev_fd, &state);
	return ret ? ret : ich9smi_set_state(t->dev_fd, &state);
}

static int stats_clear(struct target *t)
{
	struct ich9smi_stats st;

	return ich9smi_get_stats(t->dev_fd, &st, ICH9SMI_STATS_CLEAR);
}

/* The device still answers, with a state that passes its own checks. */
static int device_whole(struct target *t)
{
	return state_round_trip(t);
}

/* Every other ioctl, on an attached device. */
TEST_F(fail_nth, ioctls)
{
	static const struct {
		const char *name;
		call_fn call;
	} calls[] = {
		{ "INFO", info },
		{ "SET_HOST_FEATURES", set_host_features },
		{ "NEGOTIATE", negotiate },
		{ "RESET", reset },
		{ "SET_SMI_EN", set_smi_en },
		{ "SET_EXIT_SET", set_exit_set },
		{ "GET_STATE + SET_STATE", state_round_trip },
		{ "GET_STATS + CLEAR", stats_clear },
	};
	unsigned int i;

	ASSERT_LE(0, attach(&self->t));
	for (i = 0; i < ARRAY_SIZE(calls); i++) {
		/* A locked negotiation refuses new host features: start over. */
		ASSERT_EQ(0, reset(&self->t));
		run_failing(_metadata, &self->t, calls[i].name, calls[i].call,
			    NULL, device_whole);
	}
}

TEST_HARNESS_MAIN
