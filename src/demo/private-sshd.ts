// A private OpenSSH server on loopback, for `ddt demo`, the integration tests
// (test/harness/sshd.ts adapts it) and benchmarks.
//
// Each instance has its own host key, client key, config, log and empty home
// in a temp dir, listens on a free port and is killed by PID (never by name)
// on stop(), or by the owner's cleanup hook at process exit. Other local
// users can be let in with authorize(); the server can run inside a network
// namespace (a host that only a jump host reaches).

import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { commandPath, haveCommand, haveRoot } from './system.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const START_TIMEOUT_MS = 10_000;
const MARKER = 'DDT_PRIVATE_SSHD';
// Debian/Ubuntu, Fedora/RHEL, Arch; else sshd's built-in server.
const SFTP_SERVERS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server'];

function sshdPath(): string {
  return commandPath('sshd') ?? '/usr/sbin/sshd';
}

/** The external SFTP server the private sshd runs for the sftp subsystem; undefined when sshd uses its built-in one. */
export function sftpServerPath(): string | undefined {
  return SFTP_SERVERS.find((path) => existsSync(path));
}

export interface PrivateSshd {
  host: string;
  hosts: string[];
  port: number;
  user: string;
  clientKeyPath: string;
  knownHostsPath: string;
  hostPublicKey: string;
  hostKeyFingerprint: string;
  dir: string;
  /** The empty HOME that sessions get (keeps root's ~/.bashrc out of tests). */
  home: string;
  pid: number;
  logPath: string;
  /** Let a local user log in with this public key (one `ssh-… AAAA…` line). */
  authorize(user: string, publicKey: string): Promise<void>;
  sshArgs(): string[];
  connectionPids(): number[];
  stop(): Promise<void>;
}

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

/** How the owner keeps track of what must go at exit (the test harness has its registry). */
export interface SshdHooks {
  /** Register a synchronous last-resort cleanup; returns its unregister function. */
  registerCleanup?: (fn: () => void) => () => void;
  makeTempDir?: (prefix: string) => Promise<string>;
  removeTempDir?: (dir: string) => Promise<void>;
}

/** What is missing to run a private sshd, with the command that installs it; undefined when nothing is. */
export function sshdMissing(have: (command: string) => boolean = haveCommand): string | undefined {
  if (!have('sshd')) {
    return 'the OpenSSH server (sshd) is not installed: install it with `apt-get install -y openssh-server` (Debian/Ubuntu; `dnf install -y openssh-server` on Fedora/RHEL), then run this again';
  }
  if (!have('ssh-keygen')) {
    return 'ssh-keygen is not installed: install it with `apt-get install -y openssh-client` (Debian/Ubuntu; `dnf install -y openssh-clients` on Fedora/RHEL), then run this again';
  }
  return undefined;
}

/** Root and sshd present: what the integration tests need (they log in as root). */
export function sshdAvailable(): boolean {
  return haveRoot() && sshdMissing() === undefined;
}

// ------------------------------------------------------------ /proc helpers

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 4 (ppid) follows "pid (comm) state"; comm may contain spaces
    // and parentheses, so parse after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Direct children of `pid`, from a scan of /proc. */
export function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((child) => parentPid(child) === pid);
}

function descendantPids(pid: number): number[] {
  const all: number[] = [];
  for (let level = childPids(pid); level.length > 0; level = level.flatMap(childPids)) all.push(...level);
  return all;
}

