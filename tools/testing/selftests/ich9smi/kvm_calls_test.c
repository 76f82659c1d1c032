// SPDX-License-Identifier: GPL-2.0
/*
 * Out of tree, ich9smi calls KVM through static calls, which the kernel
 * patches into direct calls: no function pointer is called, so a sealed
 * ENDBR, IBT and CFI do not matter. The module checks this when it loads;
 * this test checks it again from outside. It decodes every branch into
 * KVM that the module lists in debugfs (kvm_calls) and requires a direct
 * call (a call site) or jmp (a tail call or a trampoline) to the
 * function's address in /proc/kallsyms, and a call site for each function.
 *
 * Needs root. The in-tree module links KVM's functions and has neither
 * kvm_calls nor resolution in debugfs: the tests skip when the module's
 * debugfs directory is there without them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"

#define DEBUGFS_DIR	"/sys/kernel/debug/ich9smi/"
#define KVM_CALLS	DEBUGFS_DIR "kvm_calls"
#define RESOLUTION	DEBUGFS_DIR "resolution"
#define VULN_DIR	"/sys/devices/system/cpu/vulnerabilities/"

#define INSN_SIZE	5	/* call or jmp with a 32-bit displacement */
#define OP_CALL		0xe8
#define OP_JMP		0xe9
#define ENDBR_SIZE	4
/* The most padding a call-depth accounting thunk may take. */
#define THUNK_ROOM	16

static const char * const kvm_fns[] = {
	"file_is_kvm",
	"kvm_make_all_cpus_request",
	"kvm_io_bus_register_dev",
	"kvm_io_bus_unregister_dev",
	"kvm_vm_ioctl_check_extension",
};

#define NR_FNS	ARRAY_SIZE(kvm_fns)

/* One line of kvm_calls: "<function> <addr> <at> <insn> <kind>". */
struct branch {
	char fn[64];
	unsigned long addr;
	unsigned long at;
	u8 insn[INSN_SIZE];
	char kind[8];
};

static int fn_index(const char *name)
{
	unsigned int i;

	for (i = 0; i < NR_FNS; i++)
		if (!strcmp(name, kvm_fns[i]))
			return i;
	return -1;
}

/* The functions' addresses by /proc/kallsyms (0 if absent or hidden). */
static void read_kallsyms(unsigned long addrs[NR_FNS])
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[512], name[256], type;
	unsigned long addr;
	int i;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx %c %255s", &addr, &type, name) != 3 ||
		    (type != 't' && type != 'T'))
			continue;
		i = fn_index(name);
		if (i >= 0 && !addrs[i])
			addrs[i] = addr;
	}
	fclose(f);
}

/*
 * Under retbleed=stuff or its=stuff the kernel points calls at a
 * call-depth accounting thunk in the padding just before the function.
 */
static bool call_depth_tracking(void)
{
	static const char * const files[] = {
		VULN_DIR "retbleed",
		VULN_DIR "indirect_target_selection",
	};
	bool stuffing = false;
	char buf[256];
	unsigned int i;
	FILE *f;

	for (i = 0; i < ARRAY_SIZE(files) && !stuffing; i++) {
		f = fopen(files[i], "r");
		if (!f)
			continue;
		stuffing = fgets(buf, sizeof(buf), f) && strstr(buf, "Stuffing");
		fclose(f);
	}
	return stuffing;
}

static bool parse_branch(const char *line, struct branch *br)
{
	char hex[2 * INSN_SIZE + 1];
	int i;

	if (sscanf(line, "%63s %lx %lx %10s %7s", br->fn, &br->addr, &br->at,
		   hex, br->kind) != 5 || strlen(hex) != 2 * INSN_SIZE)
		return false;
	for (i = 0; i < INSN_SIZE; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &br->insn[i]) != 1)
			return false;
	return true;
}

/* The target of the call or jmp rel32 at br->at. */
static unsigned long branch_target(const struct branch *br)
{
	int32_t rel;

	memcpy(&rel, &br->insn[1], sizeof(rel));
	return br->at + INSN_SIZE + rel;
}

/* Does @target enter the function kallsyms puts at @fn? */
static bool reaches(unsigned long target, unsigned long fn, bool call,
		    bool thunks)
{
	if (target == fn || target == fn + ENDBR_SIZE)
		return true;
	return call && thunks && target < fn && fn - target <= THUNK_ROOM;
}

/*
 * The out-of-tree module's debugfs "resolution": NAME is how it reached
 * KVM. 0 when read, 1 for the in-tree module (the module's debugfs
 * directory is there, the file is not), -1 without debugfs or when the
 * file cannot be read: a broken setup fails rather than skips.
 */
