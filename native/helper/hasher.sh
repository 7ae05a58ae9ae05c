# --- hasher-install: the streaming hasher, kept only when its self-test passes ---------------
#
# `hasher-install WORKDIR EXPECT`: stdin is ddt-hash built for this machine (the client chose it
# by `uname -m`, from the probe). Its self-test hashes this script, whose bytes the client knows,
# as runs of 7001-byte blocks with 1000-byte units, in both algos in both roles (odd sizes, so
# every partial-buffer path runs): EXPECT is what the client computed, the answer lines joined by
# spaces. Only a hasher that prints exactly that becomes WORKDIR/ddt-hash (and ddt-hash.ok), so
# a binary that does not run here (another architecture, a noexec mount, a broken build) leaves
# the shell tools in charge. Answers `hasher=ok` or `hasher=failed <why>`.
hasher_install() {
  wd=$1 expect=$2
  valid_path "$wd" && [ -f "$wd/.ddt-workdir" ] || usage "not a ddt work directory: $wd"
  rm -f "$wd/ddt-hash" "$wd/ddt-hash.ok"
  new=$wd/ddt-hash.new
  if ! (umask 077 && cat >"$new" && chmod 700 "$new"); then
    rm -f "$new"
    echo "hasher=failed cannot write $new"
    return 0
  fi
  size=$(wc -c <"$wd/ddt-helper.sh" | tr -d ' ')
  got=$(for algos in 'xxh64 sha256' 'sha256 xxh64'; do
    printf '0 %s 7001\n' "$size" | "$new" ranges "$wd/ddt-helper.sh" 1000 $algos
  done 2>&1 | tr '\n' ' ')
  if [ "$got" = "$expect" ]; then
    mv -f "$new" "$wd/ddt-hash" && : >"$wd/ddt-hash.ok" && echo hasher=ok && return 0
  fi
  rm -f "$new"
  printf 'hasher=failed self-test: %.200s\n' "$got"
}
