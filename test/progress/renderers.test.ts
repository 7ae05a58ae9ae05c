import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProgressAggregator } from '../../src/progress/aggregator.js';
import type { ProgressEvent } from '../../src/progress/events.js';
import { JsonRenderer } from '../../src/progress/json.js';
import { PlainRenderer, progressLine } from '../../src/progress/plain.js';
import { NoopRenderer } from '../../src/progress/renderer.js';
import { createRenderer } from '../../src/progress/select.js';
import { TtyRenderer } from '../../src/progress/tty.js';

const MiB = 1024 * 1024;

/** Collects everything written to a stream. */
function capture(isTTY = false) {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  Object.assign(stream, { isTTY, columns: 200 });
  return { stream, text: () => text, lines: () => text.split('\n').filter((l) => l.length > 0) };
}

const start: ProgressEvent = {
  type: 'start',
  command: 'send',
  blocks: 4,
  blockSize: MiB,
  bytesTotal: 4 * MiB,
  blocksDone: 0,
  bytesDone: 0,
  engine: 'native',
  source: 'disk.img',
  target: 'root@vm:/dev/vdb',
};

/** Plays a four-block run with real time between blocks, so tickers fire in between. */
async function playRun(agg: ProgressAggregator, warning?: string): Promise<void> {
  agg.handle(start);
  for (let i = 0; i < 4; i++) {
    await sleep(30);
    agg.handle({ type: 'block', index: i, state: 'read', bytes: MiB });
    if (i === 1) {
      agg.handle({ type: 'block', index: i, state: 'zero', bytes: MiB });
      continue;
    }
    agg.handle({ type: 'bytes', index: i, wire: MiB, acked: MiB, connection: i % 2 });
    agg.handle({ type: 'block', index: i, state: 'sent', bytes: MiB });
    agg.handle({ type: 'block', index: i, state: 'verified', bytes: MiB });
    if (i === 2 && warning) agg.handle({ type: 'warning', message: warning });
  }
  await sleep(30);
  agg.handle({ type: 'done', ok: true, exitCode: 0 });
}

