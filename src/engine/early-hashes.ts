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
import { hashLocally, localHasher } from '../local/local-hasher.js';
import { planBlocks } from '../plan/block-plan.js';
import type { RemoteHelper } from '../remote/helper.js';
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
    private readonly blocks: BlockRef[],
    private readonly algo: ChecksumAlgo,
    private readonly units: () => UnitSpec | undefined,
    name: string,
  ) {
    this.ahead = new HashAhead(start(this.stop.signal), `${name} (early)`);
  }

  take(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): HashAhead | undefined {
    const mine = this.units();
    const same = !this.taken && algo === this.algo && units?.unit === mine?.unit && units?.algo === mine?.algo && sameBlocks(blocks, this.blocks);
    if (!same || this.stop.signal.aborted) {
      this.end();
      return undefined;
    }
    this.taken = true;
    if (signal.aborted) this.end();
    else signal.addEventListener('abort', () => this.end(), { once: true });
    return this.ahead;
  }

  end(): void {
    this.stop.abort();
  }
}

/**
 * The local source's stream, for a new send with --skip-identical whose digests ddt-hash makes
 * here (not with --noerror: only the block reader zero-fills unreadable sectors). The checksum
 * is the likely one (xxh64 unless asked for); the remote end's choice comes later.
 */
export async function earlySource(s: JobSetup): Promise<HashedAhead | undefined> {
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
  return new EarlyHashes((signal) => hashLocally(bin, s.source.path, blocks, algo, signal, units, true), blocks, algo, () => units, 'source');
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
    'target',
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

function sameBlocks(a: BlockRef[], b: BlockRef[]): boolean {
  return a.length === b.length && a.every((x, i) => x.index === b[i]!.index && x.offset === b[i]!.offset && x.length === b[i]!.length);
}
