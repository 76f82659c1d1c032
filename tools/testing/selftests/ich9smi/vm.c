// SPDX-License-Identifier: GPL-2.0
/*
 * Small KVM VMs for the ich9smi selftests, see vm.h.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/ich9smi.h>

#include "../kselftest.h"
#include "vm.h"

#define MSR_IA32_SMBASE	0x9e

static_assert(APM_CNT_PORT == ICH9SMI_APM_CNT_PORT, "APM_CNT port");
static_assert(APM_STS_PORT == ICH9SMI_APM_STS_PORT, "APM_STS port");

/* Stops a vCPU thread's KVM_RUN, see vcpu_thread_stop(). */
#define VCPU_STOP_SIGNAL	SIGUSR1

static void __noreturn __printf(1, 2) vm_fail(const char *fmt, ...)
{
	va_list ap;

	printf("# vm: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(KSFT_FAIL);
}

static int checked_ioctl(int fd, unsigned long cmd, void *arg,
			 const char *name)
{
	int ret = ioctl(fd, cmd, arg);

	if (ret < 0)
		vm_fail("%s: %s", name, strerror(errno));
	return ret;
}

int __vm_ioctl(struct vm *vm, unsigned long cmd, void *arg, const char *name)
{
	return checked_ioctl(vm->fd, cmd, arg, name);
}

int __vcpu_ioctl(struct vcpu *vcpu, unsigned long cmd, void *arg,
		 const char *name)
{
	return checked_ioctl(vcpu->fd, cmd, arg, name);
}

/* Why the VMs cannot be made here (a reason to skip), or NULL. */
const char *vm_smm_unsupported(void)
{
	int kvm_fd, smm;

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		return "cannot open /dev/kvm";
	smm = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_SMM);
	close(kvm_fd);
	return smm > 0 ? NULL : "KVM lacks KVM_CAP_X86_SMM";
}

void *vm_mem(struct vm *vm, uint64_t gpa)
{
	if (gpa >= GUEST_MEM_SIZE)
		vm_fail("guest address 0x%llx is outside guest RAM",
			(unsigned long long)gpa);
	return vm->mem + gpa;
}

static void vm_load(struct vm *vm, uint64_t gpa, const uint8_t *start,
		    const uint8_t *end)
{
	memcpy(vm_mem(vm, gpa), start, end - start);
}

/* The same RAM in address space 0 and, for SMM, address space 1. */
static void vm_map_ram(struct vm *vm)
{
	struct kvm_userspace_memory_region region = {
		.memory_size = GUEST_MEM_SIZE,
	};
	unsigned int as;

	vm->mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		vm_fail("mmap guest RAM: %s", strerror(errno));
	region.userspace_addr = (uintptr_t)vm->mem;
	for (as = 0; as < 2; as++) {
		region.slot = as << 16;
		vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region);
	}
}

static void vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned int id)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} smbase = {
		.hdr.nmsrs = 1,
		.entry.index = MSR_IA32_SMBASE,
		.entry.data = GUEST_SMBASE(id),
	};
	uint32_t *count_ptr = vm_mem(vm, GUEST_SMBASE(id) + SMM_COUNT_PTR);

	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = vm_ioctl(vm, KVM_CREATE_VCPU, (void *)(uintptr_t)id);
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED)
		vm_fail("mmap kvm_run of vCPU %u: %s", id, strerror(errno));
	if (vcpu_ioctl(vcpu, KVM_SET_MSRS, &smbase) != 1)
		vm_fail("vCPU %u: KVM_SET_MSRS refused MSR_IA32_SMBASE", id);
	*count_ptr = GUEST_SMM_COUNT(id);
}

/*
 * A VM with nr_vcpus vCPUs, each with its SMM handler in place; vCPU n has
 * SMBASE GUEST_SMBASE(n). Start the vCPUs with vcpu_start().
 */
struct vm *vm_create(unsigned int nr_vcpus, unsigned int flags)
{
	const uint8_t *smm = smm_count, *smm_end = smm_count_end;
	struct vm *vm;
	unsigned int i;

