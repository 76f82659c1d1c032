// SPDX-License-Identifier: GPL-2.0
/*
 * apm-guest: the SMI_EN half of the APM port, exercised from inside a
 * firmware guest. It runs as root in a Linux guest of OVMF (the
 * initramfs of scripts/kernel-apm-guest.py), not on the host.
 *
 *   apm-guest COUNT VALUE
 *
 * reads PMBASE from the LPC bridge (00:1f.0, config offset 0x40), clears
 * SMI_EN.APMC_EN (PMBASE + 0x30, bit 5), writes VALUE to APM_CNT (port
 * 0xB2) COUNT times, which must raise no SMI, then restores SMI_EN and
 * writes VALUE COUNT times more, which must raise COUNT SMIs. The VMM's
 * counters tell which writes raised one; this program only reports what it
 * did. It needs port access, which a kernel locked down by Secure Boot
 * refuses: boot it without Secure Boot.
 *
 * Exit status 0 when every access was made, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>

#define LPC_CONFIG	"/sys/bus/pci/devices/0000:00:1f.0/config"
#define LPC_PMBASE	0x40
#define PMBASE_MASK	0xff80
#define SMI_EN_OFFSET	0x30
#define SMI_EN_APMC_EN	0x20	/* bit 5 */
#define APM_CNT		0xb2

static int read_pmbase(uint16_t *pmbase)
{
	uint32_t val;
	int fd;

	fd = open(LPC_CONFIG, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "apm-guest: %s: %s\n", LPC_CONFIG,
			strerror(errno));
		return -1;
	}
	if (pread(fd, &val, sizeof(val), LPC_PMBASE) != sizeof(val)) {
		fprintf(stderr, "apm-guest: cannot read PMBASE\n");
		close(fd);
		return -1;
	}
	close(fd);
	*pmbase = val & PMBASE_MASK;
	return *pmbase ? 0 : -1;
}

static void write_apm_cnt(unsigned int count, uint8_t value)
{
	unsigned int i;

	for (i = 0; i < count; i++)
		outb(value, APM_CNT);
}

int main(int argc, char **argv)
{
	uint32_t smi_en, off;
	unsigned long count, value;
	uint16_t pmbase, port;
	char *end;

	if (argc != 3) {
		fprintf(stderr, "usage: %s COUNT VALUE\n", argv[0]);
		return 2;
	}
	count = strtoul(argv[1], &end, 0);
	if (*end || !count || count > 1000)
		return 2;
	value = strtoul(argv[2], &end, 0);
	if (*end || value > 0xff)
		return 2;
	if (read_pmbase(&pmbase))
		return 1;
	port = pmbase + SMI_EN_OFFSET;
	/* iopl(), not ioperm(): PMBASE is above 0x3ff */
	if (iopl(3)) {
		fprintf(stderr, "apm-guest: iopl: %s (kernel locked down?)\n",
			strerror(errno));
		return 1;
	}
	smi_en = inl(port);
	off = smi_en & ~SMI_EN_APMC_EN;
	printf("apm-guest: PMBASE 0x%x, SMI_EN 0x%08x\n", pmbase, smi_en);
	outl(off, port);
	if (inl(port) != off) {
		printf("apm-guest: SMI_EN reads 0x%08x after writing 0x%08x\n",
		       inl(port), off);
		return 1;
	}
	write_apm_cnt(count, value);
	printf("apm-guest: APMC_EN clear (SMI_EN 0x%08x): wrote 0x%02lx to APM_CNT %lu times\n",
	       off, value, count);
	outl(smi_en, port);
	write_apm_cnt(count, value);
	printf("apm-guest: APMC_EN %s (SMI_EN 0x%08x): wrote 0x%02lx to APM_CNT %lu times\n",
	       smi_en & SMI_EN_APMC_EN ? "set" : "still clear", inl(port),
	       value, count);
	fflush(stdout);
	return smi_en & SMI_EN_APMC_EN ? 0 : 1;
}
