# --- lock: one writer per target ------------------------------------------------------------
#
# `lock TARGET WORKDIR JOBID RUNID` holds TARGET's lock for as long as its stdin stays open: ddt
# runs it on a channel of its own for the whole run, and when ddt ends or its connection drops,
# sshd closes the session and the lock goes with it. No flock (util-linux) is assumed: the lock
# is a directory, which mkdir creates atomically, named by what the target is (its device
# number, or its file's device and inode), not by the path that led there.
#
# Next to it, KEY.last records which job wrote the target last and whether that job finished
# (`state=clean`) or may have left it half-written (`state=writing`); it outlives the lock, and,
# for root, reboots (/var/lib, not /tmp). Taking the lock leaves the record alone: LOCKED says
# what it holds, and the holder asks for `writing` before its first write.

# KEY: b-MAJ_MIN for a block device, f-DEV_INO for a regular file; status 1 for anything else.
lock_key() {
  if [ -b "$1" ]; then
    mm=$(majmin_of "$1") || return 1
    KEY=b-${mm%:*}_${mm#*:}
  elif [ -f "$1" ]; then
    set -- $(stat -L -c '%d %i' "$1" 2>/dev/null)
    [ $# -eq 2 ] && is_uint "$1" && is_uint "$2" || return 1
    KEY=f-$1_$2
  else
    return 1
  fi
}

# BASE, where this user's lock dirs and records are (nothing is created).
# DDT_HELPER_LOCK_DIR puts it elsewhere (tests).
lock_base_path() {
  uid=$(id -u)
  if [ "$uid" = 0 ]; then BASE=/var/lib/ddt/locks; else BASE=${HOME:-}/.ddt/locks; fi
  BASE=${DDT_HELPER_LOCK_DIR:-$BASE}
}

# BASE, the private dir of lock dirs and records; else WHY and status 1. It must be a real
# directory of this user (not a link someone could point elsewhere).
lock_base() {
  lock_base_path
  WHY="lock dir $BASE"
  valid_path "$BASE" || { WHY="$WHY: no home directory"; return 1; }
  (umask 077 && mkdir -p "$BASE") 2>/dev/null
  if [ -L "$BASE" ] || [ ! -d "$BASE" ]; then WHY="$WHY is not a directory (a symlink?)"; return 1; fi
  [ "$(stat -c %u "$BASE" 2>/dev/null)" = "$uid" ] || { WHY="$WHY is not owned by uid $uid"; return 1; }
  chmod 700 "$BASE" 2>/dev/null || { WHY="$WHY: cannot make it private"; return 1; }
}

# Start time of process $1 (field 22 of /proc/PID/stat, clock ticks since boot): with the PID it
# names one process, even after the PID is reused.
proc_start() {
  { IFS= read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  set -- ${line##*) }
  shift 19
  printf '%s' "$1"
}

# Seconds since PATH last changed.
age_of() {
  m=$(stat -c %Y "$1" 2>/dev/null) && is_uint "$m" || m=0
  echo $(($(date +%s) - m))
}

# The owner file $1 → O_LINE, O_PID, O_START, O_JOB, O_RUN, O_SINCE; status 1 when it is
# missing or garbled.
read_owner() {
  O_LINE='' O_PID='' O_START='' O_JOB='' O_RUN='' O_SINCE=''
  { IFS= read -r O_LINE <"$1"; } 2>/dev/null || return 1
  case $O_LINE in '' | *[!A-Za-z0-9._=\ -]*) return 1 ;; esac
  for w in $O_LINE; do
    case $w in
      pid=*) O_PID=${w#*=} ;;
      start=*) O_START=${w#*=} ;;
      job=*) O_JOB=${w#*=} ;;
      run=*) O_RUN=${w#*=} ;;
      since=*) O_SINCE=${w#*=} ;;
    esac
  done
  is_uint "$O_PID" && is_uint "$O_START" && [ -n "$O_JOB" ] && [ -n "$O_RUN" ] && is_uint "$O_SINCE"
}

owner_alive() {
  is_running "$O_PID" && [ "$(proc_start "$O_PID")" = "$O_START" ]
}

# What identifies the lock dir as it is now: its owner line, or for a dir without a readable
# owner its inode (only such a dir that is old enough may be taken).
lock_state() {
  if read_owner "$LOCK/owner"; then
    printf 'owner %s' "$O_LINE"
  else
    printf 'none %s' "$(stat -c %i "$LOCK" 2>/dev/null)"
  fi
}

# Take over the lock dir of a dead owner, where it is still in state $1 (lock_state): our owner
# line replaces the dead one in place, so the dir never disappears and no other process can
# slip in between. Of several takers, one does it: the claim KEY.take.ID is a directory too,
# and mkdir lets one process make it. ID names the dead owner (pid and start time) or the
# ownerless dir's inode, so a claim can only ever be about that lock, never a newer one. A claim
# left by a taker that died is old after a few seconds and is cleared.
take_over() {
  set -- "$1" $1
  [ $# -ge 3 ] || return 1 # the dir went meanwhile
  claim=$BASE/$KEY.take.none.$3
  [ "$2" = owner ] && claim=$BASE/$KEY.take.$O_PID.$O_START
  if ! mkdir "$claim" 2>/dev/null; then
    [ "$(age_of "$claim")" -ge 10 ] && rmdir "$claim" 2>/dev/null
    sleep 1
    return 1
  fi
  ok=0
  if [ "$(lock_state)" = "$1" ] && { [ "$2" = owner ] || [ "$(age_of "$LOCK")" -ge 5 ]; }; then
    write_owner && ok=1
  fi
  rmdir "$claim"
  [ "$ok" = 1 ]
}

# Our owner line into the lock dir, replacing any other at once (rename).
write_owner() {
  printf 'pid=%s start=%s job=%s run=%s since=%s\n' $$ "$MY_START" "$JOB" "$RUN" "$(date +%s)" >"$LOCK/owner.tmp" &&
    mv -f "$LOCK/owner.tmp" "$LOCK/owner"
}

# Write KEY.last = `job=JOB run=RUN state=$1`, durable before the answer: written to a temp
# file, flushed, renamed over the record, and the directory flushed.
write_record() {
  tmp=$LAST.tmp.$$
  printf 'job=%s run=%s state=%s\n' "$JOB" "$RUN" "$1" >"$tmp" &&
    dd if=/dev/null of="$tmp" conv=notrunc,fsync 2>/dev/null &&
    mv -f "$tmp" "$LAST" || { rm -f "$tmp"; return 1; }
  sync "$BASE" 2>/dev/null
  return 0
}

# The record KEY.last as one line in `last`: `none`, `garbled`, or `job=… run=… state=…`.
read_last() {
  last=none
  if [ -f "$LAST" ]; then
    IFS= read -r last <"$LAST" || last=garbled
    case $last in '' | *[!A-Za-z0-9._=\ -]*) last=garbled ;; esac
  fi
}

# The lock dir goes, if it is still ours.
release() {
  read_owner "$LOCK/owner" && [ "$O_PID" = $$ ] && [ "$O_START" = "$MY_START" ] && rm -rf "$LOCK"
}

lock() {
  t=$1 wd=$2 JOB=$3 RUN=$4
  umask 077
  valid_path "$t" || usage "target must be an absolute path on one line"
  valid_path "$wd" && [ -d "$wd" ] || usage "work directory missing: $wd"
  valid_id "$JOB" || usage "bad job id"
  valid_id "$RUN" || usage "bad run id"
  if ! lock_key "$t"; then
    echo "ERR target missing, or neither a block device nor a regular file: $t"
    exit 2
  fi
  lock_base || { echo "ERR $WHY"; exit 2; }
  # The PID lets a later run of this job end a holder left behind (kill-stale).
  echo "$$" >>"$wd/pids"
  LOCK=$BASE/$KEY.lock LAST=$BASE/$KEY.last
  MY_START=$(proc_start $$)
  taken='' tries=0 mine=0
  until mkdir "$LOCK" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 30 ] || { echo "ERR cannot take $LOCK"; exit 2; }
    if [ -L "$LOCK" ] || [ ! -d "$LOCK" ]; then
      [ -e "$LOCK" ] || [ -L "$LOCK" ] || continue # released meanwhile: try again
      echo "ERR not a lock directory: $LOCK"
      exit 2
    fi
    state=$(lock_state)
    if read_owner "$LOCK/owner"; then
      # This very run holds it already, through a connection that dropped and whose session
      # sshd has not ended yet: the new holder takes its place, the old one leaves it alone.
      if owner_alive && { [ "$O_JOB" != "$JOB" ] || [ "$O_RUN" != "$RUN" ]; }; then
        echo "BUSY job=$O_JOB run=$O_RUN since=$O_SINCE pid=$O_PID"
        exit 3
      fi
      if owner_alive && take_over "$state"; then
        mine=1
        break
      fi
    elif [ "$(age_of "$LOCK")" -lt 5 ]; then
      sleep 1 # a holder that has made the dir and not yet written its owner
      continue
    fi
    if take_over "$state"; then
      taken="TAKEN job=${O_JOB:-unknown} pid=${O_PID:-unknown}"
      mine=1
      break
    fi
  done
  trap 'release; exit 129' HUP
  trap 'release; exit 130' INT
  trap 'release; exit 143' TERM
  [ "$mine" = 1 ] || write_owner || { rm -rf "$LOCK"; echo "ERR cannot write $LOCK/owner"; exit 2; }
  read_last
  [ -z "$taken" ] || echo "$taken"
  echo "LOCKED last=$last"
  # The record changes only on request: a run that ends before writing (refused, not
  # confirmed, a dry run) leaves it as it was. WRITING comes before the first block is written,
  # CLEAN once the run has proven them all; PING asks whether the holder still answers.
  while IFS= read -r line; do
    case $line in
      WRITING) if write_record writing; then echo OK; else echo "ERR cannot write $LAST"; fi ;;
      CLEAN) if write_record clean; then echo OK; else echo "ERR cannot write $LAST"; fi ;;
      PING) echo PONG ;;
      # The run's last request: the lock goes, then the work dir (as `cleanup`: the job's other
      # helpers ended, the dir removed), and the answer says so. One round trip where the lock's
      # release and a cleanup of its own would take a session and a shell more.
      END)
        release
        removed=0
        # (cleanup refuses a dir without the work-dir marker: exit 2, removed=0)
        (cleanup "$wd") >/dev/null 2>&1 && [ ! -e "$wd" ] && removed=1
        echo "ENDED removed=$removed"
        exit 0
        ;;
      '') ;;
      *) echo "ERR unknown request '$line'" ;;
    esac
  done
  release
}