	if (flags & VM_SMM_SYNC) {
		smm = smm_count_sync;
		smm_end = smm_count_sync_end;
	} else if (flags & VM_SMM_BENCH) {
		smm = smm_bench;
		smm_end = smm_bench_end;
	}
	if (smm_end - smm > SMM_COUNT_PTR - SMM_HANDLER)
		vm_fail("the SMM handler overlaps SMBASE + SMM_COUNT_PTR");
	if (!nr_vcpus || nr_vcpus > GUEST_MAX_VCPUS)
		vm_fail("%u vCPUs asked, 1 to %u possible", nr_vcpus,
			GUEST_MAX_VCPUS);
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		vm_fail("out of memory");
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		vm_fail("open /dev/kvm: %s", strerror(errno));
	vm->fd = checked_ioctl(vm->kvm_fd, KVM_CREATE_VM, NULL,
			       "KVM_CREATE_VM");
	vm->run_size = checked_ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL,
				     "KVM_GET_VCPU_MMAP_SIZE");
	if (flags & VM_IRQCHIP)
		vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL);
	vm_map_ram(vm);
	vm_load(vm, GUEST_CODE, guest_code, guest_code_end);
	for (i = 0; i < nr_vcpus; i++) {
		vm_load(vm, GUEST_SMBASE(i) + SMM_HANDLER, smm, smm_end);
		vcpu_init(vm, &vm->vcpus[i], i);
		vm->nr_vcpus++;
	}
	return vm;
}

void vm_destroy(struct vm *vm)
{
	struct vcpu *vcpu;
	unsigned int i;

	for (i = 0; i < vm->nr_vcpus; i++) {
		vcpu = &vm->vcpus[i];
		if (vcpu->threaded)
			vcpu_thread_stop(vcpu);
		munmap(vcpu->run, vm->run_size);
		close(vcpu->fd);
	}
	close(vm->fd);
	munmap(vm->mem, GUEST_MEM_SIZE);
	close(vm->kvm_fd);
	free(vm);
}

/* A 32-bit word of guest RAM that running vCPUs may be writing. */
uint32_t vm_read32(struct vm *vm, uint64_t gpa)
{
	return __atomic_load_n((uint32_t *)vm_mem(vm, gpa), __ATOMIC_ACQUIRE);
}

void vm_write32(struct vm *vm, uint64_t gpa, uint32_t value)
{
	__atomic_store_n((uint32_t *)vm_mem(vm, gpa), value, __ATOMIC_RELEASE);
}

/* How often vCPU n has entered SMM; its handler counts in guest RAM. */
uint32_t vm_smm_count(struct vm *vm, unsigned int vcpu)
{
	return vm_read32(vm, GUEST_SMM_COUNT(vcpu));
}

void sleep_ms(unsigned int ms)
{
	const struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (ms % 1000) * 1000000L,
	};

	nanosleep(&ts, NULL);
}

/* Wait up to ms milliseconds for every vCPU's SMM entry count to be count. */
bool vm_wait_smm_counts(struct vm *vm, uint32_t count, unsigned int ms)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	unsigned int i;

	for (;;) {
		for (i = 0; i < vm->nr_vcpus; i++)
			if (vm_smm_count(vm, i) != count)
				break;
		if (i == vm->nr_vcpus)
			return true;
		if (!ms--)
			return false;
		nanosleep(&tick, NULL);
	}
}

/*
 * Point a vCPU at guest code in real mode, see guest.S. With the in-kernel
 * irqchip, vCPUs other than 0 wait for INIT/SIPI until made runnable here.
 */
void vcpu_start(struct vcpu *vcpu, const uint8_t *entry, uint32_t arg)
{
	struct kvm_mp_state runnable = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = GUEST_CODE + (entry - guest_code),
		.rflags = 0x2,
		.rbx = GUEST_SMM_COUNT(vcpu->id),
		.rcx = arg,
	};

	if (entry < guest_code || entry >= guest_code_end)
		vm_fail("vCPU %u: entry point outside guest_code", vcpu->id);
	vcpu_ioctl(vcpu, KVM_SET_MP_STATE, &runnable);
	vcpu_ioctl(vcpu, KVM_GET_SREGS, &sregs);
	sregs.cs.selector = 0;
	sregs.cs.base = 0;
	vcpu_ioctl(vcpu, KVM_SET_SREGS, &sregs);
	vcpu_ioctl(vcpu, KVM_SET_REGS, &regs);
}

