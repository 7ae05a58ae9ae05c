# --- leftovers: what ended runs left on this host (ddt clean) -------------------------------
#
# `leftovers WORKBASE [JOBID]` lists what ddt runs left here and whether something still uses
# it, one line each (with JOBID: only that job's):
#
#   lockbase PATH                  this user's lock dir (printed first, also when it is absent)
#   workdir live|stale NAME        WORKBASE/NAME, a work dir install made (it has the marker);
#                                  live: a helper of it still runs (its PID list, as kill-stale)
#   lock live|stale JOB NAME       PATH/NAME, a lock dir (`KEY.lock`); live: its owner runs, or
#                                  it is too young to have an owner yet; JOB `unknown` without a
#                                  readable owner
#
# KEY.last records are never listed: they outlive the lock on purpose, a later run of a job
# trusts what it proved only while the record still names it.
leftovers() {
  wb=$1 want=${2:-}
  valid_path "$wb" || usage "work dir base must be an absolute path"
  [ -z "$want" ] || valid_id "$want" || usage "bad job id"
  lock_base_path
  valid_path "$BASE" || BASE=/nonexistent
  echo "lockbase $BASE"
  if [ -d "$wb" ] && [ ! -L "$wb" ]; then
    for d in "$wb"/*; do
      name=${d##*/}
      # Only names cleanup takes: the job id is the dir's name.
      valid_id "$name" || continue
      [ -z "$want" ] || [ "$name" = "$want" ] || continue
      [ -d "$d" ] && [ ! -L "$d" ] && [ -f "$d/.ddt-workdir" ] || continue
      state=stale
      [ -n "$(helpers_of "$d" "$name")" ] && state=live
      echo "workdir $state $name"
    done
  fi
  [ -d "$BASE" ] && [ ! -L "$BASE" ] || return 0
  for LOCK in "$BASE"/[bf]-*.lock; do
    name=${LOCK##*/}
    case ${name%.lock} in [bf]-*[!0-9_]* | [bf]-) continue ;; esac
    [ -d "$LOCK" ] && [ ! -L "$LOCK" ] || continue
    if read_owner "$LOCK/owner"; then
      [ -z "$want" ] || [ "$O_JOB" = "$want" ] || continue
      state=stale
      owner_alive && state=live
      echo "lock $state $O_JOB $name"
    elif [ -z "$want" ]; then
      # A holder between its mkdir and its owner line: `lock` waits 5 s for it, so do we.
      state=stale
      [ "$(age_of "$LOCK")" -ge 5 ] || state=live
      echo "lock $state unknown $name"
    fi
  done
}

# `remove-lock NAME`: remove this user's lock dir NAME (`KEY.lock`) if nobody holds it: its owner
# is gone, or it has had no owner for 5 s. It agrees with a `lock` taking the same dead lock over
# through the claim that `take_over` makes for it: whoever makes the claim acts, the other
# finds the lock changed (or gone) and leaves it. The dir is renamed away first, so no `lock`
# ever sees it half removed. Answers `removed=1`, or `removed=0` when it is in use or gone.
remove_lock() {
  name=$1
  case $name in [bf]-*.lock) ;; *) usage "not a lock name: $name" ;; esac
  case ${name%.lock} in [bf]-*[!0-9_]* | [bf]-) usage "not a lock name: $name" ;; esac
  lock_base_path
  KEY=${name%.lock} LOCK=$BASE/$name
  if [ -L "$LOCK" ] || [ ! -d "$LOCK" ]; then echo "removed=0"; return; fi
  state=$(lock_state)
  if read_owner "$LOCK/owner"; then
    if owner_alive; then echo "removed=0"; return; fi
    claim=$BASE/$KEY.take.$O_PID.$O_START
  else
    [ "$(age_of "$LOCK")" -ge 5 ] || { echo "removed=0"; return; }
    set -- $state
    [ $# -eq 2 ] || { echo "removed=0"; return; }
    claim=$BASE/$KEY.take.none.$2
  fi
  mkdir "$claim" 2>/dev/null || { echo "removed=0"; return; }
  removed=0
  if [ "$(lock_state)" = "$state" ]; then
    aside=$BASE/$KEY.gone.$$
    mv "$LOCK" "$aside" 2>/dev/null && rm -rf -- "$aside" && removed=1
  fi
  rmdir "$claim"
  echo "removed=$removed"
}
