# --- serve: the block worker ---------------------------------------------------------------
#
# One request at a time from stdin, one answer on stdout (protocol: native/README.md).
#
# A bad header has one rule: a request whose payload length is known is skipped (its payload
# read and dropped) and answered ERR; one whose framing cannot be known ends the worker, since
# reading on would take payload bytes for the next header. The framing is known when the verb
# is, and for a verb with a payload, when the header's count of it is a number (X's frames
# carry their own lengths: they are decoded into nothing).

reply_err() {
  ZSUM=''
  printf 'ERR %s\n' "$*"
}

# The verbs: `verb VERB` sets HANDLER, ARGS (the header's fields after offset and length),
# PAYLOAD (what follows the header line: `len` bytes, `wire` bytes, X `frames`, or `none`) and
# WRITES (1: it opens the target for writing). Unknown verb: status 1.
verb() {
  case $1 in
    W) set -- do_write algo_defer len 1 ;;
    X) set -- do_sparse algo_defer frames 1 ;;
    Z) set -- do_zero algo_defer none 1 ;;
    H) set -- hash_range algo none 0 ;;
    V) set -- do_units units lines 0 ;;
    F) set -- do_file algo_file none 1 ;;
    R) set -- do_read algo none 0 ;;
    S) set -- do_sync algo none 1 ;;
    P) set -- do_part '' len 1 ;;
    G) set -- do_gzpart wire wire 1 ;;
    E) set -- do_zeropart '' none 1 ;;
    Y) set -- do_flush '' none 1 ;;
    N) set -- do_noop '' none 0 ;;
    *) return 1 ;;
  esac
  HANDLER=$1 ARGS=$2 PAYLOAD=$3 WRITES=$4
}

do_noop() {
  printf 'OK\n'
}

# Bytes of payload the header announces (X: its frames' total), or status 1 when that cannot be
# known. Arguments: the header's fields after the verb.
payload_length() {
  case $PAYLOAD in
    none) echo 0 ;;
    len | frames | lines) is_uint "$2" && echo "$2" ;;
    wire) is_uint "$3" && echo "$3" ;;
  esac
}

# Is the header well-formed for its verb? Sets DEFER, and WHY for the ERR line when it is not.
header_ok() {
  WHY='bad request header'
  is_uint "$1" && is_uint "$2" || return 1
  case $ARGS in
    '') [ -z "$3$4" ] ;;
    wire) [ -z "$4" ] ;;
    algo) [ -z "$4" ] && algo_usable "$3" ;;
    algo_file) [ -n "$4" ] && algo_usable "$3" ;;
    units) ;; # do_units checks the rest: its refusals answer a line per block and unit
    algo_defer)
      case $4 in '') ;; defer) DEFER=1 ;; *) return 1 ;; esac
      algo_usable "$3"
      ;;
  esac
}

# Read and drop the payload of a refused request (its length is known). Status 1: X's frames
# were unreadable, the framing is lost.
skip_payload() {
  case $PAYLOAD in
    frames) sparse_frames "$2" >/dev/null; [ $? -ne 1 ] ;;
    lines)
      i=0
      while [ "$i" -lt "$2" ]; do IFS= read -r _ || return 1; i=$((i + 1)); done
      ;;
    *)
      n=$(payload_length "$@")
      [ "$n" -gt 0 ] || return 0
      dd of=/dev/null bs=$BS iflag=fullblock,count_bytes count="$n" 2>/dev/null
      ;;
  esac
}

# Answer `ERR $WHY` to a request whose payload length is known, after dropping its payload.
refuse() {
  if ! skip_payload "$@"; then
    reply_err "bad request header; its frames are unreadable"
    exit 1
  fi
  reply_err "$WHY"
}

# What a worker finds out once, right after it answered its first request: a new session's N
# is answered at once, and these tests then run while the client sends the first real request
# (where they ran only once it had arrived, the first block of each worker waited for them:
# a dozen processes, a few tenths of a second on a busy host). Nothing here opens the target
# for writing: that test (write_setup) waits for the first request that writes, which comes
# only once this run holds the target's lock.
serve_setup() {
  SET_UP=1
  DIRECT=0 CMP=''
  have cmp && CMP=1
  if [ -z "$HOSTINFO" ]; then
    hash_setup
    have_perl && PERL=1
    dd_setup
    # nocache drops the written pages after fsync: cheaper than keeping them (measured) and
    # the read-back then comes from the device where O_DIRECT is not usable.
    dd_accepts oflag=nocache && OFLAGS=seek_bytes,nocache
  fi
  [ -b "$TARGET" ] && MM_VAL=$(majmin_of "$TARGET") && MM_PATH=$TARGET
  dd if="$TARGET" of=/dev/null bs=4096 count=1 iflag=direct >/dev/null 2>&1 && DIRECT=1
  zero_setup
  readback_setup
}

# Writes with O_DIRECT where reads take it and the target opens with it (count=0: nothing is
# written): on a block device they skip its page cache; a loop device took 2 GiB in 1.9 s this
# way against 5.1 s buffered (`dd bs=4M conv=fdatasync`), and the flush after each block has
# nothing left to write back. A direct write that fails turns it off for this worker. Found out
# at the worker's first request that writes (WSET).
write_setup() {
  WSET=1 DIRECT_W=0
  [ "$DIRECT" = 1 ] && target_there &&
    dd if=/dev/null of="$TARGET" bs=4096 count=0 oflag=direct conv=notrunc$NOCREAT >/dev/null 2>&1 && DIRECT_W=1
}

