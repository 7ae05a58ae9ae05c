#!/bin/sh
# ddt-helper: the remote side of ddt (DESIGN §4). Uploaded once per run into a private work
# directory and run as `sh ddt-helper.sh SUBCOMMAND ...`. POSIX sh only (tested with dash):
# a rescue system or a fresh cloud VM has a shell, coreutils' dd and a hash tool, nothing more.
#
#   probe TARGET [REMOTE_DIR]       key=value facts about TARGET and this host, one round trip
#   serve TARGET WORKDIR            framed block worker on stdin/stdout (protocol below)
#   create-file TARGET SIZE         create a sparse regular file when TARGET does not exist
#   identity SOURCE                 key=value: what identifies a pull source between runs
#   kill-stale WORKDIR JOBID        end helpers (and their dd children) a previous run left
#   cleanup WORKDIR                 kill-stale, then remove WORKDIR
#
# serve protocol, one request at a time; every answer is one line, `OK <hex>` or `ERR <text>`:
#   W <offset> <length> <algo>\n<length bytes>   write, flush, read back, hash
#   Z <offset> <length> <algo>\n                 write zeros (no data on the wire), hash
#   W|Z <offset> <length> <algo> defer\n…        the same, but where the write and the read-back
#                                                both bypass the page cache (O_DIRECT) the flush
#                                                is left to a later Y and the answer is
#                                                `OK <hex> deferred`: the bytes read back came
#                                                from the device, they are not yet durable
#   X <offset> <length> <algo> [defer]\n<frames>   like W, the block's bytes as frames, each a
#                                                16-byte header `D` or `Z`, spaces, the frame
#                                                length, `\n`: `D` is followed by that many bytes,
#                                                `Z` stands for that many zeros (none on the wire);
#                                                the frames add up to exactly <length>
#   Y 0 0\n                                      flush the target (fsync), answered `OK`: every
#                                                write answered before Y was sent is durable
#   H <offset> <length> <algo>\n                 hash the range as it is
#   F <offset> <length> <algo> <file>\n          write a staged block file (sftp/rsync paths) at
#                                                offset, flush, read back, hash; the file is
#                                                removed once written (kept when it is short)
#   R <offset> <length> <algo>\n                 read the range for `ddt pull` (the served path is
#                                                the source then); answers, unlike the above:
#       Z <hex>\n                                the range is all zeros (checked byte by byte, no
#                                                data follows); hex = hash of what was read
#       D <length>\n<length bytes>OK <hex>\n      the bytes, then the hash of exactly those bytes
#       D <length>\n<length bytes>ERR <text>\n    reading failed part-way: the frame is padded with
#                                                zeros to <length> and must be discarded
#       ERR <text>\n                             refused before any data (bad algo)
#   Block parts (`--compress`, finer zero detection): a block sent as several parts, each
#   answered `OK`, pipelined without waiting; then `S` flushes, reads back and hashes it.
#   P <offset> <length>\n<length bytes>          write raw bytes, no flush
#   G <offset> <length> <wire>\n<wire bytes>     gzip data that inflates to exactly length bytes
#   E <offset> <length>\n                        write zeros, no flush
#   S <offset> <length> <algo>\n                 flush the target, read back the range, hash
#   N 0 0\n                                      no-op, answered `OK` (a new session is up)
#   Q\n                                          quit
# Writes use O_DIRECT (oflag=direct) where the target takes it and the range is 4 KiB-aligned.
# algo is xxh64 (printed like `xxhsum -H64`) or sha256 (like `sha256sum`).

set -u
# dd's statistics are parsed below; they must not be translated.
LC_ALL=C
export LC_ALL
PATH=$PATH:/usr/sbin:/sbin:/usr/bin:/bin
export PATH

NL='
'
BS=1048576
DEFER=0 NOTE=''

usage() {
  printf 'ddt-helper: %s\n' "$*" >&2
  exit 2
}

# Numbers go into dd arguments and $((...)); keep them decimal and within 64-bit range.
is_uint() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "${#1}" -le 18 ]
}

