#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# patches.sh KSRC OUTDIR: write the in-tree form of ich9smi as a
# "git format-patch" series against the kernel tree KSRC:
#
#   0001 KVM: export what ich9smi calls (6.18+: to ich9smi alone)
#   0002 the UAPI header, its ioctl-number.rst and MAINTAINERS entries
#   0003 the driver and its drivers/virt hooks
#   0004 the documentation and its toctree entry
#   0005 the selftests and their hook in tools/testing/selftests/Makefile
#
# The series is made from this tree's own files (nothing is kept twice): a
# scratch git repository holds the kernel files the series touches, each
# patch is committed there, and format-patch writes them out. "git apply"
# or "patch -p1" puts them on the full tree.
#
# patches.sh --files prints the kernel files the series edits: all that a
# KSRC needs to hold.
set -euo pipefail

# Kernel files the hooks edit, relative to the kernel tree.
touched=(
	virt/kvm/kvm_main.c
	arch/x86/kvm/x86.c
	include/linux/kvm_types.h
	Documentation/userspace-api/ioctl/ioctl-number.rst
	drivers/virt/Kconfig
	drivers/virt/Makefile
	MAINTAINERS
	Documentation/virt/index.rst
	tools/testing/selftests/Makefile
)
if [ "${1:-}" = --files ]; then
	printf '%s\n' "${touched[@]}"
	exit 0
fi

