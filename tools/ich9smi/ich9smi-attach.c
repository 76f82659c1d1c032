// SPDX-License-Identifier: GPL-2.0
/*
 * ich9smi-attach: serve the APM port of a running VMM's VM with ich9smi.
 *
 * The VMM (QEMU) knows nothing of ich9smi. KVM hands a guest's port access
 * to an in-kernel device before it would exit to the VMM, so attaching
 * ich9smi to the VM moves the APM block (0xB2/0xB3) into the kernel. This
 * tool takes the VMM's VM file descriptor with pidfd_getfd(2), attaches,
 * loads the SMI features the VMM offers and negotiated, sets SMI_EN.APMC_EN
 * as OVMF does, drops every privilege and keeps the device fd open until the
 * VMM exits. See --help and Documentation/virt/ich9smi.rst.
 */
#define _GNU_SOURCE		/* setresuid(), setresgid() */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/ich9smi.h>
#include <linux/kvm.h>

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

#define PROG			"ich9smi-attach"
#define ICH9SMI_DEV_PATH	"/dev/ich9smi"
#define KVM_VM_LINK		"anon_inode:kvm-vm"
#define KVM_DEV_PATH		"/dev/kvm"

/* Exit statuses other than 0 (PID exited), 1 (error) and 2 (usage). */
#define EXIT_NO_SMM		3

/* The ICH9 LPC bridge's QOM type and the SMI properties QEMU gives it. */
#define LPC_TYPE		"ICH9-LPC"
#define LPC_PARENTS		"/machine/unattached"
/* QEMU's x86 machine property that says whether it has SMM (OnOffAuto). */
#define MACHINE_PATH		"/machine"
#define MACHINE_SMM_PROP	"smm"
#define QMP_TIMEOUT_MS		10000
#define QMP_POLL_MS		100
#define QMP_EXIT_WAIT_MS	1000
#define QMP_LINE_MAX		65536