# Absolute and one line: every path reaches dd as one quoted argument, never as shell.
valid_path() {
  case $1 in /*) ;; *) return 1 ;; esac
  case $1 in *"$NL"*) return 1 ;; esac
  return 0
}

have() { command -v "$1" >/dev/null 2>&1; }

# perl runs here (used for 1 MiB pipes and X's frame decoder; all optional).
# DDT_HELPER_NO_PERL: the paths without perl on a host that has it (tests, comparisons).
have_perl() {
  [ -z "${DDT_HELPER_NO_PERL:-}" ] && have perl && perl -e 'exit 0' </dev/null >/dev/null 2>&1
}

# "MAJ:MIN" (decimal) of a block device node, or nothing.
majmin_of() {
  [ -b "$1" ] || return 1
  set -- $(stat -L -c '%t %T' "$1" 2>/dev/null) || return 1
  [ $# -eq 2 ] || return 1
  printf '%d:%d' "0x$1" "0x$2"
}

# Does dd understand these flags? Older or non-GNU dd may not; the client adapts.
dd_supports() {
  dd if=/dev/zero of=/dev/null bs=1 count=1 "$@" >/dev/null 2>&1
}

probe() {
  t=$1
  dir=${2:-${HOME:-/}}
  valid_path "$t" || usage "target must be an absolute path on one line"
  exists=0 type=other size=0 sector=512 mounted=0 swap=0 holders='' direct=0 writable=0
  real=$t
  [ -e "$t" ] && exists=1 && real=$(readlink -f "$t" 2>/dev/null || printf '%s' "$t")
  [ -w "$t" ] && writable=1
  mms='' # MAJ:MIN of the device and of each of its partitions
  if [ -b "$t" ]; then
    type=block
    mm=$(majmin_of "$t")
    sys=$(cd -P "/sys/dev/block/$mm" 2>/dev/null && pwd)
    mms=" $mm "
    size=$(blockdev --getsize64 "$t" 2>/dev/null) ||
      size=$(($(cat "$sys/size" 2>/dev/null || echo 0) * 512))
    sector=$(blockdev --getss "$t" 2>/dev/null) ||
      sector=$(cat "$sys/queue/logical_block_size" "$sys/../queue/logical_block_size" 2>/dev/null | head -n 1)
    [ -n "$sector" ] || sector=512
    for h in "$sys"/holders/*; do [ -e "$h" ] && holders="$holders ${h##*/}"; done
    for p in "$sys"/*/partition; do
      [ -f "$p" ] || continue
      pdir=${p%/partition}
      mms="$mms$(cat "$pdir/dev") "
      for h in "$pdir"/holders/*; do [ -e "$h" ] && holders="$holders ${h##*/}"; done
    done
  elif [ -f "$t" ]; then
    type=file
    size=$(stat -L -c %s "$t")
    # A file attached to a loop device is in use just like a device with holders.
    for b in /sys/block/loop*/loop/backing_file; do
      [ -f "$b" ] || continue
      [ "$(cat "$b" 2>/dev/null)" = "$real" ] || continue
      b=${b%/loop/backing_file}
      holders="$holders ${b##*/}"
    done
  fi
  if [ -n "$mms" ]; then
    # mountinfo's third field is the filesystem's device number: catches any path alias.
    while read -r _ _ mm _; do
      case $mms in *" $mm "*) mounted=1 ;; esac
    done </proc/self/mountinfo
    # /proc/mounts names the source device; btrfs etc. report anonymous numbers above.
    while read -r src _; do
      case $src in /*) ;; *) continue ;; esac
      mm=$(majmin_of "$src") || continue
      case $mms in *" $mm "*) mounted=1 ;; esac
    done </proc/mounts
  fi
  if [ -r /proc/swaps ]; then
    while read -r src _; do
      case $src in /*) ;; *) continue ;; esac
      [ "$src" = "$real" ] && swap=1
      mm=$(majmin_of "$src") || continue
      case $mms in *" $mm "*) swap=1 ;; esac
    done </proc/swaps
  fi
  if [ "$exists" = 1 ] && [ "$size" -ge 4096 ] &&
    dd if="$t" of=/dev/null bs=4096 count=1 iflag=direct >/dev/null 2>&1; then
    direct=1
  fi
  free=$(df -Pk "$dir" 2>/dev/null | { read -r _ && read -r _ _ _ avail _ && echo $((avail * 1024)); }) || free=''
  # The remote dir for staging (--via sftp): resolved, usable, and the size of its filesystem.
  dir_abs=$(cd -P "$dir" 2>/dev/null && pwd) || dir_abs=''
  case $dir_abs in *"$NL"*) dir_abs='' ;; esac
  dir_ok=0
  [ -n "$dir_abs" ] && [ -w "$dir_abs" ] && [ -x "$dir_abs" ] && dir_ok=1
  dir_size=$(df -Pk "$dir" 2>/dev/null | { read -r _ && read -r _ total _ && echo $((total * 1024)); }) || dir_size=''
  seek_bytes=0
  dd_supports iflag=fullblock,count_bytes,skip_bytes oflag=seek_bytes && seek_bytes=1
  nocache=0
  dd_supports oflag=nocache && nocache=1
  cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
  # X (sparse whole blocks) runs one perl per block where perl runs; without it, one dd per frame.
  perl=0
  have_perl && perl=1
  b() { if have "$1"; then echo 1; else echo 0; fi; }
  printf '%s\n' "exists=$exists" "type=$type" "size=$size" "sector=$sector" \
    "mounted=$mounted" "swap=$swap" "holders=${holders# }" "writable=$writable" \
    "free=${free:-0}" "dir=$dir_abs" "dir_ok=$dir_ok" "dir_size=${dir_size:-0}" "xxhsum=$(b xxhsum)" "sha256sum=$(b sha256sum)" "openssl=$(b openssl)" \
    "seek_bytes=$seek_bytes" "nocache=$nocache" "direct=$direct" "cores=$cores" "perl=$perl" "pid=$$"
}

# --- serve ---------------------------------------------------------------------------------

reply_err() {
  printf 'ERR %s\n' "$*"
}

# First line of dd's diagnostics, for ERR lines.
first_err() {
  msg=''
  [ -f "$ERRF" ] && IFS= read -r msg <"$ERRF"
  printf '%s' "${msg:-$1}"
}

# Bytes dd reported as copied, from its statistics in $ERRF ("N bytes ... copied").
copied_bytes() {
  n=''
  while IFS= read -r line; do
    # "1 byte copied", "4096 bytes (4.1 kB, 4.0 KiB) copied"
    case $line in [0-9]*' byte'*' copied'*) n=${line%% *} ;; esac
  done <"$ERRF"
  printf '%s' "$n"
}

# Bytes a failed `dd iflag=fullblock,count_bytes count=LEN` took from stdin. With fullblock
# every record but the last is exactly BS, and a short record can only be the count's
# remainder (or EOF), so "F+P records in" determines it. No statistics: dd failed before
# reading (e.g. open), nothing was taken.
consumed_bytes() {
  len=$1 full=0 part=0
  while IFS= read -r line; do
    case $line in *' records in')
      rec=${line%% *}
      full=${rec%+*}
      part=${rec#*+}
      ;;
    esac
  done <"$ERRF"
  is_uint "$full" && is_uint "$part" || return 1
  got=$((full * BS))
  [ "$part" -gt 0 ] && got=$((got + len % BS))
  [ "$got" -gt "$len" ] && got=$len
  printf '%s' "$got"
}

# `wflags OFF LEN BASE` sets WF, the oflag for writing LEN bytes at OFF: BASE, or direct where
# this worker writes with O_DIRECT and the range is 4 KiB-aligned (any logical sector size
# divides that). dd refuses nocache with direct, and O_DIRECT leaves nothing cached anyway.
# A variable, not output: no subshell per write (parts come 1 MiB at a time).
wflags() {
  WF=$3
  if [ "$DIRECT_W" = 1 ] && [ $(($1 % 4096)) -eq 0 ] && [ $(($2 % 4096)) -eq 0 ]; then WF=seek_bytes,direct; fi
}

# FC, what dd's conv gets for the flush: `,fsync`, or nothing when this request may defer its
# flush (DEFER=1, a `defer` request) and the write goes O_DIRECT (WF, from wflags): then the
# read-back is O_DIRECT too (DIRECT_W implies DIRECT, same alignment), it proves what the device
# holds, and the answer says `deferred` (NOTE). A buffered write is always flushed: its
# read-back would come from the page cache.
flush_conv() {
  FC=,fsync NOTE=''
  case $DEFER$WF in 1*direct*) FC='' NOTE=' deferred' ;; esac
}

# A write with oflag=direct failed: write buffered from now on (the client re-sends the block).
direct_failed() {
  case $WF in *direct*) DIRECT_W=0 ;; esac
}

# `frame_failed LEN RC WHAT`: the dd taking a LEN-byte frame from stdin failed with RC. Keep the
# framing: swallow what it left of the frame and report; when that cannot be known (killed by a
# signal, no statistics), stop rather than read the rest of the frame as the next request.
frame_failed() {
  if [ "$2" -gt 128 ] || ! got=$(consumed_bytes "$1"); then
    reply_err "$3 failed and frame length unknown (dd exit $2): $(first_err '?')"
    exit 1
  fi
  rest=$(($1 - got))
  [ "$rest" -gt 0 ] && dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count="$rest" 2>/dev/null
  reply_err "$3 failed: $(first_err "dd exit $2")"
}

# Pipes hold 64 KiB unless told otherwise (F_SETPIPE_SZ, 1031 on Linux), and there is no shell
# or coreutils way to tell them: where perl runs (PERL=1; Debian and Ubuntu always have it),
# the pipes the blocks go through are raised to 1 MiB. Reading 16 × 64 MiB back from a loop
# device into xxhsum: 0.92–1.69 s through 64 KiB, 0.49–0.51 s through 1 MiB, and less CPU.
# Without perl everything works the same, with the small pipes.
PERL=0
big_stdio() {
  [ "$PERL" = 1 ] && perl -e 'fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576)' 2>/dev/null
  return 0
}
# Run "$@" (never through a shell) with its stdout pipe raised to 1 MiB where perl can.
bigout() {
  if [ "$PERL" = 1 ]; then
    perl -e 'fcntl(STDOUT, 1031, 1048576); exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\n"' "$@"
  else
    "$@"
  fi
}

# Hash TARGET[off, off+len) -> stdout "hex". dd's status travels on fd 3 because POSIX sh has
# no pipefail, and a read error must not pass as the hash of the bytes that were read.
hash_range() {
  off=$1 len=$2 algo=$3
  iflags=skip_bytes,count_bytes,fullblock
  # O_DIRECT proves the bytes came from the device, not from the page cache we just wrote.
  if [ "$DIRECT" = 1 ] && [ $((off % 4096)) -eq 0 ] && [ $((len % 4096)) -eq 0 ]; then
    iflags=$iflags,direct
  fi
  case $algo in
    xxh64) [ -n "$XXH" ] || { reply_err "xxhsum not available"; return 1; } ;;
    sha256) ;;
    *) reply_err "unknown algo $algo"; return 1 ;;
  esac
  # The 1 MiB pipe costs a perl start (≈ 1 ms): worth it from a few MiB on, not for the 1 MiB
  # ranges of `-b 1M --skip-identical` (2048 × H: +3 s of the target's CPU per 2 GiB).
  big=''
  [ "$len" -ge 4194304 ] && big=bigout
  res=$({ { $big dd if="$TARGET" bs=$BS iflag=$iflags skip="$off" count="$len" 2>"$ERRF"; echo "rc=$?" >&3; } |
    case $algo in
      xxh64) xxhsum -H1 ;;
      *) if [ -n "$OPENSSL" ]; then openssl dgst -sha256; else sha256sum; fi ;;
    esac; } 3>&1)
  rc='' hex=''
  for w in $res; do
    case $w in
      rc=*) rc=${w#rc=} ;;
      *=) ;;
      *[!0-9a-f]*) ;;
      *) [ ${#w} -ge 16 ] && hex=$w ;;
    esac
  done
  if [ "$rc" != 0 ]; then reply_err "read-back failed: $(first_err "dd exit $rc")"; return 1; fi
  if [ "$(copied_bytes)" != "$len" ]; then reply_err "read-back short: $(copied_bytes) of $len bytes (range beyond end of target?)"; return 1; fi
  if [ -z "$hex" ]; then reply_err "hash tool failed for $algo"; return 1; fi
  printf 'OK %s%s\n' "$hex" "$NOTE"
}

# W: dd takes exactly LEN bytes from stdin (fullblock + count_bytes: its last read asks only
# for the remainder, so the next header stays in the pipe). One dd, no extra pipe stage:
# measured ≈ 20 % less CPU than `dd | dd` and the CPU is the limit on fast links.
do_write() {
  off=$1 len=$2 algo=$3
  wflags "$off" "$len" "$OFLAGS"
  flush_conv
  dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$len" \
    oflag="$WF" seek="$off" conv=notrunc,nocreat$FC 2>"$ERRF"
  rc=$?
  [ "$rc" = 0 ] || direct_failed
  if [ "$rc" = 0 ]; then
    if [ "$(copied_bytes)" != "$len" ]; then
      reply_err "short frame: $(copied_bytes) of $len bytes"
      return
    fi
    hash_range "$off" "$len" "$algo"
    return
  fi
  frame_failed "$len" "$rc" write
}

# X's frames → the block's bytes on stdout, zeros made here. Exits 0 when every frame was taken
# and passed on, 2 when every frame was taken but the writer stopped reading (its dd failed: the
# framing holds, the caller reports dd's error), 1 when the framing is lost (a bad header, EOF).
# Perl where it runs: one process for the whole block, 1 MiB pipe to dd.
SPARSE_PL='use strict; $SIG{PIPE} = "IGNORE"; fcntl(STDOUT, 1031, 1048576);
my ($left, $ok, $M, $b) = ($ARGV[0], 1, 1048576, "");
my $z = "\0" x $M;
sub put { my ($o, $l) = (0, length $_[0]);
  while ($ok && $o < $l) { my $w = syswrite(STDOUT, $_[0], $l - $o, $o); if (defined $w) { $o += $w } else { $ok = 0 } } }
while ($left > 0) {
  my $h = "";
  while (length($h) < 16) { my $r = sysread(STDIN, $h, 16 - length($h), length($h)); exit 1 unless $r; }
  $h =~ /\A([DZ]) +([0-9]{1,13})\n\z/ or exit 1;
  my ($k, $n) = ($1, $2 + 0);
  exit 1 if $n == 0 || $n > $left;
  $left -= $n;
  if ($k eq "D") {
    while ($n > 0) { my $r = sysread(STDIN, $b, $n < $M ? $n : $M); exit 1 unless $r; $n -= $r; put($b); }
  } else {
    while ($ok && $n > 0) { my $c = $n < $M ? $n : $M; put($c == $M ? $z : substr($z, 0, $c)); $n -= $c; }
  }
}
exit($ok ? 0 : 2);'

# The same without perl: one dd per frame (slower; the client sends X only where perl runs).
# A dd that cannot write (EPIPE: SIGPIPE is ignored here) has taken part of its frame: the
# rest is swallowed, like frame_failed does, and the remaining frames are taken, not passed on.
sparse_frames_sh() {
  trap '' PIPE
  ERRF=$ERRF.x
  left=$1 out=1
  while [ "$left" -gt 0 ]; do
    IFS=' ' read -r k n || exit 1
    is_uint "$n" && [ "$n" -gt 0 ] && [ "$n" -le "$left" ] || exit 1
    case $n in 0*) exit 1 ;; esac # no octal in $((...))
    left=$((left - n))
    case $k in
      D)
        if [ "$out" = 1 ]; then
          dd bs=$BS iflag=fullblock,count_bytes count="$n" 2>"$ERRF" && continue
          [ $? -gt 128 ] && exit 1
          out=0
          got=$(consumed_bytes "$n") || exit 1
          n=$((n - got))
        fi
        [ "$n" -gt 0 ] && { dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count="$n" 2>/dev/null || exit 1; }
        ;;
      Z) [ "$out" = 1 ] && { dd if=/dev/zero bs=$BS iflag=count_bytes count="$n" 2>/dev/null || out=0; } ;;
      *) exit 1 ;;
    esac
  done
  [ "$out" = 1 ] || exit 2
  exit 0
}

# X: W with the block as frames, so zero runs inside a block cost no bytes on the wire. One dd
# writes the whole block (as W), fed by the frame decoder; the decoder's status says whether the
# framing still holds after a failed write.
do_sparse() {
  off=$1 len=$2 algo=$3
  wflags "$off" "$len" "$OFLAGS"
  flush_conv
  res=$({ { if [ "$PERL" = 1 ]; then perl -e "$SPARSE_PL" "$len"; else (sparse_frames_sh "$len"); fi
      echo "frames=$?" >&3; } |
    { dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$len" \
        oflag="$WF" seek="$off" conv=notrunc,nocreat$FC 2>"$ERRF"
      echo "rc=$?" >&3; }; } 3>&1)
  frames='' rc=''
  for w in $res; do
    case $w in frames=*) frames=${w#frames=} ;; rc=*) rc=${w#rc=} ;; esac
  done
  case $frames in
    0 | 2) ;;
    *) reply_err "sparse write: frames unreadable (decoder exit ${frames:-?}, dd exit ${rc:-?})"; exit 1 ;;
  esac
  if [ "$rc" != 0 ]; then
    direct_failed
    reply_err "write failed: $(first_err "dd exit ${rc:-?}")"
    return
  fi
  if [ "$frames" != 0 ] || [ "$(copied_bytes)" != "$len" ]; then
    reply_err "short frame: $(copied_bytes) of $len bytes"
    return
  fi
  hash_range "$off" "$len" "$algo"
}

# F: the block arrived as a file in a staging dir (SFTP or rsync); it must hold exactly LEN bytes.
do_file() {
  off=$1 len=$2 algo=$3 file=$4
  valid_path "$file" && [ -f "$file" ] || { reply_err "staged file missing: $file"; return; }
  size=$(wc -c <"$file" | tr -d ' ')
  if [ "$size" != "$len" ]; then
    reply_err "staged file $file has $size of $len bytes"
    return
  fi
  wflags "$off" "$len" "$OFLAGS"
  dd if="$file" of="$TARGET" bs=$BS iflag=count_bytes count="$len" \
    oflag="$WF" seek="$off" conv=notrunc,nocreat,fsync 2>"$ERRF"
  rc=$?
  if [ "$rc" != 0 ]; then
    direct_failed
    reply_err "write failed: $(first_err "dd exit $rc")"
    return
  fi
  rm -f "$file"
  hash_range "$off" "$len" "$algo"
}

do_zero() {
  off=$1 len=$2 algo=$3
  wflags "$off" "$len" "$OFLAGS"
  flush_conv
  dd if=/dev/zero of="$TARGET" bs=$BS iflag=count_bytes count="$len" \
    oflag="$WF" seek="$off" conv=notrunc,nocreat$FC 2>"$ERRF"
  rc=$?
  if [ "$rc" = 0 ]; then
    hash_range "$off" "$len" "$algo"
  else
    direct_failed
    reply_err "zero write failed: $(first_err "dd exit $rc")"
  fi
}

# Hash stdin with the tool for $1 (the same tools and preference as hash_range).
hash_stdin() {
  case $1 in
    xxh64) xxhsum -H1 ;;
    *) if [ -n "$OPENSSL" ]; then openssl dgst -sha256; else sha256sum; fi ;;
  esac
}

# The digest in a hash tool's output ("hex  stdin", "SHA2-256(stdin)= hex"), or nothing.
hex_of() {
  for w in $1; do
    case $w in
      *=) ;;
      *[!0-9a-f]*) ;;
      *) [ ${#w} -ge 16 ] && printf '%s' "$w" && return ;;
    esac
  done
}

# Exit 0 when stdin holds exactly $1 zero bytes. cmp stops at the first non-zero byte
# (≈ 3 GB/s here); without it (it is diffutils, not coreutils) tr|wc (≈ 0.7 GB/s).
zeros_only() {
  if [ -n "$CMP" ]; then
    cmp -s -n "$1" - /dev/zero
  else
    [ "$(tr -d '\000' | wc -c | tr -d ' ')" = 0 ]
  fi
}

# R: one read of the source range streams both to the wire (tee) and, through a FIFO, to the
# hash tool, so the checksum is of exactly the bytes sent. POSIX sh has no pipefail: dd's exit
# status and statistics travel through files. A block whose first 64 KiB are zeros is first
# checked whole (one more read, only for such blocks): all zeros → `Z`, nothing on the wire.
do_read() {
  off=$1 len=$2 algo=$3
  case $algo in
    xxh64) [ -n "$XXH" ] || { reply_err "xxhsum not available"; return; } ;;
    sha256) ;;
    *) reply_err "unknown algo $algo"; return ;;
  esac
  FIFO=$WORKDIR/fifo.$$ HASHF=$WORKDIR/hash.$$ RCF=$WORKDIR/rc.$$
  [ -p "$FIFO" ] || mkfifo -m 600 "$FIFO" || { reply_err "cannot create $FIFO"; return; }
  head=$len
  [ "$head" -gt 65536 ] && head=65536
  if [ "$len" -gt 0 ] && dd if="$TARGET" bs=65536 iflag=fullblock,skip_bytes,count_bytes skip="$off" count="$head" 2>/dev/null | zeros_only "$head"; then
    hash_stdin "$algo" <"$FIFO" >"$HASHF" 2>/dev/null &
    hp=$!
    { dd if="$TARGET" bs=$BS iflag=fullblock,skip_bytes,count_bytes skip="$off" count="$len" 2>"$ERRF"; echo "$?" >"$RCF"; } |
      tee "$FIFO" | zeros_only "$len"
    z=$?
    wait "$hp"
    if [ "$z" = 0 ] && [ "$(cat "$RCF")" = 0 ] && [ "$(copied_bytes)" = "$len" ]; then
      hex=$(hex_of "$(cat "$HASHF")")
      [ -n "$hex" ] && { printf 'Z %s\n' "$hex"; return; }
    fi
  fi
  printf 'D %s\n' "$len"
  hash_stdin "$algo" <"$FIFO" >"$HASHF" 2>/dev/null &
  hp=$!
  {
    dd if="$TARGET" bs=$BS iflag=fullblock,skip_bytes,count_bytes skip="$off" count="$len" 2>"$ERRF"
    echo "$?" >"$RCF"
    # Keep the frame: whatever dd did not deliver is sent as zeros (and reported below).
    got=$(copied_bytes)
    is_uint "$got" || got=0
    [ "$got" -lt "$len" ] && dd if=/dev/zero bs=$BS iflag=count_bytes count=$((len - got)) 2>/dev/null
  } | tee "$FIFO"
  wait "$hp"
  rc=$(cat "$RCF")
  if [ "$rc" != 0 ]; then reply_err "read failed: $(first_err "dd exit $rc")"; return; fi
  got=$(copied_bytes)
  if [ "$got" != "$len" ]; then reply_err "read short: $got of $len bytes (the source ends before the range does)"; return; fi
  hex=$(hex_of "$(cat "$HASHF")")
  if [ -z "$hex" ]; then reply_err "hash tool failed for $algo"; return; fi
  printf 'OK %s\n' "$hex"
}

# P: one raw part of a block; like W without the flush and the read-back (S does both).
do_part() {
  off=$1 len=$2
  wflags "$off" "$len" seek_bytes
  dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$len" \
    oflag="$WF" seek="$off" conv=notrunc,nocreat 2>"$ERRF"
  rc=$?
  [ "$rc" = 0 ] || direct_failed
  if [ "$rc" = 0 ] && [ "$(copied_bytes)" = "$len" ]; then printf 'OK\n'; return; fi
  if [ "$rc" = 0 ]; then reply_err "short part: $(copied_bytes) of $len bytes"; return; fi
  frame_failed "$len" "$rc" 'part write'
}

# G: WIRE bytes of gzip (one or more members) inflating to LEN bytes at OFF. The first dd always
# takes exactly WIRE bytes off the channel; `cat` drains what a failing gzip left, so the framing
# holds whatever the data. The writing dd takes at most LEN bytes: never past the block.
do_gzpart() {
  off=$1 len=$2 wire=$3
  is_uint "$wire" || { reply_err "bad request header"; exit 1; }
  wflags "$off" "$len" seek_bytes
  res=$({ dd bs=$BS iflag=fullblock,count_bytes count="$wire" 2>/dev/null |
    { gzip -dc 2>/dev/null | dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$len" \
        oflag="$WF" seek="$off" conv=notrunc,nocreat 2>"$ERRF"
      echo "rc=$?" >&3
      cat >/dev/null; }; } 3>&1)
  if [ "$res" != rc=0 ]; then
    direct_failed
    reply_err "compressed part write failed: $(first_err "$res")"
    return
  fi
  if [ "$(copied_bytes)" != "$len" ]; then reply_err "compressed part inflated to $(copied_bytes) of $len bytes"; return; fi
  printf 'OK\n'
}

do_zeropart() {
  off=$1 len=$2
  wflags "$off" "$len" seek_bytes
  if dd if=/dev/zero of="$TARGET" bs=$BS iflag=count_bytes count="$len" \
    oflag="$WF" seek="$off" conv=notrunc,nocreat 2>"$ERRF"; then
    printf 'OK\n'
  else
    direct_failed
    reply_err "zero part write failed: $(first_err '?')"
  fi
}

# fsync of the target: every write that finished before is then durable (fsync works on the
# device or file, whichever process wrote).
flush_target() {
  dd if=/dev/null of="$TARGET" conv=notrunc,nocreat,fsync 2>"$ERRF"
}

# Y: flush the target.
do_flush() {
  if flush_target; then
    printf 'OK\n'
  else
    reply_err "flush failed: $(first_err '?')"
  fi
}

# S: the parts of a block are all written: flush (fsync of the target), then prove the range.
do_sync() {
  off=$1 len=$2 algo=$3
  if ! flush_target; then
    reply_err "flush failed: $(first_err '?')"
    return
  fi
  hash_range "$off" "$len" "$algo"
}

# What a worker finds out once, at its first request other than N (so a new session answers
# its N at once, and the tests below overlap the first block's bytes arriving in the pipe).
serve_setup() {
  SET_UP=1
  XXH='' OPENSSL='' DIRECT=0 OFLAGS=seek_bytes CMP=''
  have xxhsum && XXH=1
  have cmp && CMP=1
  # openssl ≈ 1.1 GB/s vs sha256sum ≈ 0.4 GB/s here (FACTS).
  have openssl && openssl dgst -sha256 </dev/null >/dev/null 2>&1 && OPENSSL=1
  have_perl && PERL=1
  # Blocks arrive on stdin through sshd's pipe (a bigger one lets sshd go on while dd waits for
  # an O_DIRECT write) and, for pull, leave on stdout through another.
  big_stdio
  dd if="$TARGET" of=/dev/null bs=4096 count=1 iflag=direct >/dev/null 2>&1 && DIRECT=1
  # Writes with O_DIRECT where reads take it and the target opens with it (count=0: nothing is
  # written): on a block device they skip its page cache; a loop device took 2 GiB in 1.9 s
  # this way against 5.1 s buffered (`dd bs=4M conv=fdatasync`), and the flush after each block
  # has nothing left to write back. A direct write that fails turns it off for this worker.
  DIRECT_W=0
  [ "$DIRECT" = 1 ] && dd if=/dev/null of="$TARGET" bs=4096 count=0 oflag=direct conv=notrunc,nocreat >/dev/null 2>&1 && DIRECT_W=1
  # nocache drops the written pages after fsync: cheaper than keeping them (measured) and
  # the read-back then comes from the device where O_DIRECT is not usable.
  dd_supports oflag=nocache && OFLAGS=seek_bytes,nocache
}

serve() {
  TARGET=$1 WORKDIR=$2
  valid_path "$TARGET" || usage "target must be an absolute path on one line"
  valid_path "$WORKDIR" && [ -d "$WORKDIR" ] || usage "work directory missing: $WORKDIR"
  # The PID lets a later run end this worker (kill-stale) by PID, never by name.
  echo "$$" >>"$WORKDIR/pids"
  ERRF=$WORKDIR/err.$$
  SET_UP=0
  while IFS=' ' read -r op off len algo extra; do
    DEFER=0 NOTE=''
    case $op in
      Q) break ;;
      '') continue ;;
      W | X | Z | H | F | R | P | G | E | S | N | Y) ;;
      *) reply_err "unknown request '$op'"; exit 1 ;;
    esac
    if ! is_uint "${len:-}"; then
      # Without a length the frame's end is unknown: stop rather than write garbage.
      reply_err "bad request header"
      exit 1
    fi
    [ "$op" = N ] || [ "$SET_UP" = 1 ] || serve_setup
    if [ "$op" = F ]; then
      if is_uint "${off:-}"; then do_file "$off" "$len" "${algo:-}" "${extra:-}"; else reply_err "bad request header"; fi
      continue
    fi
    if [ "$op" = G ]; then
      if is_uint "${off:-}" && [ -z "${extra:-}" ]; then do_gzpart "$off" "$len" "${algo:-}"; else reply_err "bad request header"; exit 1; fi
      continue
    fi
    if [ "${extra:-}" = defer ]; then
      case $op in W | X | Z) DEFER=1 extra='' ;; esac
    fi
    if ! is_uint "${off:-}" || [ -n "${extra:-}" ]; then
      case $op in W | P) dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count="$len" 2>/dev/null ;; esac
      reply_err "bad request header"
      # X's frames cannot be skipped without reading their headers: stop.
      [ "$op" = X ] && exit 1
      continue
    fi
    case $op in
      W) do_write "$off" "$len" "${algo:-}" ;;
      X) do_sparse "$off" "$len" "${algo:-}" ;;
      Z) do_zero "$off" "$len" "${algo:-}" ;;
      H) hash_range "$off" "$len" "${algo:-}" ;;
      R) do_read "$off" "$len" "${algo:-}" ;;
      P) do_part "$off" "$len" ;;
      E) do_zeropart "$off" "$len" ;;
      S) do_sync "$off" "$len" "${algo:-}" ;;
      N) printf 'OK\n' ;;
      Y) do_flush ;;
    esac
  done
  # Nothing is removed here: err.PID (the last dd diagnostics) stays for --keep-logs;
  # `cleanup` removes the whole work dir.
}

# --- housekeeping --------------------------------------------------------------------------

# Space-separated PIDs of all descendants of $1 (walks /proc; no pgrep on minimal systems).
descendants() {
  want=" $1 " found=''
  changed=1
  while [ "$changed" = 1 ]; do
    changed=0
    for st in /proc/[0-9]*/stat; do
      { IFS= read -r line <"$st"; } 2>/dev/null || continue
      p=${st#/proc/}
      p=${p%/stat}
      set -- ${line##*) }
      case $want in *" $p "*) continue ;; esac
      case $want in *" $2 "*)
        want="$want$p "
        found="$found $p"
        changed=1
        ;;
      esac
    done
  done
  printf '%s' "$found"
}

