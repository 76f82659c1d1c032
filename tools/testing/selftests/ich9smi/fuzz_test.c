// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzzing with fixed budgets. Each test prints its seed; setting
 * ICH9SMI_FUZZ_SEED to it repeats the run.
 *
 * ioctls: ich9smi's commands, unknown ones of its type and KVM's, with
 * random sizes, flags, reserved and trailing bytes and contents, through
 * good, NULL, unmapped, kernel, half-mapped and read-only pointers, with
 * fds of every kind as ATTACH's vm_fd, on /dev/ich9smi and on device fds,
 * while a guest writes APM_CNT. Every result must be what section 5 of
 * Documentation/virt/ich9smi.rst gives for the argument; where its rules
 * allow two errnos (an unreadable byte and a non-zero one beyond the
 * struct), one of them. What the output commands return must make sense.
 *
 * ports: a guest runs tables of random 1, 2 and 4 byte INs and OUTs at
 * 0xB0-0xB7. Exactly the accesses wholly inside 0xB2-0xB3 must be served in
 * the kernel, reads returning the registers and writes storing them (and
 * exiting too when the APM_CNT value is in the exit set); all others, the
 * 32-bit ones straddling the device included, must exit to the VMM, in
 * order, with their data. Registers, counters and SMM entries must match a
 * model of the device.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define FUZZ_SEED_ENV		"ICH9SMI_FUZZ_SEED"
#define IOCTLS			20000
#define PORT_ROUNDS		8
#define PORT_ACCESSES		1000
#define NR_VMS			3
#define MAX_DEVS		4
#define PAGE			4096
#define AREA_SIZE		(5 * PAGE)
#define CMD_SMI			0x42

/* An errno, or 0 for success, as a bit in a set of allowed results. */
#define RES(e)			(1ull << (e))

/* ------------------------------------------------------------------ */
/* ioctls */

/* What ATTACH makes of a vm_fd. */
struct vm_fd_kind {
	const char *name;
	int fd;
	int vm;			/* index into fuzz.vm_fds, or -1 */
	int err;		/* when not a VM */
};

struct fuzz {
	u64 rng;
	struct vm *vm;		/* VM 0, with a vCPU writing APM_CNT */
	int kvm_fd;
	int ctl_fd;
	int vm_fds[NR_VMS];
	bool attached[NR_VMS];
	int devs[MAX_DEVS];	/* device fds, -1 if free */
	int dev_vm[MAX_DEVS];
	struct vm_fd_kind kinds[20];
	unsigned int nr_kinds;
	int other_fds[10];	/* opened only to be named as vm_fd */
	unsigned int nr_other;
	u8 *area;		/* pages: RW, RW, PROT_NONE, read-only, PROT_NONE */
	u8 arg[2 * PAGE];	/* the argument being built */
	unsigned long calls, successes, attaches;
};

/* Why the fuzzing cannot run here, or NULL; and the seed, logged. */
static const char *fuzz_unsupported(void)
{
	const char *why = vm_smm_unsupported();

	return why ? why : ich9smi_unsupported();
}

static u64 fuzz_seed(struct __test_metadata *_metadata)
{
	u64 seed = ich9smi_seed(FUZZ_SEED_ENV);

	TH_LOG("seed %#llx: " FUZZ_SEED_ENV "=%#llx repeats this test", seed,
	       seed);
	return seed;
}

static u64 rnd(struct fuzz *f, u64 n)
{
	return ich9smi_rand(&f->rng) % n;
}

static bool chance(struct fuzz *f, unsigned int percent)
{
	return rnd(f, 100) < percent;
}

static void add_kind(struct fuzz *f, const char *name, int fd, int vm,
		     int err)
{
	f->kinds[f->nr_kinds++] = (struct vm_fd_kind){ name, fd, vm, err };
}

static int keep_fd(struct fuzz *f, int fd)
{
	if (fd >= 0)
		f->other_fds[f->nr_other++] = fd;
	return fd;
}

static bool apm_exit_again(struct vcpu *vcpu)
{
	return vcpu->run->exit_reason == KVM_EXIT_IO &&
	       vcpu->run->io.port == ICH9SMI_APM_CNT_PORT;
}

static int fuzz_attach(struct fuzz *f, int vm)
{
	int slot, fd;

	for (slot = 0; slot < MAX_DEVS && f->devs[slot] >= 0; slot++)
		;
	if (slot == MAX_DEVS)
		return -ENOSPC;
	fd = ich9smi_attach_vm(f->ctl_fd, f->vm_fds[vm]);
	if (fd < 0)
		return fd;
	f->devs[slot] = fd;
	f->dev_vm[slot] = vm;
	f->attached[vm] = true;
	return 0;
}

