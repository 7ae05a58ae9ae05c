// A re-sync's data path that waits until it is worth its set-up: the first blocks go over a
// light sink, the path is set up once that has sent its share, and the light sink hands over
// only after its blocks in flight are answered. Sinks here are in-memory recorders.
import assert from 'node:assert/strict';
import type { BlockPart, BlockPayload, BlockRef, BlockSink } from '../../src/block/types.js';
import { deferredPath, lightBytes } from '../../src/paths/deferred.js';
import type { PreparedPath } from '../../src/paths/types.js';

const signal = new AbortController().signal;
const block = (index: number): BlockRef => ({ index, offset: index * 1024, length: 1024 });

/** A delta of `n` bytes, as the pipeline hands it over. */
function delta(n: number): BlockPayload {
  return {
    kind: 'delta',
    parts: (async function* (): AsyncGenerator<BlockPart> {
      yield { kind: 'raw', offset: 0, length: n, data: Buffer.alloc(n, 1) };
    })(),
  };
}

/** A sink that logs what it was asked; `hold`: writes wait until released. */
function recorder(name: string, log: string[], o: { hold?: Promise<void>; closing?: Promise<void> } = {}): BlockSink {
  return {
    capacity: 2,
    async writeAt(b: BlockRef, p: BlockPayload) {
      // As a remote sink does: each part's bytes reported as they go on the wire.
      if (p.kind === 'delta' || p.kind === 'parts') for await (const part of p.parts) if (part.kind !== 'zero') p.onWire?.(part.data.length);
      await o.hold;
      log.push(`${name} wrote ${b.index}`);
      return 'sum';
    },
    async durable(b: BlockRef) {
      log.push(`${name} durable ${b.index}`);
    },
    async hashAt() {
      return 'sum';
    },
    async close() {
      await o.closing;
      log.push(`${name} closed`);
    },
    async abort() {
      log.push(`${name} aborted`);
    },
  };
}

function pathWith(log: string[], o: { share: number; hold?: Promise<void>; lightFails?: boolean; settingUp?: Promise<void>; lightClosing?: Promise<void> }) {
  let prepares = 0;
  const real = {
    name: 'openssh',
    record: { name: 'openssh' },
    describe: [],
    takesParts: true,
    openSink: async () => (log.push('path sink opened'), recorder('path', log)),
    openSource: async () => assert.fail('no source'),
    close: async () => void log.push('path closed'),
  } as unknown as PreparedPath;
  const path = deferredPath({
    name: 'openssh',
    workers: 4,
    prepare: async () => {
      prepares++;
      await o.settingUp;
      log.push('path set up');
      return real;
    },
    unitAlgo: () => undefined,
    light: async () => {
      if (o.lightFails) throw new Error('no channel');
      log.push('light opened');
      return recorder('light', log, { hold: o.hold, closing: o.lightClosing });
    },
    lightBytes: o.share,
  });
  return { path, prepares: () => prepares };
}

