// The scenarios over links between network namespaces: their target checks, and the table of a
// link with latency (start-up figures and the delay line's CPU besides report.ts's columns).

import type { Aggregate, LatencyAggregate, RunRecord, Target } from './records.js';
import { MiB, type Scenario } from './scenarios.js';

function median(xs: number[]): number | undefined {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1]! + v[m]!) / 2;
}

export function latencyOf(runs: RunRecord[]): { latency?: LatencyAggregate } {
  const with_ = runs.filter((r) => r.latency);
  if (!with_.length) return {};
  const pick = (k: keyof LatencyAggregate) => median(with_.map((r) => r.latency![k] ?? NaN));
  return { latency: { firstDataS: pick('firstDataS'), firstVerifiedS: pick('firstVerifiedS'), runStartS: pick('runStartS'), lineCpuS: pick('lineCpuS') } };
}

const f = (n: number | undefined, d = 2) => (n !== undefined && Number.isFinite(n) ? n.toFixed(d) : '–');
const pct = (n: number) => `${(n * 100).toFixed(1)} %`;

export function latencyTable(sc: Scenario, aggs: Aggregate[]): string[] {
  const size = sc.image.mib * MiB;
  const L = [
    '| method | ok runs | wall s (runs) | vs (a) | vs raw TCP | MB/s | first data s | ddt: run record / first verified block s | wire MB (tun) | conns | RSS MiB | CPU s local / remote | delay line CPU s |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const a of aggs) {
    const moves = a.family !== 'ssh';
    const lat = a.latency ?? {};
    const wire = moves ? `${f(a.bytesOnWire / 1e6, 1)}${a.linkBytes !== undefined ? ` (${f(a.linkBytes / 1e6, 1)})` : ''}` : `– (${f((a.linkBytes ?? NaN) / 1e3, 1)} kB)`;
    L.push(
      `| ${a.method}${a.resolved ? ` (${a.resolved})` : ''} | ${a.okRuns}/${a.runs} | **${f(a.wall)}** (${a.walls.map((w) => f(w, 1)).join(', ')}) | ` +
        `${moves ? f(a.ratio['dd-ssh']) : '–'} | ${moves ? f(a.ratio.tcp) : '–'} | ${moves ? f(size / 1e6 / a.wall, 1) : '–'} | ${f(lat.firstDataS)} | ` +
        `${a.family === 'ddt' ? `${f(lat.runStartS)} / ${f(lat.firstVerifiedS)}` : '–'} | ${wire} | ${a.connsOpened}/${a.connsPeak} | ${f(a.rssMiB, 0)} | ` +
        `${f(a.cpu, 1)} / ${f(a.remoteCpu, 1)} | ${f(lat.lineCpuS, 1)} |`,
    );
  }
  L.push(
    '',
    'first data = from the spawn of the command to the first packet of the first burst of bulk data from client to server ' +
      '(full-size packets, no gap over 1.5 RTT, reaching 1 MiB; seen by the delay line); ddt\'s run record and first verified block are ' +
      'the times of its journal\'s `run` start and first `verified` block records, from the spawn too. wire = payload bytes (the TUN device ' +
      'sent: everything on the wire towards the server); ssh-true\'s wall is the yardstick for start-up.',
  );
  return L;
}

export function linkTargets(aggs: Aggregate[]): Target[] {
  const get = (sc: string, family: Aggregate['family'], method?: string) => aggs.find((a) => a.scenario === sc && a.family === family && (!method || a.method === method));
  const out: Target[] = [];
  const shaped = get('shaped-100mbit', 'ddt', 'ddt');
  if (shaped) {
    // "The link" is what it delivers to one plain TCP stream (raw TCP in the same rounds):
    // 100 Mbit/s nominal carries at most 1448/1514 ≈ 95.6 % of it as TCP payload (Ethernet,
    // IP and TCP headers with timestamps count against tbf's rate), so 95 % of the nominal
    // rate is out of reach for anything.
    const nominal = (shaped.mbps * 1e6) / (100e6 / 8);
    const tcp = get('shaped-100mbit', 'tcp');
    const share = tcp ? shaped.mbps / tcp.mbps : nominal;
    out.push({
      target: 'shaped 100 Mbit/s link, incompressible: ddt ≥ 95 % of the link (raw TCP\'s rate on it)',
      measured: `${tcp ? `${pct(share)} of raw TCP (${f(tcp.mbps, 2)} MB/s)` : 'no raw TCP run'}; ${f(shaped.mbps, 2)} MB/s = ${pct(nominal)} of the nominal 100 Mbit/s`,
      pass: share >= 0.95,
    });
  }
  const slow = get('latency-100mbit-40ms', 'ddt', 'ddt');
  const slowTcp = get('latency-100mbit-40ms', 'tcp');
  if (slow && slowTcp) {
    const share = slowTcp.wall / slow.wall;
    out.push({ target: '100 Mbit/s × 40 ms, 1 GiB random: ddt defaults ≥ 0.97 × raw TCP\'s rate', measured: `${f(share)} × (${f(slow.mbps, 2)} vs ${f(slowTcp.mbps, 2)} MB/s)`, pass: share >= 0.97 });
  }
  const far = 'latency-400mbit-100ms';
  const fast = get(far, 'ddt', 'ddt');
  const fastDd = get(far, 'dd-ssh');
  const fastTcp = get(far, 'tcp');
  if (fast && fastDd) {
    const x = fastDd.wall / fast.wall;
    out.push({ target: '400 Mbit/s × 100 ms, 1 GiB random: ddt defaults ≥ 2.2 × (a) dd | ssh dd\'s rate', measured: `${f(x)} × (${f(fast.mbps, 2)} vs ${f(fastDd.mbps, 2)} MB/s)`, pass: x >= 2.2 });
  }
  if (fast && fastTcp) {
    const x = fastTcp.wall / fast.wall;
    out.push({ target: '400 Mbit/s × 100 ms: ddt defaults ≥ 0.9 × raw TCP\'s rate', measured: `${f(x)} × (raw TCP ${f(fastTcp.mbps, 2)} MB/s)`, pass: x >= 0.9 });
  }
  for (const sc of ['latency-100mbit-40ms', far]) {
    const d = get(sc, 'ddt', 'ddt');
    const ssh = get(sc, 'ssh');
    const first = d?.latency?.firstDataS;
    if (!d || !ssh || first === undefined) continue;
    out.push({
      target: `${sc}: ddt's first data byte ≤ 2 × ssh HOST true`,
      measured: `${f(first)} s = ${f(first / ssh.wall)} × ssh true (${f(ssh.wall)} s); first verified block at ${f(d.latency?.firstVerifiedS)} s`,
      pass: sc === far ? first <= 2 * ssh.wall : null,
    });
  }
  return out;
}
