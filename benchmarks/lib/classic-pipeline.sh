#!/usr/bin/env bash
# Baseline (b): the original dd-transfer script's pipeline, part by part, sequentially:
#   dd the source range into a part file → sha256sum it → rsync --compress it into a remote dir
#   → ssh: dd the part onto the target at its offset (fdatasync), sha256sum the part there,
#   delete it → compare the two sums → delete the local part.
# Every rsync and ssh is a new OpenSSH connection, as in the script (no ControlMaster).
# Prints "bytesOnWire N parts P" (N: rsync's "Total bytes sent", summed) on stdout.
#
# usage: classic-pipeline.sh SRC SIZE PART_BYTES LOCAL_DIR USER@HOST REMOTE_DEV REMOTE_DIR [ssh args...]
# rsync ≥ 3.2 negotiates zstd for --compress; CLASSIC_COMPRESS_CHOICE=zlib gives what the script
# got from older rsync (an experiment knob; the bench leaves it unset).
set -euo pipefail
choice=()
[ -n "${CLASSIC_COMPRESS_CHOICE:-}" ] && choice=(--compress-choice="$CLASSIC_COMPRESS_CHOICE")
src=$1 size=$2 part=$3 work=$4 dest=$5 rdev=$6 rdir=$7
shift 7
ssh_cmd=(ssh -c aes128-gcm@openssh.com "$@")
rsh=$(printf '%q ' "${ssh_cmd[@]}")

"${ssh_cmd[@]}" "$dest" "mkdir -p '$rdir'"
sent=0
i=0
for ((off = 0; off < size; off += part)); do
  len=$((size - off < part ? size - off : part))
  f="$work/part.$i"
  dd if="$src" of="$f" bs=4M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
  lsum=$(sha256sum "$f" | cut -d' ' -f1)
  stats=$(rsync --compress "${choice[@]}" --stats -e "$rsh" "$f" "$dest:$rdir/")
  bytes=$(sed -n 's/^Total bytes sent: *//p' <<<"$stats" | tr -d ',')
  sent=$((sent + bytes))
  rsum=$("${ssh_cmd[@]}" "$dest" "dd if='$rdir/part.$i' of='$rdev' bs=4M seek=$off oflag=seek_bytes conv=notrunc,fdatasync status=none && sha256sum '$rdir/part.$i' | cut -d' ' -f1 && rm -f '$rdir/part.$i'")
  if [ "$lsum" != "$rsum" ]; then
    echo "part $i at $off: sha256 differs (local $lsum, remote $rsum)" >&2
    exit 1
  fi
  rm -f "$f"
  i=$((i + 1))
done
"${ssh_cmd[@]}" "$dest" "rmdir '$rdir'"
echo "bytesOnWire $sent parts $i"
