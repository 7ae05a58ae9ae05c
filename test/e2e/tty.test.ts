// The live display on a terminal: run the built CLI under `script` so stderr is a pseudo-terminal.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';
import { lastVisibleLine, renderScreen } from '../harness/vt-screen.js';
import { CLI, startCli } from './cli.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** Quote for the `sh -c` that `script -c` runs. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('e2e: progress on a terminal and on request', function () {
  let dir: string;
  let src: string;

  before(async function () {
    requireReal(this, 'script', haveCommand('script'));
    dir = await makeTempDir('ddt-e2e-tty-');
    src = join(dir, 'src.img');
    // Random data so that nothing is skipped: the copy lasts a few seconds and the display ticks.
    await fileOfSize(src, 384 * MiB, 'random', 301);
  });

  it('on a TTY: cli-progress bars redrawn in place with bytes, a rate and an ETA, then the summary', async () => {
    const target = join(dir, 'tty.img');
    const cmd = [process.execPath, CLI, 'copy', src, target, '-b', '4M', '--journal', join(dir, 'tty.journal')].map(q).join(' ');
    // -q quiet, -f flush, -e child's exit status, -c command; the typescript goes to /dev/null.
    const { stdout } = await run('script', ['-qfec', cmd, '/dev/null'], { maxBuffer: 64 * MiB, env: { ...process.env, COLUMNS: '100', LINES: '30' } });
    const screen = stdout.replace(/\r/g, '\n');
    assert.match(stdout, /\x1b\[/, 'expected terminal control sequences (lines redrawn in place)');
    assert.match(screen, /copy \[[=-]+\]\s+\d+\.\d%\s+[\d.]+ (B|KiB|MiB|GiB) \/ 384\.0 MiB/, 'bar with bytes done / total');
    assert.match(screen, /\d+\.\d (KiB|MiB|GiB)\/s/, 'a current rate');
    assert.match(screen, /ETA \d+(m\d\d)?s/, 'a numeric ETA');
    assert.match(screen, /blocks \d+\/96 verified, \d+ zero, \d+ identical, \d+ retried, \d+ failed/);
    assert.match(screen, /done: 96\/96 blocks verified/);
    assert.match(screen, /384\.0 MiB proven in \S+ \([\d.]+ (KiB|MiB|GiB)\/s\)/, 'summary with the throughput');
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('asks first: the question stays the last thing on the screen until answered, then the bars start clean', async () => {
    const target = join(dir, 'ask.img');
    await fileOfSize(target, 384 * MiB, 'zero', 1); // exists: overwriting it needs a yes
    const cmd = [process.execPath, CLI, 'copy', src, target, '-b', '4M', '--journal', join(dir, 'ask.journal')].map(q).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, COLUMNS: '100', LINES: '30' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    for (let i = 0; i < 6000 && !out.includes('[y/N]'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(out.includes('[y/N]'), `no question asked: ${JSON.stringify(out)}`);
    // A display ticking every 250 ms would have drawn over the question by now. (Waiting
    // longer can only let a wrong display show; a slow machine cannot fail this.)
    await new Promise((r) => setTimeout(r, 1500));
    const beforeAnswer = out;
    const asked = renderScreen(beforeAnswer);
    assert.match(lastVisibleLine(asked), /^Overwrite file .*ask\.img .* with .*src\.img .*\? \[y\/N\]$/, asked.join('\n'));
    const afterPrompt = beforeAnswer.slice(beforeAnswer.indexOf('[y/N]'));
    assert.doesNotMatch(afterPrompt, /\x1b\[\d*[ABJK]/, 'no cursor-up or erase after the question');
    assert.doesNotMatch(beforeAnswer, /connecting|\[[=-]{5,}\]/, 'no progress drawn before the answer');

    child.stdin.write('y\r');
    assert.equal(await exited, 0, out);
    const screen = renderScreen(out);
    const question = screen.findIndex((l) => /^Overwrite file .*\? \[y\/N\] y$/.test(l));
    assert.ok(question >= 0, `the question and its answer stay on the screen:\n${screen.join('\n')}`);
    const below = screen.slice(question + 1).join('\n');
    assert.match(below, /^copy \[=+\] 100\.0%\s+384\.0 MiB \/ 384\.0 MiB/m, 'the bars, below the answer');
    assert.match(below, /^proven 384\.0 MiB \(100\.0%\), 384\.0 MiB on the wire, avg [\d.]+ \S+\/s, \S+ elapsed$/m);
    assert.match(below, /done: 96\/96 blocks verified/);
    assert.doesNotMatch(out, /connecting|0 B \/ 0 B/, 'no setup frame: the bars start with the transfer');
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('SIGUSR1 prints one status line with rate and ETA, whatever the display', async () => {
    const target = join(dir, 'usr1.img');
    const journal = join(dir, 'usr1.journal');
    const r = startCli(['copy', src, target, '-b', '4M', '--channels', '1', '--progress', 'none', '--journal', journal]);
    for (let i = 0; i < 3000 && !(existsSync(journal) && readFileSync(journal, 'utf8').includes('"state":"verified"')); i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    r.child.kill('SIGUSR1');
    const done = await r.done;
    assert.equal(done.code, 0, done.stderr);
    const lines = done.stderr.split('\n').filter((l) => /verified/.test(l));
    assert.equal(lines.length, 1, done.stderr);
    assert.match(lines[0]!, /^ddt: [\d.]+ \S+ \/ 384\.0 MiB \([\d.]+%\) verified, [\d.]+ \S+\/s, ETA \S+, blocks \d+\/96 verified/);
  });
});
