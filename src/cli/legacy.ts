import { DdtError } from '../errors.js';
/**
 * The original dd-transfer script's command line, turned into ddt's before yargs
 * sees it (yargs cannot make a command out of options):
 *
 *   ddt --local_device SRC --remote_device DEV --TargetHost HOST [--remote_transfer_dir DIR]
 *       [--ssh_port N] [--keep_logs] [ddt options…]    →  ddt send SRC HOST:DEV [--remote-dir DIR] [-p N] [--keep-logs] …
 *   ddt --restart REPORT [ddt options…]                →  ddt resume REPORT …
 *
 * `--remote_transfer_dir`, `--ssh_port` and `--keep_logs` are also accepted after `ddt send`.
 * Both `--opt VALUE` and `--opt=VALUE` work. Anything else passes through unchanged.
 */

/** Old name → ddt option; `value`: takes an argument. */
const RENAMED: Record<string, { to: string; value: boolean }> = {
  '--remote_transfer_dir': { to: '--remote-dir', value: true },
  '--ssh_port': { to: '--port', value: true },
  '--keep_logs': { to: '--keep-logs', value: false },
};
/** Options that make the bare form (no command word). */
const BARE = ['--local_device', '--remote_device', '--TargetHost', '--restart'];

interface Parsed {
  bare: Map<string, string>;
  rest: string[];
}

function split(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq > 0 && arg.startsWith('--') ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
}

function parse(argv: string[]): Parsed {
  const bare = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const [name, inline] = split(arg);
    const renamed = RENAMED[name];
    if (BARE.includes(name) || renamed?.value) {
      const value = inline ?? argv[++i];
      if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new DdtError('BAD_OPTION', `${name} needs a value`);
      if (renamed) rest.push(renamed.to, value);
      else if (bare.has(name)) throw new DdtError('BAD_OPTION', `${name} given twice`);
      else bare.set(name, value);
    } else if (renamed) {
      rest.push(inline === undefined ? renamed.to : `${renamed.to}=${inline}`);
    } else {
      rest.push(arg);
    }
  }
  return { bare, rest };
}

/** `host` or `user@host` joined with a remote path; an IPv6 address gets its brackets. */
export function remoteTarget(host: string, path: string): string {
  const at = host.lastIndexOf('@');
  const user = at >= 0 ? host.slice(0, at + 1) : '';
  const h = host.slice(at + 1);
  return `${user}${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${path}`;
}

/**
 * `--` ends the options: what follows are operands even when they start with `-`. yargs takes
 * positional arguments only before `--`, so they are moved in front of it; one that starts with
 * `-` becomes `./-name`, the same file, which no parser takes for an option.
 */
export function operandsAfterDashDash(argv: string[]): string[] {
  const i = argv.indexOf('--');
  if (i < 0) return argv;
  const operands = argv.slice(i + 1).map((a) => (a.startsWith('-') ? `./${a}` : a));
  return [...argv.slice(0, i), ...operands];
}

/** The original script's argv → ddt's. Throws exit 2 for an incomplete old form. */
export function rewriteLegacyArgv(argv: string[]): string[] {
  const { bare, rest } = parse(argv);
  if (bare.size === 0) return rest;
  if (argv[0] !== undefined && !argv[0].startsWith('-')) {
    throw new DdtError('BAD_OPTION', `${[...bare.keys()].join(', ')}: options of the original script's command line, which has no command word: use them without '${argv[0]}'`);
  }
  const restart = bare.get('--restart');
  if (restart !== undefined) {
    if (bare.size > 1 || rest.some((a) => ['--remote-dir', '--port', '--keep-logs'].includes(split(a)[0]))) {
      throw new DdtError('BAD_OPTION', '--restart continues with the settings its report (journal) recorded: give no device, host, port or directory with it');
    }
    return ['resume', restart, ...rest];
  }
  const src = bare.get('--local_device');
  const dev = bare.get('--remote_device');
  const host = bare.get('--TargetHost');
  const missing = [src === undefined && '--local_device', dev === undefined && '--remote_device', host === undefined && '--TargetHost'].filter(Boolean);
  if (missing.length) throw new DdtError('BAD_OPTION', `the original script's form needs --local_device, --remote_device and --TargetHost: ${missing.join(', ')} missing`);
  return ['send', src!, remoteTarget(host!, dev!), ...rest];
}
