// A shaped link between two network namespaces for the benchmark (no netem here: `tbf` gives
// the rate, and there is no added latency). Addresses exist only inside the namespaces; every
// namespace, process and file made here is removed by `close()`, or at exit / Ctrl-C through
// the harness's cleanup registry.
//
//   ns A (ddt, baselines)  10.213.0.1 ── veth, tbf RATE each way ── 10.213.0.2  ns B (sshd)

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registerCleanup } from '../../test/harness/hooks.js';
import type { TestSshd } from '../../test/harness/sshd.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ShapedLink {
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  addrA: string;
  addrB: string;
  rate: string;
  /** the commands that built it (for RESULTS.md) */
  commands: string[];
  /** `ip netns exec nsA` prefix for commands that run on the client side */
  execA: string[];
  /** bytes sent by ns A's veth so far (what crossed the shaped link towards the server) */
  txBytesA(): number;
  close(): void;
}

function sh(cmd: string[]): void {
  execFileSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
}

function pidsIn(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killAllIn(ns: string): void {
  // Only processes inside a namespace this run created: all ours.
  for (const pid of pidsIn(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export function createShapedLink(rate = '100mbit'): ShapedLink {
  const tag = String(process.pid % 100000);
  const nsA = `ddtb-a-${tag}`;
  const nsB = `ddtb-b-${tag}`;
  const devA = `ddtb${tag}a`;
  const devB = `ddtb${tag}b`;
  const addrA = '10.213.0.1';
  const addrB = '10.213.0.2';
  const commands = [
    `ip netns add ${nsA}`,
    `ip netns add ${nsB}`,
    `ip link add ${devA} type veth peer name ${devB}`,
    `ip link set ${devA} netns ${nsA}`,
    `ip link set ${devB} netns ${nsB}`,
    `ip -n ${nsA} addr add ${addrA}/24 dev ${devA}`,
    `ip -n ${nsB} addr add ${addrB}/24 dev ${devB}`,
    `ip -n ${nsA} link set lo up`,
    `ip -n ${nsB} link set lo up`,
    `ip -n ${nsA} link set ${devA} up`,
    `ip -n ${nsB} link set ${devB} up`,
    `tc -n ${nsA} qdisc add dev ${devA} root tbf rate ${rate} burst 32kbit latency 50ms`,
    `tc -n ${nsB} qdisc add dev ${devB} root tbf rate ${rate} burst 32kbit latency 50ms`,
  ];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    unregister();
    for (const ns of [nsB, nsA]) killAllIn(ns);
    // Deleting a namespace removes its veth end, and with it the peer.
    for (const ns of [nsA, nsB]) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // not created
      }
    }
    try {
      sh(['ip', 'link', 'del', devA]); // only if the move into the namespace failed
    } catch {
      // gone with its namespace
    }
  };
  const unregister = registerCleanup(close);
  try {
    for (const cmd of commands) sh(cmd.split(' '));
  } catch (err) {
    close();
    throw new Error(`shaped link setup failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? err}`);
  }
  const txBytesA = () => {
    const json = JSON.parse(execFileSync('ip', ['-n', nsA, '-s', '-j', 'link', 'show', devA], { encoding: 'utf8' })) as Array<{
      stats64: { tx: { bytes: number } };
    }>;
    return json[0]!.stats64.tx.bytes;
  };
  return { nsA, nsB, devA, devB, addrA, addrB, rate, commands, execA: ['ip', 'netns', 'exec', nsA], txBytesA, close };
}

export interface NetnsSshd {
  pid: number;
  host: string;
  port: number;
  logPath: string;
  knownHostsPath: string;
  clientKeyPath: string;
  sshArgs(): string[];
  stop(): Promise<void>;
}

/**
 * A second sshd inside ns B with the loopback test sshd's keys and config (only the listen
 * address, port, pid file and log differ), so both servers behave the same. `name` keeps the
 * files of several such servers apart.
 */
export async function startSshdIn(link: Pick<ShapedLink, 'nsB' | 'addrB'>, base: TestSshd, port = 2222, name = 'netns'): Promise<NetnsSshd> {
  const config = join(base.dir, `sshd_config.${name}`);
  const logPath = join(base.dir, `sshd.${name}.log`);
  const knownHostsPath = join(base.dir, `known_hosts.${name}`);
  const text = (await readFile(join(base.dir, 'sshd_config'), 'utf8'))
    .split('\n')
    .filter((line) => !/^(Port|ListenAddress|PidFile)\s/i.test(line))
    .concat([`Port ${port}`, `ListenAddress ${link.addrB}`, `PidFile "${join(base.dir, `sshd.${name}.pid`)}"`])
    .join('\n');
  await writeFile(config, text + '\n');
  await writeFile(logPath, '');
  await writeFile(knownHostsPath, `[${link.addrB}]:${port} ${base.hostPublicKey}\n`);
  const errFd = openSync(`${logPath}.stderr`, 'w');
  const child = spawn('ip', ['netns', 'exec', link.nsB, '/usr/sbin/sshd', '-D', '-f', config, '-E', logPath], {
    stdio: ['ignore', errFd, errFd],
  });
  closeSync(errFd);
  child.unref();
  const pid = child.pid!; // `ip netns exec` execs sshd: same PID
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async () => {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
    for (let i = 0; i < 60 && !exited; i++) await sleep(50);
    killAllIn(link.nsB); // its sessions, if any are left
  };
  for (let waited = 0; ; waited += 50) {
    if (readFileSync(logPath, 'utf8').includes(`Server listening on ${link.addrB} port ${port}.`)) break;
    if (exited || waited > 10_000) {
      await stop();
      throw new Error(`sshd in ${link.nsB} did not start: ${readFileSync(`${logPath}.stderr`, 'utf8')}${readFileSync(logPath, 'utf8')}`);
    }
    await sleep(50);
  }
  return {
    pid,
    host: link.addrB,
    port,
    logPath,
    knownHostsPath,
    clientKeyPath: base.clientKeyPath,
    sshArgs: () => [
      '-p', String(port),
      '-i', base.clientKeyPath,
      '-o', `UserKnownHostsFile=${knownHostsPath}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
    ],
    stop,
  };
}
