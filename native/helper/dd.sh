# --- dd: what it accepts, what its statistics say ------------------------------------------
#
# GNU dd and busybox dd differ where it matters here: busybox has no conv=nocreat and no
# oflag=nocache, and its statistics count records only ("2+1 records in"), with no "N bytes
# copied" line. What this dd does is probed once (dd_setup), and every verb adapts.

# Does this dd take these operands? It does when a one-byte copy works, or fails only when run:
# O_DIRECT and fsync on /dev/null fail with EINVAL ("Invalid argument"), while an operand dd
# does not know is refused in lowercase ("invalid conversion", "invalid argument 'x' to 'conv'").
dd_accepts() {
  msg=$(dd if=/dev/zero of=/dev/null bs=1 count=1 "$@" 2>&1 >/dev/null) && return 0
  case $msg in *'Invalid argument'*) return 0 ;; esac
  return 1
}

# The flags of $2 (iflag, oflag or conv) out of the list $1 that this dd takes, comma-separated:
# all of them when it takes the whole list at once (GNU dd: one process), else each tried alone.
dd_flags() {
  ok=''
  for f in $1; do ok=$ok,$f; done
  if dd_accepts "$2=${ok#,}"; then printf '%s' "${ok#,}"; return; fi
  case $1 in *' '*) ;; *) return ;; esac
  ok=''
  for f in $1; do dd_accepts "$2=$f" && ok=$ok,$f; done
  printf '%s' "${ok#,}"
}

# `bytes` when dd's statistics say how many bytes it copied, else `records`.
dd_stats() {
  case $(dd if=/dev/zero of=/dev/null bs=1 count=1 2>&1) in
    *' copied'*) echo bytes ;;
    *) echo records ;;
  esac
}

# What a serve worker needs to know about its dd:
#   NOCREAT  `,nocreat` for conv=, or empty where dd lacks it (then target_there guards writes)
#   DD_STATS bytes | records (see copied_bytes)
#   DD_SPARSE `,sparse` for conv=, or empty where dd lacks it (busybox)
dd_setup() {
  NOCREAT=''
  dd_accepts conv=nocreat && NOCREAT=,nocreat
  # conv=sparse (GNU): seek over all-zero output blocks instead of writing them.
  DD_SPARSE=''
  dd_accepts conv=sparse && DD_SPARSE=,sparse
  DD_STATS=$(dd_stats)
}

# Without conv=nocreat, dd would create a target path that vanished as an empty regular file:
# write only to what is still a block device or regular file.
target_there() {
  [ -n "$NOCREAT" ] || [ -b "$TARGET" ] || [ -f "$TARGET" ]
}

# First line of dd's diagnostics, for ERR lines.
first_err() {
  msg=''
  [ -f "$ERRF" ] && IFS= read -r msg <"$ERRF"
  printf '%s' "${msg:-$1}"
}

# Bytes the last `dd bs=$BS iflag=fullblock,count_bytes count=LEN` wrote out, from its
# statistics in $ERRF. GNU dd says it ("4096 bytes (4.1 kB, 4.0 KiB) copied"). Where dd counts
# only records ("F+P records out"), fullblock makes every record but the last exactly BS, and a
# short one is the count's remainder, or the input ended: the count is exact unless the input
# ended inside that last record (range_complete settles that case for reads).
copied_bytes() {
  copied_count "$1"
  printf '%s' "$CB"
}

# copied_bytes into CB instead of stdout: no subshell, for the checks after every write.
copied_count() {
  CB=''
  if [ "$DD_STATS" = bytes ]; then
    while IFS= read -r line; do
      case $line in [0-9]*' byte'*' copied'*) CB=${line%% *} ;; esac
    done <"$ERRF"
  else
    records_count "$1" out
  fi
}

# Bytes a failed `dd iflag=fullblock,count_bytes count=LEN` took from stdin: "F+P records in"
# determines it, as above. No statistics: dd failed before reading (e.g. open), nothing was taken.
consumed_bytes() {
  records_count "$1" in || return 1
  printf '%s' "$CB"
}

# `records_count LEN in|out`: CB, the bytes "F+P records in|out" stands for (see copied_bytes);
# status 1 (CB empty) when dd printed no such line.
records_count() {
  full=0 part=0 CB=''
  while IFS= read -r line; do
    case $line in *" records $2")
      rec=${line%% *}
      full=${rec%+*}
      part=${rec#*+}
      ;;
    esac
  done <"$ERRF"
  is_uint "$full" && is_uint "$part" || return 1
  CB=$((full * BS))
  [ "$part" -gt 0 ] && CB=$((CB + $1 % BS))
  [ "$CB" -gt "$1" ] && CB=$1
  return 0
}

# Did the last read of TARGET[OFF, OFF+LEN) get every byte? Where dd counts only records and the
# range ends in a short record, the target's size says whether the range was all there.
range_complete() {
  copied_count "$2"
  [ "$CB" = "$2" ] || return 1
  [ "$DD_STATS" = bytes ] || [ $(($2 % BS)) -eq 0 ] && return 0
  size=$(size_of "$TARGET") && [ $(($1 + $2)) -le "$size" ]
}

# Bytes of TARGET[OFF, OFF+LEN) the last read got, for messages: dd's count, or where it counts
# only records, what the target's size leaves of the range.
range_got() {
  if [ "$DD_STATS" = bytes ]; then
    copied_bytes "$2"
    return
  fi
  size=$(size_of "$TARGET") || size=0
  got=$((size - $1))
  [ "$got" -lt 0 ] && got=0
  [ "$got" -gt "$2" ] && got=$2
  printf '%s' "$got"
}
