// The methods a scenario compares: ddt (with per-scenario options) and the baselines
// (a) dd | ssh dd, (b) the original script's pipeline, (c) rsync --inplace, and raw TCP (shaped
// link only). Each builds the exact argv that runs under /usr/bin/time and reads its payload
// bytes from its own output. `ssh-true` (links with latency) moves no data: it is the yardstick
// for start-up.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const CLASSIC_SCRIPT = join(here, 'classic-pipeline.sh');
export const TCP_LINK = join(here, 'tcp-link.mjs');
export const CIPHER = 'aes128-gcm@openssh.com';

/** Where and how to reach the server for one scenario. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  clientKeyPath: string;
  knownHostsPath: string;
  /** OpenSSH client options (port, key, known_hosts, batch mode) */
  sshArgs: string[];
  /** prefix for commands run on the client side (`ip netns exec NS`), empty on loopback */
  exec: string[];
}

export interface RunEnv {
  ep: Endpoint;
  /** the ddt CLI (a snapshot of dist/cli/main.js) */
  cli: string;
  source: string;
  size: number;
  /** target block device (loop), or the target file of a scenario that writes a file */
  device: string;
  /** rsync --inplace target file (on the "remote", the same machine) */
  rsyncTarget: string;
  journal: string;
  work: string;
  /** remote dir for (b)'s parts */
  remoteDir: string;
  tcpPort?: number;
}

export type Family = 'ddt' | 'dd-ssh' | 'classic' | 'rsync' | 'tcp' | 'ssh' | 'read';

export interface Method {
  id: string;
  family: Family;
  label: string;
  argv(env: RunEnv): string[];
  /** payload bytes sent (ddt: its JSON; rsync: --stats; dd: the data size) */
  bytesOnWire(stdout: string, env: RunEnv): number;
  /** a run is good when this holds (besides exit 0) */
  check?(stdout: string): string | undefined;
  /** what to compare with the source after the first round */
  output: 'device' | 'file' | 'none';
}

