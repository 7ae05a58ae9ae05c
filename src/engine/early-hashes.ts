/**
 * `--skip-identical` on a new job: both ends' checksums (blocks and units) start before the
 * pipeline does. Where nothing or little changed, a re-sync is a race of the two ends' hashing:
 * the local source's begins as the run starts, beside the connection and the remote set-up;
 * the remote target's, on a worker of its own, opens once the ends are checked, beside the
 * lock, and reads once the lock is held (what it reads is what this run is the only writer
 * of, as any proof must be), before the pipeline starts and whether or not the data path has
 * opened its block workers (see deferredPath: a re-sync's wait for a block that differs).
 *
 * What the pipeline will ask for may differ from what was started (a source that turns out
 * not to be sent, another checksum than the likely one), so a stream is handed out only for
 * exactly the same blocks, algorithm and units; otherwise it is stopped and the end is hashed
 * as the pipeline asks.
 */
import type { BlockDigest, BlockRef, UnitSpec } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { probeDevice } from '../local/device.js';
import { readsDirect } from '../local/block-reader.js';
import { hashLocally, localHasher } from '../local/local-hasher.js';
import { planBlocks } from '../plan/block-plan.js';
import { helperCacheName, helperScript, type RemoteHelper } from '../remote/helper.js';
import { hasherOffer } from '../remote/native-hasher.js';
import { prehashDigests, type PrehashRequest, type PrehashStart } from '../remote/prehash.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { sameLastWriter, type LastWriter } from '../block/last-writer.js';
import { trace } from '../trace.js';
import { HashAhead } from './hash-ahead.js';
import type { JobSetup } from './job-setup.js';
import { unitsOf, type EarlyEnds, type HashedAhead } from './skip-identical.js';

class EarlyHashes implements HashedAhead {
  private readonly stop = new AbortController();
  private readonly ahead: HashAhead;
  private taken = false;

  /** `units`: what the stream hashes units as (settled once the stream reads). */
  constructor(
    start: (signal: AbortSignal) => AsyncIterable<BlockDigest>,
    readonly blocks: BlockRef[],
    readonly algo: ChecksumAlgo,
    readonly units: () => UnitSpec | undefined,
    name: string,
  ) {
    this.ahead = new HashAhead(start(this.stop.signal), name);
  }

  take(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): HashAhead | undefined {
    const mine = this.units();
    const same = !this.taken && this.reads(blocks, algo) && units?.unit === mine?.unit && units?.algo === mine?.algo;
    if (!same || this.stop.signal.aborted) {
      this.end();
      return undefined;
    }
    this.taken = true;
    if (signal.aborted) this.end();
    else signal.addEventListener('abort', () => this.end(), { once: true });
    return this.ahead;
  }

  /** It hashes exactly these blocks with this checksum (its units aside). */
  reads(blocks: BlockRef[], algo: ChecksumAlgo): boolean {
    return algo === this.algo && sameBlocks(blocks, this.blocks);
  }

  end(): void {
    this.stop.abort();
  }

  /** See HashAhead.watch. */
  watch(fn: (d: BlockDigest | undefined) => void): void {
    this.ahead.watch(fn);
  }
}

/**
 * The local source's stream, for a new send with --skip-identical whose digests ddt-hash makes
 * here (not with --noerror: only the block reader zero-fills unreadable sectors). The checksum
 * is the likely one (xxh64 unless asked for); the remote end's choice comes later.
 */
export async function earlySource(s: JobSetup): Promise<EarlyHashes | undefined> {
  if (s.command !== 'send' || s.source.endpoint || !s.target.endpoint || !s.options.skipIdentical) return undefined;
  if (s.dryRun || s.previous || s.options.noerror) return undefined;
  const bin = localHasher();
  if (!bin) return undefined;
  const info = await probeDevice(s.source.path).catch(() => undefined);
  if (!info || info.size === 0) return undefined;
  let blocks: BlockRef[];
  try {
    blocks = planBlocks(info.size, s.blockSize);
  } catch {
    return undefined; // too many blocks: the run's own plan refuses it
  }
  const algo: ChecksumAlgo = s.checksum === 'auto' ? 'xxh64' : s.checksum;
  const units = unitsOf(blocks, 'xxh64');
  return new EarlyHashes((signal) => hashLocally(bin, s.source.path, blocks, algo, signal, units, !readsDirect(info.kind === 'block')), blocks, algo, () => units, 'source (early)');
}

