// The parts of starting a private sshd: a free port, keys, a config sshd -t accepts, and
// waiting until it listens.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { commandPath } from './system.js';

export interface SshdOptions {
  maxSessions?: number;
  listen?: string[];
  /** sshd_config lines. A default whose keyword appears here is left
   *  out (so these override it); lines from the first `Match` on go last. */
  extraConfig?: string[];
  /** Run sshd inside this network namespace (`ip netns exec`). The port is
   *  still one that is free on the caller's side, so the same address and port
   *  can be relayed into the namespace. */
  netns?: string;
}

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const START_TIMEOUT_MS = 10_000;
export const MARKER = 'DDT_PRIVATE_SSHD';
// Debian/Ubuntu, Fedora/RHEL, Arch; else sshd's built-in server.
const SFTP_SERVERS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server'];

export function sshdPath(): string {
  return commandPath('sshd') ?? '/usr/sbin/sshd';
}

/** The external SFTP server the private sshd runs for the sftp subsystem; undefined when sshd uses its built-in one. */
export function sftpServerPath(): string | undefined {
  return SFTP_SERVERS.find((path) => existsSync(path));
}

export async function freePort(hosts: string[]): Promise<number> {
  const bind = (host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        const { port: bound } = server.address() as { port: number };
        server.close(() => resolve(bound));
      });
    });
  const port = await bind(hosts[0], 0);
  for (const host of hosts.slice(1)) await bind(host, port);
  return port;
}

export async function keygen(path: string, comment: string): Promise<void> {
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

const quote = (value: string) => `"${value}"`;

export function renderConfig(dir: string, home: string, hosts: string[], port: number, opts: SshdOptions, penalties: boolean): string {
  const extra = opts.extraConfig ?? [];
  const matchAt = extra.findIndex((line) => /^\s*match\s/i.test(line));
  const extraHead = matchAt < 0 ? extra : extra.slice(0, matchAt);
  const extraTail = matchAt < 0 ? [] : extra.slice(matchAt);
  const overridden = new Set(extraHead.map((line) => line.trim().split(/\s+/)[0].toLowerCase()));
  const defaults: string[] = [
    `Port ${port}`,
    ...hosts.map((host) => `ListenAddress ${host}`),
    `HostKey ${quote(join(dir, 'host_ed25519'))}`,
    `PidFile ${quote(join(dir, 'sshd.pid'))}`,
    // One file per login name, so a key lets in only the user it was given to.
    `AuthorizedKeysFile ${quote(join(dir, 'authorized_keys.%u'))}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no', // keys live under /tmp
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'LogLevel VERBOSE',
    `Subsystem sftp ${sftpServerPath() ?? 'internal-sftp'}`,
    'MaxStartups 100',
    ...(opts.maxSessions !== undefined ? [`MaxSessions ${opts.maxSessions}`] : []),
    // OpenSSH >= 9.8 penalises sources whose sessions die, which tests that
    // kill connections on purpose would trip over.
    ...(penalties ? ['PerSourcePenalties no'] : []),
  ].filter((line) => !overridden.has(line.split(' ')[0].toLowerCase()));
  // Empty HOME and SHLVL=1 keep root's ~/.bashrc (pyenv init: slow, and a
  // killed session can leave a lock that stalls later ones) out of runs.
  // Other users keep the HOME of their passwd entry, which must be theirs to
  // write. DDT_PRIVATE_SSHD marks every session process so stop() finds
  // orphans. sshd takes the first SetEnv that applies, hence Match blocks
  // last, after any the caller gave.
  const marker = quote(`${MARKER}=${dir}`);
  const setEnv = overridden.has('setenv')
    ? []
    : [`Match User ${userInfo().username}`, `  SetEnv ${quote(`HOME=${home}`)} SHLVL=1 ${marker}`, 'Match all', `  SetEnv SHLVL=1 ${marker}`];
  return [...defaults, ...extraHead, ...extraTail, ...setEnv].join('\n') + '\n';
}

let penaltiesSupported: boolean | undefined;

// Writes the config after `sshd -t` accepts it; learns once per process
// whether this sshd knows PerSourcePenalties. Bad extraConfig fails here
// with sshd's own message.
export async function writeCheckedConfig(path: string, render: (penalties: boolean) => string): Promise<void> {
  const tries = penaltiesSupported === undefined ? [true, false] : [penaltiesSupported];
  let lastError = '';
  for (const penalties of tries) {
    await writeFile(path, render(penalties));
    try {
      await execFileP(sshdPath(), ['-t', '-f', path]);
      penaltiesSupported = penalties;
      return;
    } catch (err) {
      lastError = String((err as { stderr?: string }).stderr ?? err).trim();
    }
  }
  throw new Error(`sshd -t rejected ${path}: ${lastError}`);
}

export async function logTail(path: string, lines = 20): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export class PortInUse extends Error {}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// Ready when sshd has logged "Server listening on HOST port PORT." for every
// host: unlike a TCP probe this leaves no stray pre-auth child behind that
// would show up in connectionPids().
export async function waitListening(pid: number, exited: () => boolean, log: string, hosts: string[], port: number, probe: boolean): Promise<void> {
  const started = Date.now();
  for (;;) {
    const text = await readFile(log, 'utf8').catch(() => '');
    if (hosts.every((host) => text.includes(`Server listening on ${host} port ${port}.`))) return;
    if (/Address already in use/.test(text)) throw new PortInUse(`port ${port} taken`);
    if (exited()) throw new Error(`sshd (pid ${pid}) exited during start`);
    // Fallback for an extraConfig LogLevel that hides the line: probe TCP.
    // (Not from outside the server's network namespace: that probe would reach another host.)
    if (probe && Date.now() - started > 1000 && !text.includes('Server listening')) {
      if ((await Promise.all(hosts.map((host) => accepts(host, port)))).every(Boolean)) return;
    }
    if (Date.now() - started > START_TIMEOUT_MS) throw new Error(`sshd (pid ${pid}) not listening after ${START_TIMEOUT_MS} ms`);
    await sleep(25);
  }
}
