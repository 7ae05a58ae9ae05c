// The Ansible role in contrib/ansible, driven through its example playbooks as a user runs
// them: two "source hosts" (this machine twice, distinct inventory names, local connection)
// each send a loop device to a loop device behind the private test sshd. One host installs
// ddt from a tarball made by `npm pack`, the other uses the built CLI. Asserted: the first
// run migrates both byte for byte; a second run changes nothing and connects nowhere; a
// run whose ddt is SIGKILLed mid-job fails that job as incomplete, and the next run
// resumes it to a byte-identical target; the controller report lists both jobs with exit 0.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CLI } from '../e2e/cli.js';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File, type LoopDevice } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { until } from '../harness/until.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const PLAYBOOKS = join(REPO, 'contrib', 'ansible');

interface Run {
  code: number | null;
  out: string;
}

/** One ansible-playbook run in the playbooks' directory (so their ansible.cfg applies). */
function startPlaybook(dir: string, playbook: string, inventory: string, extraVars: Record<string, string> = {}): { pid: number; done: Promise<Run> } {
  const args = ['-i', inventory, playbook, ...Object.entries(extraVars).flatMap(([k, v]) => ['-e', `${k}=${v}`])];
  const child = spawn('ansible-playbook', args, {
    cwd: PLAYBOOKS,
    env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-local'), ANSIBLE_ASYNC_DIR: join(dir, 'ansible-async'), ANSIBLE_RETRY_FILES_ENABLED: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
  return { pid: child.pid!, done };
}

const playbook = (dir: string, name: string, inventory: string, extraVars: Record<string, string> = {}) => startPlaybook(dir, name, inventory, extraVars).done;

/** What one task printed, from its TASK line to the next. */
function taskOutput(out: string, task: string): string {
  const start = out.indexOf(`TASK [ddt_migrate : ${task}]`);
  assert.ok(start >= 0, `no task "${task}" in:\n${out}`);
  const end = out.indexOf('\nTASK [', start + 1);
  return out.slice(start, end < 0 ? undefined : end);
}

/** The output with every run of white space as one space: the callback wraps long messages. */
const flat = (out: string) => out.replace(/\s+/g, ' ');

/** PLAY RECAP counters per host. */
function recap(out: string): Record<string, Record<string, number>> {
  const hosts: Record<string, Record<string, number>> = {};
  for (const m of out.slice(out.lastIndexOf('PLAY RECAP')).matchAll(/^(\S+)\s+:\s+(.*)$/gm)) {
    hosts[m[1]] = Object.fromEntries([...m[2].matchAll(/(\w+)=(\d+)/g)].map((c) => [c[1], Number(c[2])]));
  }
  return hosts;
}

/** PIDs of running ddt processes (node running the CLI) whose command line names this journal. */
function ddtPids(journal: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (/(^|\/)node$/.test(argv[0]) && argv.includes('--journal') && argv.includes(journal)) pids.push(Number(name));
  }
  return pids;
}

/** The last complete JSON progress event in a `--progress json` file. */
function lastEvent(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith('{'));
  for (const line of lines.reverse()) {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      // the line being written
    }
  }
  return undefined;
}

interface Report {
  jobs: { host: string; name: string; exitCode: number | null; result: string; message: string; summary: Record<string, unknown> | null }[];
  totals: Record<string, number>;
}

