# --- hashing a range of the target ---

# Hash TARGET[off, off+len) -> stdout "hex". dd's status travels on fd 3 because POSIX sh has
# no pipefail, and a read error must not pass as the hash of the bytes that were read.
# `hash_range OFF LEN ALGO sync`: the target is flushed (fsync) first.
hash_range() {
  off=$1 len=$2 algo=$3 sync=${4:-}
  # ddt-hash, where it passed its self-test here (see V): one process instead of dd, a pipe and
  # the hash tool; it reads O_DIRECT where the range is aligned and checks that it got every
  # byte. Read-backs after writes are most of a --skip-identical delta's remote work.
  # Its answer goes out below like the shell tools', with the deferred flush and the zeros. It
  # reads where dd would (RTARGET at ROFF: a loop device's backing file, see readback_setup).
  # With `sync` it also flushes the target before reading: no dd process for the flush.
  if [ "$len" -gt 0 ] && hasher; then
    res=$("$WORKDIR/ddt-hash" ranges "$RTARGET" "$len" "$algo" "$algo" ${sync:+"sync=$TARGET"} 2>"$ERRF" <<RANGE
$((off + ROFF)) $len $len
RANGE
) || {
      rc=$?
      [ "$rc" = 4 ] && { reply_err "flush failed: $(first_err '?')"; return 1; }
      reply_err "read-back failed: $(first_err "ddt-hash exit $rc")"
      return 1
    }
    case $res in 'ERR '*) reply_err "read-back failed: ${res#ERR }"; return 1 ;; esac
    hex=$(hex_of "$res")
    [ -n "$hex" ] || { reply_err "ddt-hash gave no checksum for $algo"; return 1; }
    hash_answer "$hex"
    return 0
  fi
  if [ -n "$sync" ] && ! flush_target; then
    reply_err "flush failed: $(first_err '?')"
    return 1
  fi
  iflags=skip_bytes,count_bytes,fullblock
  # O_DIRECT proves the bytes came from the device, not from the page cache we just wrote.
  if [ "$DIRECT" = 1 ] && [ $((off % 4096)) -eq 0 ] && [ $((len % 4096)) -eq 0 ]; then
    iflags=$iflags,direct
  fi
  # The 1 MiB pipe costs a perl start (≈ 1 ms): worth it from a few MiB on, not for the 1 MiB
  # ranges of `-b 1M --skip-identical` (2048 × H: +3 s of the target's CPU per 2 GiB).
  big='' rbs=$BS
  [ "$len" -ge 4194304 ] && big=bigout
  # 4 MiB reads where dd counts bytes (records_bytes assumes BS): a loop device read back its
  # punched ranges ≈ 1.6× faster so (fewer, larger requests to its backing file).
  [ "$DD_STATS" = bytes ] && [ "$len" -ge 4194304 ] && rbs=4194304
  res=$({ { $big dd if="$RTARGET" bs=$rbs iflag=$iflags skip=$((off + ROFF)) count="$len" 2>"$ERRF"; echo "rc=$?" >&3; } |
    hash_stdin "$algo"; } 3>&1)
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
  if ! range_complete "$off" "$len"; then reply_err "read-back short: $(range_got "$off" "$len") of $len bytes (range beyond end of target?)"; return 1; fi
  if [ -z "$hex" ]; then reply_err "hash tool failed for $algo"; return 1; fi
  hash_answer "$hex"
}

# The answer to a write's read-back: the checksum, ` deferred` where the flush is left to `Y`,
# and how the block's zero ranges were made.
hash_answer() {
  zw=''
  case $ZSUM in hole | offload) zw=" zeros=$ZSUM" ;; esac
  printf 'OK %s%s%s\n' "$1" "$NOTE" "$zw"
  ZSUM=''
}

