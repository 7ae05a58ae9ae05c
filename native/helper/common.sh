#!/bin/sh
# ddt-helper: the remote side of ddt. Uploaded once per run into a private work directory and
# run as `sh ddt-helper.sh SUBCOMMAND ...`. POSIX sh only (tested with dash, bash and busybox
# ash): a rescue system or a fresh cloud VM has a shell, a dd and a hash tool, nothing more.
#
#   probe TARGET [REMOTE_DIR]       key=value facts about TARGET and this host, one round trip
#   serve TARGET WORKDIR            framed block worker on stdin/stdout
#   create-file TARGET SIZE         create a sparse regular file when TARGET does not exist
#   identity SOURCE                 key=value: what identifies a source or target between runs
#   kill-stale WORKDIR JOBID        end helpers (and their dd children) a previous run left
#   cleanup WORKDIR                 kill-stale, then remove WORKDIR
#   lock TARGET WORKDIR JOBID RUNID hold TARGET's lock while stdin is open; last-writer record
#   leftovers WORKBASE [JOBID]      work dirs and lock dirs runs left, each live or stale
#   remove-lock NAME                remove a lock dir whose owner is gone
#   hasher-install WORKDIR EXPECT [CACHE [use]]
#                                   keep the streaming hasher (stdin, or CACHE) if its self-test prints EXPECT
#
# The protocol (requests, answers, keys) is described in native/README.md of the ddt sources.
# This file is generated from native/helper/*.sh by native/join.mjs: edit those.

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

# Job and run ids: plain words, safe in file names, cmdlines and answer lines.
valid_id() {
  case $1 in '' | *[!A-Za-z0-9._-]*) return 1 ;; esac
}

have() { command -v "$1" >/dev/null 2>&1; }

# `slurp VAR FILE`: what `VAR=$(cat FILE)` gives (trailing line breaks dropped), without the
# two processes: status 1 where FILE cannot be opened, as cat's. The probe reads a dozen sysfs
# and proc files, and every process costs a remote host a few milliseconds before the first block.
slurp() {
  sl_all='' sl_line=''
  { while IFS= read -r sl_line; do sl_all=$sl_all$sl_line$NL; done <"$2"; } 2>/dev/null || return 1
  sl_all=$sl_all$sl_line
  while :; do
    case $sl_all in *"$NL") sl_all=${sl_all%"$NL"} ;; *) break ;; esac
  done
  eval "$1=\$sl_all"
}

# perl runs here (used for 1 MiB pipes and X's frame decoder; all optional).
# DDT_HELPER_NO_PERL: the paths without perl on a host that has it (tests, comparisons).
have_perl() {
  [ -z "${DDT_HELPER_NO_PERL:-}" ] && have perl && perl -e 'exit 0' </dev/null >/dev/null 2>&1
}

# Size in bytes of a block device or regular file; status 1 for anything else.
size_of() {
  if [ -b "$1" ]; then
    blockdev --getsize64 "$1" 2>/dev/null && return 0
    mm=$(majmin_of "$1") && slurp sectors "/sys/dev/block/$mm/size" &&
      is_uint "$sectors" && echo $((sectors * 512))
  elif [ -f "$1" ]; then
    stat -L -c %s "$1"
  else
    return 1
  fi
}

# "MAJ:MIN" (decimal) of a block device node, or nothing. The probe asks it of its target many
# times over (directly and through zero_how and identity): MM_PATH and MM_VAL, where the calling
# shell has set them, are that target's answer.
majmin_of() {
  [ -b "$1" ] || return 1
  if [ "$1" = "${MM_PATH:-}" ] && [ -n "${MM_VAL:-}" ]; then
    printf '%s' "$MM_VAL"
    return 0
  fi
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
# ddt-hash does it where it passed its self-test here: a static binary starts in a fraction of
# perl's time (5-100 ms per worker on a loaded VM).
big_stdio() {
  if hasher; then
    "$WORKDIR/ddt-hash" pipes 2>/dev/null
  elif [ "$PERL" = 1 ]; then
    perl -e 'fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576)' 2>/dev/null
  fi
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
