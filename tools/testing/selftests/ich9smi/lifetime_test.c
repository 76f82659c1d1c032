// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetimes under load. While vCPUs storm APM_CNT: the VM fd, the device fd
 * and /dev/ich9smi closed in each of the six orders; attach and detach from
 * two racing threads; a VMM killed with SIGKILL. Throughout, another thread
 * tries to unload the module, which must fail with EWOULDBLOCK for as long
 * as anything of it is open. Afterwards no device is left: ICH9SMI_INFO and
 * debugfs both count 0. An attach that fails leaves no trace, not even
 * for a moment.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define NR_VCPUS		4
#define CMD_SMI			0x42
#define WAIT_MS			10000
#define DEBUGFS_INSTANCES	"/sys/kernel/debug/ich9smi/instances"
#define KILL_ROUNDS		4
#define ATTACHES		50	/* per attacher thread */
#define ATTACH_TRIES		100000
#define FAILING_ATTACH_WRITES	1000	/* guest writes while attaches fail */
#define FD_FILL_LIMIT		256

/* Tries delete_module() until stopped; every try must be refused. */
struct unloader {
	pthread_t thread;
	bool running;
	bool stop;
	unsigned long tries;
	int bad_errno;		/* an errno other than EWOULDBLOCK */
	bool unloaded;
};

static void *unloader_thread(void *arg)
{
	struct unloader *u = arg;

	while (!__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE)) {
		if (!syscall(SYS_delete_module, "ich9smi", O_NONBLOCK))
			u->unloaded = true;
		else if (errno != EWOULDBLOCK)
			u->bad_errno = errno;
		__atomic_add_fetch(&u->tries, 1, __ATOMIC_RELEASE);
		if (u->unloaded || u->bad_errno)
			break;
		sleep_ms(1);
	}
	return NULL;
}

/* Needs CAP_SYS_MODULE; without it the test runs without unload tries. */
static void start_unloader(struct __test_metadata *_metadata,
			   struct unloader *u)
{
	memset(u, 0, sizeof(*u));
	if (geteuid()) {
		TH_LOG("not root: no delete_module() tries");
		return;
	}
	ASSERT_EQ(0, pthread_create(&u->thread, NULL, unloader_thread, u));
	u->running = true;
	/* At least one try before anything is closed. */
	while (!__atomic_load_n(&u->tries, __ATOMIC_ACQUIRE))
		sleep_ms(1);
}

static void stop_unloader(struct __test_metadata *_metadata,
			  struct unloader *u)
{
	if (!u->running)
		return;
	__atomic_store_n(&u->stop, true, __ATOMIC_RELEASE);
	pthread_join(u->thread, NULL);
	u->running = false;
	EXPECT_FALSE(u->unloaded);
	EXPECT_EQ(0, u->bad_errno);
	EXPECT_LT(0, u->tries);
}

/* The number in debugfs, or -1 without debugfs. */
static int debugfs_instances(void)
{
	FILE *f = fopen(DEBUGFS_INSTANCES, "r");
	int n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -2;
	fclose(f);
	return n;
}

/* Attached devices by ICH9SMI_INFO, which debugfs must confirm. */
static int instances(struct __test_metadata *_metadata)
{
	struct ich9smi_info info;
	int ctl_fd = ich9smi_open(), dbg;

	if (ctl_fd < 0)
		return ctl_fd;
	if (ich9smi_get_info(ctl_fd, &info))
		info.instances = -1;
	close(ctl_fd);
	dbg = debugfs_instances();
	if (dbg != -1)
		EXPECT_EQ(info.instances, dbg);
	return info.instances;
}

/* With the device detached, the VMM emulates the port: count, go on. */
static bool count_apm_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (run->exit_reason != KVM_EXIT_IO ||
	    run->io.port != ICH9SMI_APM_CNT_PORT ||
	    run->io.direction != KVM_EXIT_IO_OUT)
		return false;
	__atomic_add_fetch((u64 *)vcpu->priv, 1, __ATOMIC_RELAXED);
	return true;
}

/* Every vCPU writes APM_CNT for ever, each in its own thread. */
static void start_storm(struct vm *vm, u64 *apm_exits)
{
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i].handle_exit = count_apm_exit;
		vm->vcpus[i].priv = apm_exits;
		vcpu_start(&vm->vcpus[i], guest_apm_storm, CMD_SMI);
		vcpu_thread_start(&vm->vcpus[i]);
	}
}