/* One KVM_RUN; returns the exit reason. */
int vcpu_run(struct vcpu *vcpu)
{
	vcpu_ioctl(vcpu, KVM_RUN, NULL);
	return vcpu->run->exit_reason;
}

/* The data of a KVM_EXIT_IO. */
void *vcpu_io_data(struct vcpu *vcpu)
{
	return (uint8_t *)vcpu->run + vcpu->run->io.data_offset;
}

/* Run until the guest writes to a port; fail on any other exit. */
uint32_t vcpu_run_out(struct vcpu *vcpu, uint16_t port)
{
	struct kvm_run *run = vcpu->run;
	uint32_t value = 0;
	int reason;

	reason = vcpu_run(vcpu);
	if (reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
	    run->io.port != port || run->io.count != 1 || run->io.size > 4)
		vm_fail("vCPU %u: expected OUT to port 0x%x, got exit %d (port 0x%x, %s, size %u)",
			vcpu->id, port, reason, run->io.port,
			run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			run->io.size);
	memcpy(&value, vcpu_io_data(vcpu), run->io.size);
	return value;
}

/* Run until the guest reports a value with the sync macro of guest.S. */
uint32_t vcpu_sync(struct vcpu *vcpu)
{
	return vcpu_run_out(vcpu, GUEST_SYNC_PORT);
}

static void vcpu_stop_signal(int sig)
{
}

/*
 * Run a vCPU in its thread until it exits to userspace (and handle_exit, if
 * set, does not take the exit) or is stopped.
 */
static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;

	while (!__atomic_load_n(&vcpu->stop, __ATOMIC_ACQUIRE)) {
		if (ioctl(vcpu->fd, KVM_RUN, NULL) == 0) {
			if (vcpu->handle_exit && vcpu->handle_exit(vcpu))
				continue;
			vcpu->thread_exit = vcpu->run->exit_reason;
			return NULL;
		}
		if (errno != EINTR)
			vm_fail("vCPU %u: KVM_RUN: %s", vcpu->id,
				strerror(errno));
	}
	vcpu->thread_exit = VCPU_STOPPED;
	return NULL;
}

/*
 * Run a started vCPU in a thread of its own, as a VMM does; it can sit in a
 * halted guest for good. Collect it with vcpu_thread_stop().
 */
void vcpu_thread_start(struct vcpu *vcpu)
{
	struct sigaction sa = { .sa_handler = vcpu_stop_signal };
	int err;

	if (sigaction(VCPU_STOP_SIGNAL, &sa, NULL))
		vm_fail("sigaction: %s", strerror(errno));
	vcpu->stop = false;
	err = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (err)
		vm_fail("vCPU %u: pthread_create: %s", vcpu->id, strerror(err));
	vcpu->threaded = true;
}

/*
 * Stop and join a vCPU thread. Returns VCPU_STOPPED, or the exit reason that
 * ended it before. The signal interrupts KVM_RUN; it is repeated because it
 * can land just before the thread enters KVM_RUN.
 */
/*
 * Wait up to @ms for the thread to leave KVM_RUN on its own (an exit to
 * userspace) and return the exit reason, or VCPU_STOPPED after stopping it
 * when it did not.
 */
int vcpu_thread_wait(struct vcpu *vcpu, unsigned int ms)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	int err;

	while ((err = pthread_tryjoin_np(vcpu->thread, NULL)) == EBUSY && ms--)
		nanosleep(&tick, NULL);
	if (err == EBUSY)
		return vcpu_thread_stop(vcpu);
	if (err)
		vm_fail("vCPU %u: pthread_tryjoin_np: %s", vcpu->id,
			strerror(err));
	vcpu->threaded = false;
	return vcpu->thread_exit;
}

int vcpu_thread_stop(struct vcpu *vcpu)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	int err;

	__atomic_store_n(&vcpu->stop, true, __ATOMIC_RELEASE);
	while ((err = pthread_tryjoin_np(vcpu->thread, NULL)) == EBUSY) {
		pthread_kill(vcpu->thread, VCPU_STOP_SIGNAL);
		nanosleep(&tick, NULL);
	}
	if (err)
		vm_fail("vCPU %u: pthread_tryjoin_np: %s", vcpu->id,
			strerror(err));
	vcpu->threaded = false;
	return vcpu->thread_exit;
}