# Exists and is not a zombie (a killed child stays in /proc until its new parent reaps it).
is_running() {
  { IFS= read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  set -- ${line##*) }
  [ "$1" != Z ]
}

kill_stale() {
  wd=$1 job=$2
  valid_path "$wd" || usage "work directory must be an absolute path"
  case $job in '' | *[!A-Za-z0-9._-]*) usage "bad job id" ;; esac
  killed=0
  if [ -f "$wd/pids" ]; then
    victims=''
    while IFS= read -r pid; do
      is_uint "$pid" || continue
      [ "$pid" = "$$" ] && continue
      cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
      # Only a helper of this very work dir and job: a recycled PID is left alone.
      case $cmd in *ddt-helper*) ;; *) continue ;; esac
      case $cmd in *" $wd "* | *" $wd/"*) ;; *) continue ;; esac
      case $cmd in *"$job"*) ;; *) continue ;; esac
      # Children first collected, then the helper ended first so it starts no new dd.
      victims="$victims $pid $(descendants "$pid")"
    done <"$wd/pids"
    for pid in $victims; do kill -TERM "$pid" 2>/dev/null && killed=$((killed + 1)); done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      alive=''
      for pid in $victims; do is_running "$pid" && alive="$alive $pid"; done
      [ -z "$alive" ] && break
      sleep 0.2 2>/dev/null || sleep 1
    done
    for pid in ${alive:-}; do kill -KILL "$pid" 2>/dev/null; done
  fi
  echo "killed=$killed"
}

