# --- serve ---------------------------------------------------------------------------------

reply_err() {
  printf 'ERR %s\n' "$*"
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
