# --- zero ranges: holes, device offload, or zeros written ---
#
# ZEROS (serve's third argument) says what the client wants for the zeros of a block: `sparse`
# (holes in files, offload on devices), `discard` (as sparse, and a device may unmap them where
# it guarantees that unmapped blocks read as zeros), or `write` (zeros written: allocation is
# wanted). zero_setup picks ZHOW, how this worker makes a range zero:
#   punch    fallocate --punch-hole: a file's range becomes a hole. On a loop device it punches
#            the backing file (the kernel's write-zeroes, unmap allowed), and with `discard` on a
#            device whose queue takes write-zeroes the device may unmap the range
#   zeroout  blkdiscard --zeroout (BLKZEROOUT): the device zeroes the range itself; only where
#            sysfs says it takes write-zeroes (else the kernel would write the zeros anyway)
#   discard  blkdiscard: unmapped, only where sysfs says discarded blocks read as zeros
#   keep     a file with no punch tool (busybox's fallocate cannot punch): a range that already
#            reads as zeros is left alone (a hole stays one), else zeros are written
#   write    dd from /dev/zero
# Whatever it is, the block's read-back checksum proves the result, as for any write.
# ZK: what the last zero_range did (hole, offload, written). ZSUM: what a request's zero ranges
# did together (hole or offload when all did the same, else written); the answer says it.

ZEROS=write ZHOW=write ZSUM=''

# The host's fallocate punches holes (util-linux; busybox's only preallocates).
# (Asked once per shell: HAVE_PUNCH remembers the answer for it and its subshells.)
have_punch() {
  if [ -z "${HAVE_PUNCH:-}" ]; then
    case $(fallocate --help 2>&1) in *punch-hole*) HAVE_PUNCH=1 ;; *) HAVE_PUNCH=0 ;; esac
  fi
  [ "$HAVE_PUNCH" = 1 ]
}

# blkdiscard zeroes ranges (util-linux ≥ 2.28; busybox's only discards).
have_zeroout() {
  if [ -z "${HAVE_ZEROOUT:-}" ]; then
    case $(blkdiscard --help 2>&1) in *zeroout*) HAVE_ZEROOUT=1 ;; *) HAVE_ZEROOUT=0 ;; esac
  fi
  [ "$HAVE_ZEROOUT" = 1 ]
}

# The queue directory in sysfs of block device $1 (a partition's is its disk's).
queue_of() {
  sys=/sys/dev/block/$(majmin_of "$1") || return 1
  if [ -d "$sys/queue" ]; then printf '%s' "$sys/queue"; else printf '%s' "$sys/../queue"; fi
}

# `sysnum FILE`: the number in a sysfs file, 0 when absent.
sysnum() {
  slurp v "$1" || v=''
  is_uint "$v" && printf '%s' "$v" || printf 0
}

# How zero ranges of $1 are made for the mode $2 (sparse|discard|write): the ZHOW values.
zero_how() {
  [ "$2" = write ] && { echo write; return; }
  if [ -f "$1" ]; then
    if have_punch; then echo punch; else echo keep; fi
    return
  fi
  [ -b "$1" ] || { echo write; return; }
  q=$(queue_of "$1")
  wz=$(sysnum "$q/write_zeroes_max_bytes")
  dz=$(sysnum "$q/discard_zeroes_data")
  loop=0
  [ -d "/sys/dev/block/$(majmin_of "$1")/loop" ] && loop=1
  if [ "$wz" -gt 0 ] && have_punch && { [ "$loop" = 1 ] || [ "$2" = discard ]; }; then echo punch
  elif [ "$2" = discard ] && [ "$dz" = 1 ] && have blkdiscard; then echo discard
  elif [ "$wz" -gt 0 ] && have_zeroout; then echo zeroout
  else echo write
  fi
}

zero_setup() {
  ZHOW=$(zero_how "$TARGET" "$ZEROS")
}

# Does TARGET[OFF, OFF+LEN) read as zeros? (O_DIRECT where aligned: a hole reads fast that way.)
range_zero() {
  zf=skip_bytes,count_bytes,fullblock
  [ "$DIRECT" = 1 ] && [ $(($1 % 4096)) -eq 0 ] && [ $(($2 % 4096)) -eq 0 ] && zf=$zf,direct
  dd if="$TARGET" bs=$BS iflag=$zf skip="$1" count="$2" 2>/dev/null | zeros_only "$2"
}

# Zeros written with dd, flushed: what every mode falls back to.
zero_write() {
  wflags "$1" "$2" seek_bytes
  dd if=/dev/zero of="$TARGET" bs=$BS iflag=count_bytes count="$2" \
    oflag="$WF" seek="$1" conv=notrunc$NOCREAT,fsync 2>"$ERRF" || { direct_failed; return 1; }
  ZK=written
}

# Make TARGET[OFF, OFF+LEN) zero the way ZHOW says; ZK says how it went. An offload the target
# refuses (a filesystem without holes, a device that turns the request down) is not tried again
# by this worker: it writes zeros from then on.
zero_range() {
  [ "$2" -gt 0 ] || return 0
  case $ZHOW in
    punch) fallocate -p -o "$1" -l "$2" "$TARGET" 2>"$ERRF" && { [ -f "$TARGET" ] && ZK=hole || ZK=offload; return 0; } ;;
    zeroout) blkdiscard -z -o "$1" -l "$2" "$TARGET" 2>"$ERRF" && { ZK=offload; return 0; } ;;
    discard) blkdiscard -o "$1" -l "$2" "$TARGET" 2>"$ERRF" && { ZK=offload; return 0; } ;;
    keep) range_zero "$1" "$2" && { ZK=hole; return 0; }
      zero_write "$1" "$2"
      return ;;
  esac
  ZHOW=write
  zero_write "$1" "$2"
}

# Fold the last zero_range into ZSUM (reset to '' per request).
zero_note() {
  case $ZSUM in
    '') ZSUM=$ZK ;;
    "$ZK") ;;
    *) ZSUM=written ;;
  esac
}

# `zero_flush`: after zero_range, make it durable unless the answer may say `deferred` (DEFER,
# and the read-back bypasses the page cache: see flush_conv). Punches and offloads change the
# target without a write that fsync=conv could cover; zeros that were written are flushed already.
zero_flush() {
  [ "$ZK" = written ] && return 0
  if [ "$DEFER" = 1 ] && [ "$DIRECT" = 1 ] && [ $(($1 % 4096)) -eq 0 ] && [ $(($2 % 4096)) -eq 0 ]; then
    NOTE=' deferred'
    return 0
  fi
  [ "$ZHOW" = keep ] || flush_target
}
