# --- probe ---

probe() {
  t=$1
  dir=${2:-${HOME:-/}}
  valid_path "$t" || usage "target must be an absolute path on one line"
  # What this host's tools can do does not depend on the target: asked in a subshell of its own
  # while this one looks at the target, each a dozen processes (≈ 0.1 s on a small VM, which a
  # re-sync of an unchanged disk waits for). It prints its lines at its end, this shell its own
  # only after it has ended, so the lines never mix.
  probe_tools &
  tools_pid=$!
  exists=0 type=other size=0 sector=512 mounted=0 swap=0 holders='' direct=0 writable=0
  real=$t
  [ -e "$t" ] && exists=1 && real=$(readlink -f "$t" 2>/dev/null || printf '%s' "$t")
  [ -w "$t" ] && writable=1
  mms='' # MAJ:MIN of the device and of each of its partitions
  if [ -b "$t" ]; then
    type=block
    mm=$(majmin_of "$t")
    MM_PATH=$t MM_VAL=$mm
    sys=$(cd -P "/sys/dev/block/$mm" 2>/dev/null && pwd)
    mms=" $mm "
    size=$(blockdev --getsize64 "$t" 2>/dev/null) || {
      slurp size "$sys/size" && is_uint "$size" || size=0
      size=$((size * 512))
    }
    sector=$(blockdev --getss "$t" 2>/dev/null) ||
      slurp sector "$sys/queue/logical_block_size" || slurp sector "$sys/../queue/logical_block_size" || sector=''
    is_uint "$sector" || sector=''
    [ -n "$sector" ] || sector=512
    for h in "$sys"/holders/*; do [ -e "$h" ] && holders="$holders ${h##*/}"; done
    for p in "$sys"/*/partition; do
      [ -f "$p" ] || continue
      pdir=${p%/partition}
      slurp pmm "$pdir/dev" && mms="$mms$pmm "
      for h in "$pdir"/holders/*; do [ -e "$h" ] && holders="$holders ${h##*/}"; done
    done
  elif [ -f "$t" ]; then
    type=file
    size=$(stat -L -c %s "$t")
    # A file attached to a loop device is in use just like a device with holders.
    for b in /sys/block/loop*/loop/backing_file; do
      [ -f "$b" ] || continue
      slurp bf "$b" && [ "$bf" = "$real" ] || continue
      b=${b%/loop/backing_file}
      holders="$holders ${b##*/}"
    done
  fi
  if [ -n "$mms" ]; then
    # mountinfo's third field is the filesystem's device number: catches any path alias.
    while read -r _ _ mm _; do
      case $mms in *" $mm "*) mounted=1 ;; esac
    done </proc/self/mountinfo
    # /proc/mounts names the source device; btrfs etc. report anonymous numbers above.
    while read -r src _; do
      case $src in /*) ;; *) continue ;; esac
      mm=$(majmin_of "$src") || continue
      case $mms in *" $mm "*) mounted=1 ;; esac
    done </proc/mounts
  fi
  if [ -r /proc/swaps ]; then
    while read -r src _; do
      case $src in /*) ;; *) continue ;; esac
      [ "$src" = "$real" ] && swap=1
      mm=$(majmin_of "$src") || continue
      case $mms in *" $mm "*) swap=1 ;; esac
    done </proc/swaps
  fi
  if [ "$exists" = 1 ] && [ "$size" -ge 4096 ] &&
    dd if="$t" of=/dev/null bs=4096 count=1 iflag=direct >/dev/null 2>&1; then
    direct=1
  fi
  set -- $(df -Pk "$dir" 2>/dev/null | { read -r _ && read -r _ total _ avail _ && echo $((total * 1024)) $((avail * 1024)); })
  dir_size=${1:-} free=${2:-}
  # The remote dir for staging (--via sftp): resolved, usable, and the size of its filesystem.
  dir_abs=$(cd -P "$dir" 2>/dev/null && pwd) || dir_abs=''
  case $dir_abs in *"$NL"*) dir_abs='' ;; esac
  dir_ok=0
  [ -n "$dir_abs" ] && [ -w "$dir_abs" ] && [ -x "$dir_abs" ] && dir_ok=1
  # Asked here, in this shell, so that zero_how's subshells reuse the answers.
  punch=0 zeroout=0
  have_punch && punch=1
  have_zeroout && zeroout=1
  zero_sparse=$(zero_how "$t" sparse) zero_discard=$(zero_how "$t" discard)
  # What identifies the path between runs, in the same round trip: `identity`'s keys as id_KEY.
  ids=$(identity "$t")
  wait "$tools_pid"
  printf '%s\n' "exists=$exists" "type=$type" "size=$size" "sector=$sector" \
    "mounted=$mounted" "swap=$swap" "holders=${holders# }" "writable=$writable" \
    "free=${free:-0}" "dir=$dir_abs" "dir_ok=$dir_ok" "dir_size=${dir_size:-0}" "direct=$direct" "pid=$$" \
    "punch=$punch" "zeroout=$zeroout" "zero_sparse=$zero_sparse" "zero_discard=$zero_discard"
  set -f
  o_ifs=$IFS IFS=$NL
  for line in $ids; do printf 'id_%s\n' "$line"; done
  IFS=$o_ifs
  set +f
}

# The probe's lines about this host's tools (run in the background by probe).
probe_tools() {
  # What dd accepts (the verbs adapt to what is missing).
  dd_iflags=$(dd_flags 'skip_bytes count_bytes fullblock direct' iflag)
  # (GNU dd refuses direct and nocache together: nocache is asked on its own.)
  dd_oflags=$(dd_flags 'seek_bytes direct' oflag)
  has "$(dd_flags nocache oflag)" nocache && dd_oflags=${dd_oflags:+$dd_oflags,}nocache
  dd_conv=$(dd_flags 'notrunc fsync nocreat sparse' conv)
  seek_bytes=0
  has "$dd_iflags" skip_bytes count_bytes fullblock && has "$dd_oflags" seek_bytes && seek_bytes=1
  nocache=0
  has "$dd_oflags" nocache && nocache=1
  hash_tools=$(hash_tools)
  cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
  # X (sparse whole blocks) runs one perl per block where perl runs; without it, one dd per frame.
  perl=0
  have_perl && perl=1
  b() { if have "$1"; then echo 1; else echo 0; fi; }
  printf '%s\n' "xxhsum=$(b xxhsum)" "sha256sum=$(b sha256sum)" "openssl=$(b openssl)" \
    "seek_bytes=$seek_bytes" "nocache=$nocache" "cores=$cores" "perl=$perl" \
    "hash_tools=$hash_tools" "dd_iflags=$dd_iflags" "dd_oflags=$dd_oflags" "dd_conv=$dd_conv" \
    "dd_stats=$(dd_stats)" "gzip=$(b gzip)" "missing=$(missing_tools)" "arch=$(uname -m 2>/dev/null)"
}

# `has LIST WORD...`: every WORD is in the comma-separated LIST.
has() {
  l=,$1,
  shift
  for w in "$@"; do
    case $l in *",$w,"*) ;; *) return 1 ;; esac
  done
}

# The tools this helper cannot do without and that are absent here (nothing falls back for
# them), comma-separated: a dd that takes what every verb uses, a hash tool, and the file tools
# of serve, lock and housekeeping. Uses probe's dd_* and hash_tools.
missing_tools() {
  m=''
  has "$dd_iflags" skip_bytes count_bytes fullblock && has "$dd_oflags" seek_bytes &&
    has "$dd_conv" notrunc fsync || m=$m,dd
  [ -n "$hash_tools" ] || m=$m,sha256sum
  for tool in cat head tr wc stat rm mv mkdir mkfifo tee date id sleep; do
    have "$tool" || m=$m,$tool
  done
  printf '%s' "${m#,}"
}