describe('contrib/ansible: the ddt_migrate role', function () {
  let sshd: TestSshd;
  let dir: string;
  let tarball: string;
  const src: LoopDevice[] = [];
  const dst: LoopDevice[] = [];

  before(async function () {
    this.timeout(120_000);
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, NEEDS.loop, loopAvailable());
    requireReal(this, 'ansible-playbook', haveCommand('ansible-playbook'));
    requireReal(this, 'sudo', haveCommand('sudo'));
    requireReal(this, 'npm', haveCommand('npm'));
    dir = await makeTempDir('ddt-ansible-');
    sshd = await startSshd();
    for (const [i, fill] of (['mixed', 'random'] as const).entries()) {
      await fileOfSize(join(dir, `src${i}.img`), SIZE, fill, 301 + i);
      await fileOfSize(join(dir, `dst${i}.img`), SIZE, 'zero');
      src.push(await attachLoop(join(dir, `src${i}.img`)));
      dst.push(await attachLoop(join(dir, `dst${i}.img`)));
    }
    const packed = await execFileP('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: REPO });
    tarball = join(dir, packed.stdout.trim().split('\n').at(-1)!);
    assert.ok(existsSync(tarball), `npm pack made no ${tarball}`);
  });
  after(async () => sshd?.stop());

  /** Two source hosts on this machine, one disk each; `wave` keeps each wave's journals apart. */
  async function inventory(wave: string, bwlimit: [string, string] | undefined): Promise<string> {
    const ssh = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath];
    const job = (i: number, extra: Record<string, unknown>) => ({
      name: `disk-${i}`,
      source: src[i].dev,
      target: `root@127.0.0.1:${dst[i].dev}`,
      block_size: '1M',
      options: ssh,
      ...extra,
    });
    const inv = {
      ddt_sources: {
        vars: { ansible_connection: 'local' },
        hosts: {
          'src-a': {
            ddt_journal_dir: join(dir, `${wave}-state-a`),
            // Installed from the packed tarball into a private prefix; npm's cache from `npm ci` serves its dependencies.
            ddt_install_prefix: join(dir, 'prefix-a'),
            ddt_package: tarball,
            ddt_npm_args: ['--prefer-offline'],
            ...(bwlimit ? { ddt_bwlimit: bwlimit[0] } : {}),
            ddt_jobs: [job(0, {})],
          },
          'src-b': {
            ddt_journal_dir: join(dir, `${wave}-state-b`),
            // Already there: nothing to install.
            ddt_bin: CLI,
            ddt_install: false,
            ddt_jobs: [job(1, { via: 'stream', ...(bwlimit ? { bwlimit: bwlimit[1] } : {}) })],
          },
        },
      },
    };
    const path = join(dir, `${wave}-inventory.yml`);
    await writeFile(path, JSON.stringify(inv, null, 2));
    return path;
  }

  const report = (wave: string): Report => JSON.parse(readFileSync(join(dir, `${wave}-report`, 'report.json'), 'utf8')) as Report;
  const connections = () => (readFileSync(sshd.logPath, 'utf8').match(/^Connection from /gm) ?? []).length;
  const identical = async (i: number) => assert.equal(await sha256File(dst[i].dev), await sha256File(src[i].dev), `disk-${i}: target differs from source`);

  it('is clean for ansible-lint (or, without it, for ansible-playbook --syntax-check)', async function () {
    this.timeout(120_000);
    const inv = join(PLAYBOOKS, 'inventory.example.yml');
    for (const book of ['migrate.yml', 'status.yml']) await execFileP('ansible-playbook', ['--syntax-check', '-i', inv, book], { cwd: PLAYBOOKS });
    requireReal(this, 'ansible-lint', haveCommand('ansible-lint'));
    const lint = await execFileP('ansible-lint', ['--offline', '--nocolor'], { cwd: PLAYBOOKS, env: { ...process.env, NO_COLOR: '1' } }).catch((e: { stdout: string; stderr: string }) => {
      throw new Error(`ansible-lint found problems:\n${e.stdout}\n${e.stderr}`);
    });
    assert.match(lint.stdout + lint.stderr, /0 failure\(s\), 0 warning\(s\)/);
  });

  it('migrates a disk from each of two hosts, installing ddt where it is missing, and reports both', async function () {
    this.timeout(300_000);
    const inv = await inventory('wave1', undefined);
    const r = await playbook(dir, 'migrate.yml', inv, { ddt_report_dir: join(dir, 'wave1-report') });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /changed: \[src-a\] => \(item=disk-0: ddt send\)/);
    assert.match(r.out, /changed: \[src-b\] => \(item=disk-1: ddt send\)/);
    const install = taskOutput(r.out, 'Install ddt');
    assert.match(install, /^changed: \[src-a\]/m, `src-a had no ddt: the role installs it\n${install}`);
    assert.match(install, /^skipping: \[src-b\]/m, `src-b has ddt: nothing to install\n${install}`);
    assert.ok(existsSync(join(dir, 'prefix-a', 'bin', 'ddt')), 'ddt installed into the prefix');
    await identical(0);
    await identical(1);
    const rep = report('wave1');
    assert.deepEqual(
      rep.jobs.map((j) => [j.host, j.name, j.exitCode, j.result, j.summary?.bytesTotal]),
      [
        ['src-a', 'disk-0', 0, 'ok', SIZE],
        ['src-b', 'disk-1', 0, 'ok', SIZE],
      ],
    );
  });

  it('changes nothing and connects nowhere when run again (one host per batch, one transferring at a time)', async function () {
    this.timeout(300_000);
    const before = connections();
    const inv = await inventory('wave1', undefined);
    const reportBefore = readFileSync(join(dir, 'wave1-report', 'report.md'), 'utf8');
    const r = await playbook(dir, 'migrate.yml', inv, { ddt_report_dir: join(dir, 'wave1-report'), ddt_wave: '1', ddt_throttle: '1' });
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.match(/^PLAY \[Migrate disks with ddt\]/gm)?.length, 2, `ddt_wave=1: one batch per host\n${r.out}`);
    const counts = recap(r.out);
    for (const host of ['src-a', 'src-b']) {
      assert.equal(counts[host]?.changed, 0, `${host} changed something:\n${r.out}`);
      assert.equal(counts[host]?.failed, 0, r.out);
    }
    assert.doesNotMatch(r.out, /ddt (send|resume)\)/, 'a finished job is not run again');
    assert.equal(connections(), before, 'a finished job needs no connection');
    assert.equal(readFileSync(join(dir, 'wave1-report', 'report.md'), 'utf8'), reportBefore);
  });

  it('fails a job whose ddt is SIGKILLed as incomplete; the next run resumes it to a byte-identical target', async function () {
    this.timeout(300_000);
    // New data on both sources, new journals: the next wave.
    await fileOfSize(src[0].dev, SIZE, 'random', 311);
    await fileOfSize(src[1].dev, SIZE, 'mixed', 312);
    // Slow enough to be caught mid-job (payload bytes per second; random data is all payload):
    // disk-0 through a schedule of the host, disk-1 through its own rate.
    const inv = await inventory('wave2', ['*=2M', '8M']);
    const reportDir = join(dir, 'wave2-report');
    const progressA = join(dir, 'wave2-state-a', 'disk-0.progress.jsonl');
    const journalA = join(dir, 'wave2-state-a', 'disk-0.journal');
    const run = startPlaybook(dir, 'migrate.yml', inv, { ddt_report_dir: reportDir, ddt_async: '600', ddt_poll: '0', ddt_wait_delay: '1' });

    await until('disk-0 to prove its first blocks', () => Number(lastEvent(progressA)?.bytesVerified ?? 0) > 0, 120_000, 100);
    // The follow-up report, while the jobs run in the background.
    const status = await playbook(dir, 'status.yml', inv);
    assert.equal(status.code, 0, status.out);
    assert.match(flat(status.out), /disk-0: running, \d+\/64 blocks verified/);

    const pids = ddtPids(journalA);
    assert.equal(pids.length, 1, `one ddt process for ${journalA}: ${pids}`);
    process.kill(pids[0], 'SIGKILL');
    const killed = await run.done;
    assert.equal(killed.code, 2, `the play fails a host whose job did not finish:\n${killed.out}`);
    assert.match(flat(killed.out), /disk-0: ddt was killed \(exit 137\), incomplete: \d+ of 64 blocks verified; run the playbook again to resume from /);
    const counts = recap(killed.out);
    assert.equal(counts['src-a']?.failed, 1, killed.out);
    assert.equal(counts['src-b']?.failed, 0, killed.out);
    await identical(1);
    assert.deepEqual(
      report('wave2').jobs.map((j) => [j.name, j.exitCode, j.result]),
      [
        ['disk-0', 137, 'incomplete'],
        ['disk-1', 0, 'ok'],
      ],
    );

    // The re-run lifts the limit (a changed rate applies to the resumed job too).
    const resumed = await playbook(dir, 'migrate.yml', inv, { ddt_report_dir: reportDir, ddt_bwlimit: '0' });
    assert.equal(resumed.code, 0, resumed.out);
    assert.match(resumed.out, /changed: \[src-a\] => \(item=disk-0: ddt resume\)/);
    assert.equal(recap(resumed.out)['src-b']?.changed, 0, resumed.out);
    await identical(0);
    await identical(1);

    const rep = report('wave2');
    assert.deepEqual(
      rep.jobs.map((j) => [j.host, j.name, j.exitCode, j.result]),
      [
        ['src-a', 'disk-0', 0, 'ok'],
        ['src-b', 'disk-1', 0, 'ok'],
      ],
    );
    assert.equal(rep.totals.ok, 2);
    const md = readFileSync(join(reportDir, 'report.md'), 'utf8');
    assert.match(md, /^\| host \| job \| source \| target \| bytes \| seconds \| rate \| bytes on wire \| exit \| result \|$/m);
    for (const [host, i] of [['src-a', 0], ['src-b', 1]] as const) {
      assert.match(md, new RegExp(`^\\| ${host} \\| disk-${i} \\| ${src[i].dev} \\| root@127\\.0\\.0\\.1:${dst[i].dev} \\| 64\\.0 MiB \\| [\\d.]+ \\| [\\d.]+ \\w+/s \\| [\\d.]+ \\w+ \\| 0 \\| ok \\|$`, 'm'));
    }
  });
});
