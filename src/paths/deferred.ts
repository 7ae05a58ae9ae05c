/**
 * A data path whose own connections wait until they are worth their set-up. In a re-sync
 * (`--skip-identical`) the target's checksums come from a worker of their own on the helper's
 * connection, so until a block differs the path carries nothing, and where little changed its
 * connections and sessions (OpenSSH masters, a helper per session on the remote host) would
 * cost the run more than the few blocks they carry.
 *
 * So the first blocks go over a light sink, workers on exec channels of the connection the run
 * already has (opened at the first write, or as soon as the run knows that a write is coming:
 * `expectWrite`). Only once the run has sent `lightBytes` that way does it set the path up:
 * the light sink carries on meanwhile, then finishes its blocks in flight and closes (its
 * channels are the path's flusher's and, on a long link, its share of the blocks), and every
 * later block goes over the path. Without a light sink the path is set up at the first write.
 */
import type { BlockPayload, BlockRef, BlockSink } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { PathName } from '../journal/records.js';
import { DdtError, messageOf } from '../errors.js';
import { trace } from '../trace.js';
import type { PreparedPath } from './types.js';

/** What a re-sync sends over its light sink before it sets the path up. */
const LIGHT_BYTES = 256 * 2 ** 20;

/**
 * The light sink's share (undefined: none, the path is set up at the first write).
 * `DDT_LIGHT_BYTES` overrides it, for benchmarks (`off` compares with no light sink) and for
 * tests that reach the handover with little data.
 */
export function lightBytes(env = process.env.DDT_LIGHT_BYTES): number | undefined {
  if (env === 'off') return undefined;
  const n = env === undefined || env === '' ? NaN : Number(env);
  return Number.isSafeInteger(n) && n >= 0 ? n : LIGHT_BYTES;
}

/**
 * `prepare` sets the path up (once); `workers`: the blocks its sink will take at once, the
 * pipeline's concurrency until then; `unitAlgo`: the target's, as the sink would say it;
 * `light`: opens the light sink; `lightBytes`: what it may send before the path is set up.
 */
export function deferredPath(o: {
  name: PathName;
  workers: number;
  prepare(): Promise<PreparedPath>;
  unitAlgo(): ChecksumAlgo | undefined;
  light?: () => Promise<BlockSink>;
  lightBytes?: number;
}): PreparedPath {
  let prepared: Promise<PreparedPath> | undefined;
  let closed = false;
  const real = () => {
    if (closed) return Promise.reject(new DdtError('CLOSED', `the ${o.name} data path is closed`));
    return (prepared ??= (trace(`path ${o.name}: set up`), o.prepare()));
  };
  return {
    name: o.name,
    // What the path records for itself where it has no settings of its own (as a prepared one
    // would, unless it fell back to another path: a resume then tries this one first again).
    record: { name: o.name },
    describe: [],
    takesParts: true,
    openSink: (opts) =>
      Promise.resolve(
        new DeferredSink({
          prepare: real,
          open: async () => (await real()).openSink(opts),
          capacity: o.workers,
          unitAlgo: o.unitAlgo,
          light: o.light,
          lightBytes: o.lightBytes ?? 0,
        }),
      ),
    openSource: async () => (await real()).openSource(),
    close: async (ok) => {
      closed = true;
      const p = await prepared?.catch(() => undefined);
      await p?.close(ok);
    },
  };
}

interface DeferredSinkOptions {
  prepare(): Promise<unknown>;
  open(): Promise<BlockSink>;
  capacity: number;
  unitAlgo(): ChecksumAlgo | undefined;
  light?: () => Promise<BlockSink>;
  lightBytes: number;
}

/**
 * A sink that opens nothing before its first write (or hash, or `expectWrite`); until then it
 * only says what it will take. Then the light sink, where there is one, and once that has sent
 * its share the path's own. It has no stream of its own: a re-sync's target checksums come from
 * the early stream.
 */
class DeferredSink implements BlockSink {
  /** The path's own sink. */
  private opening?: Promise<BlockSink>;
  private lightOpening?: Promise<BlockSink>;
  private lightSink?: BlockSink;
  /** The path's set-up has begun (the light sink carries on meanwhile). */
  private settingUp = false;
  /** The path is set up: the light sink's last blocks, then the path's sink for every block. */
  private handover?: Promise<BlockSink>;
  /** Bytes the light sink has sent. */
  private lightSent = 0;
  /** Calls on the light sink not yet answered, and who waits for them to end. */
  private lightBusy = 0;
  private lightIdle?: () => void;
  /** The sink each block was last written to: its durability is that sink's to tell. */
  private readonly wroteTo = new Map<number, BlockSink>();
  private closed = false;
  readonly takesDelta = true;
  readonly capacity: number;