function alive(pid: number): boolean {
  try {
    // A zombie still has a /proc entry but is dead for our purposes.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// Session processes whose connection was killed are re-parented to init and
// drop out of the tree, but they keep the environment sshd gave them.
function markedPids(marker: string): number[] {
  const needle = Buffer.from(`\0${marker}\0`);
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${name}/environ`)]).includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------------ setup

async function freePort(hosts: string[]): Promise<number> {
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

async function keygen(path: string, comment: string): Promise<void> {
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

const quote = (value: string) => `"${value}"`;

function renderConfig(dir: string, home: string, hosts: string[], port: number, opts: SshdOptions, penalties: boolean): string {
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
async function writeCheckedConfig(path: string, render: (penalties: boolean) => string): Promise<void> {
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

async function logTail(path: string, lines = 20): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

class PortInUse extends Error {}

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
async function waitListening(pid: number, exited: () => boolean, log: string, hosts: string[], port: number, probe: boolean): Promise<void> {
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

// ------------------------------------------------------------------ start

const defaultHooks: Required<SshdHooks> = {
  registerCleanup: () => () => {},
  makeTempDir: (prefix) => mkdtemp(join(tmpdir(), prefix)),
  removeTempDir: (dir) => rm(dir, { recursive: true, force: true }),
};

export async function startPrivateSshd(opts: SshdOptions = {}, hooks: SshdHooks = {}): Promise<PrivateSshd> {
  const { registerCleanup, makeTempDir, removeTempDir } = { ...defaultHooks, ...hooks };
  const hosts = opts.listen ?? ['127.0.0.1'];
  // Privilege separation dir; only a root sshd uses it.
  if (haveRoot()) await mkdir('/run/sshd', { recursive: true });
  const dir = await makeTempDir('ddt-sshd-');
  const home = join(dir, 'home');
  const hostKey = join(dir, 'host_ed25519');
  const clientKeyPath = join(dir, 'client_ed25519');
  const knownHostsPath = join(dir, 'known_hosts');
  const config = join(dir, 'sshd_config');
  const logPath = join(dir, 'sshd.log');
  try {
    await mkdir(home);
    await Promise.all([keygen(hostKey, 'ddt-test-host'), keygen(clientKeyPath, 'ddt-test-client')]);
    const user = userInfo().username;
    await writeFile(join(dir, `authorized_keys.${user}`), await readFile(`${clientKeyPath}.pub`));
    // The owner's keys are also reachable under the plain name, which callers edit.
    await symlink(`authorized_keys.${user}`, join(dir, 'authorized_keys'));
    const hostPublicKey = (await readFile(`${hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const hostKeyFingerprint = (await execFileP('ssh-keygen', ['-lf', `${hostKey}.pub`])).stdout.split(' ')[1];

    // The free port can be taken between probing and sshd's bind: retry.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort(hosts);
      await writeCheckedConfig(config, (penalties) => renderConfig(dir, home, hosts, port, opts, penalties));
      const server = await launch(config, logPath, hosts, port, `${MARKER}=${dir}`, registerCleanup, opts.netns).catch(async (err: unknown) => {
        if (err instanceof PortInUse && attempt < 3) return undefined;
        throw new Error(`${(err as Error).message}; log tail:\n${await logTail(logPath)}`);
      });
      if (!server) continue;
      await writeFile(knownHostsPath, hosts.map((host) => `[${host}]:${port} ${hostPublicKey}\n`).join(''));
      return {
        host: hosts[0],
        hosts,
        port,
        user,
        clientKeyPath,
        knownHostsPath,
        hostPublicKey,
        hostKeyFingerprint,
        dir,
        home,
        pid: server.pid,
        logPath,
        authorize: async (login, publicKey) => {
          if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(login)) throw new Error(`not a login name: ${login}`);
          // sshd reads a user's keys with that user's rights: the dir must be
          // traversable (not listable) and the file readable (public keys only).
          await chmod(dir, 0o711);
          const file = join(dir, `authorized_keys.${login}`);
          await writeFile(file, `${publicKey.trim()}\n`, { flag: 'a' });
          await chmod(file, 0o644);
        },
        sshArgs: () => [
          '-p', String(port),
          '-i', clientKeyPath,
          '-o', `UserKnownHostsFile=${knownHostsPath}`,
          '-o', 'StrictHostKeyChecking=yes',
          '-o', 'BatchMode=yes',
          '-o', 'IdentitiesOnly=yes',
        ],
        connectionPids: () => childPids(server.pid),
        stop: async () => {
          await server.stop();
          await removeTempDir(dir);
        },
      };
    }
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

interface Launched {
  pid: number;
  stop(): Promise<void>;
}

async function launch(
  config: string,
  logPath: string,
  hosts: string[],
  port: number,
  marker: string,
  registerCleanup: (fn: () => void) => () => void,
  netns?: string,
): Promise<Launched> {
  // Fresh log per attempt, so an earlier attempt's bind error is not re-read.
  await writeFile(logPath, '');
  // stderr to a file, not a pipe: a pipe would keep the event loop alive.
  const errFd = openSync(`${logPath}.stderr`, 'w');
  const argv = [sshdPath(), '-D', '-f', config, '-E', logPath];
  // `ip netns exec` execs sshd in place: the PID stays the server's.
  if (netns !== undefined) argv.unshift(commandPath('ip') ?? 'ip', 'netns', 'exec', netns);
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', errFd, errFd] });
  closeSync(errFd);
  // Unref so an owner that forgets stop() cannot hang (mocha, the CLI); the
  // exit cleanup still kills it.
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot spawn ${sshdPath()}`);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  // Everything this server started: the listener (unless it is gone, as
  // its PID may be reused), its connection children and their sessions, and
  // orphaned session processes. Collected before signalling anything: once
  // the listener dies its children are re-parented and out of the tree.
  const processes = () => [
    ...new Set([...(exited ? [] : [pid, ...descendantPids(pid)]), ...markedPids(marker)]),
  ];
  const unregister = registerCleanup(() => signal(processes(), 'SIGKILL'));
  const stop = async () => {
    unregister();
    if (!exited) child.ref(); // keep the event loop alive while we wait
    const tree = processes();
    signal(tree, 'SIGTERM');
    const deadline = Date.now() + 3000;
    while (tree.some(alive) && Date.now() < deadline) await sleep(25);
    signal(tree.filter(alive), 'SIGKILL');
    await exitPromise;
  };
  try {
    await waitListening(pid, () => exited, logPath, hosts, port, netns === undefined);
  } catch (err) {
    await stop();
    const stderr = existsSync(`${logPath}.stderr`) ? readFileSync(`${logPath}.stderr`, 'utf8').trim() : '';
    if (stderr && err instanceof Error && !(err instanceof PortInUse)) err.message += `; stderr: ${stderr}`;
    throw err;
  }
  return { pid, stop };
}