export function ddtSummary(stdout: string): Record<string, unknown> | undefined {
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** `vars`: environment settings for ddt (NAME=VALUE), through env(1). */
export function ddtArgs(env: RunEnv, extra: string[], vars: string[] = []): string[] {
  const { ep } = env;
  return [
    ...ep.exec,
    ...(vars.length ? ['env', ...vars] : []),
    process.execPath, env.cli, 'send', env.source, `${ep.user}@${ep.host}:${env.device}`,
    '-p', String(ep.port), '-i', ep.clientKeyPath, '--known-hosts', ep.knownHostsPath,
    '--yes', '--json', '--progress', 'none', '--journal', env.journal,
    ...extra,
  ];
}

export function ddt(id: string, label: string, extra: string[] = [], vars: string[] = []): Method {
  return {
    id,
    family: 'ddt',
    label: `${vars.join(' ')} ddt send ${extra.join(' ')}`.trim() + (label ? ` (${label})` : ''),
    argv: (env) => ddtArgs(env, extra, vars),
    bytesOnWire: (stdout) => Number(ddtSummary(stdout)?.bytesOnWire ?? NaN),
    check: (stdout) => {
      const s = ddtSummary(stdout);
      if (!s) return 'no JSON summary';
      if (s.ok !== true) return `not ok: ${String(s.error ?? '')}`;
      if (s.verified !== s.blocks) return `verified ${String(s.verified)} of ${String(s.blocks)} blocks`;
      return undefined;
    },
    output: 'device',
  };
}

// Quoted only where the shell needs it, so the recorded commands stay readable.
const sh = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export const ddSsh: Method = {
  id: 'dd-ssh',
  family: 'dd-ssh',
  label: `(a) dd bs=4M | ssh -c ${CIPHER} 'dd of=DEV bs=4M conv=notrunc,fdatasync'`,
  argv: (env) => [
    ...env.ep.exec,
    'bash', '-o', 'pipefail', '-c',
    `dd if=${sh(env.source)} bs=4M status=none | ssh -c ${CIPHER} ${env.ep.sshArgs.map(sh).join(' ')} ${env.ep.user}@${env.ep.host} ` +
      sh(`dd of=${env.device} bs=4M conv=notrunc,fdatasync status=none`),
  ],
  bytesOnWire: (_stdout, env) => env.size,
  output: 'device',
};

/** (a) for sparse images: the remote dd seeks over all-zero blocks instead of writing them (but every byte crosses the link). */
export const ddSshSparse: Method = {
  ...ddSsh,
  id: 'dd-ssh-sparse',
  label: `(a) dd bs=4M | ssh -c ${CIPHER} 'dd of=TARGET bs=4M conv=notrunc,sparse,fdatasync'`,
  argv: (env) => [
    ...env.ep.exec,
    'bash', '-o', 'pipefail', '-c',
    `dd if=${sh(env.source)} bs=4M status=none | ssh -c ${CIPHER} ${env.ep.sshArgs.map(sh).join(' ')} ${env.ep.user}@${env.ep.host} ` +
      sh(`dd of=${env.device} bs=4M conv=notrunc,sparse,fdatasync status=none`),
  ],
};

export function classic(partBytes: number): Method {
  return {
    id: 'classic',
    family: 'classic',
    label: `(b) original script: dd → ${partBytes >> 20} MiB part files → rsync --compress → ssh dd at offset, sha256 both sides`,
    argv: (env) => [
      ...env.ep.exec,
      'bash', CLASSIC_SCRIPT, env.source, String(env.size), String(partBytes), env.work,
      `${env.ep.user}@${env.ep.host}`, env.device, env.remoteDir, ...env.ep.sshArgs,
    ],
    bytesOnWire: (stdout) => Number(/bytesOnWire (\d+)/.exec(stdout)?.[1] ?? NaN),
    output: 'device',
  };
}

export function rsyncInplace(extra: string[] = []): Method {
  return {
    id: extra.length ? `rsync-inplace${extra.join('')}` : 'rsync-inplace',
    family: 'rsync',
    label: `(c) rsync --inplace --fsync ${extra.join(' ')} of the image file`.replace(/ +/g, ' '),
    argv: (env) => [
      ...env.ep.exec,
      'rsync', '--inplace', '--fsync', ...extra, '--stats',
      '-e', ['ssh', '-c', CIPHER, ...env.ep.sshArgs].map(sh).join(' '),
      env.source, `${env.ep.user}@${env.ep.host}:${env.rsyncTarget}`,
    ],
    bytesOnWire: (stdout) => Number(/^Total bytes sent: ([\d,]+)/m.exec(stdout)?.[1]?.replace(/,/g, '') ?? NaN),
    output: 'file',
  };
}

/** rsync's delta algorithm straight onto the target device (`--write-devices`, which implies --inplace). */
export function rsyncDevice(extra: string[] = []): Method {
  return {
    id: `rsync-device${extra.join('')}`,
    family: 'rsync',
    label: `(c') rsync --inplace --fsync --write-devices ${extra.join(' ')} onto the device`.replace(/ +/g, ' '),
    argv: (env) => [
      ...env.ep.exec,
      'rsync', '--inplace', '--fsync', '--write-devices', ...extra, '--stats',
      '-e', ['ssh', '-c', CIPHER, ...env.ep.sshArgs].map(sh).join(' '),
      env.source, `${env.ep.user}@${env.ep.host}:${env.device}`,
    ],
    bytesOnWire: (stdout) => Number(/^Total bytes sent: ([\d,]+)/m.exec(stdout)?.[1]?.replace(/,/g, '') ?? NaN),
    output: 'device',
  };
}

/**
 * What proving identity cannot beat: reading the image once on each side, both at once (the
 * source here, the target device on the "remote" side with O_DIRECT, as ddt-hash reads it). The
 * re-sync scenarios attach their loop device with direct I/O, so an O_DIRECT read of it reaches
 * the disk through the loop driver, as ddt's does (without direct I/O it would be served from the
 * backing file's page cache, which the scenario has just written: a memory copy).
 */
export const readBothSides: Method = {
  id: 'read-both',
  family: 'read',
  label: 'read the image once on each side, at once: dd of the source here | ssh dd iflag=direct of the device',
  argv: (env) => [
    ...env.ep.exec,
    'bash', '-o', 'pipefail', '-c',
    `dd if=${sh(env.source)} of=/dev/null bs=4M status=none & ssh -c ${CIPHER} ${env.ep.sshArgs.map(sh).join(' ')} ${env.ep.user}@${env.ep.host} ` +
      sh(`dd if=${env.device} of=/dev/null bs=4M iflag=direct status=none`) + '; r=$?; wait $! && exit $r',
  ],
  bytesOnWire: () => 0,
  output: 'none',
};

export const tcpRaw: Method = {
  id: 'tcp-raw',
  family: 'tcp',
  label: 'raw TCP: the file through one plain TCP connection into a discarding sink (the link\'s own capacity)',
  argv: (env) => [...env.ep.exec, process.execPath, TCP_LINK, 'send', env.ep.host, String(env.tcpPort), env.source],
  bytesOnWire: (stdout) => Number(/bytesOnWire (\d+)/.exec(stdout)?.[1] ?? NaN),
  output: 'none',
};

export const sshTrue: Method = {
  id: 'ssh-true',
  family: 'ssh',
  label: `ssh -c ${CIPHER} HOST true: a new connection (key exchange, auth, one session), no data`,
  argv: (env) => [...env.ep.exec, 'ssh', '-c', CIPHER, ...env.ep.sshArgs, `${env.ep.user}@${env.ep.host}`, 'true'],
  bytesOnWire: () => 0,
  output: 'none',
};