  constructor(private readonly o: DeferredSinkOptions) {
    this.capacity = o.capacity;
  }

  get unitAlgo(): ChecksumAlgo | undefined {
    return this.o.unitAlgo();
  }

  /** The sink for the next block: the light one until it has sent its share, then the path's. */
  private next(): Promise<BlockSink> {
    // Closed: a late caller (a write after an abort, an early open's hint) opens nothing.
    if (this.closed) return Promise.reject(new DdtError('CLOSED', 'the remote target is closed'));
    if (this.handover) return this.handover;
    if (!this.o.light) return (this.opening ??= this.o.open());
    if (this.lightSent >= this.o.lightBytes) this.setUp();
    return (this.lightOpening ??= this.openLight(this.o.light));
  }

  private openLight(light: () => Promise<BlockSink>): Promise<BlockSink> {
    trace('light sink: opened for the first blocks');
    return light().then(
      (sink) => {
        trace(`light sink: ${sink.capacity} workers`);
        return (this.lightSink = sink);
      },
      (err: unknown) => {
        trace(`light sink: not opened (${messageOf(err)}), the path is set up`);
        return (this.handover ??= this.opening ??= this.o.open());
      },
    );
  }

  /**
   * Set the path up while the light sink carries on. Then the light sink finishes its blocks in
   * flight and closes, so that its channels are free for the path's sink (its flusher, on a long
   * link its share of the blocks), which opens next and takes every block from then on.
   */
  private setUp(): void {
    if (this.settingUp) return;
    this.settingUp = true;
    trace(`light sink: ${this.lightSent} bytes given, the path is set up`);
    void this.o
      .prepare()
      .then(
        () => {
          if (!this.closed) this.handover ??= this.switchOver();
        },
        (err: unknown) => {
          this.handover ??= Promise.reject(err instanceof Error ? err : new Error(String(err)));
        },
      )
      // The writes that follow report a failed handover (a set-up that failed, or a switch that
      // did); one that failed because the run closed the sink meanwhile (its last block
      // answered) has nobody left to tell.
      .then(() => this.handover?.catch(() => undefined));
  }

  /** Called with no `handover` yet: from now on every caller waits for it (see `use`). */
  private async switchOver(): Promise<BlockSink> {
    while (this.lightBusy > 0) await new Promise<void>((resolve) => (this.lightIdle = resolve));
    await this.lightSink?.close();
    if (this.closed) throw new DdtError('CLOSED', 'the remote target is closed');
    trace('light sink: closed, the path takes the blocks');
    return (this.opening ??= this.o.open());
  }

  /**
   * Run `fn` on the sink for the next block. A caller handed the light sink just as the handover
   * began takes the path's instead; one that has it keeps it until done, and the handover waits.
   */
  private async use<R>(fn: (sink: BlockSink, light: boolean) => Promise<R>): Promise<R> {
    for (;;) {
      const sink = await this.next();
      const light = sink === this.lightSink;
      if (light && this.handover) continue;
      if (!light) return fn(sink, false);
      this.lightBusy++;
      try {
        return await fn(sink, true);
      } finally {
        if (--this.lightBusy === 0) this.lightIdle?.();
      }
    }
  }

  expectWrite(): void {
    this.next().catch(() => undefined); // the write that follows reports a failure
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.use((sink, light) => {
      this.wroteTo.set(block.index, sink);
      return sink.writeAt(block, light ? this.counted(payload) : payload, algo, signal);
    });
  }

  /** The payload, its bytes on the wire (as the sink reports them) counted towards the light sink's share. */
  private counted(payload: BlockPayload): BlockPayload {
    if (payload.kind === 'zero') return payload;
    const heard = payload.onWire;
    return {
      ...payload,
      onWire: (n) => {
        this.lightSent += n;
        heard?.(n);
      },
    };
  }

  async durable(block: BlockRef, signal: AbortSignal): Promise<void> {
    const sink = this.wroteTo.get(block.index) ?? (await this.next());
    await sink.durable?.(block, signal);
    // Asked once per write (a retry writes, and records its sink, again): a long run keeps no map of every block.
    if (this.wroteTo.get(block.index) === sink) this.wroteTo.delete(block.index);
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.use((sink) => sink.hashAt(block, algo, signal));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sink of await this.opened()) await sink.close();
  }

  async abort(): Promise<void> {
    this.closed = true;
    await Promise.all((await this.opened()).map((sink) => sink.abort()));
  }

  /** The sinks opened so far (a handover under way opens none once closed). */
  private async opened(): Promise<BlockSink[]> {
    const sinks = await Promise.all([this.lightOpening, this.opening].map((p) => p?.catch(() => undefined)));
    return [...new Set(sinks.filter((s): s is BlockSink => s !== undefined))];
  }
}