static const char usage_text[] =
"NAME\n"
"	" PROG " - serve a running QEMU's APM port (0xB2/0xB3) with ich9smi\n"
"\n"
"SYNOPSIS\n"
"	" PROG " [-f SET] [-H SET] [-q PATH [-l QOM-PATH] [-c] [-i MS]]\n"
"		       [-d FD] [-u USER] [-s] [-v] PID\n"
"\n"
"DESCRIPTION\n"
"	Takes the KVM VM file descriptor of process PID (the file whose\n"
"	/proc/PID/fd link reads " KVM_VM_LINK ") with pidfd_getfd(2),\n"
"	attaches ich9smi to the VM (ICH9SMI_ATTACH), sets the host and the\n"
"	negotiated SMI features, sets SMI_EN.APMC_EN as OVMF does, and\n"
"	keeps the device open until PID exits, when the device detaches.\n"
"	From the attach on, the guest's accesses to ports 0xB2 and 0xB3\n"
"	are served by the host kernel; APM_CNT writes of 0x02 and 0x03\n"
"	(ACPI enable and disable) still reach the VMM.\n"
"\n"
"	QEMU does not know about the device: it does not mirror its SMI_EN\n"
"	writes, its fw_cfg feature negotiation or its resets into it. With\n"
"	--qmp the tool follows the negotiated features and resets through\n"
"	QEMU's monitor; without it, the features are fixed by -f and -H.\n"
"	Attach while the VM is paused (QEMU's -S, or QMP \"stop\").\n"
"\n"
"	The guest must have SMM, or the device would raise SMIs it has no\n"
"	handler for. With --qmp the tool first asks QEMU (qom-get\n"
"	" MACHINE_PATH " " MACHINE_SMM_PROP ") and refuses \"off\", and \"auto\" when KVM has no\n"
"	SMM: QEMU decides \"auto\" with KVM_CHECK_EXTENSION(KVM_CAP_X86_SMM),\n"
"	which the tool asks " KVM_DEV_PATH " (KVM refuses it the VM fd's ioctls).\n"
"	ICH9SMI_ATTACH refuses a VM that KVM has no SMM for. Without --qmp\n"
"	smm=off goes unnoticed: attach only to a QEMU started with smm=on.\n"
"\n"
"	Needs the right to open " ICH9SMI_DEV_PATH " and ptrace-attach\n"
"	rights over PID (pidfd_getfd(2)); in practice, root. KVM's own\n"
"	ioctls refuse a process other than the VM's creator; ich9smi's do\n"
"	not, and the tool issues no ioctl on the VM fd. Once attached it\n"
"	needs no privilege: it drops the bounding set (with CAP_SETPCAP)\n"
"	and empties the ambient, inheritable, permitted and effective\n"
"	capability sets, sets no_new_privs, becomes non-dumpable and, with\n"
"	--user, switches user; it checks the result and exits with status 1\n"
"	if any capability is left. From then on it only uses the fds it\n"
"	holds: the device, the pidfd, the QMP socket (opened before the\n"
"	attach) and a signalfd.\n"
"\n"
"	SET is a number (0x1) or a comma-separated list of the feature\n"
"	names broadcast, cpu-hotplug and cpu-hot-unplug; \"\" is none.\n"
"\n"
"OPTIONS\n"
"	-f, --features SET\n"
"		The negotiated features: what the firmware agreed with QEMU\n"
"		(QEMU's x-smi-negotiated-features). Default: none, or what\n"
"		QMP reports.\n"
"	-H, --host-features SET\n"
"		The features offered to the guest (QEMU's x-smi-broadcast,\n"
"		x-smi-cpu-hotplug, x-smi-cpu-hotunplug). Default: the\n"
"		negotiated features, or what QMP reports.\n"
"	-q, --qmp PATH\n"
"		QEMU's QMP unix socket (-qmp unix:PATH,server=on,wait=off).\n"
"		The features not given with -f and -H are read with qom-get\n"
"		from the ICH9 LPC bridge, and the negotiated set is polled\n"
"		until PID exits: when the firmware negotiates, the device\n"
"		negotiates the same set; a RESET event resets the device's\n"
"		negotiation (ICH9SMI_RESET). -f fixes the negotiated set\n"
"		and turns the polling off.\n"
"	-l, --lpc QOM-PATH\n"
"		QOM path of the LPC bridge. Default: the child of\n"
"		" LPC_PARENTS " of type " LPC_TYPE ".\n"
"	-c, --cont\n"
"		Resume the VM (QMP \"cont\") once the device is set up.\n"
"	-i, --interval MS\n"
"		Poll the negotiated features every MS milliseconds\n"
"		(default %d).\n"
"	-d, --vm-fd FD\n"
"		Use PID's file descriptor FD, which must be a KVM VM;\n"
"		needed when PID has more than one VM.\n"
"	-u, --user USER\n"
"		Once attached, also switch to USER's uid and primary gid\n"
"		(USER is a name or a number; a number without a passwd\n"
"		entry is the gid too), with no supplementary groups.\n"
"		USER can signal the tool (SIGTERM detaches) but not\n"
"		ptrace it. Without --user a tool run as root stays uid 0\n"
"		(with no capability), which still owns root's files.\n"
"	-s, --stats\n"
"		Print the device's statistics when PID exits.\n"
"	-v, --verbose\n"
"		Say what is done, and every change of the negotiated set.\n"
"	-h, --help\n"
"		Print this text.\n"
"\n"
"SIGNALS\n"
"	SIGUSR1	print the device's statistics now.\n"
"	SIGINT, SIGTERM\n"
"		detach (the guest's APM accesses exit to the VMM again) and\n"
"		exit.\n"
"\n"
"OUTPUT\n"
"	On standard output, one line when the device is ready:\n"
"	  " PROG ": attached to pid PID (vm fd FD), host HOST, negotiated NEG\n"
"	one line per statistics report, each counter as NAME=VALUE:\n"
"	  " PROG ": stats cnt_writes=N sts_writes=N reads=N smis_unicast=N\n"
"	  smis_broadcast=N vcpus_signalled=N exits_to_vmm=N smis_suppressed=N\n"
"	(on one line) and, last, \"" PROG ": detached\". Errors go to\n"
"	standard error.\n"
"\n"
"LIMITS\n"
"	QEMU does not tell the tool everything the device would need:\n"
"	- SMI_EN: APMC_EN is forced on. The guest's SMI_EN writes are not\n"
"	  seen, so a guest that clears APMC_EN still gets SMIs from\n"
"	  APM_CNT writes, also after a reset.\n"
"	- Migration: the device's state (APM_CNT, APM_STS, the negotiated\n"
"	  set) is not in QEMU's migration stream, and nothing attaches on\n"
"	  the destination, whose QEMU serves the port again from stale\n"
"	  registers. Do not migrate a VM the tool serves.\n"
"	- QMP polling: a newly negotiated set reaches the device at the\n"
"	  next poll (-i); SMIs until then are unicast. Without --qmp the\n"
"	  negotiation is not followed at all.\n"
"	- Reset race: a reset reaches the device (ICH9SMI_RESET) only once\n"
"	  the tool has read QEMU's RESET event; the rebooting guest runs\n"
"	  with the old negotiated set until then. With -f the set stays.\n"
"	- Without --qmp, smm=off is not detected (see above).\n"
"\n"
"EXIT STATUS\n"
"	0 when PID exited or a signal ended the tool, 1 on any error, 2 on\n"
"	a usage error, 3 when the VM has no SMM (QEMU's smm=off, smm=auto\n"
"	without KVM_CAP_X86_SMM, or ICH9SMI_ATTACH failing with\n"
"	EOPNOTSUPP).\n"
"\n"
"EXAMPLES\n"
"	qemu-system-x86_64 -M q35,smm=on,accel=kvm -S \\\n"
"		-qmp unix:/run/vm.qmp,server=on,wait=off ... &\n"
"	" PROG " --qmp /run/vm.qmp --cont --stats $!\n"
"\n"
"	" PROG " -f broadcast -H broadcast,cpu-hotplug $(pidof qemu)\n"
"\n"
"SEE ALSO\n"
"	pidfd_getfd(2), Documentation/virt/ich9smi.rst\n";

static const struct {
	const char *name;
	uint64_t bit;
} feature_names[] = {
	{ "broadcast", ICH9SMI_F_BROADCAST },
	{ "cpu-hotplug", ICH9SMI_F_CPU_HOTPLUG },
	{ "cpu-hot-unplug", ICH9SMI_F_CPU_HOT_UNPLUG },
};

/* QEMU's LPC properties for the host features, by feature bit. */
static const char * const host_feature_props[] = {
	"x-smi-broadcast", "x-smi-cpu-hotplug", "x-smi-cpu-hotunplug",
};

