/**
 * The command lines of the OpenSSH client that ddt runs: a ControlMaster (host key and auth rules
 * of the run) and the clients of its sessions, and the names of their private socket dirs.
 */
import { tmpdir } from 'node:os';
import { DdtError } from '../errors.js';
import { knownHostsFilesOf, type Endpoint } from './endpoint.js';

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

/** Arguments of the master: the endpoint's host key and auth rules, its own session `cat`. */
export function masterArgs(e: Endpoint, controlPath: string): string[] {
  // `--known-hosts FILE` replaces every default file, user and global (as ddt's own check
  // does); otherwise OpenSSH's defaults are the very files ddt reads.
  const knownArgs = e.knownHostsFile
    ? ['-o', `UserKnownHostsFile=${configFiles(knownHostsFilesOf(e))}`, '-o', 'GlobalKnownHostsFile=/dev/null']
    : [];
  return [
    '-F', '/dev/null',
    '-M', '-S', sshPath(controlPath),
    '-o', 'ControlPersist=no',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    ...knownArgs,
    '-o', 'UpdateHostKeys=no',
    '-o', 'ServerAliveInterval=10',
    '-o', 'ServerAliveCountMax=3',
    '-o', 'ConnectTimeout=30',
    '-o', `Ciphers=${CIPHERS}`,
    '-o', 'LogLevel=ERROR',
    '-T',
    '-p', String(e.port),
    '-l', e.user,
    ...e.identityFiles.flatMap((f) => ['-i', sshPath(f)]),
    '--', e.hosts[0]!,
    // The master's own session: it ends when our end of its stdin closes.
    'cat',
  ];
}
