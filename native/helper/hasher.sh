# --- hasher-install: the streaming hasher, kept only when its self-test passes ---------------
#
# `hasher-install WORKDIR EXPECT [CACHE [use]]`: stdin is ddt-hash built for this machine (the
# client chose it by `uname -m`, from the probe). Its self-test hashes this script, whose bytes
# the client knows, as runs of 7001-byte blocks with 1000-byte units, in both algos in both roles
# (odd sizes, so every partial-buffer path runs): EXPECT is what the client computed, the answer
# lines joined by spaces. Only a hasher that prints exactly that becomes WORKDIR/ddt-hash (and
# ddt-hash.ok), so a binary that does not run here (another architecture, a noexec mount, a
# broken build) leaves the shell tools in charge. Answers `hasher=ok` or `hasher=failed <why>`.
#
# CACHE (`<work dir base>/.hashers/ddt-hash-<arch>-<content>`, named by the client after the
# build's bytes): a hasher that passed is kept there too, replacing older builds for the same
# arch, so the next run on this host need not upload it again. With `use` the hasher comes from
# CACHE instead of stdin, and still has to pass its self-test; a cached copy that fails is
# removed, and the client uploads the build again.
hasher_install() {
  wd=$1 expect=$2 cache=${3:-} from=${4:-}
  valid_path "$wd" && [ -f "$wd/.ddt-workdir" ] || usage "not a ddt work directory: $wd"
  if [ -n "$cache" ]; then
    case ${cache##*/} in ddt-hash-?*) valid_id "${cache##*/}" ;; *) false ;; esac || usage "not a hasher cache name: $cache"
    [ "${cache%/*}" = "${wd%/*}/.hashers" ] || usage "hasher cache outside the work dir base: $cache"
  fi
  case $from in '' | use) ;; *) usage "hasher-install WORKDIR EXPECT [CACHE [use]]" ;; esac
  [ -z "$from" ] || [ -n "$cache" ] || usage "hasher-install: use needs a CACHE"
  rm -f "$wd/ddt-hash" "$wd/ddt-hash.ok"
  new=$wd/ddt-hash.new
  if [ -n "$from" ]; then
    (umask 077 && cp "$cache" "$new" && chmod 700 "$new") 2>/dev/null
  else
    (umask 077 && cat >"$new" && chmod 700 "$new")
  fi || {
    rm -f "$new"
    echo "hasher=failed cannot write $new${from:+ from $cache}"
    return 0
  }
  size=$(wc -c <"$wd/ddt-helper.sh" | tr -d ' ')
  got=$(for algos in 'xxh64 sha256' 'sha256 xxh64'; do
    printf '0 %s 7001\n' "$size" | "$new" ranges "$wd/ddt-helper.sh" 1000 $algos
  done 2>&1 | tr '\n' ' ')
  if [ "$got" = "$expect" ] && mv -f "$new" "$wd/ddt-hash" && : >"$wd/ddt-hash.ok"; then
    [ -n "$cache" ] && [ -z "$from" ] && keep_hasher "$wd/ddt-hash" "$cache"
    echo hasher=ok
    return 0
  fi
  rm -f "$new"
  [ -z "$from" ] || rm -f "$cache"
  printf 'hasher=failed self-test: %.200s\n' "$got"
}

# The cache is a convenience: a copy that cannot be kept costs the next run an upload, nothing
# more. Made by the first run that keeps a hasher; readable by the login user (mode 755 inside
# the private work dir base), so what a run with sudo kept serves a run without it too.
keep_hasher() {
  (
    [ -d "${2%/*}" ] || mkdir -m 755 "${2%/*}" || exit 0
    tmp=$2.new.$$
    cp "$1" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$2" || { rm -f "$tmp"; exit 0; }
    arch=${2##*/}
    arch=${arch%-*}
    for f in "${2%/*}/$arch"-*; do
      [ "$f" = "$2" ] || rm -f "$f"
    done
  ) 2>/dev/null
}