static void fuzz_detach(struct fuzz *f, int slot)
{
	close(f->devs[slot]);
	f->attached[f->dev_vm[slot]] = false;
	f->devs[slot] = -1;
}

static void fuzz_setup(struct __test_metadata *_metadata, struct fuzz *f)
{
	int i, pipefd[2], spare_vm;

	memset(f->devs, -1, sizeof(f->devs));
	f->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, f->kvm_fd);
	f->ctl_fd = ich9smi_open();
	ASSERT_LE(0, f->ctl_fd);
	f->vm = vm_create(1, 0);
	f->vm_fds[0] = f->vm->fd;
	for (i = 1; i < NR_VMS; i++) {
		f->vm_fds[i] = ich9smi_create_vm(f->kvm_fd);
		ASSERT_LE(0, f->vm_fds[i]);
	}
	ASSERT_EQ(0, fuzz_attach(f, 0));
	ASSERT_EQ(0, fuzz_attach(f, 1));

	for (i = 0; i < NR_VMS; i++)
		add_kind(f, "VM", f->vm_fds[i], i, 0);
	add_kind(f, "VM dup", keep_fd(f, dup(f->vm_fds[1])), 1, 0);
	add_kind(f, "/dev/kvm", f->kvm_fd, -1, EINVAL);
	add_kind(f, "vCPU", f->vm->vcpus[0].fd, -1, EINVAL);
	add_kind(f, "/dev/ich9smi", f->ctl_fd, -1, EINVAL);
	/* A device outside the pool, so that its fd stays valid. */
	spare_vm = keep_fd(f, ich9smi_create_vm(f->kvm_fd));
	ASSERT_LE(0, spare_vm);
	add_kind(f, "device", keep_fd(f, ich9smi_attach_vm(f->ctl_fd, spare_vm)),
		 -1, EINVAL);
	add_kind(f, "/dev/null", keep_fd(f, open("/dev/null", O_RDWR)), -1,
		 EINVAL);
	ASSERT_EQ(0, pipe(pipefd));
	add_kind(f, "pipe", keep_fd(f, pipefd[0]), -1, EINVAL);
	keep_fd(f, pipefd[1]);
	add_kind(f, "eventfd", keep_fd(f, eventfd(0, 0)), -1, EINVAL);
	add_kind(f, "socket", keep_fd(f, socket(AF_UNIX, SOCK_DGRAM, 0)), -1,
		 EINVAL);
	add_kind(f, "O_PATH", keep_fd(f, open(ICH9SMI_DEV_PATH, O_PATH)), -1,
		 EBADF);
	/* Far above the few fds the test opens: never allocated. */
	add_kind(f, "unused fd", 1000, -1, EBADF);
	add_kind(f, "-1", -1, -1, EBADF);
	add_kind(f, "1 << 30", 1 << 30, -1, EBADF);
	for (i = 0; i < (int)f->nr_kinds; i++)
		ASSERT_TRUE(f->kinds[i].fd >= 0 || f->kinds[i].err == EBADF);

	f->area = mmap(NULL, AREA_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, f->area);
	ASSERT_EQ(0, mprotect(f->area + 2 * PAGE, PAGE, PROT_NONE));
	ASSERT_EQ(0, mprotect(f->area + 3 * PAGE, PAGE, PROT_READ));
	ASSERT_EQ(0, mprotect(f->area + 4 * PAGE, PAGE, PROT_NONE));

	/* The fuzzing goes on while the guest writes APM_CNT. */
	f->vm->vcpus[0].handle_exit = apm_exit_again;
	vcpu_start(&f->vm->vcpus[0], guest_apm_storm, CMD_SMI);
	vcpu_thread_start(&f->vm->vcpus[0]);
}

static void fuzz_teardown(struct __test_metadata *_metadata, struct fuzz *f)
{
	unsigned int i;

	for (i = 0; i < MAX_DEVS; i++)
		if (f->devs[i] >= 0)
			fuzz_detach(f, i);
	if (f->vm) {
		EXPECT_EQ(VCPU_STOPPED, vcpu_thread_stop(&f->vm->vcpus[0]));
		vm_destroy(f->vm);
	}
	for (i = 1; i < NR_VMS; i++)
		close(f->vm_fds[i]);
	for (i = 0; i < f->nr_other; i++)
		close(f->other_fds[i]);
	close(f->ctl_fd);
	close(f->kvm_fd);
	munmap(f->area, AREA_SIZE);
}