static int read_resolution(char name[32], char ibt[16], int *sealed)
{
	FILE *f;
	int n;

	if (access(DEBUGFS_DIR "instances", R_OK))
		return -1;
	f = fopen(RESOLUTION, "r");
	if (!f)
		return errno == ENOENT ? 1 : -1;
	n = fscanf(f, "resolution: %31s ibt: %15s sealed_endbr: %d", name, ibt,
		   sealed);
	fclose(f);
	return n == 3 ? 0 : -1;
}

/*
 * Whether the kernel enforces IBT: the CPU has it ("ibt" among the CPU
 * flags) and the kernel was built for it (its IBT self-test is there).
 */
static bool ibt_enforced(void)
{
	char line[8192];
	bool cpu = false, kernel = false;
	FILE *f;

	f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return false;
	while (!cpu && fgets(line, sizeof(line), f))
		cpu = !strncmp(line, "flags", 5) && strstr(line, " ibt");
	fclose(f);
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return false;
	while (!kernel && fgets(line, sizeof(line), f))
		kernel = strstr(line, " ibt_selftest");
	fclose(f);
	return cpu && kernel;
}

TEST(resolution)
{
	char name[32], ibt[16];
	int ret, sealed;

	if (geteuid())
		SKIP(return, "needs root for debugfs");
	ret = read_resolution(name, ibt, &sealed);
	ASSERT_LE(0, ret)
		TH_LOG("%s: debugfs not mounted or a bad file", RESOLUTION);
	if (ret == 1)
		SKIP(return, "in-tree module: KVM's functions are linked");
	EXPECT_TRUE(!strcmp(name, "SYMBOL_GET") || !strcmp(name, "KALLSYMS"))
		TH_LOG("resolution %s", name);
	EXPECT_STREQ(ibt_enforced() ? "enforced" : "off", ibt);
	EXPECT_LE(0, sealed);
	EXPECT_GE((int)NR_FNS, sealed);
	TH_LOG("resolution %s ibt %s sealed_endbr %d", name, ibt, sealed);
}

TEST(direct_calls)
{
	unsigned int sites[NR_FNS] = {}, tramps[NR_FNS] = {};
	unsigned long addrs[NR_FNS] = {};
	char line[256], name[32], ibt[16];
	unsigned int i;
	bool thunks;
	int ret, sealed;
	FILE *f;

	if (geteuid())
		SKIP(return, "needs root for debugfs and /proc/kallsyms");
	ret = read_resolution(name, ibt, &sealed);
	ASSERT_LE(0, ret) TH_LOG("no readable " RESOLUTION);
	if (ret == 1)
		SKIP(return, "in-tree module: KVM's functions are linked");

	read_kallsyms(addrs);
	for (i = 0; i < NR_FNS; i++) {
		const char *name = kvm_fns[i];

		ASSERT_NE(0, addrs[i])
			TH_LOG("%s: no address in /proc/kallsyms", name);
	}
	thunks = call_depth_tracking();

	f = fopen(KVM_CALLS, "r");
	ASSERT_NE(NULL, f) TH_LOG(KVM_CALLS ": %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		bool call, tramp;
		struct branch br;
		int fn;

		line[strcspn(line, "\n")] = '\0';
		ASSERT_TRUE(parse_branch(line, &br)) TH_LOG("bad line: %s", line);
		fn = fn_index(br.fn);
		ASSERT_LE(0, fn) TH_LOG("not a KVM function: %s", line);
		call = !strcmp(br.kind, "call");
		tramp = !strcmp(br.kind, "tramp");
		ASSERT_TRUE(call || tramp || !strcmp(br.kind, "tail"))
			TH_LOG("unknown kind: %s", line);

		EXPECT_TRUE(br.addr == addrs[fn] ||
			    br.addr == addrs[fn] + ENDBR_SIZE)
			TH_LOG("kallsyms has %s at %lx: %s", br.fn, addrs[fn],
			       line);
		EXPECT_EQ(call ? OP_CALL : OP_JMP, br.insn[0])
			TH_LOG("not a direct %s: %s", call ? "call" : "jmp",
			       line);
		EXPECT_TRUE(reaches(branch_target(&br), addrs[fn], call, thunks))
			TH_LOG("goes to %lx, not %s at %lx: %s",
			       branch_target(&br), br.fn, addrs[fn], line);
		if (tramp)
			tramps[fn]++;
		else
			sites[fn]++;
	}
	fclose(f);

	for (i = 0; i < NR_FNS; i++) {
		EXPECT_LE(1, sites[i]) TH_LOG("%s: no call site", kvm_fns[i]);
		EXPECT_EQ(1, tramps[i]) TH_LOG("%s: no trampoline", kvm_fns[i]);
		TH_LOG("%s at %lx: %u call sites", kvm_fns[i], addrs[i],
		       sites[i]);
	}
}

TEST_HARNESS_MAIN
