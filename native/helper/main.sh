# --- dispatch ---

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  probe) [ $# -ge 1 ] || usage "probe TARGET [REMOTE_DIR]"; probe "$@" ;;
  serve) [ $# -ge 2 ] && [ $# -le 4 ] || usage "serve TARGET WORKDIR [sparse|discard|write [HOSTINFO]]"; serve "$@" ;;
  create-file) [ $# -eq 2 ] || [ $# -eq 3 ] || usage "create-file TARGET SIZE [check]"; create_file "$@" ;;
  kill-stale) [ $# -eq 2 ] || usage "kill-stale WORKDIR JOBID"; kill_stale "$1" "$2" ;;
  cleanup) [ $# -eq 1 ] || usage "cleanup WORKDIR"; cleanup "$1" ;;
  identity) [ $# -eq 1 ] || usage "identity PATH"; identity "$1" ;;
  hasher-install) [ $# -ge 2 ] && [ $# -le 4 ] || usage "hasher-install WORKDIR EXPECT [CACHE [use]]"; hasher_install "$@" ;;
  lock) [ $# -eq 4 ] || usage "lock TARGET WORKDIR JOBID RUNID"; lock "$@" ;;
  prehash) [ $# -ge 5 ] || usage "prehash DIR TARGET UNIT UALGO ALGO [NAME...]"; prehash "$@" ;;
  leftovers) [ $# -eq 1 ] || [ $# -eq 2 ] || usage "leftovers WORKBASE [JOBID]"; leftovers "$@" ;;
  remove-lock) [ $# -eq 1 ] || usage "remove-lock NAME"; remove_lock "$1" ;;
  *) usage "unknown subcommand '$cmd' (probe|serve|create-file|kill-stale|cleanup|identity|lock|prehash|leftovers|remove-lock|hasher-install)" ;;
esac