[ $# -eq 2 ] || { echo "usage: $0 KSRC OUTDIR | --files" >&2; exit 2; }
ksrc=$(cd -- "$1" && pwd)
out=$2
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

[ -f "$ksrc/virt/kvm/kvm_main.c" ] || {
	echo "error: $ksrc is not a kernel source tree" >&2
	exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

name=$(git -C "$root" config user.name || echo "ich9smi developers")
email=$(git -C "$root" config user.email || echo "ich9smi@example.invalid")
g() {
	git -C "$work" -c user.name="$name" -c user.email="$email" \
		-c commit.gpgsign=false "$@"
}

g init -q
for f in "${touched[@]}"; do
	mkdir -p "$work/$(dirname "$f")"
	cp "$ksrc/$f" "$work/$f"
done
g add -A
g commit -q -m "base"

# commit SUBJECT BODY: commit everything staged, signed off.
commit() {
	g add -A
	g commit -q -s -m "$1" -m "$2"
}

copy() {
	mkdir -p "$work/$(dirname "$1")"
	cp -r "$root/$1" "$work/$(dirname "$1")/"
}

# maintain PATH: add an F: line to the MAINTAINERS entry, creating the entry
# with the first one, so that each patch lists the files it adds.
maintain() {
	NAME=$name EMAIL=$email FPATH=$1 perl -0pi -e '
		my $title = "ICH9 APM CONTROL PORT FOR KVM (ICH9SMI)";
		my $f = "F:\t$ENV{FPATH}";
		sub entry {
			my ($body, $f) = @_;
			my @l = split /\n/, $body;
			my @f = sort((grep { /^F:/ } @l), $f);
			return join("\n", (grep { !/^F:/ } @l), @f) . "\n";
		}
		s{\n\Q$title\E\n((?:[A-Z]:\t[^\n]*\n)*)}{"\n$title\n" . entry($1, $f)}e or
		s{\n(ICY I2C DRIVER\n)}{"\n$title\n" . entry("M:\t$ENV{NAME} <$ENV{EMAIL}>\nL:\tkvm\@vger.kernel.org\nS:\tMaintained\n", $f) . "\n$1"}e or
		die "no place for the ich9smi entry in MAINTAINERS\n";
	' "$work/MAINTAINERS"
}

# 0001: exports. ich9smi calls kvm_io_bus_register_dev(),
# kvm_io_bus_unregister_dev(), kvm_vm_ioctl_check_extension(), file_is_kvm()
# and kvm_make_all_cpus_request(). Before 6.18 the last two are
# EXPORT_SYMBOL_GPL already and the first three get the same. From 6.18 KVM
# exports to kvm-amd/kvm-intel only (EXPORT_SYMBOL_FOR_KVM_INTERNAL): there
# the first three are exported to ich9smi alone, and the other two to KVM's
# modules and ich9smi.
if grep -q 'define EXPORT_SYMBOL_FOR_KVM_INTERNAL' \
	"$work/include/linux/kvm_types.h"; then
	export_fmt='EXPORT_SYMBOL_FOR_MODULES(%s, "ich9smi");'
	perl -0pi -e '
		s{(\#define EXPORT_SYMBOL_FOR_KVM\(symbol\) \\\n\tEXPORT_SYMBOL_FOR_MODULES\(symbol, "kvm," __stringify\(KVM_SUB_MODULES\)\)\n)}{$1/* For KVM internals that a module extending KVM uses too. */\n\#define EXPORT_SYMBOL_FOR_KVM_INTERNAL_AND(symbol, mod) \\\n\tEXPORT_SYMBOL_FOR_MODULES(symbol, __stringify(KVM_SUB_MODULES) "," mod)\n} or
			die "no EXPORT_SYMBOL_FOR_KVM in kvm_types.h\n";
		s{(\n\#define EXPORT_SYMBOL_FOR_KVM_INTERNAL\(symbol\)\n)}{$1\#define EXPORT_SYMBOL_FOR_KVM_INTERNAL_AND(symbol, mod) \\\n\tEXPORT_SYMBOL_FOR_MODULES(symbol, mod)\n} or
			die "no empty EXPORT_SYMBOL_FOR_KVM_INTERNAL in kvm_types.h\n";
	' "$work/include/linux/kvm_types.h"
	for fn in file_is_kvm kvm_make_all_cpus_request; do
		FN=$fn perl -0pi -e '
			s/\nEXPORT_SYMBOL_FOR_KVM_INTERNAL\(\Q$ENV{FN}\E\);\n/\nEXPORT_SYMBOL_FOR_KVM_INTERNAL_AND($ENV{FN}, "ich9smi");\n/ or
				die "no EXPORT_SYMBOL_FOR_KVM_INTERNAL($ENV{FN}) in kvm_main.c\n";
		' "$work/virt/kvm/kvm_main.c"
	done
	subject="KVM: Export the I/O bus and VM helpers that ich9smi needs"
	body="Let ich9smi, the in-kernel ICH9 APM control port, put a device on a
VM's I/O bus: export kvm_io_bus_register_dev(),
kvm_io_bus_unregister_dev() and kvm_vm_ioctl_check_extension() to it
alone, and add it to the modules that file_is_kvm() and
kvm_make_all_cpus_request() are exported to. ich9smi registers a PIO
device at 0xB2-0xB3 and raises SMIs from it without an exit to
userspace; it refuses VMs for which KVM reports no SMM
(KVM_CAP_X86_SMM), such as SEV-ES guests.

EXPORT_SYMBOL_FOR_KVM_INTERNAL_AND() keeps those two exported to
kvm-amd and kvm-intel as before and names one more module.

Both bus functions expect the caller to hold kvm->slots_lock, as
in-kernel users already do."
else
	export_fmt='EXPORT_SYMBOL_GPL(%s);'
	subject="KVM: Export the I/O bus functions and kvm_vm_ioctl_check_extension()"
	body="Let a module put an in-kernel device on a VM's I/O bus. ich9smi, the
in-kernel ICH9 APM control port, registers a PIO device at 0xB2-0xB3 and
raises SMIs from it without an exit to userspace; it refuses VMs for
which KVM reports no SMM (KVM_CAP_X86_SMM), such as SEV-ES guests.

The bus functions expect the caller to hold kvm->slots_lock, as in-kernel
users already do."
fi
for fn in virt/kvm/kvm_main.c:kvm_io_bus_register_dev \
	virt/kvm/kvm_main.c:kvm_io_bus_unregister_dev \
	arch/x86/kvm/x86.c:kvm_vm_ioctl_check_extension; do
	# shellcheck disable=SC2059
	line=$(printf "$export_fmt" "${fn#*:}")
	FN=${fn#*:} LINE=$line perl -0pi -e '
		s/(\nint \Q$ENV{FN}\E\(.*?\n\}\n)/$1$ENV{LINE}\n/s or
			die "no $ENV{FN}() in $ARGV\n";
	' "$work/${fn%%:*}"
done
commit "$subject" "$body"
# 0002: UAPI header.
copy include/uapi/linux/ich9smi.h
maintain include/uapi/linux/ich9smi.h
perl -0pi -e '
	s{(\n0xB2  01-02 [^\n]*\n)}{$1 . sprintf("0xB2  %-6s %-57s %s\n", "40-4F",
		"uapi/linux/ich9smi.h", "ich9smi, KVM guest APM port")}e or
		die "no 0xB2 01-02 line in ioctl-number.rst\n";
' "$work/Documentation/userspace-api/ioctl/ioctl-number.rst"
commit "virt: ich9smi: Add the UAPI header" \
"/dev/ich9smi attaches an in-kernel ICH9 APM control port to a KVM VM and
returns a device fd through which the VMM sets the SMI features, the
SMI_EN mirror and the APM_CNT values it wants to see, saves and restores
the state for migration, and reads statistics.

Every argument struct starts with a size and flags; unknown flags and
non-zero reserved fields are rejected, longer structs need a zero tail."

# 0003: driver and hooks. symbols.c is the out-of-tree fallback and is only
# built when ICH9SMI_OOT is set, never in a kernel tree; it is left out.
mkdir -p "$work/drivers/virt/ich9smi"
for f in "$root"/drivers/virt/ich9smi/*; do
	case $(basename "$f") in
	symbols.c) ;;
	*) cp "$f" "$work/drivers/virt/ich9smi/" ;;
	esac
done
# The series carries the in-tree form only: unifdef drops what ICH9SMI_OOT
# adds (the static calls and their debugfs file), and the calls through
# ich9smi_kvm() become plain calls.
for f in "$work"/drivers/virt/ich9smi/*.[ch]; do
	unifdef -UICH9SMI_OOT -o "$f" "$f" || [ $? -eq 1 ]
	perl -ni -e 'print unless /^#define ich9smi_kvm\(fn\)/' "$f"
	# The call's "(" moves 13 columns left, and so do the lines that
	# continue its arguments.
	perl -pi -e '
		if ($shift) {
			s/^(\t*)( *)//;
			my $col = 8 * length($1) + length($2) - $shift;
			$_ = "\t" x int($col / 8) . " " x ($col % 8) . $_;
			$shift = 0 unless /,\s*$/;
		}
		$shift = 13 if s/\bich9smi_kvm\((\w+)\)/$1/ && /,\s*$/;
	' "$f"
done
# shellcheck disable=SC2016 # make's $(...), written as is
printf '%s\n' '# SPDX-License-Identifier: GPL-2.0' \
	'obj-$(CONFIG_ICH9SMI) += ich9smi.o' '' \
	'ich9smi-y := main.o dev.o apm.o debugfs.o' '' \
	'ccflags-y += -I$(src)' >"$work/drivers/virt/ich9smi/Makefile"
maintain drivers/virt/ich9smi/
perl -0pi -e '
	s/(\nsource "drivers\/virt\/acrn\/Kconfig"\n)/$1\nsource "drivers\/virt\/ich9smi\/Kconfig"\n/ or
		die "no acrn source line in drivers/virt/Kconfig\n";
' "$work/drivers/virt/Kconfig"
perl -0pi -e '
	s/(\nobj-\$\(CONFIG_ACRN_HSM\)[^\n]*\n)/$1obj-\$(CONFIG_ICH9SMI)\t\t+= ich9smi\/\n/ or
		die "no ACRN line in drivers/virt/Makefile\n";
' "$work/drivers/virt/Makefile"
commit "virt: Add ich9smi, the ICH9 APM control port served in kernel" \
"A KVM guest with SMM (OVMF with SMM_REQUIRE) writes the ICH9 APM_CNT port
0xB2 to enter SMM. Today every such write exits to the VMM, which marks
the SMI on the writer or, with the negotiated broadcast feature, on every
vCPU and kicks their threads, each of which issues KVM_SMI on itself.

ich9smi serves 0xB2/0xB3 from an in-kernel PIO device instead: the
write raises KVM_REQ_SMI on the writer, which takes the SMI before its
next instruction, or on every vCPU at once, halted ones included. The
ACPI enable/disable commands (and any others the VMM asks for) still
exit to the VMM. Feature negotiation follows QEMU's rules."

# 0004: documentation.
copy Documentation/virt/ich9smi.rst
maintain Documentation/virt/ich9smi.rst
perl -0pi -e '
	s/(\n   acrn\/index\n)/$1   ich9smi\n/ or
		die "no acrn/index in Documentation/virt/index.rst\n";
' "$work/Documentation/virt/index.rst"
commit "Documentation: virt: Document ich9smi" \
"The ioctl ABI with its errors, the guest-visible semantics, feature
negotiation, migration, lifetimes and locking, how the driver reaches
KVM, and the UAPI header's kernel-doc."

# 0005: selftests.
copy tools/testing/selftests/ich9smi
maintain tools/testing/selftests/ich9smi/
perl -0pi -e '
	s/(\nTARGETS \+= hid\n)/$1TARGETS += ich9smi\n/ or
		die "no hid target in tools/testing/selftests/Makefile\n";
' "$work/tools/testing/selftests/Makefile"
commit "selftests: ich9smi: Add ABI and SMI delivery tests" \
"Every ioctl's errors, the negotiation rules, state round trips and fd
lifetimes, and guests that write 0xB2 and check which vCPUs entered SMM."

mkdir -p "$out"
rm -f "$out"/*.patch
g format-patch -q -o "$(cd -- "$out" && pwd)" HEAD~5
ls "$out"/*.patch