# `host_facts HOSTINFO`: what the probe found out about this host's tools, as the client passes
# it to its workers (so that each does not ask again, a dozen processes at its start):
# comma-separated KEY=VALUE, lists joined by `+`:
#   tools=xxhsum+openssl+sha256sum  the hash tools that passed their check (hash_tools)
#   perl=0|1  conv=nocreat+sparse (dd's conv flags of those two)  stats=bytes|records
#   nocache=0|1 (dd's oflag)  punch=0|1 (fallocate punches)  zeroout=0|1 (blkdiscard zeroes)
# What depends on the target (O_DIRECT, how zeros are made, where read-backs read) is still
# found out by each worker: a file the run creates did not exist when the probe ran.
host_facts() {
  tl='' PERL=0 NOCREAT='' DD_SPARSE='' DD_STATS='' HAVE_PUNCH='' HAVE_ZEROOUT=''
  o_ifs=$IFS IFS=,
  set -f
  for f in $1; do
    case $f in
      tools=*)
        IFS=+
        for t in ${f#tools=}; do
          case $t in xxhsum | openssl | sha256sum) tl=$tl,$t ;; *) usage "unknown hash tool in facts: $t" ;; esac
        done
        IFS=, ;;
      perl=1) PERL=1 ;;
      perl=0) ;;
      conv=*) case +${f#conv=}+ in *+nocreat+*) NOCREAT=,nocreat ;; esac
        case +${f#conv=}+ in *+sparse+*) DD_SPARSE=,sparse ;; esac ;;
      stats=bytes | stats=records) DD_STATS=${f#stats=} ;;
      nocache=1) OFLAGS=seek_bytes,nocache ;;
      nocache=0) ;;
      punch=[01]) HAVE_PUNCH=${f#punch=} ;;
      zeroout=[01]) HAVE_ZEROOUT=${f#zeroout=} ;;
      *) usage "unknown fact: $f" ;;
    esac
  done
  set +f
  IFS=$o_ifs
  use_hash_tools "$tl"
  [ -n "$DD_STATS" ] && [ -n "$HAVE_PUNCH" ] && [ -n "$HAVE_ZEROOUT" ] || usage "facts lack stats, punch or zeroout"
}

serve() {
  TARGET=$1 WORKDIR=$2 ZEROS=${3:-write} HOSTINFO=${4:-} RTARGET=$1 ROFF=0 OFLAGS=seek_bytes
  case $ZEROS in sparse | discard | write) ;; *) usage "zeros must be sparse, discard or write" ;; esac
  [ -z "$HOSTINFO" ] || host_facts "$HOSTINFO"
  valid_path "$TARGET" || usage "target must be an absolute path on one line"
  valid_path "$WORKDIR" && [ -d "$WORKDIR" ] || usage "work directory missing: $WORKDIR"
  # The PID lets a later run end this worker (kill-stale) by PID, never by name.
  echo "$$" >>"$WORKDIR/pids"
  ERRF=$WORKDIR/err.$$
  SET_UP=0 WSET=0 DIRECT_W=0 BIG=0
  while IFS=' ' read -r op off len a3 a4; do
    DEFER=0 NOTE=''
    # A block's zero ranges are summed over its parts (E) up to its answer (S).
    case $op in P | G | E | S) ;; *) ZSUM='' ;; esac
    case $op in
      Q) break ;;
      '') continue ;;
    esac
    if ! verb "$op"; then
      reply_err "unknown request '$op'"
      exit 1
    fi
    if ! payload_length "${off:-}" "${len:-}" "${a3:-}" >/dev/null; then
      reply_err "bad request header"
      exit 1
    fi
    [ "$op" = N ] || [ "$SET_UP" = 1 ] || serve_setup
    # Blocks arrive on stdin through sshd's pipe (a bigger one lets sshd go on while dd waits
    # for an O_DIRECT write) and, for pull, leave on stdout through another; a worker that
    # only hashes (V, H) never needs them.
    case $BIG$op in 0[WXPGR]) BIG=1; big_stdio ;; esac
    if ! header_ok "${off:-}" "${len:-}" "${a3:-}" "${a4:-}"; then
      refuse "${off:-}" "${len:-}" "${a3:-}"
      continue
    fi
    if [ "$WRITES" = 1 ] && ! target_there; then
      WHY="write failed: $TARGET: No such file or directory"
      [ -e "$TARGET" ] && WHY="write failed: $TARGET is not a block device or regular file"
      refuse "$off" "$len" "$a3"
      continue
    fi
    [ "$WRITES$WSET" = 10 ] && write_setup
    "$HANDLER" "$off" "$len" "${a3:-}" "${a4:-}"
    [ "$SET_UP" = 1 ] || serve_setup
  done
  # Nothing is removed here: err.PID (the last dd diagnostics) stays for --keep-logs;
  # `cleanup` removes the whole work dir.
}
