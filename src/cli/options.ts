/**
 * The options the transfer commands share, and their parsing into requests: every bad value is
 * exit 2 before anything connects. Sizes are parsed by us (K/M/G/T, powers of 1024), not yargs.
 */
import type { Argv } from 'yargs';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { SshRequest } from '../engine/job-setup.js';
import { DdtError } from '../errors.js';
import { parseSize } from '../format.js';
import type { JobOptions, PathName } from '../journal/records.js';
import { LIMITS } from '../limits.js';
import { parseReserve } from '../remote/staging-space.js';
import { parseBwLimit } from '../transport/bwlimit.js';
import { parseJumpSpecs } from '../transport/target-spec.js';
import { parseDuration } from './duration.js';

export const PROGRESS_CHOICES = ['auto', 'tty', 'plain', 'json', 'none'] as const;

/** Options every transfer command has. */
export function transferOptions<T>(y: Argv<T>) {
  return y
    .option('block-size', { alias: 'b', type: 'string', default: '64M', describe: 'unit of checksum, journal and retransmission (multiple of 512; K/M/G/T)' })
    .option('connections', { type: 'number', default: 2, describe: 'SSH (TCP) connections for the data path' })
    .option('channels', { type: 'number', default: 4, describe: 'channels per connection (blocks in flight for copy)' })
    .option('checksum', { choices: ['xxh64', 'sha256', 'auto'] as const, default: 'auto' as const, describe: 'block checksum (auto: xxh64 where the target can, else sha256)' })
    .option('retries', { type: 'number', default: 3, describe: 're-sends of a block whose read-back checksum differs' })
    .option('target-zeroed', { type: 'boolean', default: false, describe: 'the target is known to be all zeros: do not write zero blocks (still verified)' })
    .option('journal', { type: 'string', describe: 'journal file [./ddt-<UTC time>.journal]' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and checks, write nothing' })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'overwrite the target without asking' })
    .option('force', { type: 'boolean', default: false, describe: 'write to a target that is mounted, swap or held by another device' })
    .option('sparse', { type: 'boolean', default: true, describe: 'zero ranges become holes in file targets and are zeroed by offload on devices that offer it; --no-sparse writes zeros' })
    .option('discard', { type: 'boolean', default: false, describe: 'devices may unmap zero ranges (thin volumes, SSDs) where unmapped blocks are guaranteed to read as zeros' })
    .option('skip-identical', { type: 'boolean', default: false, describe: "hash the target's blocks first and send only those that differ (repeat backups)" })
    .option('noerror', { type: 'boolean', default: false, describe: 'on unreadable source sectors: zero-fill them, record the ranges, finish with exit 5' })
    .option('engine', { choices: ['native', 'rsync'] as const, default: 'native' as const, describe: "'rsync': the classic path (block files → rsync over one OpenSSH connection → remote dd), same checksums and journal" })
    .option('progress', { choices: PROGRESS_CHOICES, default: 'auto' as const, describe: 'progress display on stderr' })
    .option('json', { type: 'boolean', default: false, describe: 'final summary as one JSON object on stdout' })
    .option('fix-gpt', { type: 'boolean', default: false, describe: "a GPT source on a larger target: move the backup GPT to the target's end once every block is proven" });
}

/** SSH options. No password options: agent first, then identity files. */
export function sshOptions<T>(y: Argv<T>) {
  return y
    .option('port', { alias: 'p', type: 'number', describe: 'SSH port [22 or ~/.ssh/config]' })
    .option('user', { alias: 'l', type: 'string', describe: 'remote user [from the target, ~/.ssh/config, or $USER]' })
    .option('identity', { alias: 'i', type: 'string', array: true, describe: 'private key file (after ssh-agent); repeatable' })
    .option('known-hosts', { type: 'string', describe: 'known_hosts file to use instead of ~/.ssh/known_hosts' })
    .option('accept-new-host-key', { type: 'boolean', default: false, describe: 'trust an unknown host key and record it (never a changed one)' })
    .option('ssh-config', { type: 'string', describe: 'ssh config file [~/.ssh/config]' })
    .option('jump', { alias: 'J', type: 'string', describe: 'jump host(s) on the way, like ssh -J: [user@]host[:port][,…] (each resolved through the ssh config)' })
    .option('sudo', { type: 'boolean', default: false, describe: 'run the remote helper through sudo -n (a login user who may write the device only as root)' })
    .option('keep-logs', { type: 'boolean', default: false, describe: "keep the helper's remote work directory after a successful run" })
    .option('compress', { choices: ['none', 'gzip', 'auto'] as const, default: 'auto' as const, describe: 'per-chunk gzip on the wire (auto: only while it shrinks data and outruns the link)' })
    .option('bwlimit', { type: 'string', describe: "bytes/s on the wire (K/M/G), or a schedule like '08:00-18:00=2M,*=0' (0 = unlimited)" })
    .option('reconnect-timeout', { type: 'string', default: '10m', describe: 'give up (exit 4, resumable) when the host stays unreachable this long' });
}

export function blockSizeOf(v: unknown): number {
  return parseSize(String(v), '--block-size');
}

export function positiveInt(v: unknown, name: string, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new DdtError('BAD_OPTION', `${name} must be an integer from 1 to ${max}, got "${String(v)}"`);
  return n;
}

export function connectionsOf(v: unknown): number {
  return positiveInt(v, '--connections', LIMITS.connections);
}

export function channelsOf(v: unknown): number {
  return positiveInt(v, '--channels', LIMITS.channels);
}

function retriesOf(v: unknown): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > LIMITS.retries) throw new DdtError('BAD_OPTION', `--retries must be an integer from 0 to ${LIMITS.retries}, got "${String(v)}"`);
  return n;
}

