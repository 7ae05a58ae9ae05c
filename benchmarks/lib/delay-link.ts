// A link with latency between two network namespaces (no netem here): `tbf` on each end for
// the rate, and lib/delayline.c, a TUN-to-TUN forwarder that holds every packet RTT/2 in each
// direction. The forwarder is compiled with the system's cc into benchmarks/.build/ (git-ignored)
// when its source is newer than the binary.
//
//   ns A (ddt, baselines) 10.213.1.1 ─ tun, tbf RATE ─┐            ┌─ tbf RATE, tun ─ 10.213.1.2 ns B (sshd)
//                                                   └ delayline ┘   (RTT/2 each way)
//
// Addresses exist only inside the two namespaces, so no packet can leave them. Every namespace,
// TUN device and process made here is removed by close(), at exit or on Ctrl-C (the harness's
// cleanup registry), and by the sweep at the next start if this process was SIGKILLed: names
// carry the owner's PID (`ddtdl-a-PID`), and a namespace whose owner is gone is removed.

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerCleanup } from '../../test/harness/hooks.js';

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, 'delayline.c');
const BUILD_DIR = join(here, '..', '.build');
export const PREFIX = 'ddtdl-';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface DelayLink {
  nsA: string;
  nsB: string;
  addrA: string;
  addrB: string;
  rate: string;
  rttMs: number;
  /** the commands that built it (for RESULTS.md) */
  commands: string[];
  /** `ip netns exec nsA` prefix for commands that run on the client side */
  execA: string[];
  /** bytes ns A's TUN device sent so far (everything that crossed the link towards ns B) */
  txBytesA(): number;
  /** CPU seconds (user + system) the forwarder has used so far */
  cpuSeconds(): number;
  /** seconds from `sinceNs` (process.hrtime.bigint()) to the first A→B burst of bulk data that started after it */
  firstDataAfter(sinceNs: bigint): number | undefined;
  /** the forwarder's counters (packets, drops, late releases), one line per direction */
  stats(): Promise<string[]>;
  close(): void;
}

/** Compile lib/delayline.c unless an up-to-date binary exists; returns its path. */
export function buildDelayLine(): string {
  const bin = join(BUILD_DIR, 'delayline');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(SOURCE).mtimeMs) return bin;
  mkdirSync(BUILD_DIR, { recursive: true });
  // Built under a private name and renamed: a concurrent bench never runs half a binary.
  const tmp = `${bin}.${process.pid}`;
  execFileSync('cc', ['-O2', '-Wall', '-o', tmp, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
  renameSync(tmp, bin);
  return bin;
}

function run(cmd: string): void {
  const argv = cmd.split(' ');
  execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
}

function pidsIn(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** Remove the namespaces (and with them their TUN devices and processes) of delay links whose owner process is gone. */
export function sweepStale(log: (line: string) => void = () => {}): void {
  let names: string[] = [];
  try {
    names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0] ?? '');
  } catch {
    return;
  }
  for (const ns of names.filter((n) => n.startsWith(PREFIX))) {
    const owner = Number(/-(\d+)$/.exec(ns)?.[1]);
    if (owner && existsSync(`/proc/${owner}`)) continue; // a live run's, maybe another user's
    for (const pid of pidsIn(ns)) kill(pid, 'SIGKILL'); // only processes inside our own namespaces
    try {
      run(`ip netns del ${ns}`);
      log(`removed stale namespace ${ns}`);
    } catch {
      // gone meanwhile
    }
  }
}

