# --- V: checksums of blocks and of their units, streamed -----------------------------------
#
# `V UNIT COUNT UALGO ALGO`, then COUNT lines `OFFSET LENGTH BLOCK`: each a run of blocks of
# BLOCK bytes (the last one shorter) from OFFSET. Answered, for every block in order, with one
# line per unit of UNIT bytes when the block spans more than one (UALGO), then one for the block
# (ALGO); each `OK <hex>` or `ERR <text>`. The count of lines follows from the request alone, so
# a refusal (an algo this host cannot compute) answers that many ERR lines; a request whose
# numbers are not numbers has no count and ends the worker, as a lost framing does.
#
# With ddt-hash (installed by `hasher-install` after its self-test) one process reads the runs
# sequentially and hashes every unit and block; without it, one dd and one hash tool per unit and
# per block (hash_range), which busybox can do too.

# Answer lines for LEN bytes in blocks of BLK with units of UNIT: a block longer than one unit has
# a line per unit and one of its own.
unit_lines() {
  v_full=$(($1 / $2)) v_rest=$(($1 % $2))
  v_sum=$((v_full * $(block_lines "$2" "$3")))
  [ "$v_rest" -gt 0 ] && v_sum=$((v_sum + $(block_lines "$v_rest" "$3")))
  echo "$v_sum"
}
block_lines() {
  if [ "$1" -gt "$2" ]; then echo $((($1 + $2 - 1) / $2 + 1)); else echo 1; fi
}

# The streaming hasher, where it passed its self-test in this work dir.
hasher() {
  [ -x "$WORKDIR/ddt-hash" ] && [ -f "$WORKDIR/ddt-hash.ok" ]
}

do_units() {
  v_unit=$1 v_count=$2 v_ualgo=$3 v_algo=$4
  v_runs=$WORKDIR/runs.$$ v_lines=0 v_bad=''
  : >"$v_runs" || { reply_err "cannot write $v_runs"; exit 1; }
  v_i=0
  while [ "$v_i" -lt "$v_count" ]; do
    IFS=' ' read -r v_o v_l v_b v_x || exit 1
    v_i=$((v_i + 1))
    if is_uint "$v_o" && is_uint "$v_l" && is_uint "$v_b" && [ -z "$v_x" ] && [ "$v_l" -gt 0 ] && [ "$v_b" -gt 0 ]; then
      printf '%s %s %s\n' "$v_o" "$v_l" "$v_b" >>"$v_runs"
      [ "$v_unit" -gt 0 ] 2>/dev/null && v_lines=$((v_lines + $(unit_lines "$v_l" "$v_b" "$v_unit")))
    else
      v_bad=1
    fi
  done
  if [ -n "$v_bad" ] || ! is_uint "$v_unit" || [ "$v_unit" -eq 0 ]; then
    reply_err 'bad request header'
    exit 1
  fi
  if hasher; then
    case $v_ualgo$v_algo in
      xxh64xxh64 | xxh64sha256 | sha256xxh64 | sha256sha256)
        # A loop device's backing file where reads come from it at no offset (see readback_setup).
        v_t=$TARGET
        [ "$ROFF" = 0 ] && v_t=$RTARGET
        "$WORKDIR/ddt-hash" ranges "$v_t" "$v_unit" "$v_ualgo" "$v_algo" <"$v_runs" 2>"$ERRF" && return
        # Its answers may have stopped anywhere: the count is lost.
        reply_err "ddt-hash failed: $(first_err "exit $?")"
        exit 1
        ;;
    esac
    WHY="unknown algo $v_ualgo/$v_algo"
  elif algo_usable "$v_ualgo" && algo_usable "$v_algo"; then
    units_sh "$v_unit" "$v_ualgo" "$v_algo" <"$v_runs"
    return
  fi
  while [ "$v_lines" -gt 0 ]; do
    reply_err "$WHY"
    v_lines=$((v_lines - 1))
  done
}

# The same with the shell tools: every unit and block through hash_range.
units_sh() {
  v_unit=$1 v_ualgo=$2 v_algo=$3
  while IFS=' ' read -r v_o v_l v_b; do
    v_end=$((v_o + v_l))
    while [ "$v_o" -lt "$v_end" ]; do
      v_s=$v_b
      [ $((v_o + v_s)) -gt "$v_end" ] && v_s=$((v_end - v_o))
      if [ "$v_s" -gt "$v_unit" ]; then
        v_p=$v_o
        while [ "$v_p" -lt $((v_o + v_s)) ]; do
          v_us=$v_unit
          [ $((v_p + v_us)) -gt $((v_o + v_s)) ] && v_us=$((v_o + v_s - v_p))
          hash_range "$v_p" "$v_us" "$v_ualgo"
          v_p=$((v_p + v_us))
        done
      fi
      hash_range "$v_o" "$v_s" "$v_algo"
      v_o=$((v_o + v_s))
    done
  done
}
