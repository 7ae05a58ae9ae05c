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

# Space-separated PIDs of the helpers running from work dir $1 for job $2, from its PID list.
# Only a helper of this very work dir and job counts: a recycled PID is left alone.
helpers_of() {
  h_wd=$1 h_job=$2 h_found=''
  [ -f "$h_wd/pids" ] || return 0
  while IFS= read -r h_pid; do
    is_uint "$h_pid" || continue
    [ "$h_pid" = "$$" ] && continue
    h_cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$h_pid/cmdline") || continue
    case $h_cmd in *ddt-helper*) ;; *) continue ;; esac
    case $h_cmd in *" $h_wd "* | *" $h_wd/"*) ;; *) continue ;; esac
    case $h_cmd in *"$h_job"*) ;; *) continue ;; esac
    h_found="$h_found $h_pid"
  done <"$h_wd/pids"
  printf '%s' "$h_found"
}

kill_stale() {
  wd=$1 job=$2
  valid_path "$wd" || usage "work directory must be an absolute path"
  valid_id "$job" || usage "bad job id"
  killed=0
  if [ -f "$wd/pids" ]; then
    victims=''
    # Children first collected, then the helper ended first so it starts no new dd.
    for pid in $(helpers_of "$wd" "$job"); do victims="$victims $pid $(descendants "$pid")"; done
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

# `create-file TARGET SIZE [check]`: with `check`, only say whether it could be created (its
# directory exists and may be written), before anything is asked or written.
create_file() {
  t=$1 size=$2
  valid_path "$t" || usage "target must be an absolute path on one line"
  is_uint "$size" || usage "bad size"
  if [ -e "$t" ]; then echo "created=0"; return; fi
  parent=${t%/*}
  parent=${parent:-/}
  [ -d "$parent" ] || usage "cannot create $t: directory $parent does not exist"
  [ -w "$parent" ] || usage "cannot create $t: directory $parent is not writable"
  if [ "${3:-}" = check ]; then echo "created=0"; return; fi
  dd if=/dev/null of="$t" bs=1 seek="$size" count=0 2>/dev/null || usage "cannot create $t"
  echo "created=1"
}

one_line() {
  case $1 in *"$NL"*) ;; *) printf '%s' "$1" ;; esac
}

# What identifies a source or a target between runs: resume and verify refuse one that changed.
# A block device: devno (MAJ:MIN), size, serial and wwid where sysfs has them, and for a loop
# device its backing file (also given as serial when there is no other, as before). A regular
# file: dev, ino, size, mtime. key: the name `lock` gives its lock.
identity() {
  t=$1
  valid_path "$t" || usage "path must be an absolute path on one line"
  kind=other size=0 ino='' mtime='' mtime_frac='' dev='' devno='' serial='' wwid='' backing=''
  readable=0 writable=0 key=''
  [ -r "$t" ] && readable=1
  [ -w "$t" ] && writable=1
  if [ -b "$t" ]; then
    kind=block
    devno=$(majmin_of "$t")
    sys=/sys/dev/block/$devno
    size=$(size_of "$t") || size=0
    slurp backing "$sys/loop/backing_file" || backing=''
    slurp serial "$sys/device/serial" || slurp serial "$sys/serial" || serial=$backing
    slurp wwid "$sys/wwid" || slurp wwid "$sys/device/wwid" || wwid=''
  elif [ -f "$t" ]; then
    kind=file
    # %y last: "2026-11-28 08:47:35.123456789 +0000" gives the sub-second part.
    set -- $(stat -L -c '%s %i %Y %d %y' "$t")
    size=$1 ino=$2 mtime=$3 dev=$4
    case ${6:-} in *.*) mtime_frac=${6#*.} ;; esac
  fi
  lock_key "$t" && key=$KEY
  # One line per key: a value with a line break (a backing file's name can have one) is dropped.
  serial=$(one_line "$serial") wwid=$(one_line "$wwid") backing=$(one_line "$backing")
  printf '%s\n' "kind=$kind" "size=$size" "ino=$ino" "mtime=$mtime" "mtime_frac=$mtime_frac" "dev=$dev" \
    "devno=$devno" "serial=$serial" "wwid=$wwid" "readable=$readable" \
    "writable=$writable" "backing=$backing" "key=$key"
}
