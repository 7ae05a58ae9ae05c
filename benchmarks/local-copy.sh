#!/usr/bin/env bash
# ddt copy vs dd bs=4M conv=fdatasync: 1 GiB mixed image → loop device, alternating, median of N.
# Usage (as root, after npm run build): bash benchmarks/local-copy.sh [runs=3] [size_mib=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; size_mib=${2:-1024}
work=$(mktemp -d /var/tmp/ddt-bench-XXXXXX)
loop=""
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
node benchmarks/make-image.mjs "$work/src.img" "$size_mib" mixed
truncate -s "${size_mib}M" "$work/target.img"
loop=$(losetup --find --show "$work/target.img")
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
: > "$work/dd.txt"; : > "$work/ddt.txt"
for i in $(seq "$runs"); do
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now); dd if="$work/src.img" of="$loop" bs=4M conv=fdatasync status=none; t1=$(now)
  echo "$t1 - $t0" | bc >> "$work/dd.txt"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now); node dist/cli/main.js copy "$work/src.img" "$loop" --yes --progress none --journal "$work/run$i.journal" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc >> "$work/ddt.txt"
done
dd_m=$(median < "$work/dd.txt"); ddt_m=$(median < "$work/ddt.txt")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "dd bs=4M conv=fdatasync: runs $(paste -sd' ' "$work/dd.txt") median ${dd_m}s ($(echo "$size_mib / $dd_m" | bc) MiB/s)"
echo "ddt copy (every block read back with O_DIRECT and verified): runs $(paste -sd' ' "$work/ddt.txt") median ${ddt_m}s ($(echo "$size_mib / $ddt_m" | bc) MiB/s)"
echo "ratio ddt/dd: $(echo "scale=2; $ddt_m / $dd_m" | bc)"