cleanup() {
  wd=$1
  valid_path "$wd" || usage "work directory must be an absolute path"
  # Only ever remove a directory ddt created (install writes the marker).
  [ -d "$wd" ] || { echo "removed=0"; return; }
  [ -f "$wd/.ddt-workdir" ] || usage "not a ddt work directory: $wd"
  kill_stale "$wd" "${wd##*/}"
  rm -rf -- "$wd"
  echo "removed=1"
}

create_file() {
  t=$1 size=$2
  valid_path "$t" || usage "target must be an absolute path on one line"
  is_uint "$size" || usage "bad size"
  if [ -e "$t" ]; then echo "created=0"; return; fi
  dd if=/dev/null of="$t" bs=1 seek="$size" count=0 2>/dev/null || usage "cannot create $t"
  echo "created=1"
}

# A pull's source: resume refuses one that changed (size, inode/mtime, device serial).
identity() {
  t=$1
  valid_path "$t" || usage "source must be an absolute path on one line"
  kind=other size=0 ino='' mtime='' mtime_frac='' dev='' devno='' serial='' wwid='' readable=0
  [ -r "$t" ] && readable=1
  if [ -b "$t" ]; then
    kind=block
    devno=$(majmin_of "$t")
    sys=/sys/dev/block/$devno
    size=$(blockdev --getsize64 "$t" 2>/dev/null) ||
      size=$(($(cat "$sys/size" 2>/dev/null || echo 0) * 512))
    serial=$(cat "$sys/device/serial" 2>/dev/null || cat "$sys/serial" 2>/dev/null || cat "$sys/loop/backing_file" 2>/dev/null)
    wwid=$(cat "$sys/wwid" 2>/dev/null || cat "$sys/device/wwid" 2>/dev/null)
  elif [ -f "$t" ]; then
    kind=file
    # %y last: "2026-11-28 08:47:35.123456789 +0000" gives the sub-second part.
    set -- $(stat -L -c '%s %i %Y %d %y' "$t")
    size=$1 ino=$2 mtime=$3 dev=$4
    case ${6:-} in *.*) mtime_frac=${6#*.} ;; esac
  fi
  printf '%s\n' "kind=$kind" "size=$size" "ino=$ino" "mtime=$mtime" "mtime_frac=$mtime_frac" "dev=$dev" \
    "devno=$devno" "serial=$serial" "wwid=$wwid" "readable=$readable"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  probe) [ $# -ge 1 ] || usage "probe TARGET [REMOTE_DIR]"; probe "$@" ;;
  serve) [ $# -eq 2 ] || usage "serve TARGET WORKDIR"; serve "$1" "$2" ;;
  create-file) [ $# -eq 2 ] || usage "create-file TARGET SIZE"; create_file "$1" "$2" ;;
  kill-stale) [ $# -eq 2 ] || usage "kill-stale WORKDIR JOBID"; kill_stale "$1" "$2" ;;
  cleanup) [ $# -eq 1 ] || usage "cleanup WORKDIR"; cleanup "$1" ;;
  identity) [ $# -eq 1 ] || usage "identity SOURCE"; identity "$1" ;;
  *) usage "unknown subcommand '$cmd' (probe|serve|create-file|kill-stale|cleanup|identity)" ;;
esac
