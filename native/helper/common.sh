#!/bin/sh
# ddt-helper: the remote side of ddt (DESIGN §4). Uploaded once per run into a private work
# directory and run as `sh ddt-helper.sh SUBCOMMAND ...`. POSIX sh only (tested with dash):
# a rescue system or a fresh cloud VM has a shell, coreutils' dd and a hash tool, nothing more.
#
#   probe TARGET [REMOTE_DIR]       key=value facts about TARGET and this host, one round trip
#   serve TARGET WORKDIR            framed block worker on stdin/stdout (protocol below)
#   create-file TARGET SIZE         create a sparse regular file when TARGET does not exist
#   identity SOURCE                 key=value: what identifies a pull source between runs
#   kill-stale WORKDIR JOBID        end helpers (and their dd children) a previous run left
#   cleanup WORKDIR                 kill-stale, then remove WORKDIR
#
# serve protocol, one request at a time; every answer is one line, `OK <hex>` or `ERR <text>`:
#   W <offset> <length> <algo>\n<length bytes>   write, flush, read back, hash
#   Z <offset> <length> <algo>\n                 write zeros (no data on the wire), hash
#   W|Z <offset> <length> <algo> defer\n…        the same, but where the write and the read-back
#                                                both bypass the page cache (O_DIRECT) the flush
#                                                is left to a later Y and the answer is
#                                                `OK <hex> deferred`: the bytes read back came
#                                                from the device, they are not yet durable
#   X <offset> <length> <algo> [defer]\n<frames>   like W, the block's bytes as frames, each a
#                                                16-byte header `D` or `Z`, spaces, the frame
#                                                length, `\n`: `D` is followed by that many bytes,
#                                                `Z` stands for that many zeros (none on the wire);
#                                                the frames add up to exactly <length>
#   Y 0 0\n                                      flush the target (fsync), answered `OK`: every
#                                                write answered before Y was sent is durable
#   H <offset> <length> <algo>\n                 hash the range as it is
#   F <offset> <length> <algo> <file>\n          write a staged block file (sftp/rsync paths) at
#                                                offset, flush, read back, hash; the file is
#                                                removed once written (kept when it is short)
#   R <offset> <length> <algo>\n                 read the range for `ddt pull` (the served path is
#                                                the source then); answers, unlike the above:
#       Z <hex>\n                                the range is all zeros (checked byte by byte, no
#                                                data follows); hex = hash of what was read
#       D <length>\n<length bytes>OK <hex>\n      the bytes, then the hash of exactly those bytes
#       D <length>\n<length bytes>ERR <text>\n    reading failed part-way: the frame is padded with
#                                                zeros to <length> and must be discarded
#       ERR <text>\n                             refused before any data (bad algo)
#   Block parts (`--compress`, finer zero detection): a block sent as several parts, each
#   answered `OK`, pipelined without waiting; then `S` flushes, reads back and hashes it.
#   P <offset> <length>\n<length bytes>          write raw bytes, no flush
#   G <offset> <length> <wire>\n<wire bytes>     gzip data that inflates to exactly length bytes
#   E <offset> <length>\n                        write zeros, no flush
#   S <offset> <length> <algo>\n                 flush the target, read back the range, hash
#   N 0 0\n                                      no-op, answered `OK` (a new session is up)
#   Q\n                                          quit
# Writes use O_DIRECT (oflag=direct) where the target takes it and the range is 4 KiB-aligned.
# algo is xxh64 (printed like `xxhsum -H64`) or sha256 (like `sha256sum`).

set -u
# dd's statistics are parsed below; they must not be translated.
LC_ALL=C
export LC_ALL
PATH=$PATH:/usr/sbin:/sbin:/usr/bin:/bin
export PATH

NL='
'
BS=1048576
DEFER=0 NOTE=''

usage() {
  printf 'ddt-helper: %s\n' "$*" >&2
  exit 2
}

# Numbers go into dd arguments and $((...)); keep them decimal and within 64-bit range.
is_uint() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "${#1}" -le 18 ]
}

# Absolute and one line: every path reaches dd as one quoted argument, never as shell.
valid_path() {
  case $1 in /*) ;; *) return 1 ;; esac
  case $1 in *"$NL"*) return 1 ;; esac
  return 0
}

have() { command -v "$1" >/dev/null 2>&1; }

# perl runs here (used for 1 MiB pipes and X's frame decoder; all optional).
# DDT_HELPER_NO_PERL: the paths without perl on a host that has it (tests, comparisons).
have_perl() {
  [ -z "${DDT_HELPER_NO_PERL:-}" ] && have perl && perl -e 'exit 0' </dev/null >/dev/null 2>&1
}

# "MAJ:MIN" (decimal) of a block device node, or nothing.
majmin_of() {
  [ -b "$1" ] || return 1
  set -- $(stat -L -c '%t %T' "$1" 2>/dev/null) || return 1
  [ $# -eq 2 ] || return 1
  printf '%d:%d' "0x$1" "0x$2"
}

# Pipes hold 64 KiB unless told otherwise (F_SETPIPE_SZ, 1031 on Linux), and there is no shell
# or coreutils way to tell them: where perl runs (PERL=1; Debian and Ubuntu always have it),
# the pipes the blocks go through are raised to 1 MiB. Reading 16 × 64 MiB back from a loop
# device into xxhsum: 0.92–1.69 s through 64 KiB, 0.49–0.51 s through 1 MiB, and less CPU.
# Without perl everything works the same, with the small pipes.
PERL=0
big_stdio() {
  [ "$PERL" = 1 ] && perl -e 'fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576)' 2>/dev/null
  return 0
}
# Run "$@" (never through a shell) with its stdout pipe raised to 1 MiB where perl can.
bigout() {
  if [ "$PERL" = 1 ]; then
    perl -e 'fcntl(STDOUT, 1031, 1048576); exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\n"' "$@"
  else
    "$@"
  fi
}
