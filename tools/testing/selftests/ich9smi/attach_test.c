// SPDX-License-Identifier: GPL-2.0
/*
 * tools/ich9smi/ich9smi-attach against a stand-in for QEMU: a child process
 * runs a VM whose guest writes APM_CNT in a loop and, as QEMU does, raises
 * the SMI with KVM_SMI on each exit. The tool, started by pid from another
 * process, takes the VM fd with pidfd_getfd() and attaches ich9smi: the
 * exits must stop while the guest keeps entering SMM, and the statistics the
 * tool prints must account for every SMM entry the VMM did not raise.
 * A fake QMP monitor checks that the tool refuses a QEMU with smm=off.
 *
 * ICH9SMI_ATTACH_TOOL names the tool; the tests skip without it.
 */
#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "ich9smi_util.h"
#include "vm.h"

#define CMD_SMI			0x42
/* Exits the stand-in counts before the tool is started. */
#define EXITS_BEFORE		200
/* The exits have stopped: none for QUIET_MS while SMM saw QUIET_SMIS. */
#define QUIET_MS		1000
#define QUIET_SMIS		100
#define ATTACH_TIMEOUT_MS	60000
#define TICK_US			10000
#define LINE_MAX_LEN		512

#define TOOL_PREFIX		"ich9smi-attach: "
/* The tool's exit status when the VM has no SMM. */
#define TOOL_EXIT_NO_SMM	3
#define QMP_ERROR \
	"{\"error\": {\"class\": \"GenericError\", \"desc\": \"not faked\"}}\r\n"

static const uint8_t out_apm_cnt[] = { 0xe6, APM_CNT_PORT };	/* outb %al */
static const uint8_t hlt_hlt[] = { 0xf4, 0xf4 };

/* --- the stand-in for QEMU, in its own process --- */

static void tick(int sig)
{
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static void __noreturn __printf(2, 3) vmm_report(int fd, const char *fmt, ...)
{
	char line[LINE_MAX_LEN];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(fd, line, len) != len)
		exit(KSFT_FAIL);
	if (strncmp(line, "done", 4))
		exit(KSFT_FAIL);
	/* Stay alive, VM and all, until the test has read the statistics. */
	while (read(STDIN_FILENO, line, sizeof(line)) > 0)
		;
	exit(KSFT_PASS);
}

/* Run the vCPU; a 0xB2 exit is counted and answered with KVM_SMI. */
struct vmm {
	struct vm *vm;
	struct vcpu *vcpu;
	uint64_t exits;
	uint64_t last_exit_ms;
	uint32_t smm_at_last_exit;
};

/* One KVM_RUN; false when the tick interrupted it. */
static bool vmm_run_once(struct vmm *v, int report_fd)
{
	struct kvm_run *run = v->vcpu->run;

	if (ioctl(v->vcpu->fd, KVM_RUN, NULL) < 0) {
		if (errno != EINTR)
			vmm_report(report_fd, "fail KVM_RUN: %s\n",
				   strerror(errno));
		return false;
	}
	if (run->exit_reason == KVM_EXIT_HLT)
		return true;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != APM_CNT_PORT ||
	    run->io.direction != KVM_EXIT_IO_OUT)
		vmm_report(report_fd, "fail unexpected exit %u\n",
			   run->exit_reason);
	v->exits++;
	v->last_exit_ms = now_ms();
	v->smm_at_last_exit = vm_smm_count(v->vm, 0);
	vcpu_ioctl(v->vcpu, KVM_SMI, NULL);
	return true;
}

/* Turn the guest's OUT into HLT, so that it stops writing for good. */
static void vmm_stop_guest(struct vmm *v, int report_fd)
{
	uint8_t *code = vm_mem(v->vm, GUEST_CODE + (guest_apm_storm -
						   guest_code));
	struct itimerval off = {};
	int i;

	for (i = 0; i < 8; i++)
		if (!memcmp(code + i, out_apm_cnt, sizeof(out_apm_cnt)))
			break;
	if (i == 8)
		vmm_report(report_fd, "fail no OUT in guest_apm_storm\n");
	memcpy(code + i, hlt_hlt, sizeof(hlt_hlt));
	setitimer(ITIMER_REAL, &off, NULL);
	/* A pending SMI is taken, a handler finishes, then the HLT exits. */
	while (!vmm_run_once(v, report_fd) ||
	       v->vcpu->run->exit_reason != KVM_EXIT_HLT)
		;
}

