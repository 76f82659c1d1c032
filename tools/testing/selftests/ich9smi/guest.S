/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest code of the ich9smi selftests, 16-bit. vm.c copies
 * guest_code..guest_code_end to GUEST_CODE and one of the SMM handlers to
 * SMBASE + SMM_HANDLER of every vCPU. vcpu_start() enters the guest code in
 * real mode with %ebx = the vCPU's SMM entry count address and %ecx = an
 * argument. It is data to the host program, hence .rodata.
 */
#include "guest.h"

	.section .rodata, "a"
	.code16

/* Report %eax to the test, see vcpu_sync(). */
.macro sync
	movw	$GUEST_SYNC_PORT, %dx
	outl	%eax, %dx
.endm

	.globl	guest_code, guest_code_end
	.globl	guest_apm_smi, guest_halt
	.globl	guest_apm_loop, guest_apm_rw, guest_apm_storm
	.globl	guest_bench, guest_bench_ap
	.globl	guest_apm_storm_count, guest_port_fuzz, guest_apm_string
guest_code:

/*
 * Raise an SMI the way OVMF does: data byte %ch to APM_STS, then command
 * byte %cl to APM_CNT. Report the SMM entry count as the next instruction
 * sees it, then halt.
 */
guest_apm_smi:
	movb	%ch, %al
	outb	%al, $APM_STS_PORT
	movb	%cl, %al
	outb	%al, $APM_CNT_PORT
	movl	(%ebx), %eax
	sync
	/* fall through */

/* Halt for good; an SMI wakes the vCPU, and it halts again after RSM. */
guest_halt:
1:	hlt
	jmp	1b

/*
 * Write command byte %cl to APM_CNT (%ecx >> 16) times, reporting after
 * each write the SMM entry count the next instruction sees; then halt.
 */
guest_apm_loop:
	movl	%ecx, %esi
	shrl	$16, %esi
1:	movb	%cl, %al
	outb	%al, $APM_CNT_PORT
	movl	(%ebx), %eax
	sync
	decl	%esi
	jnz	1b
	jmp	guest_halt

/*
 * Read the APM registers back, as two byte reads and as one 16-bit read,
 * reporting APM_CNT | APM_STS << 8 each time; then write %cx to both with
 * one 16-bit OUT, report the SMM entry count and halt.
 */
guest_apm_rw:
	xorl	%eax, %eax
	inb	$APM_STS_PORT, %al
	movb	%al, %ah
	inb	$APM_CNT_PORT, %al
	sync
	xorl	%eax, %eax
	inw	$APM_CNT_PORT, %ax
	sync
	movw	%cx, %ax
	outw	%ax, $APM_CNT_PORT
	movl	(%ebx), %eax
	sync
	jmp	guest_halt

/*
 * %cx bytes from STRING_OUT to APM_CNT with one REP OUTSB, then %cx bytes
 * of APM_CNT into STRING_IN with one REP INSB; report the SMM entry count
 * and halt.
 */
guest_apm_string:
	cld
	movw	%cx, %bp
	movw	$APM_CNT_PORT, %dx
	movw	$STRING_OUT, %si
	rep outsb
	movw	%bp, %cx
	movw	$STRING_IN, %di
	rep insb
	movl	(%ebx), %eax
	sync
	jmp	guest_halt

/* Write command byte %cl to APM_CNT for ever. */
guest_apm_storm:
	movb	%cl, %al
1:	outb	%al, $APM_CNT_PORT
	jmp	1b

/*
 * storm_test's writer: write command byte %cl to APM_CNT until the host
 * sets STORM_STOP or the record is full, keeping the record of guest.h;
 * then report the number of writes and halt. A due SMI is taken before the
 * instruction after the OUT, so the count must have gone up by then.
 */
guest_apm_storm_count:
	movl	%ebx, %edi
	subl	$GUEST_SMM_COUNT(0), %edi
	shll	$STORM_SHIFT - 2, %edi
	addl	$STORM_DATA, %edi
	movb	%cl, %al
1:	movl	(%edi), %esi
	cmpl	$0, STORM_STOP
	jne	3f
	cmpl	$STORM_MAX_WRITES, %esi
	jae	3f
	movl	(%ebx), %edx
	outb	%al, $APM_CNT_PORT
	cmpl	(%ebx), %edx
	je	2f
	btsl	%esi, 4(%edi)
2:	incl	(%edi)
	jmp	1b
3:	movl	%esi, %eax
	sync
	jmp	guest_halt

/*
 * fuzz_test's accesses: run the table of guest.h, then report the number
 * of entries run and halt.
 */
guest_port_fuzz:
	xorl	%esi, %esi
