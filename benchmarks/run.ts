// `npm run bench [-- --quick] [--runs N] [--only id,id] [--no-build] [--no-check] [--out DIR]`
//
// ddt against `dd | ssh dd` (a), the original script's dd → rsync -z → dd pipeline (b) and
// `rsync --inplace` (c) on a private loopback sshd and loop devices, plus a tbf-shaped link
// between two network namespaces, and links with latency through a
// userspace delay line. Writes RESULTS.md and results.json
// (with --quick: quick/RESULTS.md, quick/results.json). Run as root after `npm ci`; see
// benchmarks/README.md. Everything it creates (sshd, namespaces, loop devices, temp files, the
// compiled snapshot of ddt) is removed at the end, on error and on Ctrl-C.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runCleanups } from '../test/harness/hooks.js';
import { fileOfSize, loopAvailable, makeTempDir, removeTempDirs } from '../test/harness/loop.js';
import { sshdAvailable, startSshd } from '../test/harness/sshd.js';
import { machine } from './lib/machine.js';
import { snapshotCli } from './lib/snapshot.js';
import type { Server } from './lib/measure.js';
import { Links, TCP_PORT } from './lib/links.js';
import { ddt, type Endpoint, type Method } from './lib/methods.js';
import type { Aggregate, RunRecord } from './lib/records.js';
import { aggregate, markdown, notesOf, targets, type Report } from './lib/report.js';
import { runScenario, shellQuote } from './lib/runner.js';
import { LATENCY_GROUP, MiB, scenarios, type ImageSpec, type Scenario } from './lib/scenarios.js';
import { writeIslands } from './lib/sparse-target.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    methods: { type: 'string' },
    variant: { type: 'string', multiple: true },
    'no-build': { type: 'boolean', default: false },
    'no-check': { type: 'boolean', default: false },
    out: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  process.stdout.write(readFileSync(join(here, 'README.md'), 'utf8'));
  process.exit(0);
}

const started = Date.now();
const quick = opts.quick!;
const runs = Number(opts.runs ?? (quick ? 1 : 3));
const outDir = opts.out ?? (quick ? join(here, 'out', 'quick') : here);
const log = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

if (!Number.isInteger(runs) || runs < 1) fail('--runs must be a positive integer');
if (!sshdAvailable() || !loopAvailable()) fail('needs root, OpenSSH sshd and loop devices (losetup)');
let all = scenarios(quick);
if (opts.only) {
  // `latency` stands for every scenario over a link with latency.
  const want = opts.only.split(',').flatMap((id) => (id === LATENCY_GROUP ? all.filter((s) => s.link === 'delay').map((s) => s.id) : [id]));
  const unknown = want.filter((id) => !all.some((s) => s.id === id));
  if (unknown.length) fail(`unknown scenario(s) ${unknown.join(', ')}: choose from ${all.map((s) => s.id).join(', ')}`);
  all = all.filter((s) => want.includes(s.id));
}

// The delay line is compiled here (cc) and checked with ping.
for (const tool of ['rsync', 'cmp', 'ip', 'tc', ...(all.some((s) => s.link === 'delay') ? ['cc', 'ping'] : [])]) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    fail(`${tool} is not installed`);
  }
}

// --variant ID='ARGS': one more ddt method in every scenario, `ddt send … ARGS`; leading
// VAR=value words become its environment (e.g. 'MALLOC_ARENA_MAX=2 --channels 2').
for (const spec of opts.variant ?? []) {
  const at = spec.indexOf('=');
  if (at < 1) fail(`--variant wants ID='ARGS', got ${JSON.stringify(spec)}`);
  const words = spec.slice(at + 1).trim().split(/\s+/).filter(Boolean);
  const envs = words.filter((w, i) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(w) && words.slice(0, i).every((x) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(x)));
  const m = ddt(`ddt-${spec.slice(0, at)}`, 'variant', words.slice(envs.length));
  const method: Method = envs.length ? { ...m, label: `${envs.join(' ')} ${m.label}`, argv: (env) => ['env', ...envs, ...m.argv(env)] } : m;
  for (const sc of all) sc.methods.push(method);
}
// --methods ID,…: only these methods (baselines included) in each scenario.
if (opts.methods) {
  const keep = opts.methods.split(',');
  for (const sc of all) sc.methods = sc.methods.filter((m) => keep.includes(m.id) || (m.id.startsWith('ddt-') && opts.variant?.some((v) => `ddt-${v.slice(0, v.indexOf('='))}` === m.id)));
}

