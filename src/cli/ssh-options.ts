import type { Argv } from 'yargs';
import { parseDuration } from './duration.js';
import { parseBwLimit } from '../transport/bwlimit.js';
import { positiveInt } from './options.js';

/** SSH options (DESIGN §2). No password options: agent first, then identity files. */
export function sshOptions<T>(y: Argv<T>) {
  return y
    .option('port', { alias: 'p', type: 'number', describe: 'SSH port [22 or ~/.ssh/config]' })
    .option('user', { alias: 'l', type: 'string', describe: 'remote user [from the target, ~/.ssh/config, or $USER]' })
    .option('identity', { alias: 'i', type: 'string', array: true, describe: 'private key file (after ssh-agent); repeatable' })
    .option('known-hosts', { type: 'string', describe: 'known_hosts file to use instead of ~/.ssh/known_hosts' })
    .option('accept-new-host-key', { type: 'boolean', default: false, describe: 'trust an unknown host key and record it (never a changed one)' })
    .option('ssh-config', { type: 'string', describe: 'ssh config file [~/.ssh/config]' })
    .option('keep-logs', { type: 'boolean', default: false, describe: "keep the helper's remote work directory after a successful run" })
    .option('compress', { choices: ['none', 'gzip', 'auto'] as const, default: 'auto' as const, describe: 'per-chunk gzip on the wire (auto: only while it shrinks data and outruns the link)' })
    .option('bwlimit', { type: 'string', describe: "bytes/s on the wire (K/M/G), or a schedule like '08:00-18:00=2M,*=0' (0 = unlimited)" })
    .option('reconnect-timeout', { type: 'string', default: '10m', describe: 'give up (exit 4, resumable) when the host stays unreachable this long' });
}

/** Validate a --bwlimit value now (exit 2 before connecting); the journal keeps the text. */
export function bwlimitOf(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  parseBwLimit(String(v));
  return String(v);
}

export function reconnectTimeoutOf(v: unknown): number {
  return parseDuration(String(v), '--reconnect-timeout');
}

/** The SSH side of a send or pull request: connections, endpoint overrides, reconnect policy. */
export function sshRequestOf(argv: Record<string, unknown>) {
  return {
    connections: positiveInt(argv.connections, '--connections', 64),
    channels: positiveInt(argv.channels, '--channels', 64),
    port: argv.port as number | undefined,
    user: argv.user as string | undefined,
    identity: argv.identity as string[] | undefined,
    knownHosts: argv['known-hosts'] as string | undefined,
    sshConfig: argv['ssh-config'] as string | undefined,
    acceptNewHostKey: Boolean(argv['accept-new-host-key']),
    keepLogs: Boolean(argv['keep-logs']),
    reconnectTimeoutMs: reconnectTimeoutOf(argv['reconnect-timeout']),
  };
}
