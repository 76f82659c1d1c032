/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest memory layout of the ich9smi selftest VMs, shared by vm.c and
 * guest.S. All of it lies in the first MiB, which real mode can address.
 */
#ifndef ICH9SMI_SELFTEST_GUEST_H
#define ICH9SMI_SELFTEST_GUEST_H

#define GUEST_MEM_SIZE		0x100000
/* guest_code..guest_code_end of guest.S is copied here. */
#define GUEST_CODE		0x1000
/* 32-bit count of SMM entries of vCPU n. */
#define GUEST_SMM_COUNT(n)	(0x2000 + 4 * (n))
/* Each vCPU's own SMRAM: SMBASE..SMBASE + 0xffff, no overlap. */
#define GUEST_SMBASE(n)		(0x30000 + 0x10000 * (n))
#define GUEST_MAX_VCPUS		8

/* Offsets from SMBASE: the SMM entry point, and where the handler finds
 * the address of its vCPU's SMM entry count.
 */
#define SMM_HANDLER		0x8000
#define SMM_COUNT_PTR		0x8100

/* A 32-bit OUT to this port reports %eax to the test (vcpu_sync()). */
#define GUEST_SYNC_PORT		0xe0

/* The ICH9 APM ports (ICH9SMI_APM_*_PORT), for the assembler. */
#define APM_CNT_PORT		0xb2
#define APM_STS_PORT		0xb3

#endif /* ICH9SMI_SELFTEST_GUEST_H */