/*
 * Run until EXITS_BEFORE exits ("ready"), then until the exits have
 * stopped; stop the guest and report the exits and the SMM entries.
 */
static void __noreturn vmm_main(int report_fd)
{
	struct sigaction sa = { .sa_handler = tick };
	struct itimerval timer = {
		.it_interval.tv_usec = TICK_US,
		.it_value.tv_usec = TICK_US,
	};
	struct kvm_vcpu_events events;
	struct vmm v = {};
	uint64_t deadline = 0;

	v.vm = vm_create(1, 0);
	v.vcpu = &v.vm->vcpus[0];
	vcpu_start(v.vcpu, guest_apm_storm, CMD_SMI);
	if (sigaction(SIGALRM, &sa, NULL) || setitimer(ITIMER_REAL, &timer,
						       NULL))
		vmm_report(report_fd, "fail timer: %s\n", strerror(errno));
	for (;;) {
		vmm_run_once(&v, report_fd);
		if (!deadline && v.exits >= EXITS_BEFORE) {
			if (write(report_fd, "ready\n", 6) != 6)
				exit(KSFT_FAIL);
			deadline = now_ms() + ATTACH_TIMEOUT_MS;
		}
		if (!deadline)
			continue;
		if (now_ms() - v.last_exit_ms >= QUIET_MS &&
		    vm_smm_count(v.vm, 0) - v.smm_at_last_exit >= QUIET_SMIS)
			break;
		if (now_ms() > deadline)
			vmm_report(report_fd, "fail exits went on: %llu\n",
				   (unsigned long long)v.exits);
	}
	vmm_stop_guest(&v, report_fd);
	vcpu_ioctl(v.vcpu, KVM_GET_VCPU_EVENTS, &events);
	if (events.smi.smm || events.smi.pending)
		vmm_report(report_fd, "fail SMI in flight after HLT\n");
	vmm_report(report_fd, "done exits=%llu smm=%u\n",
		   (unsigned long long)v.exits, vm_smm_count(v.vm, 0));
}

/* --- the test: the stand-in, the tool, and what they print --- */

struct child {
	pid_t pid;
	int out;	/* its output, read end */
	char buf[LINE_MAX_LEN];
	size_t len;
};

/* The next line from a child, without its newline; false on timeout/EOF. */
static bool read_line(struct child *c, char *line, int ms)
{
	struct pollfd pfd = { .fd = c->out, .events = POLLIN };
	uint64_t deadline = now_ms() + ms;
	char *nl;
	ssize_t n;

	while (!(nl = memchr(c->buf, '\n', c->len))) {
		if (c->len == sizeof(c->buf) || now_ms() >= deadline ||
		    poll(&pfd, 1, deadline - now_ms()) <= 0)
			return false;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return false;
		c->len += n;
	}
	*nl = '\0';
	memcpy(line, c->buf, nl + 1 - c->buf);
	c->len -= nl + 1 - c->buf;
	memmove(c->buf, nl + 1, c->len);
	return true;
}

/*
 * Start the stand-in (argv NULL) or the tool with stdout into a pipe and,
 * for the stand-in, stdin from the pipe @in. Every pipe is O_CLOEXEC, so
 * the tool keeps none; the stand-in closes the write end of its stdin.
 */