# Hash stdin for algo $1 with the tool hash_setup chose.
hash_stdin() {
  case $1 in
    xxh64) xxhsum -H1 ;;
    *) if [ -n "$OPENSSL" ]; then openssl dgst -sha256; else sha256sum; fi ;;
  esac
}

# The hash tools that work here, best first, comma-separated: each is run on empty input and
# must print the known digest (a tool that exists but fails, or prints something else, does
# not count). xxhsum's -H1 is XXH64 in every version (newer ones also take -H64).
hash_tools() {
  tools=''
  [ "$(hex_of "$(xxhsum -H1 </dev/null 2>/dev/null)")" = ef46db3751d8e999 ] && tools=$tools,xxhsum
  # openssl ≈ 1.1 GB/s against sha256sum's ≈ 0.4 GB/s on the same machine.
  [ "$(hex_of "$(openssl dgst -sha256 </dev/null 2>/dev/null)")" = "$SHA256_EMPTY" ] && tools=$tools,openssl
  [ "$(hex_of "$(sha256sum </dev/null 2>/dev/null)")" = "$SHA256_EMPTY" ] && tools=$tools,sha256sum
  printf '%s' "${tools#,}"
}
SHA256_EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# XXH, OPENSSL and SHA: which tools hash_stdin may use.
hash_setup() {
  use_hash_tools "$(hash_tools)"
}

# `use_hash_tools LIST`: XXH, OPENSSL and SHA from a comma-separated list of working tools.
use_hash_tools() {
  XXH='' OPENSSL='' SHA=''
  t=,$1,
  case $t in *,xxhsum,*) XXH=1 ;; esac
  case $t in *,openssl,*) OPENSSL=1 ;; esac
  case $t in *,sha256sum,*) SHA=1 ;; esac
}

# Can this worker compute algo $1? If not, WHY says why: the algo is unknown, or the tool it
# needs is missing (`missing tool NAME: …`, a condition no retry will change).
algo_usable() {
  case $1 in
    xxh64) [ -n "$XXH" ] && return 0
      WHY='missing tool xxhsum: cannot compute xxh64 here (install xxhash, or use sha256)' ;;
    sha256) [ -n "$OPENSSL$SHA" ] && return 0
      WHY='missing tool sha256sum: cannot compute sha256 here (neither sha256sum nor openssl works)' ;;
    *) WHY="unknown algo $1" ;;
  esac
  return 1
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

# RTARGET and ROFF: where read-backs read TARGET's bytes. A loop device that reads its backing
# file through the page cache (loop/dio 0) makes every page of a hole before handing it over:
# its punched ranges read back at ≈ 200 MB/s here, while O_DIRECT on the file itself reads a hole
# at memory speed. So where the backing file is a regular file this worker reads with O_DIRECT
# (and, where losetup says, the very inode the loop device holds), read-backs read it at the
# loop's offset: the same bytes, from the file that holds them. Writes are flushed before their
# read-back (or O_DIRECT, which the loop passes to the file at once), punches go to the file, and
# an O_DIRECT read writes the file's dirty pages in its range back before reading.
readback_setup() {
  RTARGET=$TARGET ROFF=0
  [ -b "$TARGET" ] && [ "$DIRECT" = 1 ] || return 0
  lsys=/sys/dev/block/$(majmin_of "$TARGET")
  slurp dio "$lsys/loop/dio" || dio=''
  [ -d "$lsys/loop" ] && [ "$dio" != 1 ] || return 0
  slurp b "$lsys/loop/backing_file" && valid_path "$b" && [ -f "$b" ] || return 0
  o=$(sysnum "$lsys/loop/offset")
  [ $((o % 4096)) -eq 0 ] || return 0
  if ino=$(losetup -n -O BACK-INO "$TARGET" 2>/dev/null) && [ -n "$ino" ]; then
    [ "$(stat -L -c %i "$b")" = "$(echo $ino)" ] || return 0
  fi
  dd if="$b" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null || return 0
  RTARGET=$b ROFF=$o
}