/* The vCPUs ran until stopped: nothing but APM_CNT writes left the guest. */
static void stop_storm(struct __test_metadata *_metadata, struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++)
		EXPECT_EQ(VCPU_STOPPED, vcpu_thread_stop(&vm->vcpus[i]));
}

/* The device served guest writes after *@seen of them: true within WAIT_MS. */
static bool device_serves(int dev_fd, u64 *seen)
{
	struct ich9smi_stats st;
	unsigned int ms;

	for (ms = 0; ms < WAIT_MS; ms++) {
		if (ich9smi_get_stats(dev_fd, &st, 0))
			return false;
		if (st.cnt_writes > *seen) {
			*seen = st.cnt_writes;
			return true;
		}
		sleep_ms(1);
	}
	return false;
}

/* The VMM saw APM_CNT exits after *@seen of them: true within WAIT_MS. */
static bool vmm_serves(const u64 *apm_exits, u64 *seen)
{
	unsigned int ms;
	u64 now;

	for (ms = 0; ms < WAIT_MS; ms++) {
		now = __atomic_load_n(apm_exits, __ATOMIC_RELAXED);
		if (now > *seen) {
			*seen = now;
			return true;
		}
		sleep_ms(1);
	}
	return false;
}

static bool skip_reason(struct __test_metadata *_metadata)
{
	const char *why = vm_smm_unsupported();

	if (!why)
		why = ich9smi_unsupported();
	if (why)
		SKIP(return true, "%s", why);
	return false;
}

enum { VM_FD, DEV_FD, CTL_FD, NR_FDS };
static const char *const fd_names[NR_FDS] = { "VM", "device", "control" };

FIXTURE(close_order) {
	struct vm *vm;
	int fds[NR_FDS];
	u64 apm_exits;
	struct unloader unloader;
};

FIXTURE_VARIANT(close_order) {
	int order[NR_FDS];
};

FIXTURE_VARIANT_ADD(close_order, vm_dev_ctl) {
	.order = { VM_FD, DEV_FD, CTL_FD },
};

FIXTURE_VARIANT_ADD(close_order, vm_ctl_dev) {
	.order = { VM_FD, CTL_FD, DEV_FD },
};

FIXTURE_VARIANT_ADD(close_order, dev_vm_ctl) {
	.order = { DEV_FD, VM_FD, CTL_FD },
};

FIXTURE_VARIANT_ADD(close_order, dev_ctl_vm) {
	.order = { DEV_FD, CTL_FD, VM_FD },
};

FIXTURE_VARIANT_ADD(close_order, ctl_vm_dev) {
	.order = { CTL_FD, VM_FD, DEV_FD },
};

FIXTURE_VARIANT_ADD(close_order, ctl_dev_vm) {
	.order = { CTL_FD, DEV_FD, VM_FD },
};

FIXTURE_SETUP(close_order)
{
	int i;

	for (i = 0; i < NR_FDS; i++)
		self->fds[i] = -1;
	if (skip_reason(_metadata))
		return;
	self->vm = vm_create(NR_VCPUS, VM_IRQCHIP);
	self->fds[VM_FD] = self->vm->fd;
	self->fds[CTL_FD] = ich9smi_open();
	ASSERT_LE(0, self->fds[CTL_FD]);
	self->fds[DEV_FD] = ich9smi_attach_vm(self->fds[CTL_FD], self->vm->fd);
	ASSERT_LE(0, self->fds[DEV_FD]);
	ASSERT_EQ(0, ich9smi_setup_smi(self->fds[DEV_FD], ICH9SMI_F_BROADCAST));
}

FIXTURE_TEARDOWN(close_order)
{
	int i;

	stop_unloader(_metadata, &self->unloader);
	if (self->vm)
		vm_destroy(self->vm);
	for (i = 0; i < NR_FDS; i++)
		if (i != VM_FD && self->fds[i] >= 0)
			close(self->fds[i]);
}

/* The position in the order of the last fd that pins the module. */
static int last_module_fd(const int *order)
{
	int i, last = 0;

	for (i = 0; i < NR_FDS; i++)
		if (order[i] != VM_FD)
			last = i;
	return last;
}