struct options {
	pid_t pid;
	const char *qmp_path;
	const char *lpc_path;
	int vm_fd;		/* in the target, or -1 to look it up */
	int interval_ms;
	bool have_features;
	bool have_host;
	bool have_user;		/* --user: switch to uid and gid */
	uid_t uid;
	gid_t gid;
	bool cont;
	bool stats;
	bool verbose;
	uint64_t features;
	uint64_t host;
};

/* A QMP connection: the socket, and received bytes not yet consumed. */
struct qmp {
	int fd;
	size_t len;
	bool reset_seen;	/* a RESET event arrived since last checked */
	char buf[QMP_LINE_MAX];
};

static bool verbose;

/* With --verbose, what is being done, on standard output. */
#define say(fmt, ...)							\
	do {								\
		if (verbose) {						\
			printf(PROG ": " fmt "\n", ##__VA_ARGS__);	\
			fflush(stdout);					\
		}							\
	} while (0)

#define complain(fmt, ...) \
	fprintf(stderr, PROG ": " fmt "\n", ##__VA_ARGS__)

static void usage_error(const char *what)
{
	complain("%s (try --help)", what);
	exit(2);
}

static void features_str(uint64_t set, char *buf, size_t size)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(feature_names); i++) {
		if (!(set & feature_names[i].bit))
			continue;
		off += snprintf(buf + off, size - off, "%s%s", off ? "," : "",
				feature_names[i].name);
		if (off >= size)
			return;
	}
	if (set & ~ICH9SMI_F_ALL)
		snprintf(buf + off, size - off, "%s0x%llx", off ? "," : "",
			 (unsigned long long)(set & ~ICH9SMI_F_ALL));
	else if (!set)
		snprintf(buf, size, "none");
}

/* A feature set: a number, or a comma-separated list of names. */
static int parse_features(const char *arg, uint64_t *set)
{
	char *copy, *name, *save = NULL, *end;
	size_t i;
	int ret = 0;

	if (isdigit((unsigned char)arg[0])) {
		errno = 0;
		*set = strtoull(arg, &end, 0);
		return errno || *end ? -EINVAL : 0;
	}
	copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	*set = 0;
	for (name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < ARRAY_SIZE(feature_names); i++)
			if (!strcmp(name, feature_names[i].name))
				break;
		if (i == ARRAY_SIZE(feature_names)) {
			ret = -EINVAL;
			break;
		}
		*set |= feature_names[i].bit;
	}
	free(copy);
	return ret;
}

static int parse_int(const char *arg, long min, long max, long *value)
{
	char *end;

	errno = 0;
	*value = strtol(arg, &end, 10);
	if (errno || *end || end == arg || *value < min || *value > max)
		return -EINVAL;
	return 0;
}

