// A private OpenSSH server on loopback, for `ddt demo`, the integration tests
// (test/harness/sshd.ts adapts it) and benchmarks.
//
// Each instance has its own host key, client key, config, log and empty home
// in a temp dir, listens on a free port and is killed by PID (never by name)
// on stop(), or by the owner's cleanup hook at process exit. Other local
// users can be let in with authorize(); the server can run inside a network
// namespace (a host that only a jump host reaches).

import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { commandPath, haveCommand, haveRoot } from './system.js';
import { alive, childPids, descendantPids, markedPids, signal } from './sshd-procs.js';
import { freePort, keygen, type SshdOptions, logTail, MARKER, PortInUse, renderConfig, sshdPath, waitListening, writeCheckedConfig } from './sshd-setup.js';

export { childPids } from './sshd-procs.js';
export { sftpServerPath, type SshdOptions } from './sshd-setup.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