TEST_F(close_order, while_running)
{
	u64 dev_seen = 0, vmm_seen = 0;
	int i, fd;

	start_storm(self->vm, &self->apm_exits);
	ASSERT_TRUE(device_serves(self->fds[DEV_FD], &dev_seen));
	start_unloader(_metadata, &self->unloader);
	for (i = 0; i < NR_FDS; i++) {
		fd = variant->order[i];
		/* Unloading is fine once nothing of the module is open. */
		if (i == last_module_fd(variant->order))
			stop_unloader(_metadata, &self->unloader);
		TH_LOG("closing the %s fd", fd_names[fd]);
		ASSERT_EQ(0, close(self->fds[fd]));
		self->fds[fd] = -1;
		if (fd == VM_FD)
			self->vm->fd = -1;
		if (self->fds[DEV_FD] >= 0) {
			/* Still attached: the device serves the storm alone. */
			EXPECT_TRUE(device_serves(self->fds[DEV_FD], &dev_seen));
			EXPECT_EQ(0, __atomic_load_n(&self->apm_exits,
						     __ATOMIC_RELAXED));
			EXPECT_EQ(1, instances(_metadata));
		} else {
			/* Detached: every write exits to the VMM again. */
			EXPECT_TRUE(vmm_serves(&self->apm_exits, &vmm_seen));
			EXPECT_EQ(0, instances(_metadata));
		}
	}
	stop_storm(_metadata, self->vm);
	EXPECT_EQ(0, instances(_metadata));
}

/* A VMM child: a storming VM with a device; killed when it is ready. */
static int storm_vmm(void *arg)
{
	struct vm *vm = vm_create(NR_VCPUS, VM_IRQCHIP);
	int ctl_fd = ich9smi_open(), dev_fd;
	static u64 apm_exits;
	u64 seen = 0;

	if (ctl_fd < 0)
		return 1;
	dev_fd = ich9smi_attach_vm(ctl_fd, vm->fd);
	if (dev_fd < 0 || ich9smi_setup_smi(dev_fd, ICH9SMI_F_BROADCAST))
		return 1;
	start_storm(vm, &apm_exits);
	return !device_serves(dev_fd, &seen);
}

TEST(killed_mid_storm)
{
	struct unloader unloader;
	u64 rng = ich9smi_seed("ICH9SMI_LIFETIME_SEED");
	int ctl_fd, pid, i;

	if (skip_reason(_metadata))
		return;
	TH_LOG("seed %#llx (ICH9SMI_LIFETIME_SEED)", rng);
	/* Ours, so that every unload try meets an open file. */
	ctl_fd = ich9smi_open();
	ASSERT_LE(0, ctl_fd);
	start_unloader(_metadata, &unloader);
	for (i = 0; i < KILL_ROUNDS; i++) {
		pid = ich9smi_fork_holder(storm_vmm, NULL);
		ASSERT_LT(0, pid);
		EXPECT_EQ(1, instances(_metadata));
		sleep_ms(ich9smi_rand(&rng) % 100);
		ASSERT_EQ(0, ich9smi_kill_holder(pid));
		EXPECT_EQ(0, instances(_metadata));
	}
	stop_unloader(_metadata, &unloader);
	close(ctl_fd);
}

/* Two of these race to attach to one storming VM and detach again. */
struct attacher {
	pthread_t thread;
	int ctl_fd;
	int vm_fd;
	unsigned int attached;
	unsigned int served;
	unsigned int busy;	/* EEXIST: the other one was attached */
	int bad;		/* the first unexpected result */
};

static void *attacher_thread(void *arg)
{
	struct attacher *a = arg;
	unsigned int tries;
	u64 seen;
	int fd;

	for (tries = 0; a->attached < ATTACHES && !a->bad; tries++) {
		if (tries == ATTACH_TRIES) {
			a->bad = -ETIMEDOUT;
			break;
		}
		fd = ich9smi_attach_vm(a->ctl_fd, a->vm_fd);
		if (fd == -EEXIST) {
			a->busy++;
			sched_yield();
			continue;
		}
		if (fd < 0) {
			a->bad = fd;
			break;
		}
		a->bad = ich9smi_setup_smi(fd, ICH9SMI_F_BROADCAST);
		/* Now and then, see the guest's writes reach the device. */
		seen = 0;
		if (!a->bad && !(a->attached++ % 10)) {
			if (device_serves(fd, &seen))
				a->served++;
			else
				a->bad = -ETIMEDOUT;
		}
		close(fd);
	}
	return NULL;
}