/* A user name, or a number, which is the gid too if no passwd has it. */
static int parse_user(const char *arg, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	long value;

	if (!parse_int(arg, 0, INT_MAX, &value)) {
		pw = getpwuid(value);
		*uid = value;
		*gid = pw ? pw->pw_gid : (gid_t)value;
		return 0;
	}
	pw = getpwnam(arg);
	if (!pw)
		return -ENOENT;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static void parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "features", required_argument, NULL, 'f' },
		{ "host-features", required_argument, NULL, 'H' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "lpc", required_argument, NULL, 'l' },
		{ "cont", no_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "vm-fd", required_argument, NULL, 'd' },
		{ "user", required_argument, NULL, 'u' },
		{ "stats", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	long value;
	int c;

	*opt = (struct options){ .vm_fd = -1, .interval_ms = QMP_POLL_MS };
	while ((c = getopt_long(argc, argv, "f:H:q:l:ci:d:u:svh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'f':
			if (parse_features(optarg, &opt->features))
				usage_error("bad feature set for -f");
			opt->have_features = true;
			break;
		case 'H':
			if (parse_features(optarg, &opt->host))
				usage_error("bad feature set for -H");
			opt->have_host = true;
			break;
		case 'q':
			opt->qmp_path = optarg;
			break;
		case 'l':
			opt->lpc_path = optarg;
			break;
		case 'c':
			opt->cont = true;
			break;
		case 'i':
			if (parse_int(optarg, 1, 60000, &value))
				usage_error("bad interval");
			opt->interval_ms = value;
			break;
		case 'd':
			if (parse_int(optarg, 0, INT_MAX, &value))
				usage_error("bad file descriptor number");
			opt->vm_fd = value;
			break;
		case 'u':
			if (parse_user(optarg, &opt->uid, &opt->gid))
				usage_error("no such user");
			opt->have_user = true;
			break;
		case 's':
			opt->stats = true;
			break;
		case 'v':
			opt->verbose = true;
			break;
		case 'h':
			printf(usage_text, QMP_POLL_MS);
			exit(0);
		default:
			usage_error("unknown option");
		}
	}
	if (optind != argc - 1)
		usage_error("want one PID");
	if (parse_int(argv[optind], 1, INT_MAX, &value))
		usage_error("bad PID");
	opt->pid = value;
	if ((opt->cont || opt->lpc_path) && !opt->qmp_path)
		usage_error("--cont and --lpc need --qmp");
	if (!opt->have_host && !opt->qmp_path)
		opt->host = opt->features;
}

/* --- QMP --- */

/* Wait for fd to become readable; -ETIMEDOUT after ms. */
static int wait_readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int ret;

	do {
		ret = poll(&pfd, 1, ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIMEDOUT;
}

/*
 * The next line QEMU sent, without its line end, in q->buf; its length,
 * or -errno. Consumes the previous line first (returned in *consumed).
 */
static int qmp_read_line(struct qmp *q, size_t *consumed, int ms)
{
	char *nl;
	ssize_t n;
	int ret;

	if (*consumed) {
		memmove(q->buf, q->buf + *consumed, q->len - *consumed);
		q->len -= *consumed;
		*consumed = 0;
	}
	while (!(nl = memchr(q->buf, '\n', q->len))) {
		if (q->len == sizeof(q->buf) - 1)
			return -EMSGSIZE;
		ret = wait_readable(q->fd, ms);
		if (ret)
			return ret;
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		q->len += n;
	}
	*consumed = nl - q->buf + 1;
	*nl = '\0';
	if (nl > q->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	return strlen(q->buf);
}

/* Note the events we act on; every other line is returned to the caller. */
static bool qmp_is_event(struct qmp *q)
{
	if (!strstr(q->buf, "\"event\":"))
		return false;
	if (strstr(q->buf, "\"event\": \"RESET\"") ||
	    strstr(q->buf, "\"event\":\"RESET\""))
		q->reset_seen = true;
	return true;
}

/* Take in whatever QEMU sent without being asked: events. */
static int qmp_drain_events(struct qmp *q)
{
	size_t consumed = 0;
	int ret;

	for (;;) {
		ret = qmp_read_line(q, &consumed, 0);
		if (ret == -ETIMEDOUT)
			break;
		if (ret < 0)
			return ret;
		if (!qmp_is_event(q))
			complain("qmp: unexpected line: %s", q->buf);
	}
	/* Keep a partial line for later; drop the consumed one. */
	memmove(q->buf, q->buf + consumed, q->len - consumed);
	q->len -= consumed;
	return 0;
}

/*
 * Send one command and return the start of its "return" value in reply
 * (a copy of the answer line), or -errno; an "error" answer is -EREMOTEIO.
 */
static int qmp_command(struct qmp *q, const char *cmd, char *reply,
		       size_t size, const char **value)
{
	size_t consumed = 0, len = strlen(cmd);
	const char *ret_key = "\"return\":";
	char *p;
	int ret;

	ret = qmp_drain_events(q);
	if (ret)
		return ret;
	if (write(q->fd, cmd, len) != (ssize_t)len)
		return -EIO;
	for (;;) {
		ret = qmp_read_line(q, &consumed, QMP_TIMEOUT_MS);
		if (ret < 0)
			return ret;
		if (!qmp_is_event(q))
			break;
	}
	snprintf(reply, size, "%s", q->buf);
	memmove(q->buf, q->buf + consumed, q->len - consumed);
	q->len -= consumed;
	if (strstr(reply, "\"error\"")) {
		complain("qmp: %.*s: %s", (int)strcspn(cmd, "\n"), cmd, reply);
		return -EREMOTEIO;
	}
	p = strstr(reply, ret_key);
	if (!p)
		return -EPROTO;
	p += strlen(ret_key);
	while (*p == ' ')
		p++;
	if (value)
		*value = p;
	return 0;
}

static int qmp_connect(struct qmp *q, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char reply[256];
	size_t consumed = 0;
	int ret;

	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path) >=
	    (int)sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	q->len = 0;
	q->reset_seen = false;
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0)
		return -errno;
	if (connect(q->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	/* The greeting, then leave capabilities negotiation mode. */
	ret = qmp_read_line(q, &consumed, QMP_TIMEOUT_MS);
	if (ret < 0)
		return ret;
	if (!strstr(q->buf, "\"QMP\""))
		return -EPROTO;
	memmove(q->buf, q->buf + consumed, q->len - consumed);
	q->len -= consumed;
	return qmp_command(q, "{\"execute\": \"qmp_capabilities\"}\n",
			   reply, sizeof(reply), NULL);
}

/* qom-get: *value points to the property's JSON value in reply. */
static int qmp_qom_get_json(struct qmp *q, const char *path, const char *prop,
			    char *reply, size_t size, const char **value)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"%s\", \"property\": \"%s\"}}\n",
		 path, prop);
	return qmp_command(q, cmd, reply, size, value);
}

/* qom-get of a property that is a number or a bool. */
static int qmp_qom_get(struct qmp *q, const char *path, const char *prop,
		       uint64_t *value)
{
	char reply[256];
	const char *p;
	char *end;
	int ret;

	ret = qmp_qom_get_json(q, path, prop, reply, sizeof(reply), &p);
	if (ret)
		return ret;
	if (!strncmp(p, "true", 4)) {
		*value = 1;
	} else if (!strncmp(p, "false", 5)) {
		*value = 0;
	} else {
		errno = 0;
		*value = strtoull(p, &end, 10);
		if (errno || end == p)
			return -EPROTO;
	}
	return 0;
}

/* qom-get of a string property without escapes, such as an enum's value. */
static int qmp_qom_get_str(struct qmp *q, const char *path, const char *prop,
			   char *buf, size_t size)
{
	char reply[256];
	const char *p;
	size_t len;
	int ret;

	ret = qmp_qom_get_json(q, path, prop, reply, sizeof(reply), &p);
	if (ret)
		return ret;
	if (*p++ != '"')
		return -EPROTO;
	len = strcspn(p, "\"\\");
	if (p[len] != '"' || len >= size)
		return -EPROTO;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return 0;
}

/*
 * The QOM path of the LPC bridge: the child of LPC_PARENTS whose type is
 * child<ICH9-LPC>. QEMU lists each child as {"name": ..., "type": ...}.
 */
static int qmp_find_lpc(struct qmp *q, char *path, size_t size)
{
	static char reply[QMP_LINE_MAX];
	const char *want = "\"child<" LPC_TYPE ">\"";
	const char *p, *obj, *name;
	int ret;

	ret = qmp_command(q, "{\"execute\": \"qom-list\", \"arguments\": {\"path\": \""
			  LPC_PARENTS "\"}}\n", reply, sizeof(reply), &p);
	if (ret)
		return ret;
	p = strstr(p, want);
	if (!p)
		return -ENOENT;
	/* The object around the match: back to its '{', then its name. */
	for (obj = p; obj > reply && *obj != '{'; obj--)
		;
	name = strstr(obj, "\"name\":");
	if (!name)
		return -EPROTO;
	name = strchr(name + strlen("\"name\":"), '"');
	if (!name)
		return -EPROTO;
	name++;
	snprintf(path, size, "%s/%.*s", LPC_PARENTS, (int)strcspn(name, "\""),
		 name);
	return 0;
}

/* --- SMM --- */

/*
 * Whether KVM offers SMM, which is what QEMU asks for smm=auto. QEMU asks
 * its VM fd, but KVM answers every VM ioctl from a process other than the
 * VM's creator with EIO, so this asks /dev/kvm. The two differ only for VMs
 * with protected state (SEV-ES, SEV-SNP, TDX), which ICH9SMI_ATTACH
 * refuses itself. 1 for yes, 0 for no, or -errno.
 */
static int kvm_has_smm(void)
{
	int fd, ret, err;

	fd = open(KVM_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		complain("%s: %s", KVM_DEV_PATH, strerror(err));
		return -err;
	}
	ret = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_SMM);
	if (ret < 0) {
		ret = -errno;
		complain("KVM_CHECK_EXTENSION(KVM_CAP_X86_SMM): %s",
			 strerror(-ret));
	}
	close(fd);
	return ret > 0 ? 1 : ret;
}

