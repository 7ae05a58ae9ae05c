// Checks of a delay link against what was asked for: ping's RTT, what one raw TCP stream gets
// against the theory (the tbf rate less TCP/IP headers, or one send buffer per round trip,
// whichever is lower), and the wall time of `ssh HOST true` over it.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { DelayLink } from './delay-link.js';
import { parseRate } from './delay-link.js';
import { CIPHER, TCP_LINK } from './methods.js';

export interface PingResult {
  count: number;
  min: number;
  avg: number;
  max: number;
  mdev: number;
  loss: string;
}

/** `ping -c COUNT -i 0.2` from ns A to ns B (ms). */
export function ping(link: DelayLink, count = 20): PingResult {
  const out = execFileSync('ip', ['netns', 'exec', link.nsA, 'ping', '-n', '-q', '-c', String(count), '-i', '0.2', link.addrB], { encoding: 'utf8' });
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!m) throw new Error(`ping: no summary in ${out}`);
  return { count, min: Number(m[1]), avg: Number(m[2]), max: Number(m[3]), mdev: Number(m[4]), loss: /(\d+(?:\.\d+)?% packet loss)/.exec(out)?.[1] ?? '?' };
}

function sysctl(ns: string, key: string): number[] {
  return execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', key], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
}

export interface TcpTheory {
  /** TCP payload rate the tbf rate allows: 1448 of every 1500 bytes (IP + TCP with timestamps; a TUN device has no link header) */
  rateLimit: number;
  /** the sender's largest send buffer (tcp_wmem max), which must hold everything in flight, per RTT */
  windowLimit: number;
  wmemMax: number;
  rmemMax: number;
  congestion: string;
  bound: number;
}

export function tcpTheory(link: DelayLink): TcpTheory {
  const rateLimit = ((parseRate(link.rate) / 8) * 1448) / 1500;
  const wmemMax = sysctl(link.nsA, 'net.ipv4.tcp_wmem')[2]!;
  const rmemMax = sysctl(link.nsB, 'net.ipv4.tcp_rmem')[2]!;
  const windowLimit = Math.min(wmemMax, rmemMax) / (link.rttMs / 1000);
  const congestion = execFileSync('ip', ['netns', 'exec', link.nsA, 'sysctl', '-n', 'net.ipv4.tcp_congestion_control'], { encoding: 'utf8' }).trim();
  return { rateLimit, windowLimit, wmemMax, rmemMax, congestion, bound: Math.min(rateLimit, windowLimit) };
}

export interface TcpRun {
  seconds: number;
  bytes: number;
  /** the delay line's CPU seconds during the run */
  lineCpu: number;
  /** from `ss -tin` near the end: segments in flight, share of time the send buffer was the limit, TCP's own minimum RTT */
  unacked?: number;
  sndbufLimited?: string;
  minRttMs?: number;
}

/** One raw TCP stream of `file` from ns A into a discarding sink in ns B (port must be free there). */
export async function rawTcp(link: DelayLink, file: string, port: number): Promise<TcpRun> {
  const sink = spawn('ip', ['netns', 'exec', link.nsB, process.execPath, TCP_LINK, 'sink', link.addrB, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      sink.stdout.once('data', () => resolve());
      sink.once('exit', (code) => reject(new Error(`tcp sink exited (${code})`)));
    });
    const cpu0 = link.cpuSeconds();
    const t0 = performance.now();
    const sender = spawn('ip', ['netns', 'exec', link.nsA, process.execPath, TCP_LINK, 'send', link.addrB, String(port), file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    sender.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let ss = '';
    const sampler = setInterval(() => {
      const r = spawnSync('ip', ['netns', 'exec', link.nsA, 'ss', '-tin', 'dst', link.addrB], { encoding: 'utf8' });
      if (/unacked:\d+/.test(r.stdout)) ss = r.stdout;
    }, 1000);
    const code = await new Promise<number | null>((resolve) => sender.once('exit', resolve));
    clearInterval(sampler);
    const seconds = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`tcp send exited ${code}`);
    return {
      seconds,
      bytes: Number(/bytesOnWire (\d+)/.exec(out)?.[1] ?? NaN),
      lineCpu: link.cpuSeconds() - cpu0,
      ...(ss ? { unacked: Number(/unacked:(\d+)/.exec(ss)?.[1]), sndbufLimited: /sndbuf_limited:\S+/.exec(ss)?.[0], minRttMs: Number(/minrtt:([\d.]+)/.exec(ss)?.[1]) } : {}),
    };
  } finally {
    sink.kill('SIGKILL');
  }
}

/** Wall seconds of `ssh -c CIPHER … HOST true` from ns A, each a new connection (key exchange, auth, one session). */
export function sshTrue(link: DelayLink, sshArgs: string[], userHost: string, runs: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync('ip', ['netns', 'exec', link.nsA, 'ssh', '-c', CIPHER, ...sshArgs, userHost, 'true'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ssh true failed: ${r.stderr.trim()}`);
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}
