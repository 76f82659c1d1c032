#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""kernel-apm-guest.py [--no-device | --mp] OUTDIR: QEMU's own use of ich9smi.

Runs where /dev/kvm works and ich9smi.ko is loaded: in the test guest
(scripts/guest-job.sh, job "e2e") or as root on a KVM host. QEMU is the
one built by scripts/qemu.sh with the series of qemu/ich9smi/, whose
ICH9-LPC property kernel-apm=auto|on|off attaches QEMU's own VM fd to
/dev/ich9smi. No attach tool and no ptrace: the script first forbids
ptrace altogether (Yama ptrace_scope 3, which lasts until the guest
reboots).

Every firmware boot is Debian's OVMF with SMM (Secure Boot build) and a
Debian kernel by direct kernel boot with a tiny initramfs:

  smien     Secure Boot off (no keys enrolled, so the kernel is not locked
            down and tools/ich9smi/apm-guest may use the ports): clears
            SMI_EN.APMC_EN, writes APM_CNT 8 times, restores it, writes 8
            times more. The device must have suppressed exactly 8, stored
            the value, and every SMI it raised must have entered SMM
            (KVM's kvm_smm_transition tracepoint, which also sees the
            firmware's SMBASE relocation IPI).
  on>on     Secure Boot on (Microsoft keys): the boot checks (marker,
            Secure Boot enabled, firmware SMIs served by the device as
            broadcasts, none in QEMU's apm_io_write trace), then migrate
            to a file, quit, resume it in a second QEMU (-incoming, -S):
            the device state must read back identical, BROADCAST still
            locked, and a UEFI variable written through efivarfs after the
            resume must be served in the kernel.
  off>on    the same stream from a QEMU serving the ports itself
  on>off    and the reverse: the variable write is QEMU's then.

  mpN-CONFIG  OVMF on N vCPUs (KAPM_MP_VCPUS, default 2) with the
            in-kernel local APIC and Secure Boot on (Microsoft's keys and a
            test key in db, KAPM_SB_VARS), runs tools/ich9smi/smi-var.efi
            signed with that key: it must find Secure Boot on (the
            firmware ran it because the signature checked), 16 writes and
            read-backs of a non-volatile variable on the BSP, then on an
            AP, twice. CONFIG is ich9smi (kernel-apm=on: every SMI must be
            a broadcast from the device and every vCPU must enter SMM for
            each), qemu (QEMU's own broadcast, the same counts) or
            directed (x-smi-* all off: edk2's fallback, each SMI on its
            writer only). Timed by the application; the table goes to
            OUTDIR/mp.txt.
  linuxN-CONFIG  the same on the Debian kernel (Secure Boot on, the
            kernel reports it): the initramfs writes and reads back 16
            new variables through efivarfs from a shell pinned with
            taskset to CPU 0, then to CPU 1, twice, timed with
            /proc/uptime (the seed's "taskset -c 1 efibootmgr"; Linux makes
            the firmware call from its efi_rts_wq worker, on whichever CPU
            that runs). Every vCPU must be online; the counts as above.

--mp runs only the mpN-CONFIG and linuxN-CONFIG boots (make bench's
firmware table).

--no-device (with the module unloaded): kernel-apm=on must refuse to
start with a clear message, kernel-apm=auto must start and say once that
QEMU serves the ports.

Steps go to OUTDIR/steps as "STATUS<TAB>NAME<TAB>DETAIL", a table to
OUTDIR/kernel-apm.txt, each QEMU's console, trace and log to
OUTDIR/<run>/. Exit status 1 if a step failed.

Environment: KAPM_QEMU (required), KAPM_EFI_APP (smi-var.efi, signed)
and KAPM_SB_VARS (OVMF's variable store with the signing key in db; both
made by scripts/sb-test-key.sh and required unless --no-device),
KAPM_MP_VCPUS, KAPM_KERNEL (default
/boot/vmlinuz-$(uname -r)), KAPM_MODULES (the kernel's module directory,
default /lib/modules/$(uname -r)), KAPM_APM_GUEST (required unless
--no-device), KAPM_OVMF_DIR (default /usr/share/OVMF), KAPM_LIMIT (seconds
per wait, default 600), KAPM_STEPS (append the steps to this file instead
of OUTDIR/steps), KAPM_FORBID_PTRACE (1: set Yama's ptrace_scope to 3
first, which lasts until reboot: for test guests only).
"""

import glob
import json
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MARKER = 'ICH9SMI-KAPM-MARKER'
# A made-up vendor GUID for the test variable.
VAR_GUID = '6c1d8a31-53c2-4b1e-9d6a-5a0e1f3c7b42'
SMIEN_COUNT = 8
SMIEN_VALUE = 0x5a
# Variable writes per run in the multi-vCPU runs, as smi-var.efi's COUNT.
MPVAR_COUNT = 16
F_BROADCAST = 1
APMC_EN = 0x20
DEBUGFS = '/sys/kernel/debug/ich9smi'
TRACEFS = '/sys/kernel/tracing'
STATE_KEYS = ('apm_cnt', 'apm_sts', 'smi_en', 'host_features', 'requested',
              'negotiated', 'features_ok', 'exit_set')
COUNTERS = ('cnt_writes', 'sts_writes', 'reads', 'smis_unicast',
            'smis_broadcast', 'vcpus_signalled', 'exits_to_vmm',
            'smis_suppressed')

out = None
STEPS = os.environ.get('KAPM_STEPS')
failed = False
table = []
mp_table = []


def say(msg):
    print(f'kernel-apm: {msg}', flush=True)


def step(status, name, detail=''):
    global failed
    detail = ' '.join(str(detail).split('\n'))
    with open(STEPS or os.path.join(out, 'steps'), 'a') as f:
        f.write(f'{status}\tkernel-apm: {name}\t{detail}\n')
    say(f'{status} {name}' + (f': {detail}' if detail else ''))
    if status == 'fail':
        failed = True


def check(ok, name, detail=''):
    step('pass' if ok else 'fail', name, detail)
    return ok


class Fail(Exception):
    """A run cannot go on; its step has been recorded."""


def device_state():
    """The one attached device's debugfs state as a dict, or None."""
    files = glob.glob(f'{DEBUGFS}/[0-9]*/state')
    if len(files) != 1:
        return None
    state = {}
    with open(files[0]) as f:
        for line in f:
            key, _, value = line.partition(':')
            state[key.strip()] = value.strip()
    return state


def num(state, key):
    return int(state[key], 0)


def smis(state):
    return num(state, 'smis_unicast') + num(state, 'smis_broadcast')


def apm_trace(path):
    """QEMU's apm_io_write trace as a list of (addr, value)."""
    try:
        with open(path, errors='replace') as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [(int(a, 16), int(v, 16)) for a, v in
            re.findall(r'addr=0x([0-9a-f]+) val=0x([0-9a-f]+)', text)]


def trace_smi_commands(writes):
    """APM_CNT writes other than ACPI enable/disable: SMI commands."""
    return [v for a, v in writes if a == 0 and v not in (2, 3)]


def trace_acpi(writes):
    return [v for a, v in writes if a == 0 and v in (2, 3)]


class QMP:
    def __init__(self, path, proc, limit=30):
        deadline = time.monotonic() + limit
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.settimeout(120)
        self.file = self.sock.makefile('rw')
        json.loads(self.file.readline())
        self.cmd('qmp_capabilities')

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.file.write(json.dumps(msg) + '\n')
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError(f'QMP closed during {name}')
            reply = json.loads(line)
            if 'return' in reply:
                return reply['return']
            if 'error' in reply:
                raise RuntimeError(f'{name}: {reply["error"]["desc"]}')

    def close(self):
        self.sock.close()


class Qemu:
    """One QEMU run of the firmware guest."""

    def __init__(self, run, kernel_apm, mode, vars_file, incoming=None,
                 smp=1, efi_app=None, extra=()):
        self.run = run
        self.dir = os.path.join(out, run)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.serial = os.path.join(self.dir, 'serial.log')
        self.trace = os.path.join(self.dir, 'apm.trace')
        self.log = os.path.join(self.dir, 'qemu.log')
        self.serial_sock = os.path.join(sockets, f'{run}.serial')
        qmp_sock = os.path.join(sockets, f'{run}.qmp')
        # One vCPU: the userspace local APIC, as in make e2e's other boots.
        # Several: the in-kernel one, which broadcast needs (and OVMF's
        # PEI, which livelocks on several vCPUs without it, here).
        irqchip = 'off' if smp == 1 else 'on'
        cmd = [QEMU,
               '-M', f'q35,smm=on,accel=kvm,kernel-irqchip={irqchip}',
               '-smp', str(smp), '-m', '256M', '-nodefaults',
               '-display', 'none', '-no-reboot',
               '-global', 'driver=cfi.pflash01,property=secure,value=on',
               '-global', f'ICH9-LPC.kernel-apm={kernel_apm}',
               '-drive', 'if=pflash,format=raw,unit=0,readonly=on,'
                         f'file={OVMF}/OVMF_CODE_4M.secboot.fd',
               '-drive', f'if=pflash,format=raw,unit=1,file={vars_file}',
               *(['-kernel', efi_app] if efi_app else
                 ['-kernel', KERNEL, '-initrd', initramfs,
                  '-append', f'console=ttyS0 quiet panic=-1 kapm={mode}']),
               *extra,
               '-chardev', f'socket,id=ser0,path={self.serial_sock},'
                           f'server=on,wait=off,logfile={self.serial}',
               '-serial', 'chardev:ser0',
               '-trace', f'apm_io_write,file={self.trace}',
               '-qmp', f'unix:{qmp_sock},server=on,wait=off']
        if incoming:
            cmd += ['-incoming', incoming, '-S']
        say(f'{run}: {" ".join(cmd)}')
        self.start = time.monotonic()
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(cmd, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP(qmp_sock, self.proc)
        except (OSError, EOFError, RuntimeError) as err:
            self.proc.kill()
            self.proc.wait()
            check(False, f'{run}: QEMU starts',
                  f'{err}; {self.log_text().strip()}')
            raise Fail() from err

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def elapsed(self):
        return time.monotonic() - self.start

    def wait_serial(self, pattern, what):
        """Wait until the console matches pattern; returns the match."""
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                with open(self.serial, errors='replace') as f:
                    found = re.search(pattern, f.read())
            except FileNotFoundError:
                found = None
            if found:
                return found
            if self.proc.poll() is not None or time.monotonic() > deadline:
                check(False, f'{self.run}: {what}',
                      f'no "{pattern}" on the console after '
                      f'{self.elapsed():.0f}s, see {self.dir}')
                raise Fail()
            time.sleep(0.5)

    def wait_status(self, want):
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                status = self.qmp.cmd('query-status')['status']
            except (OSError, EOFError, ValueError) as err:
                self.proc.wait(timeout=60)
                check(False, f'{self.run}: run state {want}',
                      f'QEMU gone ({err}), exit status '
                      f'{self.proc.returncode}: {self.log_text()[-600:]}')
                raise Fail() from err
            if status == want:
                return
            if time.monotonic() > deadline:
                check(False, f'{self.run}: run state {want}',
                      f'still {status} after {LIMIT}s')
                raise Fail()
            time.sleep(0.5)

    def migrate(self, path):
        """Save the running guest to path; returns the seconds it took."""
        begin = time.monotonic()
        self.qmp.cmd('migrate', uri=f'exec:cat > {path}')
        deadline = begin + LIMIT
        while True:
            info = self.qmp.cmd('query-migrate')
            if info.get('status') == 'completed':
                return time.monotonic() - begin
            if info.get('status') in ('failed', 'cancelled') or \
               time.monotonic() > deadline:
                check(False, f'{self.run}: migrate to a file',
                      f'{info}; {self.log_text().strip()}')
                raise Fail()
            time.sleep(0.5)

    def send(self, line):
        """A line for the guest's init, on its serial port."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.serial_sock)
            sock.sendall(line.encode() + b'\n')
            time.sleep(1)

    def quit(self):
        try:
            self.qmp.cmd('quit')
        except (OSError, EOFError):
            pass
        self.stop()

    def stop(self):
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.qmp.close()
        with open(self.log, errors='replace') as f:
            for line in f:
                print(f'    {line}', end='')


def make_initramfs(path, apm_guest):
    """busybox, an init that acts on kapm= and efivarfs.ko."""
    work = tempfile.mkdtemp()
    os.makedirs(f'{work}/bin')
    shutil.copy('/bin/busybox', f'{work}/bin/busybox')
    if apm_guest:
        shutil.copy(apm_guest, f'{work}/bin/apm-guest')
    for ko in glob.glob(f'{MODULES}/kernel/fs/efivarfs/efivarfs.ko*'):
        opener = lzma.open if ko.endswith('.xz') else open
        with opener(ko, 'rb') as src, open(f'{work}/efivarfs.ko', 'wb') as dst:
            dst.write(src.read())
    var = f'/sys/firmware/efi/efivars/Ich9smiTest-{VAR_GUID}'
    init = f'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo
echo "{MARKER} $(uname -r)"
dmesg | grep -i 'secure.\\?boot'
case " $(cat /proc/cmdline) " in
*" kapm=smien "*)
	/bin/apm-guest {SMIEN_COUNT} {SMIEN_VALUE:#x}
	echo "KAPM-SMIEN-DONE rc=$?"
	;;
*" kapm=migrate "*)
	insmod /efivarfs.ko 2>/dev/null
	mount -t efivarfs efivarfs /sys/firmware/efi/efivars
	echo KAPM-READY
	read -r token </dev/ttyS0
	printf '\\007\\000\\000\\000%s' "$token" >{var}
	echo "KAPM-VAR rc=$? $(tail -c +5 {var})"
	;;
*" kapm=mpvar "*)
	insmod /efivarfs.ko 2>/dev/null
	mount -t efivarfs efivarfs /sys/firmware/efi/efivars
	echo "KAPM-MPVAR cpus $(grep -c ^processor /proc/cpuinfo)"
	for round in 1 2; do
		for cpu in 0 1; do
			t0=$(cut -d' ' -f1 /proc/uptime)
			# A new variable for each write: efivarfs makes the file
			# of a variable it does not know immutable once created.
			# It prints how many writes it completed.
			n=$(taskset -c $cpu sh -c '
				i=0
				while [ $i -lt {MPVAR_COUNT} ]; do
					v=$1/Ich9smiMp$2x$i-{VAR_GUID}
					if ! printf "\\007\\000\\000\\000%04d" $i >$v; then
						echo $i
						exit 1
					fi
					got=$(tail -c +5 $v)
					if [ "$got" != "$(printf %04d $i)" ]; then
						echo "KAPM-MPVAR $v read \\"$got\\"" >&2
						echo $i
						exit 2
					fi
					i=$((i + 1))
				done
				echo $i' mpvar /sys/firmware/efi/efivars $round$cpu)
			rc=$?
			t1=$(cut -d' ' -f1 /proc/uptime)
			echo "KAPM-MPVAR run $round cpu $cpu writes $n rc $rc t0 $t0 t1 $t1"
		done
	done
	echo KAPM-MPVAR-DONE
	;;
esac
echo KAPM-IDLE
while :; do sleep 60; done
'''
    with open(f'{work}/init', 'w') as f:
        f.write(init)
    os.chmod(f'{work}/init', 0o755)
    with open(path, 'wb') as f:
        find = subprocess.run(['find', '.'], cwd=work, check=True,
                              capture_output=True)
        subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet'], cwd=work,
                       input=find.stdout, stdout=f, check=True)
    shutil.rmtree(work)


def smm_trace(on):
    """KVM's kvm_smm_transition tracepoint on (with an empty buffer) or
    off."""
    with open(f'{TRACEFS}/events/kvm/kvm_smm_transition/enable', 'w') as f:
        f.write('1' if on else '0')
    if on:
        with open(f'{TRACEFS}/buffer_size_kb', 'w') as f:
            f.write('4096')
        with open(f'{TRACEFS}/trace', 'w') as f:
            f.write('')


def smm_entries_per_vcpu():
    """SMM entries in the trace buffer, by vCPU id."""
    counts = {}
    with open(f'{TRACEFS}/trace', errors='replace') as f:
        for vcpu in re.findall(r'kvm_smm_transition: vcpu (\d+): entering SMM',
                               f.read()):
            counts[int(vcpu)] = counts.get(int(vcpu), 0) + 1
    return counts


def traced_qemu(*args, **kwargs):
    """A Qemu run with kvm_smm_transition tracing from before its start;
    tracing off again if it does not start."""
    smm_trace(True)
    try:
        return Qemu(*args, **kwargs)
    except Fail:
        smm_trace(False)
        raise


def vars_copy(name, keys):
    path = os.path.join(tmp, f'{name}.vars.fd')
    shutil.copy(f'{OVMF}/OVMF_VARS_4M{".ms" if keys else ""}.fd', path)
    return path


def run_smien():
    """SMI_EN: no SMI from APM_CNT while the guest has APMC_EN clear."""
    vm = traced_qemu('smien', 'on', 'smien', vars_copy('smien', False))
    try:
        found = vm.wait_serial(r'KAPM-SMIEN-DONE rc=(\d+)', 'apm-guest ran')
        state = device_state()
        entries = sum(smm_entries_per_vcpu().values())
    finally:
        vm.quit()
        smm_trace(False)
    with open(vm.serial, errors='replace') as f:
        for line in f:
            if line.startswith('apm-guest:'):
                say(f'smien: {line.strip()}')
    check(found.group(1) == '0', 'smien: apm-guest cleared and restored '
          'APMC_EN', f'exit status {found.group(1)}, see {vm.serial}')
    if not check(state is not None, 'smien: device attached by QEMU'):
        return
    check(num(state, 'smis_suppressed') == SMIEN_COUNT,
          'smien: no SMI from APM_CNT with APMC_EN clear',
          f'smis_suppressed={state["smis_suppressed"]} '
          f'(apm-guest wrote {SMIEN_COUNT} with APMC_EN clear)')
    check(num(state, 'apm_cnt') == SMIEN_VALUE,
          'smien: APM_CNT stored the suppressed writes',
          f'apm_cnt={state["apm_cnt"]}')
    # One SMM entry is not the device's: the firmware relocates SMBASE
    # with an SMI IPI to each vCPU (one here), before its first APM SMI.
    check(entries == num(state, 'vcpus_signalled') + 1,
          'smien: every SMI the device raised entered SMM, none more',
          f'{entries} kvm_smm_transition entries = vcpus_signalled '
          f'{state["vcpus_signalled"]} + 1 SMBASE relocation')
    table.append(('SMI_EN test: SMIs / suppressed / SMM entries',
                  f'{smis(state)} / {state["smis_suppressed"]} / {entries}'))


def boot_checks(vm, state):
    """What a boot with the device must show (the source of on>on)."""
    with open(vm.serial, errors='replace') as f:
        console = f.read()
    check('secureboot: Secure boot enabled' in console,
          f'{vm.run}: kernel reports Secure Boot enabled', vm.serial)
    writes = apm_trace(vm.trace)
    check(smis(state) >= 100 and num(state, 'smis_suppressed') == 0 and
          num(state, 'smis_unicast') == 0,
          f'{vm.run}: the firmware\'s SMIs, served by the device as '
          'broadcasts',
          f'{state["cnt_writes"]} APM_CNT writes, {state["smis_broadcast"]}'
          f' broadcast + {state["smis_unicast"]} unicast SMIs, '
          f'{state["smis_suppressed"]} suppressed')
    check(num(state, 'features_ok') == 1 and
          num(state, 'negotiated') & F_BROADCAST,
          f'{vm.run}: the firmware negotiated BROADCAST with the device',
          f'negotiated={state["negotiated"]} '
          f'features_ok={state["features_ok"]}')
    check(not trace_smi_commands(writes) and
          len(trace_acpi(writes)) == num(state, 'exits_to_vmm'),
          f'{vm.run}: QEMU\'s own APM saw no SMI command',
          f'apm_io_write: {len(trace_smi_commands(writes))} SMI commands, '
          f'{len(trace_acpi(writes))} ACPI enable/disable '
          f'(device passed {state["exits_to_vmm"]} on)')


def run_migration(src_apm, dst_apm):
    """Boot with kernel-apm=src_apm, save, resume with dst_apm."""
    name = f'{src_apm}>{dst_apm}'
    vars_file = vars_copy(f'{src_apm}-{dst_apm}', True)
    stream = os.path.join(tmp, f'{src_apm}-{dst_apm}.stream')
    src = Qemu(f'{src_apm}-{dst_apm}-src', src_apm, 'migrate', vars_file)
    try:
        src.wait_serial(r'KAPM-READY', 'boot to the marker')
        boot_s = src.elapsed()
        before = device_state()
        mig_s = src.migrate(stream)
        saved = device_state()
    finally:
        src.quit()
    src_writes = apm_trace(src.trace)
    size = os.path.getsize(stream)
    say(f'{name}: booted in {boot_s:.1f}s, saved {size >> 20} MiB in '
        f'{mig_s:.1f}s')
    if src_apm == 'on':
        if not check(saved is not None and before is not None,
                     f'{name}: source device attached'):
            return
        if dst_apm == 'on':
            boot_checks(src, before)
            table.append(('boot to marker, ich9smi (s)', f'{boot_s:.1f}'))
            table.append(('firmware SMIs in kernel / in QEMU',
                          f'{smis(before)} / '
                          f'{len(trace_smi_commands(src_writes))}'))
    else:
        check(len(trace_smi_commands(src_writes)) >= 100,
              f'{name}: source QEMU served the firmware\'s SMIs',
              f'{len(trace_smi_commands(src_writes))} in apm_io_write')
        table.append(('boot to marker, QEMU (s)', f'{boot_s:.1f}'))

    dst = Qemu(f'{src_apm}-{dst_apm}-dst', dst_apm, 'migrate', vars_file,
               incoming=f'exec:cat {stream}')
    token = f'kapm-{src_apm}-{dst_apm}-{os.getpid()}'
    try:
        dst.wait_status('paused')
        load_s = dst.elapsed()
        loaded = device_state()
        if dst_apm == 'on':
            check(loaded is not None, f'{name}: destination device attached')
        negotiated = dst.qmp.cmd('qom-get', path='/machine/acpi-device',
                                 property='x-smi-negotiated-features')
        dst.qmp.cmd('cont')
        dst.send(token)
        found = dst.wait_serial(r'KAPM-VAR rc=(\d+) (\S*)',
                                'variable write after the resume')
        after = device_state()
    finally:
        dst.quit()
    os.unlink(stream)
    dst_writes = apm_trace(dst.trace)
    check(found.group(1) == '0' and found.group(2) == token,
          f'{name}: UEFI variable written and read back after the resume',
          f'efivarfs wrote "{token}", read "{found.group(2)}"')
    check(negotiated & F_BROADCAST,
          f'{name}: QEMU still has BROADCAST negotiated',
          f'x-smi-negotiated-features={negotiated:#x}')
    table.append((f'migration {name}: save / load (s)',
                  f'{mig_s:.1f} / {load_s:.1f}'))
    if dst_apm == 'off':
        check(after is None and loaded is None and
              len(trace_smi_commands(dst_writes)) > 0,
              f'{name}: QEMU served the variable write itself',
              f'{len(trace_smi_commands(dst_writes))} SMI commands in '
              'apm_io_write')
        table.append((f'migration {name}: SMIs after resume, QEMU',
                      str(len(trace_smi_commands(dst_writes)))))
        return
    if loaded is None or after is None:
        return
    if src_apm == 'on':
        differ = [k for k in STATE_KEYS
                  if k not in saved or loaded.get(k) != saved[k]]
        check(not differ, f'{name}: device state identical after the load',
              'differs in ' + ', '.join(f'{k} {saved.get(k)} -> '
                                        f'{loaded.get(k)}' for k in differ)
              if differ else
              ', '.join(f'{k}={loaded[k]}' for k in STATE_KEYS))
    else:
        last = [v for a, v in src_writes if a == 0]
        qemu_last = f'{last[-1]:#04x}' if last else 'none'
        check(bool(last) and num(loaded, 'apm_cnt') == last[-1] and
              num(loaded, 'smi_en') & APMC_EN,
              f'{name}: device took QEMU\'s registers from the stream',
              f'apm_cnt={loaded["apm_cnt"]} (QEMU\'s last {qemu_last}), '
              f'smi_en={loaded["smi_en"]}')
    check(num(loaded, 'features_ok') == 1 and
          num(loaded, 'negotiated') & F_BROADCAST and
          all(num(loaded, c) == 0 for c in COUNTERS),
          f'{name}: BROADCAST locked in the device before the guest ran',
          f'negotiated={loaded["negotiated"]} '
          f'features_ok={loaded["features_ok"]}')
    check(num(after, 'smis_broadcast') > 0 and
          num(after, 'smis_unicast') == 0 and
          not trace_smi_commands(dst_writes),
          f'{name}: the SMIs after the resume were served in the kernel',
          f'{after["smis_broadcast"]} broadcast SMIs in the device, '
          f'{len(trace_smi_commands(dst_writes))} in QEMU\'s trace')
    table.append((f'migration {name}: SMIs after resume, kernel',
                  after['smis_broadcast']))


# The multi-vCPU configurations: what serves the firmware's SMIs.
MP_CONFIGS = (
    ('ich9smi', 'on', ()),                  # the device, broadcast
    ('qemu', 'off', ()),                    # QEMU's own broadcast
    # No SMI features at all: edk2's fallback, each SMI on its writer only,
    # which waits for the others until a timeout. Broadcast off alone
    # makes OVMF stop: it requests CPU hotplug,
    # which QEMU refuses without broadcast, and a failed negotiation is
    # fatal to it.
    ('directed', 'off',
     ('-global', 'ICH9-LPC.x-smi-broadcast=off',
      '-global', 'ICH9-LPC.x-smi-cpu-hotplug=off',
      '-global', 'ICH9-LPC.x-smi-cpu-hotunplug=off')),
)
EFI_RUN = re.compile(r'ICH9SMI-EFI run (\d+) (\d+) (bsp|ap) (\d+) writes '
                     r'(\d+) ticks (\d+) us (\S+)')


LINUX_RUN = re.compile(r'KAPM-MPVAR run (\d+) cpu (\d+) writes (\d+) rc (\d+) '
                       r't0 ([\d.]+) t1 ([\d.]+)')


def efi_workload(run, console, smp, name):
    """smi-var.efi's runs: [(bsp|ap, microseconds)] of those that wrote
    and read back all 16 times."""
    sb_state = re.search(r'ICH9SMI-EFI secureboot (-?\d+) setupmode (-?\d+)',
                         console)
    check(sb_state is not None and sb_state.groups() == ('1', '0'),
          f'{run}: Secure Boot on, the signed application ran',
          sb_state.group(0) if sb_state else 'no Secure Boot line')
    runs = EFI_RUN.findall(console)
    for line in runs:
        say(f'{run}: ICH9SMI-EFI run {" ".join(line)}')
    ok = [(r[2], int(r[5])) for r in runs
          if r[3] == str(MPVAR_COUNT) and r[6] == 'Success']
    check(len(ok) == 4 and len(runs) == 4,
          f'{run}: variable writes on the BSP and on an AP',
          f'{len(ok)} of 4 runs wrote and read back {MPVAR_COUNT} times')
    return ok


def linux_workload(run, console, smp, name):
    """The initramfs's runs (kapm=mpvar): the same, through efivarfs, by a
    shell pinned with taskset to CPU 0 (the BSP), then to CPU 1. Without
    broadcast (directed) edk2 fails some of these writes and reads (EIO,
    EINVAL from efivarfs) while each SMI still enters SMM on its writer:
    measured and reported, not required."""
    check('secureboot: Secure boot enabled' in console,
          f'{run}: kernel reports Secure Boot enabled')
    cpus = re.search(r'KAPM-MPVAR cpus (\d+)', console)
    check(cpus is not None and int(cpus.group(1)) == smp,
          f'{run}: Linux runs on every vCPU',
          f'{cpus.group(1) if cpus else "no"} CPUs online of {smp}')
    runs = LINUX_RUN.findall(console)
    for line in runs:
        say(f'{run}: KAPM-MPVAR run {" ".join(line)}')
    ok = [('bsp' if r[1] == '0' else 'ap',
           round((float(r[5]) - float(r[4])) * 1e6))
          for r in runs if r[2] == str(MPVAR_COUNT) and r[3] == '0']
    detail = (f'{len(ok)} of 4 runs wrote and read back {MPVAR_COUNT} '
              f'times; writes completed per run: '
              f'{", ".join(r[2] for r in runs)}')
    if name == 'directed':
        step('pass' if len(runs) == 4 else 'fail',
             f'{run}: the 4 pinned efivarfs runs finished',
             f'{detail} (not required without broadcast)')
    else:
        check(len(ok) == 4 and len(runs) == 4,
              f'{run}: efivarfs writes pinned to CPU 0 and to CPU 1', detail)
    return ok


def run_mp(smp, name, kernel_apm, extra, linux=False):
    """Several vCPUs, Secure Boot on: OVMF runs smi-var.efi, or (linux)
    boots the Debian kernel, whose initramfs writes through efivarfs:
    variable writes on the BSP and on an AP, every one an SMM call."""
    run = f'{"linux" if linux else "mp"}{smp}-{name}'
    vars_file = os.path.join(tmp, f'{run}.vars.fd')
    shutil.copy(SB_VARS, vars_file)
    vm = traced_qemu(run, kernel_apm, 'mpvar' if linux else None,
                     vars_file, smp=smp, efi_app=None if linux else EFI_APP,
                     extra=extra)
    try:
        if linux:
            vm.wait_serial(r'KAPM-MPVAR-DONE', 'the initramfs ran the '
                           'efivarfs writes')
        else:
            vm.wait_serial(r'ICH9SMI-EFI-(DONE|FAIL.*)',
                           'OVMF runs smi-var.efi')
        boot_s = vm.elapsed()
        state = device_state()
        entries = smm_entries_per_vcpu()
    finally:
        vm.quit()
        smm_trace(False)
    with open(vm.serial, errors='replace') as f:
        console = f.read()
    ok = (linux_workload if linux else efi_workload)(run, console, smp, name)
    per_vcpu = [entries.get(v, 0) for v in range(smp)]
    writes = apm_trace(vm.trace)
    if name == 'ich9smi':
        if not check(state is not None, f'{run}: device attached by QEMU'):
            return
        n_smis = smis(state)
        # Each vCPU: one SMM entry per broadcast, plus the firmware's
        # SMBASE relocation IPI.
        check(num(state, 'smis_unicast') == 0 and n_smis > 0 and
              not trace_smi_commands(writes) and
              all(n == n_smis + 1 for n in per_vcpu),
              f'{run}: every SMI a broadcast from the device, every vCPU '
              'in SMM for each',
              f'{state["smis_broadcast"]} broadcast + '
              f'{state["smis_unicast"]} unicast SMIs, negotiated '
              f'{state["negotiated"]}; SMM entries per vCPU {per_vcpu}')
    elif name == 'qemu':
        n_smis = len(trace_smi_commands(writes))
        check(state is None and n_smis > 0 and
              all(n == n_smis + 1 for n in per_vcpu),
              f'{run}: QEMU broadcast the firmware\'s SMIs, every vCPU in '
              'SMM for each',
              f'{n_smis} in apm_io_write; SMM entries per vCPU {per_vcpu}')
    else:
        # Without broadcast only the writer enters SMM: one entry per SMI
        # in all, plus each vCPU's SMBASE relocation.
        n_smis = len(trace_smi_commands(writes))
        check(state is None and n_smis > 0 and
              sum(per_vcpu) == n_smis + smp,
              f'{run}: QEMU raised each SMI on its writer only',
              f'{n_smis} in apm_io_write; SMM entries per vCPU {per_vcpu}')

    def per_write(cpu):
        us = [t for c, t in ok if c == cpu]
        return f'{sum(us) / len(us) / MPVAR_COUNT / 1000:.1f}' if us else '-'
    mp_table.append((smp, f'{"linux/" if linux else ""}{name}',
                     f'{boot_s:.0f}', per_write('bsp'),
                     per_write('ap'), str(n_smis),
                     '/'.join(str(n) for n in per_vcpu), f'{len(ok)}/4'))


def write_mp_table():
    if not mp_table:
        return
    with open(os.path.join(out, 'mp.txt'), 'w') as f:
        f.write('vCPUs config          boot(s) ms/write BSP  ms/write AP  '
                'SMIs  runs ok  SMM entries per vCPU\n')
        for row in mp_table:
            f.write(f'{row[0]:<5} {row[1]:<15} {row[2]:>7} {row[3]:>13} '
                    f'{row[4]:>12} {row[5]:>5}  {row[7]:>7}  {row[6]}\n')
    with open(os.path.join(out, 'mp.txt')) as f:
        for line in f:
            say(line.rstrip())


def run_no_device():
    """kernel-apm=on without /dev/ich9smi fails; auto falls back."""
    empty = os.path.join(tmp, 'no-device.vars.fd')
    shutil.copy(f'{OVMF}/OVMF_VARS_4M.fd', empty)
    base = [QEMU, '-M', 'q35,smm=on,accel=kvm', '-nodefaults',
            '-display', 'none', '-S', '-qmp', 'stdio']
    res = subprocess.run(base + ['-global', 'ICH9-LPC.kernel-apm=on'],
                         input='', capture_output=True, text=True,
                         timeout=120)
    msg = res.stderr.strip()
    check(res.returncode == 1 and
          "kernel-apm=on: Could not open '/dev/ich9smi'" in msg,
          'kernel-apm=on without the device: QEMU refuses to start',
          f'exit status {res.returncode}: {msg}')
    res = subprocess.run(base, input='{"execute": "qmp_capabilities"}\n'
                         '{"execute": "quit"}\n', capture_output=True,
                         text=True, timeout=120)
    msg = res.stderr.strip()
    check(res.returncode == 0 and
          msg.count('the APM ports are served by QEMU') == 1,
          'kernel-apm=auto without the device: QEMU starts, says so once',
          f'exit status {res.returncode}: {msg}')


def main():
    global out, QEMU, KERNEL, MODULES, OVMF, LIMIT, sockets, tmp, initramfs
    global EFI_APP, SB_VARS
    args = sys.argv[1:]
    no_device = args[:1] == ['--no-device']
    mp_only = args[:1] == ['--mp']
    if no_device or mp_only:
        args = args[1:]
    if len(args) != 1 or not os.environ.get('KAPM_QEMU'):
        print(__doc__, file=sys.stderr)
        return 2
    out = args[0]
    os.makedirs(out, exist_ok=True)
    QEMU = os.environ['KAPM_QEMU']
    release = os.uname().release
    KERNEL = os.environ.get('KAPM_KERNEL', f'/boot/vmlinuz-{release}')
    MODULES = os.environ.get('KAPM_MODULES', f'/lib/modules/{release}')
    OVMF = os.environ.get('KAPM_OVMF_DIR', '/usr/share/OVMF')
    LIMIT = int(os.environ.get('KAPM_LIMIT', '600'))
    # Sockets cannot live on 9p, where OUTDIR may be; streams are big.
    tmp = tempfile.mkdtemp()
    sockets = tmp
    try:
        if no_device:
            run_no_device()
            return int(failed)
        apm_guest = os.environ.get('KAPM_APM_GUEST', '')
        EFI_APP = os.environ.get('KAPM_EFI_APP', '')
        SB_VARS = os.environ.get('KAPM_SB_VARS', '')
        inputs = {'KAPM_QEMU': QEMU, 'KAPM_KERNEL': KERNEL,
                  'KAPM_APM_GUEST': apm_guest, 'KAPM_EFI_APP': EFI_APP,
                  'KAPM_SB_VARS': SB_VARS, 'busybox': '/bin/busybox',
                  'OVMF': f'{OVMF}/OVMF_CODE_4M.secboot.fd'}
        for what, path in inputs.items():
            if not path or not os.access(path, os.R_OK):
                check(False, 'inputs', f'missing {what} ({path})')
                return 1
        yama = '/proc/sys/kernel/yama/ptrace_scope'
        if os.environ.get('KAPM_FORBID_PTRACE') != '1':
            step('skip', 'ptrace forbidden (Yama ptrace_scope 3)',
                 'KAPM_FORBID_PTRACE is not 1')
        elif not os.path.exists(yama):
            check(False, 'ptrace forbidden (Yama ptrace_scope 3)',
                  f'no {yama}')
        else:
            with open(yama, 'w') as f:
                f.write('3')
            with open(yama) as f:
                check(f.read().strip() == '3',
                      'ptrace forbidden (Yama ptrace_scope 3)')
        initramfs = os.path.join(tmp, 'initramfs.cpio')
        make_initramfs(initramfs, apm_guest)
        runs = [] if mp_only else [
            ('smien', run_smien),
            ('on>on', lambda: run_migration('on', 'on')),
            ('off>on', lambda: run_migration('off', 'on')),
            ('on>off', lambda: run_migration('on', 'off'))]
        for smp in os.environ.get('KAPM_MP_VCPUS', '2').split():
            for linux in (False, True):
                for config in MP_CONFIGS:
                    runs.append((f'{"linux" if linux else "mp"}{smp}-'
                                 f'{config[0]}',
                                 lambda smp=int(smp), config=config,
                                 linux=linux: run_mp(smp, *config, linux)))
        for name, run in runs:
            try:
                run()
            except Fail:
                pass
            except Exception as err:  # pylint: disable=broad-except
                check(False, f'{name}: completed',
                      f'{type(err).__name__}: {err}')
        with open(os.path.join(out, 'kernel-apm.txt'), 'w') as f:
            for key, value in table:
                f.write(f'{key:<44} {value}\n')
        with open(os.path.join(out, 'kernel-apm.txt')) as f:
            for line in f:
                say(line.rstrip())
        write_mp_table()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return int(failed)


if __name__ == '__main__':
    sys.exit(main())
