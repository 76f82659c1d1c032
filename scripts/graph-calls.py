#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""graph-calls.py GRAPH...: count the function calls of each top-level
function_graph block in the trace files of guest job "trace"
(scripts/guest-job.sh), sorted by what the block did for an SMI: the
trigger handled in kernel, the exit that goes to the VMM, the VMM's ioctl,
SMM entry and RSM. Calls are a measure of work that does not depend on the
clock. The first SMI's blocks include one-time work and any block can
hold an interrupt's, so the fewest calls are the steady cost."""
import collections
import re
import sys

LINE = re.compile(r'^\s*\d+\)\s.*?\|(\s+)(\S.*)$')


def blocks(path):
    """Top-level blocks: (top function, [called function names])."""
    cur, depth = None, 0
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            indent, body = len(m.group(1)), m.group(2)
            name = body.split()[0].split('(')[0]
            if cur is None:
                if indent == 2 and body.endswith('{'):
                    cur, depth = (name, []), 1
                elif indent == 2:
                    yield name, []
            elif body.startswith('}'):
                depth -= 1
                if depth == 0:
                    yield cur
                    cur = None
            else:
                cur[1].append(name)
                if body.endswith('{'):
                    depth += 1


def kind(top, names):
    called = set(names)
    if 'ich9smi_write' in called:
        return 'OUT 0xB2 handled in kernel'
    if top == 'handle_fastpath_set_msr_irqoff' and names:
        return 'x2APIC ICR write, fastpath'
    if called & {'kvm_x2apic_icr_write', 'kvm_apic_send_ipi'}:
        return 'x2APIC ICR write, exit handler'
    if top == 'enter_smm':
        return 'SMM entry (every path)'
    if called & {'em_rsm', 'rsm_interception', 'emulator_leave_smm'}:
        return 'RSM (every path)'
    if top == 'kvm_send_userspace_msi':
        return 'KVM_SIGNAL_MSI ioctl'
    if top == 'kvm_arch_vcpu_ioctl':
        return 'vCPU ioctl (KVM_SMI; setup)'
    if 'kvm_fast_pio' in called:
        return 'OUT exit to the VMM'
    return None


for path in sys.argv[1:]:
    seen = collections.defaultdict(list)
    for top, names in blocks(path):
        k = kind(top, names)
        if k:
            seen[k].append(1 + len(names))
    print('==', path)
    for k, calls in sorted(seen.items()):
        print('   %-32s %3d blocks, fewest calls %4d  (all: %s)' %
              (k, len(calls), min(calls), ' '.join(map(str, calls))))
