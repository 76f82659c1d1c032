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
/*
 * Each vCPU's own SMBASE, 8 KiB apart: SMRAMs overlap, but no vCPU's
 * handler (SMBASE + 0x8000, a few bytes) meets another's state-save area
 * (SMBASE + 0xfc00..0xffff), as in edk2's tiling.
 */
#define GUEST_SMBASE(n)		(0x30000 + 0x2000 * (n))
#define GUEST_MAX_VCPUS		64

/* Offsets from SMBASE: the SMM entry point, and where the handler finds
 * the address of its vCPU's SMM entry count.
 */
#define SMM_HANDLER		0x8000
#define SMM_COUNT_PTR		0x8100

/* A 32-bit OUT to this port reports %eax to the test (vcpu_sync()). */
#define GUEST_SYNC_PORT		0xe0

/*
 * smi_bench's shared data. The writer adds BENCH_NR to BENCH_TARGET before
 * each SMI; every handler records its entry TSC, checks in on
 * BENCH_ARRIVALS and waits until the count reaches the target it found on
 * entry (edk2's traditional rendezvous), then RSMs.
 */
#define BENCH_DATA		0x3000
#define BENCH_LOOPS		(BENCH_DATA + 0x00)	/* SMIs per report */
#define BENCH_MODE		(BENCH_DATA + 0x04)	/* BENCH_MODE_* */
#define BENCH_NR		(BENCH_DATA + 0x08)	/* entries per SMI */
#define BENCH_TARGET		(BENCH_DATA + 0x0c)
#define BENCH_ARRIVALS		(BENCH_DATA + 0x10)
/* vCPU id + 1 whose handler pulls the others in with an SMI IPI, or 0. */
#define BENCH_IPI_FROM		(BENCH_DATA + 0x14)
#define BENCH_T0		(BENCH_DATA + 0x20)	/* TSC before 1st SMI */
#define BENCH_T1		(BENCH_DATA + 0x28)	/* TSC after last RSM */
#define BENCH_ARRIVE(n)		(BENCH_DATA + 0x40 + 8 * (n)) /* entry TSC */
#define BENCH_CMD		0x42	/* what the writer writes to APM_CNT */

#define BENCH_MODE_APM		0	/* OUT to APM_CNT */
#define BENCH_MODE_ICR		1	/* xAPIC ICR (MMIO): SMI to all */
#define BENCH_MODE_X2APIC	2	/* x2APIC ICR (MSR): SMI to all */

/* xAPIC registers (the guest's ES has a 4 GiB limit to reach them). */
#define APIC_SVR_ADDR		0xfee000f0
#define APIC_ICR_ADDR		0xfee00300
#define APIC_SVR_ENABLE		0x1ff
/* x2APIC: IA32_APIC_BASE enable bits, and the SVR and ICR MSRs */
#define MSR_APIC_BASE		0x1b
#define APIC_BASE_X2APIC	0xc00
#define MSR_X2APIC_SVR		0x80f
#define MSR_X2APIC_ICR		0x830
/* ICR: delivery mode SMI, level assert, to all / all but self */
#define ICR_SMI_ALL		0x84200
#define ICR_SMI_OTHERS		0xc4200

/*
 * storm_test: each vCPU's record of its storm, STORM_SIZE bytes apart from
 * STORM_DATA: the number of APM_CNT writes it made, then a bitmap with bit
 * i set when the vCPU's own SMM entry count went up across write i. The
 * host sets STORM_STOP to end the storm.
 */
#define STORM_STOP		0x3800
#define STORM_DATA		0x4000
#define STORM_SHIFT		12
#define STORM_SIZE		0x1000	/* 1 << STORM_SHIFT */
#define STORM_WRITES(n)		(STORM_DATA + STORM_SIZE * (n))
#define STORM_ROSE(n)		(STORM_WRITES(n) + 4)
#define STORM_MAX_WRITES	((STORM_SIZE - 4) * 8)
#define STORM_MAX_VCPUS		8

/*
 * fuzz_test: a table of FUZZ_COUNT port accesses at FUZZ_TABLE (the same
 * area as the storm's, in other VMs), run in order; FUZZ_INDEX is the
 * index of the access under way. An entry is a 16-bit port, the width in
 * bytes (1, 2 or 4), FUZZ_OUT or FUZZ_IN, and a 32-bit value: written by
 * an OUT, replaced by what an IN read.
 */
#define FUZZ_COUNT		0x3804
#define FUZZ_INDEX		0x3808
#define FUZZ_TABLE		0x4000
#define FUZZ_ENTRY_SIZE		8
#define FUZZ_PORT		0
#define FUZZ_WIDTH		2
#define FUZZ_DIR		3
#define FUZZ_VALUE		4
#define FUZZ_IN			0
#define FUZZ_OUT		1
/* Real mode addresses 64 KiB; the table ends there. */
#define FUZZ_MAX_ENTRIES	((0x10000 - FUZZ_TABLE) / FUZZ_ENTRY_SIZE)

/*
 * apm_test's string I/O: STRING_LEN bytes from STRING_OUT go to APM_CNT
 * with one REP OUTSB, then as many come back into STRING_IN with one REP
 * INSB.
 */
#define STRING_OUT		0x3900
#define STRING_IN		0x3a00
#define STRING_MAX		0x100

/* The ICH9 APM ports (ICH9SMI_APM_*_PORT), for the assembler. */
#define APM_CNT_PORT		0xb2
#define APM_STS_PORT		0xb3

#endif /* ICH9SMI_SELFTEST_GUEST_H */