async function main(): Promise<void> {
  let cli: string;
  try {
    cli = snapshotCli(root, join(here, `.ddt-snapshot-${process.pid}`), { noBuild: Boolean(opts['no-build']), log });
  } catch (err) {
    fail((err as Error).message);
  }
  const work = await makeTempDir('ddt-bench-');
  const info = machine(root);
  log(`machine: ${info.cores} cores, ${info['CPU model']}; ${quick ? 'quick' : 'full'} run, ${runs} round(s); work dir ${work}`);

  const sshd = await startSshd();
  const setup: string[] = [
    `# loopback sshd (test/harness/sshd.ts), started as: sshd -D -f ${relative(work, join(sshd.dir, 'sshd_config'))} -E sshd.log`,
    ...readFileSync(join(sshd.dir, 'sshd_config'), 'utf8').trim().split('\n').map((l) => `#   ${l}`),
  ];
  const loopServer: Server = { pid: sshd.pid, port: sshd.port, logPath: sshd.logPath };
  const loopEp: Endpoint = {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    clientKeyPath: sshd.clientKeyPath,
    knownHostsPath: sshd.knownHostsPath,
    sshArgs: sshd.sshArgs(),
    exec: [],
  };

  const links = new Links(sshd, { ep: loopEp, server: loopServer }, work, setup, log);
  const images = new Map<string, Promise<string>>();
  const image = (spec: ImageSpec) => {
    const key = `${spec.fill}-${spec.mib}M-seed${spec.seed}`;
    if (!images.has(key)) {
      const path = join(work, `${key}.img`);
      log(`generating ${key}.img`);
      const made = spec.fill === 'islands' ? writeIslands(path, spec) : fileOfSize(path, spec.mib * MiB, spec.fill, spec.seed);
      images.set(key, made.then(() => path));
    }
    return images.get(key)!;
  };

  const results: Report['scenarios'] = [];
  const records: RunRecord[] = [];
  try {
    for (const sc of all) {
      const at = await links.for(sc);
      const { records: recs, changedUnits } = await runScenario(sc, {
        ...at,
        cli,
        work,
        runs,
        check: !opts['no-check'],
        image,
        tcpPort: TCP_PORT,
        log,
      });
      records.push(...recs);
      results.push({ scenario: sc, aggregates: aggregate(sc, recs, shellQuote), ...(changedUnits ? { changedUnits } : {}) });
      write(results, records, info, setup, false);
    }
  } finally {
    await links.close();
    await sshd.stop();
    await removeTempDirs();
  }
  write(results, records, info, setup, true);
}

function write(results: Report['scenarios'], records: RunRecord[], info: Record<string, string>, setup: string[], final: boolean): void {
  const aggs: Aggregate[] = results.flatMap((r) => r.aggregates);
  const scs: Scenario[] = results.map((r) => r.scenario);
  const rep: Report = {
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    mode: quick ? 'quick' : 'full',
    runs,
    minutes: (Date.now() - started) / 60_000,
    machine: { ...info, 'load average at end': loadavg().map((l) => l.toFixed(2)).join(' ') },
    setup,
    scenarios: results,
    targets: targets(scs, aggs, records, changedOf(results)),
    records,
  };
  mkdirSync(outDir, { recursive: true });
  const mdPath = join(outDir, 'RESULTS.md');
  const notes = existsSync(mdPath) ? notesOf(readFileSync(mdPath, 'utf8')) : '';
  const json = {
    ...rep,
    complete: final,
    rounds: runs,
    scenarios: results.map((r) => ({ ...r.scenario, methods: r.scenario.methods.map((m) => ({ id: m.id, label: m.label, family: m.family })), aggregates: r.aggregates, changedUnits: r.changedUnits })),
    runs: records,
  };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(mdPath, markdown(rep, notes));
  if (final) {
    log(`wrote ${relative(process.cwd(), mdPath)} and results.json (${rep.minutes.toFixed(1)} min)`);
    for (const t of rep.targets) log(`${t.pass === null ? 'info  ' : t.pass ? 'met   ' : 'MISSED'} ${t.target}: ${t.measured}`);
  }
}

/** --render FILE: rewrite RESULTS.md (next to FILE, or in --out) from a results.json, e.g. after the report format changed. */
function render(file: string): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as Omit<Report, 'scenarios'> & { runs: RunRecord[]; scenarios: Array<Scenario & { changedUnits?: number }> };
  const records = json.runs;
  const results: Report['scenarios'] = json.scenarios.map((sc) => {
    const recs = records.filter((r) => r.scenario === sc.id);
    return { scenario: sc, aggregates: aggregate(sc, recs, shellQuote), ...(sc.changedUnits ? { changedUnits: sc.changedUnits } : {}) };
  });
  const dir = opts.out ?? dirname(file);
  const mdPath = join(dir, 'RESULTS.md');
  const rounds = Math.max(...records.map((r) => r.round)) + 1;
  const rep: Report = {
    generated: json.generated,
    mode: json.mode,
    runs: rounds,
    minutes: json.minutes,
    machine: json.machine,
    setup: json.setup,
    scenarios: results,
    targets: targets(results.map((r) => r.scenario), results.flatMap((r) => r.aggregates), records, changedOf(results)),
    records,
  };
  writeFileSync(mdPath, markdown(rep, existsSync(mdPath) ? notesOf(readFileSync(mdPath, 'utf8')) : ''));
  for (const t of rep.targets) log(`${t.pass === null ? 'info  ' : t.pass ? 'met   ' : 'MISSED'} ${t.target}: ${t.measured}`);
  log(`rewrote ${relative(process.cwd(), mdPath)}`);
}

if (opts.render) {
  render(opts.render);
  process.exit(0);
}

main().then(
  () => {
    runCleanups();
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    runCleanups();
    process.exitCode = 1;
  },
);

function changedOf(results: Report['scenarios']): Record<string, number> {
  return Object.fromEntries(results.flatMap((r) => (r.changedUnits ? [[r.scenario.id, r.changedUnits]] : [])));
}
