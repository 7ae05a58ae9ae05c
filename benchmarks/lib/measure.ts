// Running one benchmark command and measuring it: wall time (here), CPU and peak RSS of the
// command and everything it waited for (`/usr/bin/time -f '%e %U %S %M'`), the remote side's CPU
// (the sshd listener's reaped children), and the TCP connections it opened (sshd's log) and
// held at once (sampled from the server's /proc/PID/net/tcp, which also works inside a netns).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { registerCleanup } from '../../test/harness/hooks.js';
import { childPids } from '../../test/harness/sshd.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64/arm64

export interface Server {
  /** PID of the sshd listener (its reaped children carry the remote CPU). */
  pid: number;
  port: number;
  logPath: string;
}

export interface Measured {
  exitCode: number | null;
  signal: string | null;
  wall: number;
  /** when the command was spawned: process.hrtime.bigint() (CLOCK_MONOTONIC) and Date.now() */
  startedNs: bigint;
  startedMs: number;
  /** from /usr/bin/time: user + sys CPU seconds of the command and its descendants */
  cpuUser: number;
  cpuSys: number;
  /** peak RSS (MiB) of the largest single process in the command's tree */
  rssMiB: number;
  /** CPU seconds of sshd and the sessions it ran (remote side; on loopback the same cores) */
  remoteCpu: number;
  /** TCP connections sshd accepted during the run ("Connection from" lines in its log) */
  connsOpened: number;
  /** most ESTABLISHED connections to the server's port seen at once (sampled every 50 ms) */
  connsPeak: number;
  stdout: string;
  stderr: string;
  /** with killWhen: bytes the killed process had passed to write(2)/send(2) (its /proc/PID/io wchar) */
  killedWchar?: number;
}

function reapedCpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after comm: state(3) ... utime(14) stime(15) cutime(16) cstime(17); index = field - 3
  return Number(f[16 - 3]) + Number(f[17 - 3]);
}

function ownCpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[14 - 3]) + Number(f[15 - 3]);
}

function serverCpuTicks(pid: number): number {
  return reapedCpuTicks(pid) + ownCpuTicks(pid);
}

// /proc/net/tcp is read in several chunks and is not a snapshot: a busy table can list a socket
// twice, so count distinct (local, remote) pairs.
function establishedOn(pid: number, port: number): number {
  const seen = new Set<string>();
  for (const file of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '01') continue; // 01 = ESTABLISHED
      const local = cols[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) seen.add(`${local} ${cols[2]}`);
    }
  }
  return seen.size;
}

async function countConnections(logPath: string): Promise<number> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  return (text.match(/^.*Connection from .* port \d+ on .*$/gm) ?? []).length;
}

/** Wait until sshd has no connection children left (the previous run's sessions are over). */
export async function serverIdle(server: Server, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (childPids(server.pid).length === 0) return true;
    await sleep(50);
  }
  return false;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** kill the command (SIGKILL to the command itself) when this returns true for a stderr line */
  killWhen?: (stderrLine: string) => boolean;
  /** … or when this returns true (polled every 50 ms) */
  killPoll?: () => boolean;
  timeoutMs?: number;
  timeFile: string;
}

/**
 * Run `argv` under /usr/bin/time in its own process group and measure it against `server`.
 * Never throws for a failing command: the caller looks at exitCode.
 */
export async function measure(argv: string[], server: Server, opts: RunOptions): Promise<Measured> {
  await serverIdle(server);
  const connsBefore = await countConnections(server.logPath);
  const cpuBefore = serverCpuTicks(server.pid);
  let connsPeak = 0;
  const sampler = setInterval(() => {
    connsPeak = Math.max(connsPeak, establishedOn(server.pid, server.port));
  }, 50);

  const started = performance.now();
  const startedNs = process.hrtime.bigint();
  const startedMs = Date.now();
  const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', opts.timeFile, ...argv], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: a kill reaches the whole pipeline
  });
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      // gone
    }
  };
  // Ctrl-C of the bench must not leave the command running (it has its own process group,
  // so the terminal's SIGINT does not reach it).
  const unregister = registerCleanup(() => killGroup('SIGKILL'));
  let stdout = '';
  let stderr = '';
  let pending = '';
  let killed = false;
  let killedWchar: number | undefined;
  // Kill the command itself (the child of /usr/bin/time), so time still writes its record.
  const killCommand = () => {
    killed = true;
    for (const pid of child.pid ? childPids(child.pid) : []) {
      try {
        killedWchar = Number(/^wchar: (\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    const s = d.toString();
    stderr += s;
    if (!opts.killWhen || killed) return;
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (opts.killWhen(line)) {
        killCommand();
        break;
      }
    }
  });
  const poller = opts.killPoll
    ? setInterval(() => {
        if (!killed && opts.killPoll!()) killCommand();
      }, 50)
    : undefined;
  const timer = opts.timeoutMs ? setTimeout(() => killGroup('SIGKILL'), opts.timeoutMs) : undefined;
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve) =>
    child.once('close', (code, sig) => resolve([code, sig])),
  );
  const wall = (performance.now() - started) / 1000;
  if (timer) clearTimeout(timer);
  if (poller) clearInterval(poller);
  clearInterval(sampler);
  unregister();

  await serverIdle(server);
  const remoteCpu = (serverCpuTicks(server.pid) - cpuBefore) / CLK_TCK;
  const connsOpened = (await countConnections(server.logPath)) - connsBefore;

  // /usr/bin/time writes "Command exited with non-zero status N" / "Command terminated by
  // signal N" before the record when the command failed: the record is the last line.
  const timeText = (await readFile(opts.timeFile, 'utf8').catch(() => '')).trim().split('\n').pop() ?? '';
  await rm(opts.timeFile, { force: true });
  const [, user, sys, maxKb] = timeText.split(' ').map(Number);
  return {
    exitCode,
    signal,
    wall,
    startedNs,
    startedMs,
    cpuUser: user ?? NaN,
    cpuSys: sys ?? NaN,
    rssMiB: (maxKb ?? NaN) / 1024,
    remoteCpu,
    connsOpened,
    connsPeak,
    stdout,
    stderr,
    ...(killedWchar !== undefined ? { killedWchar } : {}),
  };
}
