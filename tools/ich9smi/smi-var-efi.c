// SPDX-License-Identifier: GPL-2.0
/*
 * smi-var.efi: the variable workload of the seed's measurement
 * ("taskset -c 1 efibootmgr"), as a UEFI application run by the firmware
 * under test: unlike an OS, which may call the firmware from another CPU
 * (Linux does it from a workqueue worker), it chooses the CPU that makes
 * each call, and it needs no OS on several vCPUs.
 *
 * For each of 2 rounds it writes and reads back a non-volatile variable
 * COUNT times, first on the BSP, then on an AP (EFI MP services,
 * StartupThisAP, the BSP waiting): every write is an SMM call, so with
 * SMI broadcast every CPU enters SMM at once, and without it only the
 * writer does, and edk2 waits for the others until a timeout. It prints
 * one line per run,
 *
 *   ICH9SMI-EFI run ROUND CPU bsp|ap COUNT writes TICKS ticks US us
 *
 * with the time from the TSC, calibrated against the firmware's Stall(),
 * then ICH9SMI-EFI-DONE, and waits, so that the VMM's counters can be read
 * before it is stopped. Before the runs it prints the firmware's Secure
 * Boot state: the SecureBoot and SetupMode variables, -1 when absent (the
 * test signs it and expects 1 and 0). Built with gnu-efi
 * (tools/ich9smi/Makefile).
 */
#include <efi.h>
#include <efilib.h>

#define COUNT		16
#define ROUNDS		2
#define CALIBRATE_US	200000

typedef VOID (EFIAPI *ap_procedure)(VOID *arg);

/* EFI_MP_SERVICES_PROTOCOL (PI specification, volume 2) */
struct mp_services {
	EFI_STATUS (EFIAPI *get_number_of_processors)(struct mp_services *mp,
						      UINTN *total,
						      UINTN *enabled);
	VOID *get_processor_info;
	VOID *startup_all_aps;
	EFI_STATUS (EFIAPI *startup_this_ap)(struct mp_services *mp,
					     ap_procedure procedure,
					     UINTN cpu, EFI_EVENT event,
					     UINTN timeout_us, VOID *arg,
					     BOOLEAN *finished);
	VOID *switch_bsp;
	VOID *enable_disable_ap;
	EFI_STATUS (EFIAPI *who_am_i)(struct mp_services *mp, UINTN *cpu);
};

static EFI_GUID mp_services_guid = {
	0x3fdda605, 0xa76e, 0x4f46,
	{ 0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08 }
};

/* A made-up vendor GUID for the test variable. */
static EFI_GUID var_guid = {
	0x6c1d8a31, 0x53c2, 0x4b1e,
	{ 0x9d, 0x6a, 0x5a, 0x0e, 0x1f, 0x3c, 0x7b, 0x42 }
};

/* A one-byte variable of the EFI global namespace, or -1 */
static INTN global_byte(CHAR16 *name)
{
	EFI_GUID global = EFI_GLOBAL_VARIABLE;
	UINT8 value;
	UINTN size = sizeof(value);

	if (EFI_ERROR(RT->GetVariable(name, &global, NULL, &size, &value)))
		return -1;
	return value;
}

struct work {
	UINTN count;
	UINT64 ticks;
	EFI_STATUS status;
	UINTN done;
};

static inline UINT64 rdtsc(void)
{
	UINT32 lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((UINT64)hi << 32) | lo;
}

/*
 * Runs on the BSP or on an AP. The variable services are runtime services,
 * but before ExitBootServices() edk2's take a lock that raises and
 * restores the TPL, a boot service, so on an AP this is outside what the
 * PI specification allows; the BSP only polls for the AP meanwhile. Raising
 * the BSP's TPL to TPL_NOTIFY around the AP's run, or giving the AP a
 * timeout, made one of four AP runs hang (QEMU's broadcast, 2 vCPUs); as
 * it is, it ran every time it was tried.
 */
static VOID EFIAPI workload(VOID *arg)
{
	UINT32 attr = EFI_VARIABLE_NON_VOLATILE |
		      EFI_VARIABLE_BOOTSERVICE_ACCESS |
		      EFI_VARIABLE_RUNTIME_ACCESS;
	struct work *w = arg;
	UINT64 value, back, t0;
	UINTN size;

	t0 = rdtsc();
	for (w->done = 0; w->done < w->count; w->done++) {
		value = t0 + w->done;
		w->status = RT->SetVariable(L"Ich9smiVar", &var_guid, attr,
					    sizeof(value), &value);
		if (EFI_ERROR(w->status))
			break;
		size = sizeof(back);
		w->status = RT->GetVariable(L"Ich9smiVar", &var_guid, NULL,
					    &size, &back);
		if (EFI_ERROR(w->status))
			break;
		if (back != value) {
			w->status = EFI_VOLUME_CORRUPTED;
			break;
		}
	}
	w->ticks = rdtsc() - t0;
}

/* Called by gnu-efi's crt0 with the System V ABI, hence no EFIAPI */
EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	struct mp_services *mp;
	UINTN total, enabled, bsp, ap, round;
	UINT64 t0, ticks_per_ms;
	struct work w;
	EFI_STATUS status;

	InitializeLib(image, systab);
	Print(L"\nICH9SMI-EFI-START\n");
	Print(L"ICH9SMI-EFI secureboot %ld setupmode %ld\n",
	      global_byte(L"SecureBoot"), global_byte(L"SetupMode"));
	status = LibLocateProtocol(&mp_services_guid, (VOID **)&mp);
	if (EFI_ERROR(status)) {
		Print(L"ICH9SMI-EFI-FAIL no MP services: %r\n", status);
		goto idle;
	}
	status = mp->get_number_of_processors(mp, &total, &enabled);
	if (!EFI_ERROR(status))
		status = mp->who_am_i(mp, &bsp);
	if (EFI_ERROR(status)) {
		Print(L"ICH9SMI-EFI-FAIL MP services: %r\n", status);
		goto idle;
	}
	ap = bsp ? 0 : 1;
	t0 = rdtsc();
	BS->Stall(CALIBRATE_US);
	ticks_per_ms = (rdtsc() - t0) / (CALIBRATE_US / 1000);
	Print(L"ICH9SMI-EFI cpus %ld enabled %ld bsp %ld ticks_per_ms %ld\n",
	      total, enabled, bsp, ticks_per_ms);
	if (enabled < 2 || !ticks_per_ms) {
		Print(L"ICH9SMI-EFI-FAIL needs 2 CPUs and a TSC\n");
		goto idle;
	}
	for (round = 1; round <= ROUNDS; round++) {
		w = (struct work){ .count = COUNT };
		workload(&w);
		Print(L"ICH9SMI-EFI run %ld %ld bsp %ld writes %ld ticks %ld us %r\n",
		      round, bsp, w.done, w.ticks,
		      w.ticks * 1000 / ticks_per_ms, w.status);
		w = (struct work){ .count = COUNT };
		status = mp->startup_this_ap(mp, workload, ap, NULL, 0, &w,
					     NULL);
		if (EFI_ERROR(status))
			w.status = status;
		Print(L"ICH9SMI-EFI run %ld %ld ap %ld writes %ld ticks %ld us %r\n",
		      round, ap, w.done, w.ticks,
		      w.ticks * 1000 / ticks_per_ms, w.status);
	}
	Print(L"ICH9SMI-EFI-DONE\n");
idle:
	for (;;)
		BS->Stall(1000000);
	return EFI_SUCCESS;
}