describe('progress/renderers', () => {
  it('json: progress lines at least every interval, warnings as events, one final done line', async () => {
    const out = capture();
    const agg = new ProgressAggregator();
    const renderer = new JsonRenderer(agg, out.stream, { intervalMs: 20 });
    renderer.start();
    await playRun(agg, 'server refused channel 3; using 2 per connection');
    renderer.stop({ ok: true, exitCode: 0 });
    renderer.stop({ ok: false, exitCode: 1 }); // idempotent: the first outcome stands
    await sleep(5);

    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form JSON lines under test
    const events = out.lines().map((line) => JSON.parse(line) as { type: string; [key: string]: any });
    const progress = events.filter((e) => e.type === 'progress');
    assert.ok(progress.length >= 4, `expected several progress lines, got ${progress.length}`);
    for (const e of events) {
      assert.ok(!Number.isNaN(Date.parse(e.time)), 'time is ISO 8601');
      assert.equal(e.warnings, undefined, 'warnings travel as their own events');
    }
    const verified = progress.map((e) => e.blocks.verified as number);
    assert.deepEqual([...verified].sort((a, b) => a - b), verified, 'counters only go up');
    assert.ok(verified.at(-1)! > verified[0]!, 'progress was seen while working');

    const warnings = events.filter((e) => e.type === 'warning');
    assert.deepEqual(warnings.map((e) => e.message), ['server refused channel 3; using 2 per connection']);

    const done = events.filter((e) => e.type === 'done');
    assert.equal(done.length, 1);
    assert.equal(events.at(-1), done[0]);
    assert.equal(done[0]!.ok, true);
    assert.equal(done[0]!.exitCode, 0);
    assert.deepEqual(done[0]!.blocks, { total: 4, read: 4, sent: 3, verified: 4, zero: 1, identical: 0, retried: 0, failed: 0 });
    assert.equal(done[0]!.bytesVerified, 4 * MiB);
    assert.equal(done[0]!.bytesWire, 3 * MiB);
    assert.equal(done[0]!.percent, 100);
    assert.equal(done[0]!.source, 'disk.img');
  });

  it('json: done takes the outcome from the done event when stop() gets none', () => {
    const out = capture();
    const agg = new ProgressAggregator();
    const renderer = new JsonRenderer(agg, out.stream, { intervalMs: 1000 });
    renderer.start();
    agg.handle({ type: 'done', ok: false, exitCode: 4 });
    renderer.stop();
    const events = out.lines().map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(events.map((e) => e.type), ['progress', 'done']);
    assert.equal(events[1]!.ok, false);
    assert.equal(events[1]!.exitCode, 4);
  });

  it('plain: formats the progress line', () => {
    let t = 0;
    const agg = new ProgressAggregator({ now: () => t });
    agg.handle({ ...start, blocks: 16, blockSize: 64 * MiB, bytesTotal: 1024 * MiB });
    for (let i = 0; i < 6; i++) {
      t += 1000;
      agg.handle({ type: 'block', index: i, state: i < 2 ? 'zero' : 'verified', bytes: 64 * MiB });
    }
    t += 500;
    agg.handle({ type: 'bytes', index: 6, wire: 16 * MiB, acked: 32 * MiB });
    assert.equal(
      progressLine(agg.snapshot()),
      // 416 MiB moved in 6.5 s: 64 MiB/s, and 608 MiB to go.
      'ddt: 384.0 MiB / 1.0 GiB (37.5%) verified, 64.0 MiB/s, ETA 10s, blocks 6/16 verified, 2 zero, 0 retried; ' +
        '416.0 MiB at the target, 16.0 MiB on the wire, avg 64.0 MiB/s, 7s elapsed',
    );
    agg.handle({ type: 'block', index: 7, state: 'identical', bytes: 64 * MiB });
    agg.handle({ type: 'block', index: 8, state: 'failed', bytes: 64 * MiB });
    assert.match(progressLine(agg.snapshot()), /blocks 7\/16 verified, 2 zero, 0 retried, 1 identical, 1 failed; /);
  });

  it('plain: periodic lines once the transfer starts, warnings, and a final line', async () => {
    const out = capture();
    const agg = new ProgressAggregator();
    const renderer = new PlainRenderer(agg, out.stream, { intervalMs: 20 });
    renderer.start();
    await sleep(50); // setup phase: nothing to say yet
    assert.equal(out.text(), '');
    await playRun(agg, 'free space in /root is low');
    renderer.stop();
    await sleep(5);

    const lines = out.lines();
    const progress = lines.filter((l) => / verified, .*\/s, ETA /.test(l));
    assert.ok(progress.length >= 3, `expected several progress lines, got:\n${lines.join('\n')}`);
    for (const l of progress) assert.match(l, /^ddt: [\d.]+ (B|KiB|MiB) \/ 4\.0 MiB \([\d.]+%\) verified, /);
    assert.deepEqual(lines.filter((l) => l.includes('warning')), ['ddt: warning: free space in /root is low']);
    assert.equal(
      lines.at(-1),
      `ddt: done: 4.0 MiB / 4.0 MiB (100.0%) verified in ${lines.at(-1)!.match(/in (\S+ \(avg \S+ \S+\)),/)![1]}, 3.0 MiB on the wire, blocks 4/4 verified, 1 zero, 0 retried`,
    );
  });

  it('plain: a failed run says so in the final line', () => {
    const out = capture();
    const agg = new ProgressAggregator();
    const renderer = new PlainRenderer(agg, out.stream);
    renderer.start();
    agg.handle(start);
    renderer.stop({ ok: false, exitCode: 4 });
    assert.match(out.lines().at(-1)!, /^ddt: stopped \(exit 4\): 0 B \/ 4\.0 MiB \(0\.0%\) verified/);
  });

  it('tty: draws the bar, block counts, connection rates and warnings with cli-progress', async () => {
    const out = capture(true);
    const agg = new ProgressAggregator();
    const renderer = new TtyRenderer(agg, out.stream, { intervalMs: 20 });
    renderer.start();
    await playRun(agg, 'connection 1 lost, reconnecting');
    renderer.stop({ ok: true, exitCode: 0 });
    renderer.stop();
    await sleep(5);

    const text = out.text();
    assert.ok(text.includes('ddt: warning: connection 1 lost, reconnecting\n'));
    // Last frame: the final state.
    const lastBar = text.lastIndexOf('send [');
    assert.ok(lastBar >= 0, 'bar drawn');
    const final = text.slice(lastBar);
    assert.match(final, /100\.0%  4\.0 MiB \/ 4\.0 MiB  +[\d.]+ \S+\/s  ETA 0s/);
    assert.match(final, /proven 4\.0 MiB \(100\.0%\), 3\.0 MiB on the wire, avg [\d.]+ \S+\/s, \d+s elapsed/);
    assert.match(final, /blocks 4\/4 verified, 1 zero, 0 identical, 0 retried, 0 failed\S*\n\S*connections #0 [\d.]+ \S+\/s, #1 [\d.]+ \S+\/s/);
    assert.ok(text.endsWith('\n'), 'leaves the cursor on a fresh line');
  });

  it('select: picks the renderer for each mode', () => {
    const agg = new ProgressAggregator();
    const { stream } = capture();
    assert.ok(createRenderer('none', agg, stream, true) instanceof NoopRenderer);
    assert.ok(createRenderer('json', agg, stream, true) instanceof JsonRenderer);
    assert.ok(createRenderer('plain', agg, stream, true) instanceof PlainRenderer);
    assert.ok(createRenderer('tty', agg, stream, false) instanceof TtyRenderer);
    assert.ok(createRenderer('auto', agg, stream, true) instanceof TtyRenderer);
    assert.ok(createRenderer('auto', agg, stream, false) instanceof PlainRenderer);
  });
});