describe('deferredPath with a light sink: the path set up only once much is sent', () => {
  it('sends a small delta over the light sink alone', async () => {
    const log: string[] = [];
    const { path, prepares } = pathWith(log, { share: 10_000 });
    const sink = await path.openSink({});
    assert.equal(await sink.writeAt(block(0), delta(100), 'xxh64', signal), 'sum');
    assert.equal(await sink.writeAt(block(1), delta(100), 'xxh64', signal), 'sum');
    await sink.durable!(block(1), signal);
    await sink.close();
    await path.close(true);
    assert.equal(prepares(), 0);
    assert.deepEqual(log, ['light opened', 'light wrote 0', 'light wrote 1', 'light durable 1', 'light closed']);
  });

  it('hands over once the share is sent: the light sink answers its blocks in flight, closes, then the path opens', async () => {
    const log: string[] = [];
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const { path, prepares } = pathWith(log, { share: 150, hold });
    const sink = await path.openSink({});
    const first = sink.writeAt(block(0), delta(100), 'xxh64', signal);
    await tick();
    const second = sink.writeAt(block(1), delta(100), 'xxh64', signal); // still within the share: light
    await tick();
    const third = sink.writeAt(block(2), delta(100), 'xxh64', signal); // share used up: the path is set up
    await tick();
    assert.equal(prepares(), 1);
    assert.ok(!log.includes('light closed'), 'the light sink stays while its blocks are in flight');
    assert.ok(!log.includes('path sink opened'));
    release();
    await Promise.all([first, second, third]);
    const fourth = await sink.writeAt(block(3), delta(100), 'xxh64', signal);
    assert.equal(fourth, 'sum');
    const closedAt = log.indexOf('light closed');
    assert.ok(log.includes('light wrote 2') && closedAt > log.indexOf('light wrote 2'), log.join(', '));
    assert.ok(log.indexOf('path sink opened') > closedAt, log.join(', '));
    assert.ok(log.includes('path wrote 3'));
    // Each block's durability is asked of the sink that wrote it.
    await sink.durable!(block(0), signal);
    await sink.durable!(block(3), signal);
    assert.ok(log.includes('light durable 0') && log.includes('path durable 3'), log.join(', '));
    await sink.close();
    await path.close(true);
    assert.ok(log.includes('path closed'));
  });

  it('sets the path up at once when the light sink cannot open', async () => {
    const log: string[] = [];
    const { path, prepares } = pathWith(log, { share: 10_000, lightFails: true });
    const sink = await path.openSink({});
    await sink.writeAt(block(0), delta(100), 'xxh64', signal);
    assert.equal(prepares(), 1);
    assert.deepEqual(log, ['path set up', 'path sink opened', 'path wrote 0']);
    await sink.close();
    await path.close(true);
  });

  it('opens no path sink once closed, even where the set-up was under way', async () => {
    const log: string[] = [];
    let ready!: () => void;
    const { path, prepares } = pathWith(log, { share: 0, settingUp: new Promise<void>((r) => (ready = r)) });
    const sink = await path.openSink({});
    await sink.writeAt(block(0), delta(100), 'xxh64', signal); // share 0: the set-up begins, the light sink carries this one
    assert.equal(prepares(), 1);
    await sink.close();
    ready();
    await tick();
    await path.close(true);
    assert.ok(log.includes('light wrote 0'));
    assert.ok(!log.includes('path sink opened'), log.join(', '));
  });

  it('closes quietly where the run closes it while the handover is closing the light sink', async () => {
    const log: string[] = [];
    const unhandled: unknown[] = [];
    const heard = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', heard);
    try {
      let release!: () => void;
      let closed!: () => void;
      const { path, prepares } = pathWith(log, { share: 50, hold: new Promise<void>((r) => (release = r)), lightClosing: new Promise<void>((r) => (closed = r)) });
      const sink = await path.openSink({});
      const first = sink.writeAt(block(0), delta(100), 'xxh64', signal);
      await tick();
      const second = sink.writeAt(block(1), delta(100), 'xxh64', signal); // share used up: the path is set up
      await tick();
      assert.equal(prepares(), 1);
      release();
      assert.deepEqual(await Promise.all([first, second]), ['sum', 'sum']);
      await tick();
      // The pipeline's last block is answered and the handover is closing the light sink: the
      // run closes the sink now.
      assert.ok(log.includes('path set up') && !log.includes('light closed'), log.join(', '));
      const closing = sink.close();
      closed();
      await closing;
      for (let i = 0; i < 5; i++) await tick();
      await path.close(true);
      assert.deepEqual(unhandled, [], 'nothing left to reject unheard');
      assert.ok(!log.includes('path sink opened'), log.join(', '));
      await assert.rejects(sink.writeAt(block(2), delta(100), 'xxh64', signal), /closed/);
    } finally {
      process.off('unhandledRejection', heard);
    }
  });

  it('reads its share from DDT_LIGHT_BYTES: a number, or off for none', () => {
    assert.equal(lightBytes('1'), 1);
    assert.equal(lightBytes('off'), undefined);
    assert.equal(lightBytes(undefined), 256 * 2 ** 20);
    assert.equal(lightBytes('lots'), 256 * 2 ** 20);
  });
});

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