/*
 * Whether QEMU's machine has SMM: without it the device would raise SMIs
 * that the guest has no SMRAM and no handler for. QEMU's x86 machines say
 * "on", "off" or "auto"; with "on" QEMU fails to start unless KVM has SMM,
 * with "auto" it has SMM exactly when KVM offers it. 1 for yes, 0 for no
 * (said why), or -errno.
 */
static int qmp_has_smm(struct qmp *q)
{
	char smm[16];
	int ret;

	ret = qmp_qom_get_str(q, MACHINE_PATH, MACHINE_SMM_PROP, smm,
			      sizeof(smm));
	if (ret) {
		complain("cannot tell whether QEMU's machine has SMM (qom-get %s %s): %s",
			 MACHINE_PATH, MACHINE_SMM_PROP, strerror(-ret));
		return ret;
	}
	say("QEMU's machine has smm=%s", smm);
	if (!strcmp(smm, "on"))
		return 1;
	if (!strcmp(smm, "off")) {
		complain("QEMU runs with smm=off, the guest has no SMM: refusing");
		return 0;
	}
	if (strcmp(smm, "auto")) {
		complain("QEMU says smm=%s, not on, off or auto", smm);
		return -EPROTO;
	}
	ret = kvm_has_smm();
	if (!ret)
		complain("QEMU runs with smm=auto, and KVM has no SMM: refusing");
	return ret;
}

/* --- the device --- */

struct device {
	int fd;
	uint64_t host;
	uint64_t negotiated;	/* what the device has locked, or 0 */
};

static int dev_ioctl(int fd, unsigned long cmd, void *arg, const char *name)
{
	int err;

	if (ioctl(fd, cmd, arg) < 0) {
		err = errno;
		complain("%s: %s", name, strerror(err));
		return -err;
	}
	return 0;
}

/* Make the device's negotiated set @set, as a "features ok" step would. */
static int dev_negotiate(struct device *dev, uint64_t set)
{
	struct ich9smi_negotiate neg = { .size = sizeof(neg), .requested = set };
	struct ich9smi_reset reset = { .size = sizeof(reset) };
	char buf[64];
	int ret;

	if (set == dev->negotiated)
		return 0;
	/* A locked set changes only through a reset. */
	ret = dev_ioctl(dev->fd, ICH9SMI_RESET, &reset, "ICH9SMI_RESET");
	if (ret)
		return ret;
	dev->negotiated = 0;
	if (set) {
		ret = dev_ioctl(dev->fd, ICH9SMI_NEGOTIATE, &neg,
				"ICH9SMI_NEGOTIATE");
		if (ret)
			return ret;
		if (!neg.features_ok || neg.negotiated != set) {
			features_str(set, buf, sizeof(buf));
			complain("the device refused the negotiated set %s", buf);
			return -EINVAL;
		}
		dev->negotiated = set;
	}
	features_str(set, buf, sizeof(buf));
	say("negotiated features now %s", buf);
	return 0;
}

#define STAT(name)	{ #name, offsetof(struct ich9smi_stats, name) }

/* The counters in the order of the UAPI struct, as printed. */
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
	STAT(cnt_writes), STAT(sts_writes), STAT(reads), STAT(smis_unicast),
	STAT(smis_broadcast), STAT(vcpus_signalled), STAT(exits_to_vmm),
	STAT(smis_suppressed),
};

