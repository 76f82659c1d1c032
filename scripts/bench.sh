#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh KVER: the end of "make bench" (scripts/check.sh bench), after
# smi_bench ran in KVER's guest: leave in out/bench/ the table (bench.txt),
# bench.csv, bench.json and bench.png, a plot of the round trip (OUT to the
# writer back from SMM) against the number of vCPUs per path; and from the
# firmware job, firmware.txt (scripts/kernel-apm-guest.py's mp.txt:
# variable writes on the BSP and on an AP from a UEFI application and from
# Linux, per configuration and vCPU count) and its plot, firmware.png.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 KVER"
kver=$1
out=$ICH9SMI_ROOT/out/bench
results=$ICH9SMI_CACHE/runs/$kver-bench/results
[ -f "$results/bench.csv" ] || die "no benchmark results of $kver"
rm -rf "$out"
mkdir -p "$out"
cp "$results/bench.txt" "$results/bench.csv" "$results/bench.json" "$out/"

# The CSV column named $1.
column() {
	head -n 1 "$out/bench.csv" | tr , '\n' | grep -nx -- "$1" | cut -d: -f1
}

# plot_lines COLUMN: one gnuplot line per path, COLUMN against vCPUs.
plot_lines() {
	local csv=$out/bench.csv col path paths cmds=()

	col=$(column "$1")
	paths=$(awk -F, 'NR > 1 && !seen[$1]++ { print $1 }' "$csv")
	for path in $paths; do
		cmds+=("'< grep \"^$path,\" $csv' using 2:$col with linespoints title '$path'")
	done
	(IFS=,; printf '%s\n' "${cmds[*]}")
}

# Above, the round trip per path against the vCPU count; below, the work
# per SMI: exits to userspace, and guest exits, which the scaling run does
# not count.
plot() {
	gnuplot <<GNUPLOT
set terminal png size 900,1200
set output '$out/bench.png'
set datafile separator ','
set multiplot layout 3,1 title 'SMI per path (kernel $kver, nested KVM under TCG)'
set logscale x 2
set xlabel 'vCPUs'
set key left top
set logscale y
set ylabel 'round trip, median (us, guest TSC)'
plot $(plot_lines back_median_us)
unset logscale y
set ylabel 'exits to userspace per SMI'
plot $(plot_lines user_exits_per_smi)
set ylabel 'guest exits per SMI'
plot $(plot_lines guest_exits_per_smi)
unset multiplot
GNUPLOT
}
plot

# The firmware table: ms per variable write, BSP and AP, per row.
firmware=$ICH9SMI_CACHE/runs/$kver-firmware/results/kernel-apm/mp.txt
if [ ! -f "$firmware" ]; then
	msg "bench: no firmware table of $kver (its guest run failed)"
	exit 1
fi
cp "$firmware" "$out/firmware.txt"
# Rows of failed runs have "-" for their times: not plotted.
awk 'NR > 1 && $4 + 0 > 0 && $5 + 0 > 0 {
	printf "\"%s vCPUs\\n%s\" %s %s\n", $1, $2, $4, $5 }' \
	"$out/firmware.txt" >"$out/firmware.dat"
gnuplot <<GNUPLOT
set terminal png size 900,540
set bmargin 5
set output '$out/firmware.png'
set title "UEFI variable write, BSP against AP, firmware and Linux (kernel $kver, nested KVM under TCG)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'ms per write (mean of 2 x 16)'
set key left top
set logscale y
plot '$out/firmware.dat' using 2:xtic(1) title 'on the BSP', '' using 3 title 'on an AP'
GNUPLOT
rm -f "$out/firmware.dat"
msg "bench: kernel $kver; results in ${out#"$ICH9SMI_ROOT"/}/ (bench.txt, bench.csv, bench.json, bench.png, firmware.txt, firmware.png)"
