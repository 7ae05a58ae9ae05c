# --- R: reads for pull ---

# Exit 0 when stdin holds exactly $1 zero bytes. cmp stops at the first non-zero byte
# (≈ 3 GB/s here); without it (it is diffutils, not coreutils) tr|wc (≈ 0.7 GB/s).
zeros_only() {
  if [ -n "$CMP" ]; then
    cmp -s -n "$1" - /dev/zero
  else
    [ "$(tr -d '\000' | wc -c | tr -d ' ')" = 0 ]
  fi
}

# TARGET[OFF, OFF+LEN) on stdout, then zeros for whatever dd did not deliver, so the frame keeps
# its length whatever happens (the outcome is reported after it). dd's status goes to $RCF; its
# input flags are do_read's $zf.
read_padded() {
  dd if="$TARGET" bs=$BS iflag=$zf skip="$1" count="$2" 2>"$ERRF"
  echo "$?" >"$RCF"
  got=0
  if [ "$DD_STATS" = bytes ]; then
    got=$(copied_bytes "$2")
    is_uint "$got" || got=0
  fi
  [ "$got" -lt "$2" ] && dd if=/dev/zero bs=$BS iflag=count_bytes count=$(($2 - got)) 2>/dev/null
}

# R: one read of the source range streams both to the wire (tee) and, through a FIFO, to the
# hash tool, so the checksum is of exactly the bytes sent. POSIX sh has no pipefail: dd's exit
# status and statistics travel through files. A block whose first 64 KiB are zeros is first
# checked whole (one more read, only for such blocks): all zeros → `Z`, nothing on the wire.
do_read() {
  off=$1 len=$2 algo=$3
  FIFO=$WORKDIR/fifo.$$ HASHF=$WORKDIR/hash.$$ RCF=$WORKDIR/rc.$$
  [ -p "$FIFO" ] || mkfifo -m 600 "$FIFO" || { reply_err "cannot create $FIFO"; return; }
  head=$len
  [ "$head" -gt 65536 ] && head=65536
  # O_DIRECT where aligned, for the zero check and the data alike: a hole of a sparse source
  # reads as zeros at memory speed that way, while through the page cache every page of it is
  # made first (≈ 10× slower here); and a device under a mounted filesystem gives its own bytes,
  # where its page cache can hold stale copies of blocks the filesystem wrote around it.
  zf=fullblock,skip_bytes,count_bytes
  [ "$DIRECT" = 1 ] && [ $((off % 4096)) -eq 0 ] && [ $((len % 4096)) -eq 0 ] && zf=$zf,direct
  if [ "$len" -gt 0 ] && dd if="$TARGET" bs=65536 iflag=$zf skip="$off" count="$head" 2>/dev/null | zeros_only "$head"; then
    hash_stdin "$algo" <"$FIFO" >"$HASHF" 2>/dev/null &
    hp=$!
    { dd if="$TARGET" bs=$BS iflag=$zf skip="$off" count="$len" 2>"$ERRF"; echo "$?" >"$RCF"; } |
      tee "$FIFO" | zeros_only "$len"
    z=$?
    wait "$hp"
    if [ "$z" = 0 ] && slurp rc "$RCF" && [ "$rc" = 0 ] && range_complete "$off" "$len"; then
      slurp sums "$HASHF" || sums=''
      hex=$(hex_of "$sums")
      [ -n "$hex" ] && { printf 'Z %s\n' "$hex"; return; }
    fi
  fi
  printf 'D %s\n' "$len"
  hash_stdin "$algo" <"$FIFO" >"$HASHF" 2>/dev/null &
  hp=$!
  if [ "$DD_STATS" = bytes ]; then
    read_padded "$off" "$len" | tee "$FIFO"
  else
    # dd counts only records here, so a short read's length is not known: zeros follow it in
    # any number, and head cuts the frame at exactly LEN.
    read_padded "$off" "$len" | head -c "$len" | tee "$FIFO"
  fi
  wait "$hp"
  slurp rc "$RCF" || rc=''
  if [ "$rc" != 0 ]; then reply_err "read failed: $(first_err "dd exit $rc")"; return; fi
  if ! range_complete "$off" "$len"; then
    reply_err "read short: $(range_got "$off" "$len") of $len bytes (the source ends before the range does)"
    return
  fi
  slurp sums "$HASHF" || sums=''
  hex=$(hex_of "$sums")
  if [ -z "$hex" ]; then reply_err "hash tool failed for $algo"; return; fi
  printf 'OK %s\n' "$hex"
}