static int print_stats(int dev_fd)
{
	struct ich9smi_stats st = { .size = sizeof(st) };
	__u64 value;
	size_t i;
	int ret;

	ret = dev_ioctl(dev_fd, ICH9SMI_GET_STATS, &st, "ICH9SMI_GET_STATS");
	if (ret)
		return ret;
	printf("%s: stats", PROG);
	for (i = 0; i < ARRAY_SIZE(stat_fields); i++) {
		memcpy(&value, (char *)&st + stat_fields[i].offset,
		       sizeof(value));
		printf(" %s=%llu", stat_fields[i].name,
		       (unsigned long long)value);
	}
	putchar('\n');
	fflush(stdout);
	return 0;
}

/* --- the target process --- */

static int sys_pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_getfd(int pidfd, int fd)
{
	return syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

static bool is_vm_fd(pid_t pid, int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, KVM_VM_LINK);
}

/* The target's only KVM VM fd, by the link names in /proc/PID/fd. */
static int find_vm_fd(pid_t pid)
{
	struct dirent *de;
	char path[64];
	long fd;
	int found = -1, count = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	if (!dir) {
		complain("%s: %s", path, strerror(errno));
		return -errno;
	}
	while ((de = readdir(dir))) {
		if (parse_int(de->d_name, 0, INT_MAX, &fd) || !is_vm_fd(pid, fd))
			continue;
		found = fd;
		count++;
	}
	closedir(dir);
	if (count == 1)
		return found;
	if (!count)
		complain("pid %d has no %s file descriptor", pid, KVM_VM_LINK);
	else
		complain("pid %d has %d KVM VMs: pick one with --vm-fd",
			 pid, count);
	return -ENOENT;
}

/* Our own copy of the target's VM fd, whose number there is *target_fd. */
static int take_vm_fd(int pidfd, pid_t pid, int *target)
{
	int fd, target_fd = *target;

	if (target_fd < 0) {
		target_fd = find_vm_fd(pid);
		if (target_fd < 0)
			return target_fd;
	} else if (!is_vm_fd(pid, target_fd)) {
		complain("fd %d of pid %d is not a %s", target_fd, pid,
			 KVM_VM_LINK);
		return -EINVAL;
	}
	fd = sys_pidfd_getfd(pidfd, target_fd);
	if (fd < 0) {
		complain("pidfd_getfd(pid %d, fd %d): %s", pid, target_fd,
			 strerror(errno));
		return -errno;
	}
	say("took fd %d of pid %d", target_fd, pid);
	*target = target_fd;
	return fd;
}

/*
 * Attach to the VM behind vm_fd and return the device fd, or -errno:
 * -EOPNOTSUPP when the module finds that the VM has no SMM.
 */
static int attach(int vm_fd, uint64_t host)
{
	struct ich9smi_info info = { .size = sizeof(info) };
	struct ich9smi_attach at = { .size = sizeof(at), .vm_fd = vm_fd };
	int ctl, dev, err;

	ctl = open(ICH9SMI_DEV_PATH, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		err = errno;
		complain("%s: %s", ICH9SMI_DEV_PATH, strerror(err));
		return -err;
	}
	dev = dev_ioctl(ctl, ICH9SMI_INFO, &info, "ICH9SMI_INFO");
	if (dev)
		goto close_ctl;
	if (info.api_version < ICH9SMI_API_VERSION || (host & ~info.features)) {
		complain("the module (API %u, features 0x%llx) cannot offer 0x%llx",
			 info.api_version, (unsigned long long)info.features,
			 (unsigned long long)host);
		dev = -EINVAL;
		goto close_ctl;
	}
	dev = ioctl(ctl, ICH9SMI_ATTACH, &at);
	if (dev < 0) {
		dev = -errno;
		if (dev == -EOPNOTSUPP)
			complain("ICH9SMI_ATTACH: the VM has no SMM: refusing");
		else
			complain("ICH9SMI_ATTACH: %s", strerror(-dev));
	}
close_ctl:
	close(ctl);
	return dev;
}

/*
 * Host features, negotiated features, then SMI_EN.APMC_EN as OVMF sets it:
 * no write raises an SMI before the negotiated set is in force.
 */
static int setup(struct device *dev, uint64_t negotiated)
{
	struct ich9smi_host_features hf = {
		.size = sizeof(hf),
		.supported = dev->host,
	};
	struct ich9smi_smi_en en = {
		.size = sizeof(en),
		.smi_en = ICH9SMI_SMI_EN_APMC_EN,
	};

	if (dev_ioctl(dev->fd, ICH9SMI_SET_HOST_FEATURES, &hf,
		      "ICH9SMI_SET_HOST_FEATURES") ||
	    dev_negotiate(dev, negotiated))
		return -1;
	return dev_ioctl(dev->fd, ICH9SMI_SET_SMI_EN, &en, "ICH9SMI_SET_SMI_EN");
}

/* Read what QEMU offers and has negotiated, where -f/-H did not say. */
static int qmp_features(struct qmp *q, const struct options *opt,
			const char *lpc, uint64_t *host, uint64_t *negotiated)
{
	uint64_t on;
	size_t i;
	int ret;

	if (!opt->have_host) {
		*host = 0;
		for (i = 0; i < ARRAY_SIZE(host_feature_props); i++) {
			ret = qmp_qom_get(q, lpc, host_feature_props[i], &on);
			if (ret)
				return ret;
			if (on)
				*host |= 1ULL << i;
		}
	}
	if (!opt->have_features)
		return qmp_qom_get(q, lpc, "x-smi-negotiated-features",
				   negotiated);
	return 0;
}