TEST(attach_detach_running)
{
	struct attacher a[2];
	struct unloader unloader;
	u64 apm_exits = 0, seen = 0;
	struct vm *vm;
	int ctl_fd, i;

	if (skip_reason(_metadata))
		return;
	vm = vm_create(NR_VCPUS, VM_IRQCHIP);
	ctl_fd = ich9smi_open();
	ASSERT_LE(0, ctl_fd);
	start_storm(vm, &apm_exits);
	ASSERT_TRUE(vmm_serves(&apm_exits, &seen));
	start_unloader(_metadata, &unloader);
	for (i = 0; i < 2; i++) {
		a[i] = (struct attacher){ .ctl_fd = ctl_fd, .vm_fd = vm->fd };
		ASSERT_EQ(0, pthread_create(&a[i].thread, NULL,
					    attacher_thread, &a[i]));
	}
	for (i = 0; i < 2; i++) {
		pthread_join(a[i].thread, NULL);
		TH_LOG("attacher %d: %u attached (%u seen serving), %u EEXIST",
		       i, a[i].attached, a[i].served, a[i].busy);
		EXPECT_EQ(0, a[i].bad);
		EXPECT_LT(0, a[i].attached);
		EXPECT_LT(0, a[i].served);
		EXPECT_EQ(ATTACHES, a[i].attached);
	}
	stop_unloader(_metadata, &unloader);
	/* Detached for good: the VMM gets the writes again. */
	EXPECT_TRUE(vmm_serves(&apm_exits, &seen));
	EXPECT_EQ(0, instances(_metadata));
	stop_storm(_metadata, vm);
	vm_destroy(vm);
	close(ctl_fd);
}

/*
 * An attach that fails never shows the device to the guest: with no free
 * fd (EMFILE) every APM_CNT write of a storm still exits to the VMM, so the
 * guest's own count of its writes equals the VMM's count of exits. A
 * device put on the bus before its fd existed would take some of them.
 */
TEST(failed_attach_leaves_no_trace)
{
	struct rlimit old, tight = { .rlim_cur = FD_FILL_LIMIT };
	u64 apm_exits = 0, seen = 0;
	unsigned int tries = 0, failed = 0, nr_fill = 0;
	int fill[FD_FILL_LIMIT];
	u32 before, writes;
	struct vcpu *vcpu;
	struct vm *vm;
	int ctl_fd, fd;

	if (skip_reason(_metadata))
		return;
	vm = vm_create(1, 0);
	vcpu = &vm->vcpus[0];
	ctl_fd = ich9smi_open();
	ASSERT_LE(0, ctl_fd);
	vcpu->handle_exit = count_apm_exit;
	vcpu->priv = &apm_exits;
	vcpu_start(vcpu, guest_apm_storm_count, CMD_SMI);
	vcpu_thread_start(vcpu);
	ASSERT_TRUE(vmm_serves(&apm_exits, &seen));

	/* Use up every fd below a low limit. */
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
	tight.rlim_max = old.rlim_max;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &tight));
	while ((fd = dup(ctl_fd)) >= 0)
		fill[nr_fill++] = fd;
	ASSERT_EQ(EMFILE, errno);

	before = vm_read32(vm, STORM_WRITES(0));
	for (writes = 0; tries < ATTACH_TRIES && writes < FAILING_ATTACH_WRITES;
	     tries++) {
		failed += ich9smi_attach_vm(ctl_fd, vm->fd) == -EMFILE;
		writes = vm_read32(vm, STORM_WRITES(0)) - before;
	}

	while (nr_fill)
		close(fill[--nr_fill]);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
	vm_write32(vm, STORM_STOP, 1);
	EXPECT_EQ(KVM_EXIT_IO, vcpu_thread_wait(vcpu, WAIT_MS));
	TH_LOG("%u attaches failed (EMFILE) over %u guest writes", failed,
	       writes);
	TH_LOG("%u guest writes and %llu exits in all",
	       vm_read32(vm, STORM_WRITES(0)), (unsigned long long)apm_exits);
	EXPECT_EQ(tries, failed);
	EXPECT_LT(0, writes);
	EXPECT_EQ(vm_read32(vm, STORM_WRITES(0)), apm_exits);
	EXPECT_EQ(0, instances(_metadata));

	/* And the next attach, with fds to spare, works. */
	fd = ich9smi_attach_vm(ctl_fd, vm->fd);
	EXPECT_LE(0, fd);
	close(fd);
	vm_destroy(vm);
	close(ctl_fd);
}

/* Last: whatever ran before, nothing is left attached. */
FIXTURE(end) {
};

FIXTURE_SETUP(end)
{
}

FIXTURE_TEARDOWN(end)
{
}

TEST_F(end, nothing_left)
{
	const char *why = ich9smi_unsupported();

	if (why)
		SKIP(return, "%s", why);
	EXPECT_EQ(0, instances(_metadata));
}

TEST_HARNESS_MAIN