/* Section 3 and 4 of the documentation, written out again. */
static bool host_features_valid(u64 features)
{
	return !(features & ~ICH9SMI_F_ALL) &&
	       (!(features & ICH9SMI_F_CPU_HOT_UNPLUG) ||
		(features & ICH9SMI_F_CPU_HOTPLUG));
}

static bool negotiated_valid(u64 features)
{
	return host_features_valid(features) &&
	       (!(features & (ICH9SMI_F_CPU_HOTPLUG |
			      ICH9SMI_F_CPU_HOT_UNPLUG)) ||
		(features & ICH9SMI_F_BROADCAST));
}

static bool state_valid(const struct ich9smi_state *s)
{
	if (s->reserved0 || s->reserved1 || s->features_ok > 1 ||
	    !host_features_valid(s->host_features))
		return false;
	if (!s->features_ok)
		return !s->negotiated_features;
	return !(s->negotiated_features & ~s->host_features) &&
	       negotiated_valid(s->negotiated_features);
}

/* One call: where it goes, what it carries, what it is allowed to do. */
struct call {
	int fd;
	int dev;		/* the device slot, or -1 for /dev/ich9smi */
	unsigned long cmd;
	const struct ich9smi_cmd_desc *d;
	const struct vm_fd_kind *vm_fd;	/* ATTACH */
	const char *where;	/* the pointer's kind */
	u8 *ptr;
	size_t readable;	/* bytes readable at ptr */
	bool writable;
	u32 size;
};

/* A command: mostly ich9smi's, sometimes one no fd knows. */
static void pick_cmd(struct fuzz *f, struct call *c)
{
	static const unsigned long kvm_cmds[] = {
		KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION,
		KVM_CREATE_VCPU, KVM_RUN, KVM_GET_REGS, KVM_IRQFD,
		KVM_SET_USER_MEMORY_REGION,
	};
	const struct ich9smi_cmd_desc *d;
	unsigned int r = rnd(f, 100);

	do {
		d = &ich9smi_cmds[rnd(f, ich9smi_nr_cmds)];
	} while (d->on_dev != (c->dev >= 0) && chance(f, 80));
	if (r < 80)
		c->cmd = d->cmd;
	else if (r < 88)
		c->cmd = _IOC(rnd(f, 4), ICH9SMI_TYPE, rnd(f, 256),
			      rnd(f, _IOC_SIZEMASK + 1));
	else if (r < 94)
		c->cmd = d->cmd | _IOC(rnd(f, 3) + 1, 0, 0, rnd(f, 1024));
	else
		c->cmd = kvm_cmds[rnd(f, ARRAY_SIZE(kvm_cmds))];
	c->d = ich9smi_cmd_find(c->cmd);
}