1:	cmpl	FUZZ_COUNT, %esi
	jae	9f
	movl	%esi, FUZZ_INDEX
	leal	FUZZ_TABLE(, %esi, FUZZ_ENTRY_SIZE), %edi
	movw	FUZZ_PORT(%edi), %dx
	movb	FUZZ_WIDTH(%edi), %cl
	cmpb	$FUZZ_IN, FUZZ_DIR(%edi)
	je	5f
	movl	FUZZ_VALUE(%edi), %eax
	cmpb	$1, %cl
	jne	2f
	outb	%al, %dx
	jmp	8f
2:	cmpb	$2, %cl
	jne	3f
	outw	%ax, %dx
	jmp	8f
3:	outl	%eax, %dx
	jmp	8f
5:	xorl	%eax, %eax
	cmpb	$1, %cl
	jne	6f
	inb	%dx, %al
	jmp	7f
6:	cmpb	$2, %cl
	jne	4f
	inw	%dx, %ax
	jmp	7f
4:	inl	%dx, %eax
7:	movl	%eax, FUZZ_VALUE(%edi)
8:	incl	%esi
	jmp	1b
9:	movl	%esi, %eax
	sync
	jmp	guest_halt

/*
 * smi_bench's writer: BENCH_LOOPS SMIs, raised as BENCH_MODE says, between
 * two TSC reads; then report and start over.
 */
guest_bench:
	cmpl	$BENCH_MODE_X2APIC, BENCH_MODE
	je	5f
	addr32 movl $APIC_SVR_ENABLE, %es:APIC_SVR_ADDR
	jmp	1f
5:	movl	$MSR_APIC_BASE, %ecx
	rdmsr
	orl	$APIC_BASE_X2APIC, %eax
	wrmsr
	movl	$MSR_X2APIC_SVR, %ecx
	movl	$APIC_SVR_ENABLE, %eax
	xorl	%edx, %edx
	wrmsr
1:	movl	BENCH_LOOPS, %esi
	rdtsc
	movl	%eax, BENCH_T0
	movl	%edx, BENCH_T0 + 4
2:	movl	BENCH_NR, %eax
	addl	%eax, BENCH_TARGET
	cmpl	$BENCH_MODE_ICR, BENCH_MODE
	je	3f
	cmpl	$BENCH_MODE_X2APIC, BENCH_MODE
	je	6f
	movb	$BENCH_CMD, %al
	outb	%al, $APM_CNT_PORT
	jmp	4f
3:	addr32 movl $ICR_SMI_ALL, %es:APIC_ICR_ADDR
	jmp	4f
6:	movl	$MSR_X2APIC_ICR, %ecx
	movl	$ICR_SMI_ALL, %eax
	xorl	%edx, %edx
	wrmsr
4:	decl	%esi
	jnz	2b
	rdtsc
	movl	%eax, BENCH_T1
	movl	%edx, BENCH_T1 + 4
	sync
	jmp	1b

/* smi_bench's other vCPUs: enable the local APIC, then halt. */
guest_bench_ap:
	addr32 movl $APIC_SVR_ENABLE, %es:APIC_SVR_ADDR
	jmp	guest_halt

guest_code_end:

/*
 * SMM handlers: entered at SMBASE + SMM_HANDLER with CS base SMBASE and data
 * segments of base 0 and 4 GiB limit. Each adds one to its vCPU's SMM entry
 * count, whose address vm.c stores at SMBASE + SMM_COUNT_PTR, and RSMs.
 */
.macro count_smm_entry
	movl	%cs:SMM_COUNT_PTR, %ebx
	incl	(%ebx)
.endm

	.globl	smm_count, smm_count_end
smm_count:
	count_smm_entry
	rsm
smm_count_end:

/* The same, and report the new count to the test from inside SMM. */
	.globl	smm_count_sync, smm_count_sync_end
smm_count_sync:
	count_smm_entry
	movl	(%ebx), %eax
	sync
	rsm
smm_count_sync_end:

/*
 * smi_bench's handler: count, record the entry TSC, pull the others in if
 * this vCPU is BENCH_IPI_FROM, check in, and wait for everyone expected.
 */
	.globl	smm_bench, smm_bench_end
smm_bench:
	rdtsc
	movl	BENCH_TARGET, %edi
	count_smm_entry
	movl	%ebx, %esi
	subl	$GUEST_SMM_COUNT(0), %esi	/* 4 * vCPU id */
	movl	%eax, BENCH_ARRIVE(0)(%esi, %esi)
	movl	%edx, BENCH_ARRIVE(0) + 4(%esi, %esi)
	shrl	$2, %esi
	incl	%esi
	cmpl	BENCH_IPI_FROM, %esi
	jne	1f
	addr32 movl $ICR_SMI_OTHERS, APIC_ICR_ADDR
1:	lock incl BENCH_ARRIVALS
2:	pause
	cmpl	BENCH_ARRIVALS, %edi
	ja	2b
	rsm
smm_bench_end:

	.section .note.GNU-stack, "", %progbits
