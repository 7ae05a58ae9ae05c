// Aggregates (medians, ratios against each baseline), the performance target checks, and
// RESULTS.md. A hand-written section after the NOTES marker in an existing RESULTS.md is kept.

import { latencyOf, latencyTable, linkTargets } from './link-report.js';
import type { Aggregate, RunRecord, Target } from './records.js';
import { MiB, type Scenario } from './scenarios.js';
import { sparseTargets } from './sparse-target.js';

export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const BASELINES = ['dd-ssh', 'classic', 'rsync', 'tcp', 'read'] as const;

function resolvedOf(job: NonNullable<RunRecord['job']>): string {
  const parts = [job.engine === 'rsync' ? 'engine rsync' : `via ${job.via ?? 'stream'}`];
  const compress = job.options?.compress;
  if (compress !== undefined && job.engine !== 'rsync' && job.via !== 'sftp') parts.push(`compress ${String(compress)}`);
  if (job.blockSize) parts.push(`-b ${job.blockSize >= MiB ? `${job.blockSize / MiB}M` : job.blockSize}`);
  return parts.join(', ');
}

export function aggregate(sc: Scenario, records: RunRecord[], quote: (argv: string[]) => string): Aggregate[] {
  const size = sc.image.mib * MiB;
  const byMethod = (id: string) => records.filter((r) => r.method === id);
  const aggs = sc.methods.map((m): Aggregate => {
    const rs = byMethod(m.id);
    const good = rs.filter((r) => r.ok);
    const use = good.length ? good : rs;
    const wall = median(use.map((r) => r.wall));
    const links = use.map((r) => r.linkBytes).filter((x): x is number => x !== undefined);
    return {
      scenario: sc.id,
      method: m.id,
      family: m.family,
      label: m.label,
      runs: rs.length,
      okRuns: good.length,
      walls: rs.map((r) => r.wall),
      wall,
      mbps: size / 1e6 / wall,
      bytesOnWire: median(use.map((r) => r.bytesOnWire)),
      ...(links.length ? { linkBytes: median(links) } : {}),
      connsOpened: Math.max(...rs.map((r) => r.connsOpened)),
      connsPeak: Math.max(...rs.map((r) => r.connsPeak)),
      rssMiB: Math.max(...use.map((r) => r.rssMiB)),
      cpu: median(use.map((r) => r.cpu)),
      remoteCpu: median(use.map((r) => r.remoteCpu)),
      ratio: {},
      pairedRatio: {},
      errors: rs.filter((r) => !r.ok).map((r) => `round ${r.round + 1}: ${r.error}`),
      command: rs[0] ? quote(rs[0].argv) : '',
      ...(rs[0]?.job ? { resolved: resolvedOf(rs[0].job) } : {}),
      ...latencyOf(use),
    };
  });
  for (const family of BASELINES) {
    const base = aggs.find((a) => a.family === family);
    if (!base) continue;
    for (const a of aggs) {
      a.ratio[family] = a.wall / base.wall;
      const pairs = byMethod(a.method).map((r) => {
        const b = records.find((x) => x.method === base.method && x.round === r.round);
        return b ? r.wall / b.wall : NaN;
      });
      a.pairedRatio[family] = median(pairs);
    }
  }
  return aggs;
}

/**
 * Re-sync: ddt `--skip-identical` at the default block size against rsync's delta onto the
 * image file and onto the device (≤ 0.7 × each), its bytes on the wire against the changed
 * bytes (≤ 1.5 ×), and with nothing changed against reading the image once on each side
 * (≤ 1.2 ×).
 */
function resyncTargets(scs: Scenario[], get: (sc: string, m?: string) => Aggregate | undefined, changedUnits: Record<string, number>): Target[] {
  const out: Target[] = [];
  for (const sc of scs.filter((s) => s.resync)) {
    const ddt = get(sc.id);
    if (!ddt) continue;
    for (const rsync of ['rsync-inplace--no-whole-file', 'rsync-device--no-whole-file']) {
      const base = get(sc.id, rsync);
      if (base) out.push({ target: `${sc.id}: ddt ≤ 0.7 × ${rsync}`, measured: `${f(ddt.wall / base.wall)} × (${f(ddt.wall)} s against ${f(base.wall)} s)`, pass: ddt.wall <= 0.7 * base.wall });
    }
    const changed = (changedUnits[sc.id] ?? 0) * sc.resync!.unitBytes;
    if (changed > 0) out.push({ target: `${sc.id}: ddt's bytes on the wire ≤ 1.5 × the changed bytes (${f(changed / MiB, 0)} MiB)`, measured: `${f(ddt.bytesOnWire / MiB, 1)} MiB (${f(ddt.bytesOnWire / changed)} ×)`, pass: ddt.bytesOnWire <= 1.5 * changed });
    const read = get(sc.id, 'read-both');
    if (read) out.push({ target: `${sc.id}: ddt ≤ 1.2 × reading the image once on each side`, measured: `${f(ddt.wall / read.wall)} × (${f(ddt.wall)} s against ${f(read.wall)} s)`, pass: ddt.wall <= 1.2 * read.wall });
  }
  return out;
}

