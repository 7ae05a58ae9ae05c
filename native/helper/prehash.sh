# --- prehash: a re-sync's target checksums, read before the lock is taken --------------------
#
# `prehash DIR TARGET UNIT UALGO ALGO NAME...`, stdin the runs (`OFFSET LENGTH BLOCK` lines, as
# `V` takes them). ddt runs it from the copy of this script the install keeps in DIR (the kept
# hashers' dir, where the copy is named by its bytes) as soon as it has connected, beside the
# install, the probe and the lock: where a re-sync finds the target unchanged, proving it is then
# a race of the two ends' hashing instead of a queue behind the set-up. NAME: the cached
# ddt-hash builds ddt would take; the one for this machine's `uname -m` reads the target.
#
# Nothing here writes, and what it reads before the lock is only as good as the record says:
# the answer names the record as it was before the first read, and ddt takes these checksums
# only when the lock, once held, shows the very same record. Every run that writes a target
# names itself there (its job and its run, both new for every run) before its first write, under
# the lock, so an unchanged record means no run wrote the target in between. The record is read
# first and the lock looked at next: a live holder then may be writing now, and nothing is read.
# The kept ddt-hash is the one the install self-tests in the same moment; ddt takes the answer
# only where that test passed.
#
# Answers `PREHASH NAME last=RECORD` and then ddt-hash's lines for the runs, or one `NO <why>`.
prehash() {
  p_dir=$1 t=$2 p_unit=$3 p_ualgo=$4 p_algo=$5
  shift 5
  valid_path "$p_dir" || usage "prehash: DIR must be an absolute path on one line"
  valid_path "$t" || usage "prehash: TARGET must be an absolute path on one line"
  is_uint "$p_unit" && [ "$p_unit" -gt 0 ] || usage "prehash: bad unit"
  case $p_ualgo$p_algo in
    xxh64xxh64 | xxh64sha256 | sha256xxh64 | sha256sha256) ;;
    *) usage "prehash: unknown algos $p_ualgo $p_algo" ;;
  esac
  if [ ! -r "$t" ] || ! lock_key "$t"; then
    echo "NO cannot read $t"
    return 0
  fi
  lock_base_path
  LOCK=$BASE/$KEY.lock LAST=$BASE/$KEY.last
  read_last
  # A lock dir without a readable owner is being made by a run that is about to hold it.
  if [ -e "$LOCK" ] || [ -L "$LOCK" ]; then
    if ! read_owner "$LOCK/owner" || owner_alive; then
      echo "NO busy"
      return 0
    fi
  fi
  p_m=$(uname -m 2>/dev/null) || p_m=unknown
  p_c=''
  for n in "$@"; do
    case $n in ddt-hash-"$p_m"-*) [ -x "$p_dir/$n" ] && p_c=$n ;; esac
  done
  if [ -z "$p_c" ]; then
    echo "NO no kept ddt-hash for $p_m"
    return 0
  fi
  echo "PREHASH $p_c last=$last"
  exec "$p_dir/$p_c" ranges "$t" "$p_unit" "$p_ualgo" "$p_algo"
}