/**
 * The remote target's stream, on a worker of its own on the helper's connection: for a new
 * send with --skip-identical to an existing target. The worker opens once `after` has resolved
 * (the hasher's install has its session: a stream that took the last one would wait for the
 * install, which would wait for a session); `opened` hears when it has its channel, or will not
 * get one. Nothing is read before `ready` resolves (the lock held, and ddt-hash installed or
 * not: that settles the units' algorithm); its rejecting ends the stream.
 */
export function earlyTarget(helper: RemoteHelper, target: string, blocks: BlockRef[], algo: ChecksumAlgo, o: { signal: AbortSignal; ready: Promise<unknown>; after?: Promise<unknown>; opened(): void }): HashedAhead {
  const units = () => unitsOf(blocks, helper.unitAlgo ?? algo);
  return new EarlyHashes(
    async function* (stop) {
      const both = AbortSignal.any([o.signal, stop]);
      let worker;
      try {
        await o.after;
        worker = await helper.openWorker(target, helper.control, { signal: both, label: 'early hash stream' });
      } finally {
        o.opened();
      }
      try {
        await o.ready;
        yield* worker.hashMany(blocks, algo, both, units());
      } finally {
        if (both.aborted) worker.destroy('stopped');
        else await worker.close().catch(() => undefined);
      }
    },
    blocks,
    algo,
    units,
    'target (early)',
  );
}

/**
 * A new send with --skip-identical (its remote target's checksums may start before the
 * pipeline, its data path wait for the first differing block).
 */
export function isResync(s: JobSetup): boolean {
  return s.command === 'send' && s.target.endpoint !== undefined && s.options.skipIdentical && !s.previous && !s.dryRun;
}

/** earlyTarget into `ahead.target`; resolves once its worker has its channel (or will not get one). */
export function startEarlyTarget(ahead: EarlyEnds, helper: RemoteHelper, target: string, blocks: BlockRef[], algo: ChecksumAlgo, o: { signal: AbortSignal; ready: Promise<unknown>; after?: Promise<unknown> }): Promise<void> {
  return new Promise<void>((opened) => (ahead.target = earlyTarget(helper, target, blocks, algo, { ...o, opened })));
}

/** The early streams of a run: the pipeline's two ends, and the target's prehash until it is confirmed. */
export interface JobAhead extends EarlyEnds {
  source?: EarlyHashes;
  pre?: Prehash;
}

/** The target's stream read before the lock (remote/prehash.ts), with what its first line said. */
class Prehash extends EarlyHashes {
  readonly start: Promise<PrehashStart>;
  constructor(pool: SshPool, r: PrehashRequest) {
    let started!: (s: PrehashStart) => void;
    const start = new Promise<PrehashStart>((resolve) => (started = resolve));
    super((signal) => prehashDigests(pool, r, signal, started), r.blocks, r.algo, () => r.units, 'target (pre-lock)');
    this.start = start;
  }
}

/**
 * Once connected, for a re-sync whose source is hashed early: the target's checksums start with
 * the same blocks and units, beside the install, the probe and the lock. Only where the pool has
 * room for it beside those (the install, the hasher's, the lock and a worker's sessions).
 */
export async function startPrehash(ahead: JobAhead, pool: SshPool, s: JobSetup): Promise<void> {
  const source = ahead.source;
  // DDT_PREHASH=off: the target hashed only once locked (benchmarks compare the two).
  if (!source || !isResync(s) || pool.capacity() < 4 || process.env.DDT_PREHASH === 'off') return;
  const offer = await hasherOffer();
  if (!offer) return;
  const helper = helperCacheName(await helperScript());
  ahead.pre = new Prehash(pool, { helper, hashers: offer.names, sudo: s.sudo, target: s.target.path, blocks: source.blocks, algo: source.algo, units: source.units() });
}