static pid_t start_child(struct child *c, const int in[2], char *const argv[])
{
	int out[2];

	if (pipe2(out, O_CLOEXEC))
		return -1;
	c->len = 0;
	c->out = out[0];
	c->pid = fork();
	if (c->pid)
		goto parent;
	close(out[0]);
	if (!argv) {
		dup2(in[0], STDIN_FILENO);
		close(in[1]);
		vmm_main(out[1]);
	}
	dup2(out[1], STDOUT_FILENO);
	execv(argv[0], argv);
	fprintf(stderr, "# exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
parent:
	close(out[1]);
	return c->pid;
}

static int wait_exit(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define STAT(name)	{ #name, offsetof(struct ich9smi_stats, name) }

/* The counters the tool prints, in its order. */
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
	STAT(cnt_writes), STAT(sts_writes), STAT(reads), STAT(smis_unicast),
	STAT(smis_broadcast), STAT(vcpus_signalled), STAT(exits_to_vmm),
	STAT(smis_suppressed),
};

/* Parse a "stats" line of the tool into @st; false if it is not one. */
static bool parse_stats(const char *line, struct ich9smi_stats *st)
{
	const char *p = line + strlen(TOOL_PREFIX "stats");
	size_t i, len;
	__u64 value;
	char *end;

	if (strncmp(line, TOOL_PREFIX "stats", p - line))
		return false;
	for (i = 0; i < ARRAY_SIZE(stat_fields); i++) {
		len = strlen(stat_fields[i].name);
		if (p[0] != ' ' || strncmp(p + 1, stat_fields[i].name, len) ||
		    p[len + 1] != '=')
			return false;
		p += len + 2;
		value = strtoull(p, &end, 10);
		if (end == p)
			return false;
		memcpy((char *)st + stat_fields[i].offset, &value,
		       sizeof(value));
		p = end;
	}
	return !*p;
}

FIXTURE(attach) {
	const char *tool;
	struct child vmm;
	struct child tool_run;
	int vmm_stdin;		/* closing it ends the stand-in */
};

FIXTURE_VARIANT(attach) {
	const char *features;	/* the tool's -f, or NULL */
	bool broadcast;
};

FIXTURE_VARIANT_ADD(attach, unicast) { .features = NULL };
FIXTURE_VARIANT_ADD(attach, broadcast) {
	.features = "broadcast", .broadcast = true,
};

FIXTURE_SETUP(attach)
{
	const char *why = vm_smm_unsupported();
	int ctl;

	self->vmm.pid = 0;
	self->tool_run.pid = 0;
	self->vmm_stdin = -1;
	if (why)
		SKIP(return, "%s", why);
	ctl = ich9smi_open();
	if (ctl < 0)
		SKIP(return, ICH9SMI_DEV_PATH ": %s", strerror(-ctl));
	close(ctl);
	self->tool = getenv("ICH9SMI_ATTACH_TOOL");
	if (!self->tool || access(self->tool, X_OK))
		SKIP(return, "ICH9SMI_ATTACH_TOOL names no program");
}

FIXTURE_TEARDOWN(attach)
{
	if (self->vmm_stdin >= 0)
		close(self->vmm_stdin);
	if (self->vmm.pid > 0) {
		kill(self->vmm.pid, SIGKILL);
		wait_exit(self->vmm.pid);
	}
	if (self->tool_run.pid > 0) {
		kill(self->tool_run.pid, SIGKILL);
		wait_exit(self->tool_run.pid);
	}
}

TEST_F_TIMEOUT(attach, exits_stop, 180)
{
	struct ich9smi_stats st = {}, st_exit = {};
	unsigned long long exits;
	char line[LINE_MAX_LEN], pid[16];
	char *argv[8];
	unsigned int smm;
	int in[2], argc = 0, fields;
	u64 smis;

	ASSERT_EQ(0, pipe2(in, O_CLOEXEC));
	ASSERT_LT(0, start_child(&self->vmm, in, NULL));
	close(in[0]);
	self->vmm_stdin = in[1];
	ASSERT_TRUE(read_line(&self->vmm, line, 60000));
	ASSERT_STREQ("ready", line);

	snprintf(pid, sizeof(pid), "%d", self->vmm.pid);
	argv[argc++] = (char *)self->tool;
	argv[argc++] = "--stats";
	if (variant->features) {
		argv[argc++] = "-f";
		argv[argc++] = (char *)variant->features;
	}
	argv[argc++] = pid;
	argv[argc] = NULL;
	ASSERT_LT(0, start_child(&self->tool_run, NULL, argv));
	ASSERT_TRUE(read_line(&self->tool_run, line, 30000));
	TH_LOG("%s", line);
	ASSERT_EQ(0, strncmp(line, TOOL_PREFIX "attached to pid ",
			     strlen(TOOL_PREFIX "attached to pid ")));

	/* The stand-in ends when no exit came for a while. */
	ASSERT_TRUE(read_line(&self->vmm, line, ATTACH_TIMEOUT_MS + 30000));
	TH_LOG("stand-in: %s", line);
	fields = sscanf(line, "done exits=%llu smm=%u", &exits, &smm);
	ASSERT_EQ(2, fields);

	/* Statistics on request, while the stand-in still runs. */
	ASSERT_EQ(0, kill(self->tool_run.pid, SIGUSR1));
	ASSERT_TRUE(read_line(&self->tool_run, line, 10000));
	TH_LOG("%s", line);
	ASSERT_TRUE(parse_stats(line, &st));

	smis = st.smis_unicast + st.smis_broadcast;
	ASSERT_LE(EXITS_BEFORE, exits);
	ASSERT_LE(QUIET_SMIS, smis);
	/* Every SMM entry came from an exit or from the device. */
	ASSERT_EQ(smm, exits + smis);
	ASSERT_EQ(st.cnt_writes, smis + st.smis_suppressed);
	ASSERT_EQ(smis, variant->broadcast ? st.smis_broadcast :
					     st.smis_unicast);
	ASSERT_EQ(smis, st.vcpus_signalled);
	ASSERT_EQ(0, st.exits_to_vmm);
	ASSERT_EQ(0, st.sts_writes);

	/* The stand-in exits; the tool reports once more, detaches, ends. */
	close(self->vmm_stdin);
	self->vmm_stdin = -1;
	ASSERT_EQ(0, wait_exit(self->vmm.pid));
	self->vmm.pid = 0;
	ASSERT_TRUE(read_line(&self->tool_run, line, 30000));
	ASSERT_TRUE(parse_stats(line, &st_exit));
	ASSERT_EQ(0, memcmp(&st, &st_exit, sizeof(st)));
	ASSERT_TRUE(read_line(&self->tool_run, line, 10000));
	ASSERT_STREQ(TOOL_PREFIX "detached", line);
	ASSERT_EQ(0, wait_exit(self->tool_run.pid));
	self->tool_run.pid = 0;
}

/* --- a fake QEMU monitor: the tool must ask it about SMM --- */

/*
 * Answer QMP on @lfd as a QEMU with -M smm=@smm would: the greeting,
 * qmp_capabilities and "qom-get /machine smm"; an error for anything else.
 */
static void __noreturn fake_qmp(int lfd, const char *smm)
{
	struct child c = { .out = accept(lfd, NULL, NULL) };
	char line[LINE_MAX_LEN];
	int fd = c.out;

	if (fd < 0)
		_exit(1);
	dprintf(fd, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	while (read_line(&c, line, 30000)) {
		if (strstr(line, "\"qmp_capabilities\""))
			dprintf(fd, "{\"return\": {}}\r\n");
		else if (strstr(line, "\"qom-get\"") &&
			 strstr(line, "\"/machine\"") && strstr(line, "\"smm\""))
			dprintf(fd, "{\"return\": \"%s\"}\r\n", smm);
		else
			dprintf(fd, "%s", QMP_ERROR);
	}
	_exit(0);
}

/*
 * Run the tool with --qmp against fake_qmp(smm), PID the fake's own (it has
 * no VM, so a tool that gets past the SMM check fails later, with 1).
 * The tool's exit status, or -1.
 */
static int attach_fake_qemu(const char *tool, const char *smm)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/attach_test.XXXXXX", pid[16];
	char *argv[5];
	struct child tool_run;
	int lfd, status = -1;
	pid_t qemu = -1;

	if (!mkdtemp(dir))
		return -1;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/qmp", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 1))
		goto out;
	qemu = fork();
	if (!qemu)
		fake_qmp(lfd, smm);
	snprintf(pid, sizeof(pid), "%d", qemu);
	argv[0] = (char *)tool;
	argv[1] = "--qmp";
	argv[2] = addr.sun_path;
	argv[3] = pid;
	argv[4] = NULL;
	if (qemu > 0 && start_child(&tool_run, NULL, argv) > 0) {
		status = wait_exit(tool_run.pid);
		close(tool_run.out);
	}
out:
	if (qemu > 0) {
		kill(qemu, SIGKILL);
		wait_exit(qemu);
	}
	if (lfd >= 0)
		close(lfd);
	unlink(addr.sun_path);
	rmdir(dir);
	return status;
}

TEST(refuses_smm_off)
{
	const char *tool = getenv("ICH9SMI_ATTACH_TOOL");

	if (!tool || access(tool, X_OK))
		SKIP(return, "ICH9SMI_ATTACH_TOOL names no program");
	EXPECT_EQ(TOOL_EXIT_NO_SMM, attach_fake_qemu(tool, "off"));
	/* smm=on passes the check; the fake then has no LPC bridge. */
	EXPECT_EQ(1, attach_fake_qemu(tool, "on"));
}

TEST_HARNESS_MAIN
