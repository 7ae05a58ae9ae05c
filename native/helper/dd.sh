# --- dd: what it accepts, what its statistics say ---

# Does dd understand these flags? Older or non-GNU dd may not; the client adapts.
dd_supports() {
  dd if=/dev/zero of=/dev/null bs=1 count=1 "$@" >/dev/null 2>&1
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