/** A --bwlimit value checked now (exit 2 before connecting); the journal keeps the text. */
export function bwlimitOf(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  parseBwLimit(String(v));
  return String(v);
}

export function reconnectTimeoutOf(v: unknown): number {
  const ms = parseDuration(String(v), '--reconnect-timeout');
  if (ms > LIMITS.reconnectTimeoutMs) throw new DdtError('BAD_OPTION', `--reconnect-timeout ${String(v)} is longer than 30 days`);
  return ms;
}

/** `--remote-reserve` checked before connecting; the journal keeps it as typed. */
export function reserveOf(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  parseReserve(String(v));
  return String(v);
}

/** The job's settings from the command line; `ssh`: the command has the SSH options. */
export function jobOptionsOf(argv: Record<string, unknown>, ssh: boolean): JobOptions {
  const o: JobOptions = {
    retries: retriesOf(argv.retries),
    connections: connectionsOf(argv.connections),
    channels: channelsOf(argv.channels),
    targetZeroed: Boolean(argv['target-zeroed']),
    skipIdentical: Boolean(argv['skip-identical']),
    force: Boolean(argv.force),
    keepLogs: Boolean(argv['keep-logs']),
    reconnectTimeoutMs: ssh ? reconnectTimeoutOf(argv['reconnect-timeout']) : 0,
    noerror: Boolean(argv.noerror),
    compress: ssh ? (argv.compress as JobOptions['compress']) : 'none',
    sparse: argv.sparse !== false,
  };
  if (argv.discard === true) {
    if (!o.sparse) throw new DdtError('BAD_OPTION', '--discard unmaps zero ranges, --no-sparse writes them: drop one of them');
    o.discard = true;
  }
  const bw = bwlimitOf(argv.bwlimit);
  if (bw !== undefined) o.bwlimit = bw;
  if (argv['fix-gpt'] === true) o.fixGpt = true;
  return o;
}

/** `-J` checked now (exit 2 before connecting); given twice, the last one counts. */
export function jumpOf(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const text = String(Array.isArray(v) ? v.at(-1) : v);
  parseJumpSpecs(text);
  return text;
}

export function sshRequestOf(argv: Record<string, unknown>): SshRequest {
  return {
    port: argv.port as number | undefined,
    user: argv.user as string | undefined,
    identity: argv.identity as string[] | undefined,
    knownHosts: argv['known-hosts'] as string | undefined,
    sshConfig: argv['ssh-config'] as string | undefined,
    jump: jumpOf(argv.jump),
    acceptNewHostKey: Boolean(argv['accept-new-host-key']),
    sudo: Boolean(argv.sudo),
  };
}

/** What a transfer command reads the same way (bad values: exit 2). */
export function newJobOf(command: 'send' | 'pull' | 'copy', argv: Record<string, unknown>) {
  return {
    kind: 'new' as const,
    command,
    source: String(argv.source),
    target: String(argv.target),
    blockSize: blockSizeOf(argv['block-size']),
    checksum: argv.checksum as ChecksumAlgo | 'auto',
    options: jobOptionsOf(argv, command !== 'copy'),
    ssh: sshRequestOf(argv),
    journal: argv.journal as string | undefined,
    yes: Boolean(argv.yes),
    dryRun: Boolean(argv['dry-run']),
  };
}

/** `--via`, or `--engine rsync`: the data path asked for (they cannot both be given). */
export function askedPathOf(argv: Record<string, unknown>): PathName | undefined {
  const via = argv.via as PathName | undefined;
  if (argv.engine !== 'rsync') return via;
  if (via !== undefined) throw new DdtError('BAD_OPTION', `--via ${via} is a data path of the native engine; --engine rsync sends blocks with rsync: drop one of them`);
  return 'rsync';
}
