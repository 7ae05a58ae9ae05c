# --- X: a whole block as frames ---

# X's frames → the block's bytes on stdout, zeros made here. Exits 0 when every frame was taken
# and passed on, 2 when every frame was taken but the writer stopped reading (its dd failed: the
# framing holds, the caller reports dd's error), 1 when the framing is lost (a bad header, EOF).
# Perl where it runs: one process for the whole block, 1 MiB pipe to dd.
SPARSE_PL='@@frames.pl@@'

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

# The frames of an X block of $1 bytes, decoded onto stdout (exit status as above).
sparse_frames() {
  if [ "$PERL" = 1 ]; then perl -e "$SPARSE_PL" "$1"; else (sparse_frames_sh "$1"); fi
}

# X: W with the block as frames, so zero runs inside a block cost no bytes on the wire. One dd
# writes the whole block (as W), fed by the frame decoder; the decoder's status says whether the
# framing still holds after a failed write.
do_sparse() {
  off=$1 len=$2 algo=$3
  SP=''
  if [ "$ZHOW" != write ]; then
    # Sparse: where one dd can skip zeros (GNU conv=sparse) and a range is zeroed cheaply, the
    # whole block is zeroed first (a hole, an offload) and dd seeks over the all-zero MiBs;
    # otherwise each frame goes on its own (busybox: no conv=sparse, no punch).
    if [ "$PERL" = 1 ] && [ -n "$DD_SPARSE" ] && [ "$ZHOW" != keep ]; then
      if zero_range "$off" "$len"; then
        zero_note
        SP=$DD_SPARSE
      fi
    else
      sparse_direct "$off" "$len" "$algo"
      return
    fi
  fi
  wflags "$off" "$len" "$OFLAGS"
  flush_conv
  res=$({ { sparse_frames "$len"
      echo "frames=$?" >&3; } |
    { dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$len" \
        oflag="$WF" seek="$off" conv=notrunc$NOCREAT$SP$FC 2>"$ERRF"
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
  [ "$frames" != 0 ] || copied_count "$len"
  if [ "$frames" != 0 ] || [ "$CB" != "$len" ]; then
    reply_err "short frame: $(copied_bytes "$len") of $len bytes"
    return
  fi
  hash_range "$off" "$len" "$algo"
}

# X without one writing dd: each D frame is written at its place by a dd of its own, each Z
# frame becomes a zero range (zero_range: a hole, an offload, left alone where it reads as zeros
# already, or zeros written). A dd that fails has its frame swallowed and the remaining frames
# are taken without writing, so the framing holds; the block is then answered ERR.
sparse_direct() {
  off=$1 len=$2 algo=$3
  left=$len pos=0 failed=''
  while [ "$left" -gt 0 ]; do
    IFS=' ' read -r k n || { reply_err "sparse write: frames unreadable"; exit 1; }
    is_uint "$n" && [ "$n" -gt 0 ] && [ "$n" -le "$left" ] || { reply_err "sparse write: bad frame"; exit 1; }
    case $n in 0*) reply_err "sparse write: bad frame"; exit 1 ;; esac
    at=$((off + pos))
    case $k in
      D)
        if [ -z "$failed" ]; then
          wflags "$at" "$n" seek_bytes
          if dd of="$TARGET" bs=$BS iflag=fullblock,count_bytes count="$n" \
            oflag="$WF" seek="$at" conv=notrunc$NOCREAT 2>"$ERRF"; then
            copied_count "$n"
            [ "$CB" = "$n" ] || failed="short frame at byte $at"
          else
            rc=$?
            direct_failed
            got=$(consumed_bytes "$n") && [ "$rc" -le 128 ] || { reply_err "sparse write failed and frame length unknown (dd exit $rc)"; exit 1; }
            failed="write failed: $(first_err "dd exit $rc")"
            [ "$got" -lt "$n" ] && dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count=$((n - got)) 2>/dev/null
          fi
        else
          dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count="$n" 2>/dev/null || exit 1
        fi
        ;;
      Z)
        if [ -z "$failed" ]; then
          if zero_range "$at" "$n"; then zero_note; else failed="zero write failed: $(first_err '?')"; fi
        fi
        ;;
      *) reply_err "sparse write: bad frame"; exit 1 ;;
    esac
    left=$((left - n)) pos=$((pos + n))
  done
  [ -z "$failed" ] || { reply_err "$failed"; return; }
  flush_target || { reply_err "flush failed: $(first_err '?')"; return; }
  hash_range "$off" "$len" "$algo"
}