/**
 * The prehash becomes the target's early stream where it reads (a kept helper and ddt-hash, no
 * live writer) the very blocks the run plans; otherwise it stops. Confirmed once the lock is held.
 */
export async function takePrehash(ahead: JobAhead, blocks: BlockRef[], algo: ChecksumAlgo): Promise<boolean> {
  const pre = ahead.pre;
  if (!pre) return false;
  const start = await pre.start;
  trace(`prehash: ${start.ok ? `reading with ${start.hasher}` : start.why}`);
  if (start.ok && pre.reads(blocks, algo)) {
    ahead.target = pre;
    return true;
  }
  dropPrehash(ahead);
  return false;
}

/**
 * A hint for a re-sync, before the lock: true at the first block whose checksums differ as the
 * early source stream and the prehash read them (a write is coming, so its data path can be set
 * up now rather than at that write), false once both streams ended without one. Nothing is
 * proven or skipped by it: the prehash's checksums stand only once checked under the lock.
 */
export function firstDifference(ahead: JobAhead): Promise<boolean> {
  const ends = [ahead.source, ahead.pre];
  if (!ends[0] || !ends[1]) return Promise.resolve(false);
  return new Promise((resolve) => {
    // Each end's checksums not yet met by the other's (each stream runs a bounded way ahead).
    const unmatched = [new Map<number, string | undefined>(), new Map<number, string | undefined>()];
    let ended = 0;
    ends.forEach((end, i) =>
      end!.watch((d) => {
        if (!d) {
          if (++ended === 2) resolve(false);
          return;
        }
        const other = unmatched[1 - i]!;
        if (!other.has(d.block.index)) {
          unmatched[i]!.set(d.block.index, d.checksum);
          return;
        }
        const theirs = other.get(d.block.index);
        other.delete(d.block.index);
        if (d.checksum === undefined || theirs !== d.checksum) resolve(true);
      }),
    );
  });
}

/** The prehash stops, untaken (the run will not hash its target ahead). */
export function dropPrehash(ahead: JobAhead): void {
  ahead.pre?.end();
  ahead.pre = undefined;
}

/**
 * With the lock held: the prehash's checksums stand only where the target's record is still the
 * one it found before its first read (no run wrote it since: each names itself there before it
 * writes) and its ddt-hash is the kept build the install's self-test passed. Otherwise it stops,
 * and false says the target must be hashed again.
 */
export async function confirmPrehash(ahead: JobAhead, last: LastWriter | undefined, helper: RemoteHelper): Promise<boolean> {
  const pre = ahead.pre;
  if (!pre) return true;
  ahead.pre = undefined;
  const why = prehashRefused(await pre.start, last, helper.keptHasher);
  if (why === undefined) return true;
  trace(`prehash not taken: ${why}`);
  pre.end();
  if (ahead.target === pre) ahead.target = undefined;
  return false;
}

/**
 * Why a prehash's checksums cannot stand, or undefined where they can: what it found before its
 * first read against the record the held lock shows and the kept ddt-hash the install tested.
 */
export function prehashRefused(start: PrehashStart, last: LastWriter | undefined, kept: { name: string; answer: string } | undefined): string | undefined {
  if (!start.ok) return start.why;
  if (!sameLastWriter(start.last, last)) return 'the record of the last writer changed';
  if (kept?.name !== start.hasher || kept.answer !== 'hasher=ok') return 'its ddt-hash is not the one that passed the self-test';
  return undefined;
}

function sameBlocks(a: BlockRef[], b: BlockRef[]): boolean {
  return a.length === b.length && a.every((x, i) => x.index === b[i]!.index && x.offset === b[i]!.offset && x.length === b[i]!.length);
}