static void put32(u8 *buf, size_t off, u32 v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static void random_bytes(struct fuzz *f, u8 *buf, size_t len)
{
	while (len--)
		*buf++ = ich9smi_rand(&f->rng);
}

/* A body that is often valid: command-specific values. */
static void meaningful_body(struct fuzz *f, struct call *c, u8 *arg)
{
	struct ich9smi_state st;
	u64 v = chance(f, 80) ? rnd(f, 8) : ich9smi_rand(&f->rng);

	switch (c->cmd) {
	case ICH9SMI_SET_HOST_FEATURES:
		memcpy(arg + offsetof(struct ich9smi_host_features, supported),
		       &v, sizeof(v));
		break;
	case ICH9SMI_NEGOTIATE:
		memcpy(arg + offsetof(struct ich9smi_negotiate, requested),
		       &v, sizeof(v));
		break;
	case ICH9SMI_SET_STATE:
		if (ich9smi_get_state(f->devs[c->dev], &st))
			break;
		if (chance(f, 30))
			st.host_features = v;
		if (chance(f, 30))
			st.negotiated_features = rnd(f, 8);
		if (chance(f, 30))
			st.features_ok = rnd(f, 3);
		memcpy(arg + 8, (u8 *)&st + 8, sizeof(st) - 8);
		break;
	default:
		break;
	}
}

/* The argument: size, flags, body, reserved fields and the tail. */
static void build_arg(struct fuzz *f, struct call *c, u8 *arg)
{
	size_t ksize = c->d ? c->d->size : 64, i, r;
	u32 flags = 0;

	memset(arg, 0, sizeof(f->arg));
	switch (rnd(f, 10)) {
	case 5:
		c->size = ksize + rnd(f, 64);
		break;
	case 6:
		c->size = rnd(f, ksize);
		break;
	case 7:
		c->size = PAGE + rnd(f, 2);
		break;
	case 8:
		c->size = ich9smi_rand(&f->rng);
		break;
	case 9:
		c->size = ksize + rnd(f, PAGE - ksize + 1);
		break;
	default:
		c->size = ksize;
		break;
	}
	if (chance(f, 30))
		random_bytes(f, arg + 8, ksize - 8);
	else if (c->d && c->dev >= 0 && chance(f, 50))
		meaningful_body(f, c, arg);
	if (c->d && c->d->cmd == ICH9SMI_ATTACH) {
		c->vm_fd = &f->kinds[rnd(f, f->nr_kinds)];
		put32(arg, offsetof(struct ich9smi_attach, vm_fd), c->vm_fd->fd);
	}
	if (c->d && !chance(f, 20)) {
		for (r = 0; r < 2 && c->d->reserved[r].len; r++)
			memset(arg + c->d->reserved[r].off, 0,
			       c->d->reserved[r].len);
	}
	if (chance(f, 15))
		flags = 1u << rnd(f, 32);
	else if (chance(f, 10))
		flags = ich9smi_rand(&f->rng);
	else if (c->d)
		flags = c->d->flags_ok & ich9smi_rand(&f->rng);
	put32(arg, 0, c->size);
	put32(arg, 4, flags);
	if (c->size > ksize && c->size <= PAGE && chance(f, 20)) {
		i = ksize + rnd(f, c->size - ksize);
		arg[i] = 1 + rnd(f, 255);
	}
}

/* Where the argument lies, and how much of it can be read there. */
static void place_arg(struct fuzz *f, struct call *c, const u8 *arg)
{
	static const uintptr_t bad[] = {
		0, 8, 0xffffffff81000000ull, 0x00ff000000000000ull,
	};
	u8 *guard = f->area + 2 * PAGE, *ro = f->area + 3 * PAGE;
	size_t len = c->size < PAGE + 64 ? c->size : PAGE + 64;
	size_t off = rnd(f, 64);
	unsigned int r = rnd(f, 20);

	if (len < 8)
		len = 8;
	c->writable = true;
	c->readable = 0;
	if (r < 14) {
		c->where = "valid";
		c->ptr = f->area + off;
		c->readable = SIZE_MAX;
	} else if (r < 16) {
		c->where = "half-mapped";
		c->readable = 1 + rnd(f, len);
		c->ptr = guard - c->readable;
	} else if (r < 17) {
		c->where = "read-only";
		c->ptr = ro + off;
		c->readable = PAGE - off;
		c->writable = false;
	} else if (r < 18) {
		c->where = "PROT_NONE";
		c->ptr = guard;
	} else {
		c->where = "bad address";
		c->ptr = (u8 *)bad[rnd(f, ARRAY_SIZE(bad))];
	}
	if (!c->readable)
		return;
	if (!c->writable)
		mprotect(ro, PAGE, PROT_READ | PROT_WRITE);
	memcpy(c->ptr, arg, len < c->readable ? len : c->readable);
	if (!c->writable)
		mprotect(ro, PAGE, PROT_READ);
}

static bool any_set(const u8 *buf, size_t from, size_t to)
{
	for (; from < to; from++)
		if (buf[from])
			return true;
	return false;
}

static u32 get32(const u8 *buf, size_t off)
{
	u32 v;

	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static u64 get64(const u8 *buf, size_t off)
{
	u64 v;

	memcpy(&v, buf + off, sizeof(v));
	return v;
}

/* The results section 5 allows for this call, as a set of RES(). */
static u64 allowed(struct fuzz *f, const struct call *c, const u8 *arg)
{
	const struct ich9smi_cmd_desc *d = c->d;
	bool on_dev = c->dev >= 0;
	struct ich9smi_state st;
	size_t size, r, end;
	u64 res = RES(0);

	if (!d || d->on_dev != on_dev)
		return RES(ENOTTY);
	if (c->readable < 4)
		return RES(EFAULT);
	size = c->size;
	if (size < d->size)
		return RES(EINVAL);
	if (size > PAGE)
		return RES(E2BIG);
	if (c->readable < size) {
		end = c->readable > d->size ? c->readable : d->size;
		return RES(EFAULT) |
		       (any_set(arg, d->size, end) ? RES(E2BIG) : 0);
	}
	if (any_set(arg, d->size, size))
		return RES(E2BIG);
	if (get32(arg, 4) & ~d->flags_ok)
		return RES(EINVAL);
	for (r = 0; r < 2 && d->reserved[r].len; r++)
		if (any_set(arg, d->reserved[r].off,
			    d->reserved[r].off + d->reserved[r].len))
			return RES(EINVAL);

	switch (c->cmd) {
	case ICH9SMI_ATTACH:
		if (c->vm_fd->vm < 0)
			return RES(c->vm_fd->err);
		return f->attached[c->vm_fd->vm] ? RES(EEXIST) : RES(0);
	case ICH9SMI_SET_HOST_FEATURES:
		if (!host_features_valid(get64(arg, 8)))
			return RES(EINVAL);
		if (ich9smi_get_state(f->devs[c->dev], &st))
			return 0;
		res = st.features_ok ? RES(EBUSY) : RES(0);
		break;
	case ICH9SMI_SET_STATE:
		memcpy(&st, arg, sizeof(st));
		if (!state_valid(&st))
			return RES(EINVAL);
		break;
	default:
		break;
	}
	if (res == RES(0) && d->output && !c->writable)
		return RES(EFAULT);
	return res;
}

static const char *cmd_name(const struct call *c)
{
	return c->d ? c->d->name : "not ich9smi's";
}

/* What a successful output command wrote must make sense. */
static bool output_sane(struct fuzz *f, const struct call *c)
{
	const u8 *out = c->ptr;
	struct ich9smi_info info;
	struct ich9smi_state st;
	struct ich9smi_stats stats;
	unsigned int i, devs;

	/* size stays as the caller set it; nothing beyond the struct moves. */
	if (get32(out, 0) != c->size || any_set(out, c->d->size, c->size))
		return false;
	switch (c->cmd) {
	case ICH9SMI_INFO:
		memcpy(&info, out, sizeof(info));
		/* The pool's and the spare device. */
		for (i = 0, devs = 1; i < MAX_DEVS; i++)
			devs += f->devs[i] >= 0;
		return info.api_version == ICH9SMI_API_VERSION &&
		       info.features == ICH9SMI_F_ALL &&
		       info.instances == devs;
	case ICH9SMI_GET_STATE:
		memcpy(&st, out, sizeof(st));
		return state_valid(&st);
	case ICH9SMI_GET_STATS:
		memcpy(&stats, out, sizeof(stats));
		return stats.cnt_writes == stats.exits_to_vmm +
					   stats.smis_suppressed +
					   stats.smis_unicast +
					   stats.smis_broadcast;
	default:
		return true;
	}
}

/* After a successful ATTACH: keep the device, or drop it if full. */
static void attached(struct fuzz *f, const struct call *c, int fd)
{
	int slot;

	f->attaches++;
	for (slot = 0; slot < MAX_DEVS && f->devs[slot] >= 0; slot++)
		;
	if (slot == MAX_DEVS) {
		close(fd);
		return;
	}
	f->devs[slot] = fd;
	f->dev_vm[slot] = c->vm_fd->vm;
	f->attached[c->vm_fd->vm] = true;
}

static int pick_dev(struct fuzz *f)
{
	int slot, n = 0, pick = -1;

	for (slot = 0; slot < MAX_DEVS; slot++)
		if (f->devs[slot] >= 0 && !rnd(f, ++n))
			pick = slot;
	return pick;
}

static bool fuzz_one(struct __test_metadata *_metadata, struct fuzz *f,
		     unsigned long i)
{
	struct call c = { 0 };
	u64 want;
	int ret, got;

	c.dev = chance(f, 35) ? -1 : pick_dev(f);
	c.fd = c.dev < 0 ? f->ctl_fd : f->devs[c.dev];
	pick_cmd(f, &c);
	build_arg(f, &c, f->arg);
	place_arg(f, &c, f->arg);
	want = allowed(f, &c, f->arg);
	ret = ioctl(c.fd, c.cmd, c.ptr);
	got = ret < 0 ? errno : 0;
	f->calls++;
	if (!(want & RES(got))) {
		TH_LOG("call %lu: %s (%#lx) on %s: got %s, allowed %#llx", i,
		       cmd_name(&c), c.cmd,
		       c.dev < 0 ? "/dev/ich9smi" : "a device",
		       got ? strerror(got) : "success", want);
		TH_LOG("size %u flags %#x, %s pointer (%zd readable)%s%s",
		       c.size, get32(f->arg, 4), c.where,
		       c.readable == SIZE_MAX ? -1 : (ssize_t)c.readable,
		       c.vm_fd ? ", vm_fd " : "", c.vm_fd ? c.vm_fd->name : "");
		return false;
	}
	if (got)
		return true;
	f->successes++;
	if (c.cmd == ICH9SMI_ATTACH) {
		attached(f, &c, ret);
	} else if (c.d->output && !output_sane(f, &c)) {
		TH_LOG("call %lu: %s returned nonsense", i, cmd_name(&c));
		return false;
	}
	return true;
}

FIXTURE(ioctl_fuzz) {
	struct fuzz f;
};

FIXTURE_SETUP(ioctl_fuzz)
{
	const char *why = fuzz_unsupported();

	self->f.vm = NULL;
	if (why)
		SKIP(return, "%s", why);
	self->f.rng = fuzz_seed(_metadata);
	fuzz_setup(_metadata, &self->f);
}

FIXTURE_TEARDOWN(ioctl_fuzz)
{
	if (self->f.vm)
		fuzz_teardown(_metadata, &self->f);
}

TEST_F_TIMEOUT(ioctl_fuzz, random_calls, 120)
{
	struct fuzz *f = &self->f;
	struct ich9smi_state st;
	struct ich9smi_info info;
	unsigned long i;
	int slot, devs = 1;	/* the spare device */

	for (i = 0; i < IOCTLS; i++) {
		if (!fuzz_one(_metadata, f, i)) {
			EXPECT_TRUE(false);
			break;
		}
		/* Now and then detach one, so that VMs can be attached again. */
		slot = pick_dev(f);
		if (slot >= 0 && chance(f, 2))
			fuzz_detach(f, slot);
	}
	TH_LOG("%lu calls, %lu succeeded, %lu attaches", f->calls,
	       f->successes, f->attaches);
	EXPECT_EQ(IOCTLS, f->calls);

	/* Whatever was done to them, the devices are in valid states. */
	for (slot = 0; slot < MAX_DEVS; slot++) {
		if (f->devs[slot] < 0)
			continue;
		devs++;
		ASSERT_EQ(0, ich9smi_get_state(f->devs[slot], &st));
		EXPECT_TRUE(state_valid(&st));
		EXPECT_EQ(0, ich9smi_set_state(f->devs[slot], &st));
	}
	ASSERT_EQ(0, ich9smi_get_info(f->ctl_fd, &info));
	EXPECT_EQ(devs, info.instances);
}

/* ------------------------------------------------------------------ */
/* ports */

/* An entry of the guest's table, see guest.h. */
struct access {
	u16 port;
	u8 width;
	u8 dir;
	u32 value;
};

static_assert(sizeof(struct access) == FUZZ_ENTRY_SIZE, "table entry");
static_assert(offsetof(struct access, width) == FUZZ_WIDTH, "width");
static_assert(offsetof(struct access, dir) == FUZZ_DIR, "dir");
static_assert(offsetof(struct access, value) == FUZZ_VALUE, "value");

/* The device as section 2 describes it, and what each access should do. */
struct model {
	u8 apm_cnt, apm_sts;
	u32 smi_en;
	u64 features;
	u64 exit_set[4];
	struct ich9smi_stats stats;
	u64 smis;
	bool exits[PORT_ACCESSES];
	u32 reads[PORT_ACCESSES];	/* what an IN must have read */
};

static u32 width_mask(unsigned int width)
{
	return width == 4 ? ~0u : (1u << (8 * width)) - 1;
}

/* What userspace answers to an IN that exits, by table index. */
static u32 vmm_in_value(u64 seed, unsigned int i)
{
	u64 s = seed ^ i;

	return ich9smi_rand(&s);
}

static bool in_exit_set(const struct model *m, u8 value)
{
	return m->exit_set[value / 64] & (1ull << (value % 64));
}

/* Run access @i on the model; true when it must exit to the VMM. */
static bool model_access(struct model *m, const struct access *a,
			 unsigned int i)
{
	bool ours = a->port >= ICH9SMI_APM_CNT_PORT &&
		    a->port + a->width <= ICH9SMI_APM_STS_PORT + 1;
	bool cnt = a->port == ICH9SMI_APM_CNT_PORT;
	u8 v = a->value;

	if (!ours)
		return true;
	if (a->dir == FUZZ_IN) {
		m->stats.reads++;
		m->reads[i] = cnt ? m->apm_cnt | m->apm_sts << 8 : m->apm_sts;
		m->reads[i] &= width_mask(a->width);
		return false;
	}
	if (!cnt) {
		m->apm_sts = v;
		m->stats.sts_writes++;
		return false;
	}
	m->stats.cnt_writes++;
	if (in_exit_set(m, v)) {
		/* Wholly the VMM's: neither byte is stored. */
		m->stats.exits_to_vmm++;
		return true;
	}
	m->apm_cnt = v;
	if (a->width == 2)
		m->apm_sts = a->value >> 8;
	if (!(m->smi_en & ICH9SMI_SMI_EN_APMC_EN)) {
		m->stats.smis_suppressed++;
		return false;
	}
	if (m->features & ICH9SMI_F_BROADCAST)
		m->stats.smis_broadcast++;
	else
		m->stats.smis_unicast++;
	m->stats.vcpus_signalled++;
	m->smis++;
	return false;
}

static void random_table(struct fuzz *f, struct access *table)
{
	static const u8 widths[] = { 1, 2, 4 };
	unsigned int i;

	for (i = 0; i < PORT_ACCESSES; i++) {
		table[i].port = 0xb0 + rnd(f, 8);
		/* Half of them at the device's two ports. */
		if (chance(f, 50))
			table[i].port = ICH9SMI_APM_CNT_PORT + rnd(f, 2);
		table[i].width = widths[rnd(f, 3)];
		table[i].dir = rnd(f, 2) ? FUZZ_OUT : FUZZ_IN;
		table[i].value = ich9smi_rand(&f->rng);
	}
}

/* A random device configuration, in the model and in the device. */
static int random_config(struct fuzz *f, int dev_fd, struct model *m)
{
	struct ich9smi_state st;
	unsigned int v;
	int ret;

	m->features = rnd(f, 2) ? ICH9SMI_F_BROADCAST : 0;
	m->apm_cnt = rnd(f, 256);
	m->apm_sts = rnd(f, 256);
	m->smi_en = chance(f, 75) ? ~0u : ~ICH9SMI_SMI_EN_APMC_EN;
	for (v = 0; v < 256; v++)
		if (chance(f, 10))
			m->exit_set[v / 64] |= 1ull << (v % 64);
	ret = ich9smi_setup_smi(dev_fd, m->features);
	if (ret)
		return ret;
	ret = ich9smi_get_state(dev_fd, &st);
	if (ret)
		return ret;
	st.apm_cnt = m->apm_cnt;
	st.apm_sts = m->apm_sts;
	st.smi_en = m->smi_en;
	memcpy(st.exit_set, m->exit_set, sizeof(st.exit_set));
	return ich9smi_set_state(dev_fd, &st);
}

/* Check one exit against the model: it must be the next access due. */
static bool check_exit(struct __test_metadata *_metadata, struct vcpu *vcpu,
		       struct model *m, const struct access *table,
		       unsigned int *next, u64 seed)
{
	struct kvm_run *run = vcpu->run;
	unsigned int i = vm_read32(vcpu->vm, FUZZ_INDEX);
	const struct access *a = &table[i];
	u32 data = 0, want;

	if (i >= PORT_ACCESSES || i < *next) {
		TH_LOG("exit at access %u, next due %u", i, *next);
		return false;
	}
	for (; *next < i; (*next)++) {
		if (m->exits[*next]) {
			TH_LOG("access %u did not exit", *next);
			return false;
		}
	}
	(*next)++;
	if (!m->exits[i]) {
		TH_LOG("access %u (port %#x width %u %s) exited", i, a->port,
		       a->width, a->dir == FUZZ_OUT ? "out" : "in");
		return false;
	}
	if (run->io.port != a->port || run->io.size != a->width ||
	    run->io.count != 1 ||
	    run->io.direction != (a->dir == FUZZ_OUT ? KVM_EXIT_IO_OUT :
						       KVM_EXIT_IO_IN)) {
		TH_LOG("access %u: exit port %#x size %u dir %u count %u", i,
		       run->io.port, run->io.size, run->io.direction,
		       run->io.count);
		return false;
	}
	if (a->dir == FUZZ_IN) {
		want = vmm_in_value(seed, i) & width_mask(a->width);
		memcpy(vcpu_io_data(vcpu), &want, a->width);
		m->reads[i] = want;
		return true;
	}
	memcpy(&data, vcpu_io_data(vcpu), a->width);
	if (data != (a->value & width_mask(a->width))) {
		TH_LOG("access %u: OUT data %#x, want %#x", i, data, a->value);
		return false;
	}
	return true;
}

struct port_tally {
	unsigned long accesses, exits, smis;
};

/* One table in a fresh VM; false after the first mismatch. */
static bool port_round(struct __test_metadata *_metadata, struct fuzz *f,
		       unsigned int round, struct port_tally *t)
{
	struct access *table;
	struct ich9smi_state st;
	struct ich9smi_stats stats;
	struct model *m;
	struct vcpu *vcpu;
	struct vm *vm = vm_create(1, 0);
	unsigned int i, next = 0;
	u64 seed = ich9smi_rand(&f->rng);
	bool ok = false;
	int dev_fd;

	m = calloc(1, sizeof(*m));
	dev_fd = ich9smi_attach_vm(f->ctl_fd, vm->fd);
	if (!m || dev_fd < 0 || random_config(f, dev_fd, m))
		goto out;
	table = vm_mem(vm, FUZZ_TABLE);
	random_table(f, table);
	for (i = 0; i < PORT_ACCESSES; i++)
		m->exits[i] = model_access(m, &table[i], i);
	vm_write32(vm, FUZZ_COUNT, PORT_ACCESSES);
	vcpu = &vm->vcpus[0];
	vcpu_start(vcpu, guest_port_fuzz, 0);
	for (;;) {
		if (vcpu_run(vcpu) != KVM_EXIT_IO) {
			TH_LOG("round %u: exit reason %u", round,
			       vcpu->run->exit_reason);
			goto out;
		}
		if (vcpu->run->io.port == GUEST_SYNC_PORT)
			break;
		if (!check_exit(_metadata, vcpu, m, table, &next, seed))
			goto out;
	}
	EXPECT_EQ(PORT_ACCESSES, *(u32 *)vcpu_io_data(vcpu));
	for (; next < PORT_ACCESSES; next++)
		EXPECT_FALSE(m->exits[next]);
	for (i = 0; i < PORT_ACCESSES; i++)
		if (table[i].dir == FUZZ_IN && table[i].value != m->reads[i]) {
			TH_LOG("round %u access %u: IN %#x width %u read %#x, want %#x",
			       round, i, table[i].port, table[i].width,
			       table[i].value, m->reads[i]);
			goto out;
		}
	if (ich9smi_get_state(dev_fd, &st) ||
	    ich9smi_get_stats(dev_fd, &stats, 0))
		goto out;
	EXPECT_EQ(m->apm_cnt, st.apm_cnt);
	EXPECT_EQ(m->apm_sts, st.apm_sts);
	EXPECT_EQ(m->stats.cnt_writes, stats.cnt_writes);
	EXPECT_EQ(m->stats.sts_writes, stats.sts_writes);
	EXPECT_EQ(m->stats.reads, stats.reads);
	EXPECT_EQ(m->stats.exits_to_vmm, stats.exits_to_vmm);
	EXPECT_EQ(m->stats.smis_suppressed, stats.smis_suppressed);
	EXPECT_EQ(m->stats.smis_unicast, stats.smis_unicast);
	EXPECT_EQ(m->stats.smis_broadcast, stats.smis_broadcast);
	EXPECT_EQ(m->stats.vcpus_signalled, stats.vcpus_signalled);
	/* One vCPU: each SMI is taken before the next access. */
	EXPECT_EQ(m->smis, vm_smm_count(vm, 0));
	t->accesses += PORT_ACCESSES;
	for (i = 0; i < PORT_ACCESSES; i++)
		t->exits += m->exits[i];
	t->smis += m->smis;
	ok = true;
out:
	free(m);
	vm_destroy(vm);
	if (dev_fd >= 0)
		close(dev_fd);
	return ok;
}

FIXTURE(port_fuzz) {
	struct fuzz f;
};

FIXTURE_SETUP(port_fuzz)
{
	const char *why = fuzz_unsupported();

	self->f.ctl_fd = -1;
	if (why)
		SKIP(return, "%s", why);
	self->f.rng = fuzz_seed(_metadata);
	self->f.ctl_fd = ich9smi_open();
	ASSERT_LE(0, self->f.ctl_fd);
}

FIXTURE_TEARDOWN(port_fuzz)
{
	if (self->f.ctl_fd >= 0)
		close(self->f.ctl_fd);
}

TEST_F_TIMEOUT(port_fuzz, random_accesses, 120)
{
	struct port_tally t = { 0 };
	unsigned int round;

	for (round = 0; round < PORT_ROUNDS; round++) {
		if (!port_round(_metadata, &self->f, round, &t)) {
			TH_LOG("round %u failed", round);
			EXPECT_TRUE(false);
			break;
		}
	}
	TH_LOG("%lu accesses, %lu exited to the VMM, %lu SMIs", t.accesses,
	       t.exits, t.smis);
	EXPECT_EQ(PORT_ROUNDS * PORT_ACCESSES, t.accesses);
}

TEST_HARNESS_MAIN