const f = (n: number | undefined, d = 2) => (n !== undefined && Number.isFinite(n) ? n.toFixed(d) : '–');
const size = (mib: number) => (mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`);
const cell = (s: string) => s.replace(/\|/g, '\\|');
const pct = (n: number) => `${(n * 100).toFixed(n < 0.1 ? 2 : 1)} %`;

function connectionsOf(command: string): number {
  const m = /--connections[ =](\d+)/.exec(command);
  return m ? Number(m[1]) : 2;
}

/** `changedUnits`: per re-sync scenario, how many of its units the target's old data differs in. */
export function targets(scs: Scenario[], aggs: Aggregate[], records: RunRecord[], changedUnits: Record<string, number> = {}): Target[] {
  const get = (sc: string, m = 'ddt') => aggs.find((a) => a.scenario === sc && a.method === m);
  const out: Target[] = [];
  const mixed = get('fresh-mixed');
  if (mixed) {
    const verified = records.filter((r) => r.scenario === 'fresh-mixed' && r.method === 'ddt');
    const allVerified = verified.length > 0 && verified.every((r) => r.ok && r.summary?.verified === r.summary?.blocks);
    out.push({
      target: 'mixed image: ddt ≤ 1.0 × (a) dd | ssh dd, every block verified',
      measured: `${f(mixed.ratio['dd-ssh'])} × (paired ${f(mixed.pairedRatio['dd-ssh'])}); ${allVerified ? 'every block verified in every run' : 'NOT every block verified'}`,
      pass: (mixed.ratio['dd-ssh'] ?? Infinity) <= 1.0 && allVerified,
    });
  }
  const rnd = get('incompressible');
  if (rnd) {
    out.push({
      target: 'incompressible: ddt ≤ 1.1 × (a)',
      measured: `${f(rnd.ratio['dd-ssh'])} × (paired ${f(rnd.pairedRatio['dd-ssh'])})`,
      pass: (rnd.ratio['dd-ssh'] ?? Infinity) <= 1.1,
    });
  }
  for (const a of [mixed, rnd]) {
    if (a?.ratio.classic === undefined) continue;
    out.push({ target: `${a.scenario}: ddt ≤ 0.2 × (b) the original pipeline`, measured: `${f(a.ratio.classic)} ×`, pass: a.ratio.classic <= 0.2 });
  }
  const resync = get('resync-1pct');
  const resyncSc = scs.find((s) => s.id === 'resync-1pct');
  if (resync && resyncSc) {
    const share = resync.bytesOnWire / (resyncSc.image.mib * MiB);
    out.push({ target: 're-sync, 1 % of blocks changed: sends < 2 % of the bytes', measured: `${pct(share)} (${f(resync.bytesOnWire / 1e6, 1)} MB)`, pass: share < 0.02 });
  }
  out.push(...resyncTargets(scs, get, changedUnits));
  const ddtRuns = records.filter((r) => r.method.startsWith('ddt'));
  if (ddtRuns.length) {
    const peak = Math.max(...ddtRuns.map((r) => r.rssMiB));
    const worst = ddtRuns.find((r) => r.rssMiB === peak)!;
    out.push({ target: 'ddt peak RSS < 200 MiB (every ddt run)', measured: `max ${f(peak, 0)} MiB (${worst.scenario} / ${worst.method})`, pass: peak < 200 });
  }
  const sparse = get('sparse');
  const sparseSc = scs.find((s) => s.id === 'sparse');
  if (mixed && sparse && sparseSc) {
    const delta = sparse.rssMiB - mixed.rssMiB;
    out.push({
      target: `ddt peak RSS flat from ${size(scs.find((s) => s.id === 'fresh-mixed')!.image.mib)} to ${size(sparseSc.image.mib)} (within 25 MiB)`,
      measured: `${f(mixed.rssMiB, 0)} → ${f(sparse.rssMiB, 0)} MiB (${delta >= 0 ? '+' : ''}${f(delta, 0)})`,
      pass: Math.abs(delta) <= 25,
    });
  }
  const ddtAggs = aggs.filter((a) => a.family === 'ddt');
  if (ddtAggs.length) {
    // The kill-and-resume method is two ddt processes: each may open --connections.
    const limit = (a: Aggregate) => connectionsOf(a.command) * (a.method === 'ddt-kill-resume' ? 2 : 1);
    const over = ddtAggs.filter((a) => a.connsOpened > limit(a) || a.connsPeak > connectionsOf(a.command));
    out.push({
      target: 'TCP connections opened = --connections (never more), every ddt run',
      measured: over.length
        ? over.map((a) => `${a.scenario}/${a.method}: ${a.connsOpened} opened, ${a.connsPeak} at once (limit ${limit(a)})`).join('; ')
        : `max ${Math.max(...ddtAggs.filter((a) => a.method !== 'ddt-kill-resume').map((a) => a.connsOpened))} opened per ddt process, ` +
          `${Math.max(...ddtAggs.map((a) => a.connsPeak))} at once (each within its --connections)`,
      pass: over.length === 0,
    });
  }
  out.push(...linkTargets(aggs));
  const full = get('kill-resume');
  const kr = get('kill-resume', 'ddt-kill-resume');
  if (full && kr) {
    const krRuns = records.filter((r) => r.method === 'ddt-kill-resume' && r.parts);
    const resent = median(krRuns.map((r) => r.bytesOnWire));
    const written = median(krRuns.map((r) => (r.parts!.killedWritten ?? NaN) + r.parts!.resumeWire));
    out.push({
      target: 'kill at 50 % + resume: overhead against one uninterrupted run (no target; informational)',
      measured:
        `+${f(kr.wall - full.wall, 1)} s (${pct(kr.wall / full.wall - 1)}); payload ${f(resent / 1e6, 0)} MB in finished blocks` +
        (Number.isFinite(written) ? `, ${f(written / 1e6, 0)} MB written to sockets incl. blocks in flight at the kill` : '') +
        `, vs ${f(full.bytesOnWire / 1e6, 0)} MB uninterrupted`,
      pass: null,
    });
  }
  out.push(...sparseTargets(aggs, records, (id) => {
    const sc = scs.find((s) => s.id === id);
    return sc?.image.islands ? sc.image.islands.count * sc.image.islands.mib * MiB : undefined;
  }));
  return out;
}

export interface Report {
  generated: string;
  mode: 'full' | 'quick';
  runs: number;
  minutes: number;
  machine: Record<string, unknown>;
  setup: string[];
  scenarios: Array<{ scenario: Scenario; aggregates: Aggregate[]; changedUnits?: number }>;
  targets: Target[];
  /** every run (for figures the aggregates do not keep, such as the target's allocation) */
  records?: RunRecord[];
}

const BASE_LABEL = { 'dd-ssh': '(a)', classic: '(b)', rsync: '(c)', tcp: 'raw TCP', read: 'read both sides' } as const;

export function markdown(rep: Report, notes: string): string {
  const L: string[] = [];
  L.push('# Benchmark results');
  L.push('');
  L.push(
    `Generated by \`npm run bench${rep.mode === 'quick' ? ' -- --quick' : ''}\` on ${rep.generated} (took ${rep.minutes.toFixed(1)} min; ${rep.runs} rounds per scenario, ` +
      'every method once per round, the order rotating; the figures are medians over the rounds). Raw numbers of every run: ' +
      `\`results.json\` next to this file. How to run it: benchmarks/README.md.`,
  );
  L.push('');
  L.push('## Machine');
  L.push('');
  for (const [k, v] of Object.entries(rep.machine)) L.push(`- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  L.push('');
  L.push('## Targets');
  L.push('');
  L.push('| target | measured | |');
  L.push('|---|---|---|');
  for (const t of rep.targets) L.push(`| ${cell(t.target)} | ${cell(t.measured)} | ${t.pass === null ? 'info' : t.pass ? 'met' : '**missed**'} |`);
  L.push('');
  L.push('## Scenarios');
  L.push('');
  L.push(
    'Columns: wall = median wall-clock seconds of the whole command (connect, transfer, verify); ratios = this method\'s median ÷ the baseline\'s ' +
      '(< 1 is faster; "paired" in results.json is the median of per-round ratios); MB/s = image size (10⁶ bytes) ÷ wall; wire = payload bytes sent ' +
      '(ddt: its JSON `bytesOnWire`, after compression, zero blocks and skipped blocks excluded; rsync: `Total bytes sent`; dd: the image size; on the shaped link also ' +
      'everything the client\'s veth sent); conns = TCP connections sshd accepted during the run / most established at once; RSS = peak RSS of the largest ' +
      'local process (ddt: node); CPU = local user+sys seconds (command and its children) / remote seconds (sshd, its sessions, dd — on loopback the same two cores).',
  );
  for (const { scenario: sc, aggregates, changedUnits } of rep.scenarios) {
    const size = sc.image.mib * MiB;
    const bases = BASELINES.filter((b) => aggregates.some((a) => a.family === b));
    L.push('');
    L.push(`### ${sc.id}: ${sc.title}`);
    L.push('');
    if (changedUnits) L.push(`${changedUnits} of ${size / sc.resync!.unitBytes} units of ${sc.resync!.unitBytes / MiB} MiB differ between source and target (overwritten with random bytes).`);
    if (changedUnits) L.push('');
    if (sc.link === 'delay') L.push(...latencyTable(sc, aggregates));
    else {
      L.push(`| method | ok runs | wall s (runs) | ${bases.map((b) => `vs ${BASE_LABEL[b]}`).join(' | ')} | MB/s | wire MB${sc.link === 'shaped' ? ' (veth)' : ''} | conns | RSS MiB | CPU s local / remote |`);
      L.push(`|---|---|---|${bases.map(() => '---').join('|')}|---|---|---|---|---|`);
      for (const a of aggregates) {
        const wire = `${f(a.bytesOnWire / 1e6, 1)} (${pct(a.bytesOnWire / size)})${a.linkBytes !== undefined ? ` (${f(a.linkBytes / 1e6, 1)})` : ''}`;
        L.push(
          `| ${a.method}${a.resolved ? ` (${a.resolved})` : ''} | ${a.okRuns}/${a.runs} | **${f(a.wall)}** (${a.walls.map((w) => f(w, 1)).join(', ')}) | ${bases.map((b) => f(a.ratio[b])).join(' | ')} | ${f(a.mbps, 0)} | ${wire} | ${a.connsOpened}/${a.connsPeak} | ${f(a.rssMiB, 0)} | ${f(a.cpu, 1)} / ${f(a.remoteCpu, 1)} |`,
        );
      }
    }
    if (sc.fresh) {
      const alloc = (m: string) => median(rep.records?.filter((r) => r.scenario === sc.id && r.method === m).map((r) => r.allocated ?? NaN) ?? []);
      L.push('');
      L.push(`Target allocated after the run (\`du --block-size=1\` of the ${sc.target === 'file' ? 'target file' : "loop device's backing file"}, median): ${aggregates.map((a) => `${a.method} ${f(alloc(a.method) / MiB, 1)} MiB`).join(', ')}.`);
    }
    const errs = aggregates.flatMap((a) => a.errors.map((e) => `${a.method} ${e}`));
    if (errs.length) {
      L.push('');
      L.push('Failed runs:');
      for (const e of errs) L.push(`- ${e}`);
    }
    L.push('');
    L.push('Commands (round 1, as run):');
    L.push('');
    L.push('```');
    for (const a of aggregates) L.push(`# ${a.method}: ${a.label}`, a.command);
    L.push('```');
  }
  L.push('');
  L.push('## Set-up');
  L.push('');
  L.push('```');
  L.push(...rep.setup);
  L.push('```');
  L.push('');
  L.push(NOTES_MARKER);
  L.push(notes.trim() ? notes.trim() : '## Notes\n\n(none yet)');
  L.push('');
  return L.join('\n');
}

export const NOTES_MARKER = '<!-- notes: everything below is written by hand and kept when the bench rewrites this file -->';

export function notesOf(existing: string): string {
  const at = existing.indexOf(NOTES_MARKER);
  return at < 0 ? '' : existing.slice(at + NOTES_MARKER.length);
}