/*
 * With --qmp, before the attach: connect (the socket stays open for good,
 * so nothing later needs the right to connect), refuse a machine without
 * SMM, find the LPC bridge and read the features. 0, or an exit status.
 */
static int qmp_prepare(struct qmp *q, const struct options *opt, char *lpc,
		       size_t size, uint64_t *host, uint64_t *negotiated)
{
	int ret;

	ret = qmp_connect(q, opt->qmp_path);
	if (ret) {
		complain("qmp %s: %s", opt->qmp_path, strerror(-ret));
		return 1;
	}
	ret = qmp_has_smm(q);
	if (ret <= 0)
		return ret ? 1 : EXIT_NO_SMM;
	if (opt->lpc_path) {
		snprintf(lpc, size, "%s", opt->lpc_path);
	} else {
		ret = qmp_find_lpc(q, lpc, size);
		if (ret) {
			complain("no %s under %s: %s", LPC_TYPE, LPC_PARENTS,
				 strerror(-ret));
			return 1;
		}
	}
	say("LPC bridge %s", lpc);
	return qmp_features(q, opt, lpc, host, negotiated) ? 1 : 0;
}

/* Follow QEMU: a reset, then whatever set the firmware negotiates. */
static int qmp_follow(struct qmp *q, struct device *dev, const char *lpc)
{
	struct ich9smi_reset reset = { .size = sizeof(reset) };
	uint64_t set;
	int ret;

	ret = qmp_drain_events(q);
	if (ret)
		return ret;
	if (q->reset_seen) {
		q->reset_seen = false;
		say("QEMU reset the machine");
		ret = dev_ioctl(dev->fd, ICH9SMI_RESET, &reset,
				"ICH9SMI_RESET");
		if (ret)
			return ret;
		dev->negotiated = 0;
	}
	ret = qmp_qom_get(q, lpc, "x-smi-negotiated-features", &set);
	if (ret)
		return ret;
	return dev_negotiate(dev, set);
}

/* --- privileges --- */

/* The capability sets of this process, as capget(2) and capset(2) see them. */
struct caps {
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
};

static int caps_get(struct caps *c)
{
	int err;

	memset(c, 0, sizeof(*c));
	c->hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &c->hdr, c->data)) {
		err = errno;
		complain("capget: %s", strerror(err));
		return -err;
	}
	return 0;
}

/* One of the sets, as a 64-bit mask, from its two 32-bit halves. */
static uint64_t caps_mask(uint32_t low, uint32_t high)
{
	return (uint64_t)high << 32 | low;
}

/* The kernel's last capability: PR_CAPBSET_READ is EINVAL past it. */
static int cap_last(void)
{
	int cap;

	for (cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			break;
	return cap - 1;
}

/*
 * The bounding set caps what an execve() could ever gain. Dropping from
 * it needs CAP_SETPCAP; a tool given only the rights it needs has none,
 * and then no_new_privs alone keeps an execve() from gaining anything.
 */
static int drop_bounding_set(int last)
{
	int cap, err;

	for (cap = 0; cap <= last; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1 ||
		    !prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			continue;
		err = errno;
		complain("PR_CAPBSET_DROP(%d): %s", cap, strerror(err));
		return -err;
	}
	return 0;
}

/* --user: no supplementary groups, the gid, then the uid, which ends root. */
static int switch_user(uid_t uid, gid_t gid)
{
	int err;

	if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
	    setresuid(uid, uid, uid)) {
		err = errno;
		complain("switching to uid %u gid %u: %s", (unsigned int)uid,
			 (unsigned int)gid, strerror(err));
		return -err;
	}
	return 0;
}

/* What drop_privileges() did, read back from the kernel: -1 if not all. */
static int check_dropped(const struct options *opt, int last, bool bounding)
{
	uint64_t ambient = 0, bset = 0, eff, perm, inh;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	struct caps c;
	int cap, bad = 0;

	if (caps_get(&c))
		return -1;
	eff = caps_mask(c.data[0].effective, c.data[1].effective);
	perm = caps_mask(c.data[0].permitted, c.data[1].permitted);
	inh = caps_mask(c.data[0].inheritable, c.data[1].inheritable);
	if (eff || perm || inh) {
		complain("capabilities left: effective 0x%llx permitted 0x%llx inheritable 0x%llx",
			 (unsigned long long)eff, (unsigned long long)perm,
			 (unsigned long long)inh);
		bad = 1;
	}
	for (cap = 0; cap <= last; cap++) {
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0))
			ambient |= 1ULL << cap;
		if (bounding && prctl(PR_CAPBSET_READ, cap, 0, 0, 0))
			bset |= 1ULL << cap;
	}
	if (ambient || bset) {
		complain("capabilities left: ambient 0x%llx bounding 0x%llx",
			 (unsigned long long)ambient, (unsigned long long)bset);
		bad = 1;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
	    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
		complain("no_new_privs not set or still dumpable");
		bad = 1;
	}
	if (opt->have_user &&
	    (getresuid(&ruid, &euid, &suid) || getresgid(&rgid, &egid, &sgid) ||
	     ruid != opt->uid || euid != opt->uid || suid != opt->uid ||
	     rgid != opt->gid || egid != opt->gid || sgid != opt->gid ||
	     getgroups(0, NULL) != 0)) {
		complain("still not uid %u gid %u without other groups",
			 (unsigned int)opt->uid, (unsigned int)opt->gid);
		bad = 1;
	}
	return bad ? -1 : 0;
}