export async function createDelayLink(opts: { rate: string; rttMs: number; work: string; log?: (line: string) => void }): Promise<DelayLink> {
  const { rate, rttMs, work } = opts;
  sweepStale(opts.log);
  const bin = buildDelayLine();
  const tag = String(process.pid);
  const nsA = `${PREFIX}a-${tag}`;
  const nsB = `${PREFIX}b-${tag}`;
  const devA = `ddtdl${tag}a`.slice(-15);
  const devB = `ddtdl${tag}b`.slice(-15);
  const addrA = '10.213.1.1';
  const addrB = '10.213.1.2';
  // tbf: a queue of 50 ms at the link rate (a router's buffer), bursts of ≥ 1 ms of it, since
  // 32 kbit at 400 Mbit/s would ask the qdisc's timer for a wake-up every 2–3 packets.
  const burstBytes = Math.max(4000, Math.round((parseRate(rate) / 8) * 0.001));
  const commands = [
    `ip netns add ${nsA}`,
    `ip netns add ${nsB}`,
    `ip -n ${nsA} tuntap add dev ${devA} mode tun`,
    `ip -n ${nsB} tuntap add dev ${devB} mode tun`,
    // The forwarder reads at each tick what a tick brought: room for far more than that.
    `ip -n ${nsA} link set ${devA} txqueuelen 4096`,
    `ip -n ${nsB} link set ${devB} txqueuelen 4096`,
    `ip -n ${nsA} addr add ${addrA} peer ${addrB} dev ${devA}`,
    `ip -n ${nsB} addr add ${addrB} peer ${addrA} dev ${devB}`,
    `ip -n ${nsA} link set lo up`,
    `ip -n ${nsB} link set lo up`,
    `ip -n ${nsA} link set ${devA} up`,
    `ip -n ${nsB} link set ${devB} up`,
    `tc -n ${nsA} qdisc add dev ${devA} root tbf rate ${rate} burst ${burstBytes} latency 50ms`,
    `tc -n ${nsB} qdisc add dev ${devB} root tbf rate ${rate} burst ${burstBytes} latency 50ms`,
  ];
  const burstLog = join(work, `delayline-${tag}-bursts.log`);
  const errPath = join(work, `delayline-${tag}.err`);
  // A burst ends after 1.5 RTT without a full-size packet (see delayline.c).
  const forwarderArgs = [`/run/netns/${nsA}`, devA, `/run/netns/${nsB}`, devB, String(Math.round((rttMs * 1000) / 2)), burstLog, String(rttMs * 1500)];
  commands.push(`benchmarks/.build/delayline ${forwarderArgs.join(' ')}   # cc -O2 benchmarks/lib/delayline.c`);

  let child: ReturnType<typeof spawn> | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    unregister();
    if (child?.pid) kill(child.pid, 'SIGKILL'); // it holds the TUN devices and with them ns A
    for (const ns of [nsB, nsA]) for (const pid of pidsIn(ns)) kill(pid, 'SIGKILL');
    for (const ns of [nsA, nsB]) {
      try {
        run(`ip netns del ${ns}`);
      } catch {
        // not created
      }
    }
    rmSync(burstLog, { force: true });
  };
  const unregister = registerCleanup(close);
  try {
    for (const cmd of commands.slice(0, -1)) run(cmd);
    const errFd = openSync(errPath, 'w');
    child = spawn(bin, forwarderArgs, { stdio: ['ignore', 'pipe', errFd] });
    closeSync(errFd);
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.once('data', () => resolve());
      child!.once('exit', (code) => reject(new Error(`delayline exited (${code}): ${readFileSync(errPath, 'utf8').trim()}`)));
    });
  } catch (err) {
    close();
    throw new Error(`delay link setup failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message}`);
  }
  const pid = child.pid!;
  const txBytesA = () => {
    const json = JSON.parse(execFileSync('ip', ['-n', nsA, '-s', '-j', 'link', 'show', devA], { encoding: 'utf8' })) as Array<{ stats64: { tx: { bytes: number } } }>;
    return json[0]!.stats64.tx.bytes;
  };
  const cpuSeconds = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[14 - 3]) + Number(f[15 - 3])) / 100; // utime + stime, in clock ticks of 10 ms
  };
  const firstDataAfter = (sinceNs: bigint) => {
    const since = Number(sinceNs / 1000n);
    const text = existsSync(burstLog) ? readFileSync(burstLog, 'utf8') : '';
    for (const line of text.split('\n')) {
      const [dir, start] = line.split(' ');
      if (dir === 'ab' && Number(start) >= since) return (Number(start) - since) / 1e6;
    }
    return undefined;
  };
  const stats = async () => {
    const before = readFileSync(errPath, 'utf8').length;
    kill(pid, 'SIGUSR1');
    for (let i = 0; i < 40 && readFileSync(errPath, 'utf8').length === before; i++) await sleep(25);
    return readFileSync(errPath, 'utf8').slice(before).trim().split('\n').filter((l) => l.startsWith('delayline '));
  };
  return { nsA, nsB, addrA, addrB, rate, rttMs, commands, execA: ['ip', 'netns', 'exec', nsA], txBytesA, cpuSeconds, firstDataAfter, stats, close };
}

/** tc's rate syntax (`100mbit`, `1gbit`, `500kbit`) in bits per second. */
export function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(rate);
  if (!m) throw new Error(`rate ${rate}: expected e.g. 100mbit`);
  return Number(m[1]) * ({ k: 1e3, m: 1e6, g: 1e9 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1);
}
