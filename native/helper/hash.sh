# --- hashing a range of the target ---

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