/*
 * Called once the device is attached. From then on the tool works only
 * through the fds it holds (the device, the pidfd, the signalfd, the QMP
 * socket, connected before, and stdout), and the device's ioctls check no
 * privilege; what it still parses comes from QEMU, which runs the guest.
 * So it keeps no capability, and non-dumpable, it cannot be ptraced for
 * its device fd by the user it runs as. Any failure ends the tool, which
 * detaches the device.
 */
static int drop_privileges(const struct options *opt)
{
	int last = cap_last();
	bool setpcap;
	struct caps c;

	if (caps_get(&c))
		return -1;
	setpcap = caps_mask(c.data[0].effective, c.data[1].effective) & (1ULL << CAP_SETPCAP);
	if (setpcap && drop_bounding_set(last))
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) {
		complain("PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror(errno));
		return -1;
	}
	if (opt->have_user && switch_user(opt->uid, opt->gid))
		return -1;
	memset(&c, 0, sizeof(c));
	c.hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capset, &c.hdr, c.data)) {
		complain("capset: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) {
		complain("prctl: %s", strerror(errno));
		return -1;
	}
	if (check_dropped(opt, last, setpcap)) {
		complain("could not drop every privilege; detaching");
		return -1;
	}
	say("dropped every capability%s; uid %u gid %u",
	    setpcap ? ", bounding set included" : "",
	    (unsigned int)getuid(), (unsigned int)getgid());
	return 0;
}

static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/*
 * Until the target exits or a signal ends it: statistics on SIGUSR1,
 * and with QMP, the negotiated set polled every interval.
 */
static int serve(const struct options *opt, int pidfd, int sigfd,
		 struct device *dev, struct qmp *q, const char *lpc)
{
	struct pollfd pfd[3] = {
		{ .fd = pidfd, .events = POLLIN },
		{ .fd = sigfd, .events = POLLIN },
		{ .fd = q ? q->fd : -1, .events = POLLIN },
	};
	bool follow = q && !opt->have_features;
	struct signalfd_siginfo si;
	int ret;

	for (;;) {
		ret = poll(pfd, 3, follow ? opt->interval_ms : -1);
		if (ret < 0 && errno != EINTR) {
			complain("poll: %s", strerror(errno));
			return -1;
		}
		if (pfd[0].revents) {
			say("pid %d exited", opt->pid);
			return 0;
		}
		if (pfd[1].revents & POLLIN) {
			if (read(sigfd, &si, sizeof(si)) != sizeof(si))
				return -1;
			if (si.ssi_signo != SIGUSR1) {
				say("signal %u: detaching", si.ssi_signo);
				return 0;
			}
			print_stats(dev->fd);
		}
		if (pfd[2].revents && qmp_drain_events(q)) {
			/* QEMU closed the monitor: it is on its way out. */
			say("QMP connection closed; waiting for pid %d",
			    opt->pid);
			pfd[2].fd = -1;
			follow = false;
		}
		if (follow && qmp_follow(q, dev, lpc)) {
			/* QEMU closes its monitor on the way out. */
			if (poll(pfd, 1, QMP_EXIT_WAIT_MS) == 1)
				continue;
			complain("cannot follow QEMU's negotiated features any more");
			pfd[2].fd = -1;
			follow = false;
		}
	}
}

int main(int argc, char **argv)
{
	static struct qmp qmp_conn;
	struct device dev = { .fd = -1 };
	struct qmp *q = NULL;
	struct options opt;
	char lpc[256] = "", host_buf[64], neg_buf[64], reply[256];
	uint64_t negotiated;
	int pidfd, sigfd, vm_fd, ret;

	parse_options(argc, argv, &opt);
	verbose = opt.verbose;
	dev.host = opt.host;
	negotiated = opt.features;

	sigfd = block_signals();
	if (sigfd < 0) {
		complain("signalfd: %s", strerror(errno));
		return 1;
	}
	pidfd = sys_pidfd_open(opt.pid);
	if (pidfd < 0) {
		complain("pidfd_open(%d): %s", opt.pid, strerror(errno));
		return 1;
	}
	if (opt.qmp_path) {
		q = &qmp_conn;
		ret = qmp_prepare(q, &opt, lpc, sizeof(lpc), &dev.host,
				  &negotiated);
		if (ret)
			return ret;
	}

	vm_fd = take_vm_fd(pidfd, opt.pid, &opt.vm_fd);
	if (vm_fd < 0)
		return 1;
	dev.fd = attach(vm_fd, dev.host);
	/* The device holds its own reference on the VM. */
	close(vm_fd);
	if (dev.fd < 0)
		return dev.fd == -EOPNOTSUPP ? EXIT_NO_SMM : 1;
	if (drop_privileges(&opt) || setup(&dev, negotiated))
		return 1;
	features_str(dev.host, host_buf, sizeof(host_buf));
	features_str(dev.negotiated, neg_buf, sizeof(neg_buf));
	printf("%s: attached to pid %d (vm fd %d), host %s, negotiated %s\n",
	       PROG, opt.pid, opt.vm_fd, host_buf, neg_buf);
	fflush(stdout);

	if (opt.cont &&
	    qmp_command(q, "{\"execute\": \"cont\"}\n", reply,
			sizeof(reply), NULL))
		return 1;

	ret = serve(&opt, pidfd, sigfd, &dev, q, lpc);
	if (opt.stats && print_stats(dev.fd))
		ret = -1;
	close(dev.fd);
	printf("%s: detached\n", PROG);
	return ret ? 1 : 0;
}
