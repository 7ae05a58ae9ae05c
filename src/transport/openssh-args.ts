/**
 * The command lines of the OpenSSH client that ddt runs: a ControlMaster (host key and auth rules
 * of the run) and the clients of its sessions, and the names of their private socket dirs.
 */
import { tmpdir } from 'node:os';
import { DdtError } from '../errors.js';
import type { Endpoint, SshHostSettings } from './endpoint.js';
import { KEEPALIVE_COUNT_MAX } from './reconnect.js';

// Same preference as the ssh2 pool (AES-GCM measured faster than chacha20 here); every entry
// exists since OpenSSH 6.5, so an old local ssh accepts the list.
const CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr';

/** `%` starts an ssh token in paths (ControlPath, IdentityFile, UserKnownHostsFile). */
export function sshPath(p: string): string {
  return p.replace(/%/g, '%%');
}

/** A file list for a config-style `-o` value: whitespace separates entries, quotes protect them. */
function configFiles(files: string[]): string {
  return files
    .map((f) => {
      if (f.includes('"')) throw new DdtError('BAD_PATH', `a known_hosts path with a double quote cannot be passed to ssh: ${f}`);
      return /\s/.test(f) ? `"${sshPath(f)}"` : sshPath(f);
    })
    .join(' ');
}

export function rsyncWord(w: string): string {
  if (/^[A-Za-z0-9_./=,:%+@-]+$/.test(w)) return w;
  if (!w.includes("'")) return `'${w}'`;
  if (!w.includes('"')) return `"${w}"`;
  throw new DdtError('BAD_PATH', `cannot pass ${w} to rsync -e`);
}

/**
 * The line of a mux client's stderr that says the server refused its session (MaxSessions),
 * or undefined. OpenSSH 9.2 prints `mux_client_request_session: session request failed:
 * Session open refused by peer`, then, trying a connection of its own, a ProxyCommand=false
 * line. Not a refusal: `Control socket connect(…): Connection refused`, a master that is gone.
 */
export function sessionRefusal(stderr: string): string | undefined {
  return stderr
    .split(/\r?\n/)
    .find((l) => !/^Control socket connect/i.test(l) && /session request failed|open refused by peer|administratively prohibited/i.test(l))
    ?.trim();
}

/** Name prefix of a job's socket dirs (short: the socket path must fit sockaddr_un). */
export function muxDirPrefix(jobId: string): string {
  return `ddt-ssh-${jobId.slice(0, 40)}-`;
}

/** Where socket dirs go (exported for the cleanup after a killed run). */
export function muxDirBase(): string {
  return socketBase();
}

/** A short, plain directory for the socket: sockaddr_un holds ~108 bytes, rsync's -e parses quotes. */
export function socketBase(): string {
  const t = tmpdir();
  return /^\/[A-Za-z0-9_./-]*$/.test(t) && t.length <= 40 ? t : '/tmp';
}

/** Arguments of a client that runs a session over the master at `controlPath`, never connecting itself. */
export function clientArgs(controlPath: string): string[] {
  return ['-F', '/dev/null', '-S', sshPath(controlPath), '-o', 'ControlMaster=no', '-o', 'ProxyCommand=false', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
}

/** Timing of a master's connection, derived from the reconnect window (see reconnect.ts). */
export interface MasterTiming {
  /** ConnectTimeout: what is left of the window, or the configured one if shorter. */
  connectTimeoutS: number;
  /** ServerAliveInterval (with ServerAliveCountMax KEEPALIVE_COUNT_MAX). */
  aliveIntervalS: number;
}

/** A word for `sh -c` (ssh runs a ProxyCommand with the user's shell). */
export function shWord(w: string): string {
  return /^[A-Za-z0-9_./=,:@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** ssh expands `%` tokens in a ProxyCommand before running it: a literal `%` is `%%`. */
function literal(cmd: string): string {
  return cmd.replace(/%/g, '%%');
}

/**
 * How a host is trusted and logged in to, as `ssh` options: `--known-hosts FILE` replaces every
 * default file, user and global (as ddt's own check does); the config's UserKnownHostsFile
 * replaces the user's; otherwise OpenSSH's defaults are the very files ddt reads.
 */
function hostArgs(h: SshHostSettings, t: MasterTiming, logLevel = 'ERROR'): string[] {
  const known = h.knownHostsFile
    ? ['-o', `UserKnownHostsFile=${configFiles([h.knownHostsFile])}`, '-o', 'GlobalKnownHostsFile=/dev/null']
    : h.userKnownHostsFiles?.length
      ? ['-o', `UserKnownHostsFile=${configFiles(h.userKnownHostsFiles)}`]
      : [];
  return [
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    ...known,
    '-o', 'UpdateHostKeys=no',
    '-o', `ServerAliveInterval=${t.aliveIntervalS}`,
    '-o', `ServerAliveCountMax=${KEEPALIVE_COUNT_MAX}`,
    '-o', `ConnectTimeout=${Math.max(1, Math.min(t.connectTimeoutS, Math.ceil((h.connectTimeoutMs ?? Infinity) / 1000)))}`,
    ...(h.identitiesOnly ? ['-o', 'IdentitiesOnly=yes'] : []),
    '-o', `LogLevel=${logLevel}`,
    '-p', String(h.port),
    '-l', h.user,
    ...h.identityFiles.flatMap((f) => ['-i', sshPath(f)]),
  ];
}

/**
 * The ProxyCommand that reaches `hops[k]` (through the hops before it, or the user's own
 * ProxyCommand) and forwards its stdio to `%h:%p`: `ssh -W`, as `ssh -J` runs it, but with
 * every setting of that host passed explicitly (`-F /dev/null`: no config is read). Nested
 * commands are `%`-escaped once per level, since each ssh expands the tokens of its own.
 */
function hopCommand(ssh: string, e: Endpoint, k: number, t: MasterTiming): string {
  const hop = e.hops![k]!;
  const before = k > 0 ? hopCommand(ssh, e, k - 1, t) : e.proxyCommand !== undefined ? literal(e.proxyCommand) : undefined;
  const args = [ssh, '-F', '/dev/null', ...hostArgs(hop, t), ...(before !== undefined ? ['-o', `ProxyCommand=${before}`] : [])];
  return `${literal(args.map(shWord).join(' '))} -W '[%h]:%p' ${literal(['--', hop.host].map(shWord).join(' '))}`;
}

/** Arguments of the master: the endpoint's host key and auth rules, its way there, its own session `cat`. */
export function masterArgs(e: Endpoint, controlPath: string, ssh: string, t: MasterTiming): string[] {
  const way = e.hops?.length ? hopCommand(ssh, e, e.hops.length - 1, t) : e.proxyCommand !== undefined ? literal(e.proxyCommand) : undefined;
  return [
    '-F', '/dev/null',
    '-M', '-S', sshPath(controlPath),
    '-o', 'ControlPersist=no',
    // INFO: a master that ran out of keepalives says so ("Timeout, server … not responding"),
    // which dates the loss back to when data stopped moving.
    ...hostArgs(e, t, 'INFO'),
    ...(way !== undefined ? ['-o', `ProxyCommand=${way}`] : []),
    '-o', `Ciphers=${CIPHERS}`,
    '-T',
    '--', e.hosts[0]!,
    // The master's own session: it ends when our end of its stdin closes.
    'cat',
  ];
}
