/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small KVM VMs for the ich9smi selftests: up to GUEST_MAX_VCPUS real-mode
 * vCPUs, RAM mapped in both KVM address spaces (so that SMM sees it too),
 * a private SMBASE and SMM entry counter per vCPU, and the guest code of
 * guest.S. Any failing system call ends the test as failed with a message,
 * so callers only check what they test.
 */
#ifndef ICH9SMI_SELFTEST_VM_H
#define ICH9SMI_SELFTEST_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "guest.h"

/* Guest code with its entry points, and SMM handlers, see guest.S. */
extern const uint8_t guest_code[], guest_code_end[];
extern const uint8_t guest_apm_smi[], guest_halt[];
extern const uint8_t guest_apm_loop[], guest_apm_rw[], guest_apm_storm[];
extern const uint8_t smm_count[], smm_count_end[];
extern const uint8_t smm_count_sync[], smm_count_sync_end[];
extern const uint8_t guest_bench[], guest_bench_ap[];
extern const uint8_t guest_apm_storm_count[], guest_port_fuzz[];
extern const uint8_t guest_apm_string[];
extern const uint8_t smm_bench[], smm_bench_end[];

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	/*
	 * Optional, for vcpu_thread_start(): called on each exit to userspace,
	 * true to enter the guest again. @priv is the caller's.
	 */
	bool (*handle_exit)(struct vcpu *vcpu);
	void *priv;
	/* Set by vcpu_thread_start(); read and cleared by vcpu_thread_stop(). */
	pthread_t thread;
	bool threaded;
	bool stop;
	int thread_exit;
};

struct vm {
	int kvm_fd;
	int fd;
	int run_size;
	uint8_t *mem;
	unsigned int nr_vcpus;
	struct vcpu vcpus[GUEST_MAX_VCPUS];
};

/* vm_create() flags */
#define VM_IRQCHIP	0x1	/* in-kernel irqchip (LAPICs) */
#define VM_SMM_SYNC	0x2	/* smm_count_sync instead of smm_count */
#define VM_SMM_BENCH	0x4	/* smm_bench instead of smm_count */

/* vcpu_thread_stop(): the thread ran until it was told to stop. */
#define VCPU_STOPPED	(-1)

const char *vm_smm_unsupported(void);
struct vm *vm_create(unsigned int nr_vcpus, unsigned int flags);
void vm_destroy(struct vm *vm);
void *vm_mem(struct vm *vm, uint64_t gpa);
uint32_t vm_read32(struct vm *vm, uint64_t gpa);
void vm_write32(struct vm *vm, uint64_t gpa, uint32_t value);
uint32_t vm_smm_count(struct vm *vm, unsigned int vcpu);
bool vm_wait_smm_counts(struct vm *vm, uint32_t count, unsigned int ms);

void vcpu_start(struct vcpu *vcpu, const uint8_t *entry, uint32_t arg);
int vcpu_run(struct vcpu *vcpu);
uint32_t vcpu_run_out(struct vcpu *vcpu, uint16_t port);
uint32_t vcpu_sync(struct vcpu *vcpu);
void *vcpu_io_data(struct vcpu *vcpu);
void vcpu_thread_start(struct vcpu *vcpu);
int vcpu_thread_stop(struct vcpu *vcpu);
int vcpu_thread_wait(struct vcpu *vcpu, unsigned int ms);

void sleep_ms(unsigned int ms);

int __vm_ioctl(struct vm *vm, unsigned long cmd, void *arg, const char *name);
int __vcpu_ioctl(struct vcpu *vcpu, unsigned long cmd, void *arg,
		 const char *name);
/* ioctl() on the VM or a vCPU; the test fails if it returns < 0. */
#define vm_ioctl(vm, cmd, arg)		__vm_ioctl(vm, cmd, arg, #cmd)
#define vcpu_ioctl(vcpu, cmd, arg)	__vcpu_ioctl(vcpu, cmd, arg, #cmd)

#endif /* ICH9SMI_SELFTEST_VM_H */
