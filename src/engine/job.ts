/**
 * The one skeleton every run of every job goes through (send, pull and copy; new or resumed):
 * open the ends → check them → choose and prepare the data path → confirm → journal → execute
 * the pipeline → close. Pull is send with the remote end at the other side.
 */
import type { BlockSink, BlockSource } from '../block/types.js';
import { initChecksums } from '../checksum/hasher.js';
import { DdtError, messageOf } from '../errors.js';
import { JournalWriter } from '../journal/journal.js';
import { zeroModeOf, type JobHeader } from '../journal/records.js';
import { BlockReader } from '../local/block-reader.js';
import { probeDevice } from '../local/device.js';
import { LocalTarget } from '../local/local-target.js';
import { planBlocks } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import { choosePath, PATHS, type PathChoice } from '../paths/registry.js';
import type { EarlyStart, PathContext, PathQuery, PreparedPath, RemoteSession } from '../paths/types.js';
import { installHasher } from '../remote/native-hasher.js';
import { openLockSession, type LockSession } from '../remote/target-lock.js';
import { removeStagingDir, stagingDirOf } from '../remote/sftp-target.js';
import { distrust, type HeldLock } from '../block/last-writer.js';
import { findOnPath } from '../transport/local-process.js';
import { executeJob } from './execute.js';
import { holdingSlot, lastRunOf, lockTarget, namingRecord, targetExists, trueByNow } from './job-lock.js';
import { confirmPrehash, dropPrehash, earlySource, firstDifference, isResync, startEarlyTarget, startPrehash, takePrehash, type JobAhead } from './early-hashes.js';
import { deferredPath, lightBytes } from '../paths/deferred.js';
import { checkEnds } from './job-checks.js';
import { newHeader, setUp, type JobRequest, type JobSetup } from './job-setup.js';
import { closeRemote, openRemote } from './remote-end.js';
import type { SshPool } from '../transport/ssh-pool.js';
import type { EarlyEnds } from './skip-identical.js';
import { shapeSink } from './shaping.js';
import { warn, type JobOutcome, type JobUi } from './ui.js';
import { trace } from '../trace.js';

/** From this source size on a send installs ddt-hash for its read-backs (see runJob). */
const HASHER_WORTH_BYTES = 1024 ** 3;

export type { JobRequest } from './job-setup.js';

export async function runJob(req: JobRequest, ui: JobUi): Promise<JobOutcome> {
  trace('start');
  const s = await setUp(req);
  // A re-sync's source checksums start now, beside the connection and the remote set-up.
  const ahead: JobAhead = { source: await earlySource(s) };
  try {
    return await runSetUp(s, ahead, ui);
  } finally {
    ahead.source?.end();
    ahead.target?.end();
    ahead.pre?.end();
  }
}

async function runSetUp(s: JobSetup, ahead: JobAhead, ui: JobUi): Promise<JobOutcome> {
  await initChecksums();
  const remote = s.source.endpoint ? s.source : s.target.endpoint ? s.target : undefined;
  const query: PathQuery = {
    command: s.command,
    connections: s.options.connections,
    channels: s.options.channels,
    compress: s.options.compress,
    delta: s.command === 'send' && s.options.skipIdentical === true,
    zeros: zeroModeOf(s.options),
    ssh: findOnPath('ssh'),
    rsync: findOnPath('rsync'),
    blockLength: Math.min(s.blockSize, s.previous?.header.source.size ?? Infinity),
    ...s.staging,
  };
  // The path decides the ssh2 pool's share of the connections, so it is chosen before connecting,
  // and again once the remote host is probed (staging space, tools).
  const first = choosePath(query, { asked: s.asked, recorded: s.recordedPath });
  // What killed runs of this job left here (staged blocks, socket dirs), whatever path they took.
  if (s.previous) for (const p of Object.values(PATHS)) await p.sweep?.(s.jobId, query);
  // --skip-identical and a resume's re-check of proven blocks hash both ends in streams.
  const hashing = !s.dryRun && (s.options.skipIdentical || s.previous !== undefined);
  const resync = isResync(s);
  let early: EarlyStart | undefined;
  /** The path is chosen (or the run is over): what begins early has been taken or discarded. */
  let pathChosen = false;
  let differs: Promise<boolean> = Promise.resolve(false);
  let session: RemoteSession | undefined;
  let lockSession: LockSession | undefined;
  if (remote?.endpoint) {
    // Known host keys: the OpenSSH masters connect while ssh2 does (OpenSSH checks the same
    // files, strictly). With --accept-new-host-key they wait until ssh2 has recorded the key.
    const o = { connections: s.options.connections, jobId: s.jobId, reconnectTimeoutMs: s.options.reconnectTimeoutMs, warn: (m: string) => warn(ui, m), signal: ui.signal };
    // A re-sync's data path may not be needed at all: it starts at the first differing block,
    // or once the target's checksums read before the lock show one (a hint: see firstDifference).
    early = s.acceptNewHostKey || resync ? undefined : first.path.begin?.(remote.endpoint, o);
    const endpoint = remote.endpoint;
    const beginOnDifference = async () => {
      // A path that waits for its share (see deferredPath) begins when it is set up.
      if (!(await differs) || s.acceptNewHostKey || pathChosen || early || !first.path.begin || (first.path.sinkWorkers && lightBytes() !== undefined)) return;
      early = first.path.begin(endpoint, o);
      trace('a block differs before the lock: the data path begins');
    };
    try {
      // A re-sync's target may be hashed from the first session on (checked once the lock is held).
      const connected = async (pool: SshPool) => {
        // A remote target's lock gets its session now, beside the install (see openLockSession).
        if (s.target.endpoint) lockSession = openLockSession(pool, { sudo: s.sudo, signal: ui.signal });
        await startPrehash(ahead, pool, s).catch(() => undefined);
        differs = firstDifference(ahead);
        void beginOnDifference();
      };
      session = await openRemote(remote.endpoint, { ...s.options, ...o, connections: first.path.poolConnections(s.options.connections), held: hashing ? 2 : 1, acceptNewHostKey: s.acceptNewHostKey, path: remote.path, remoteDir: s.staging.remoteDir, sudo: s.sudo, hasher: hashing, connected }, ui);
    } catch (err) {
      pathChosen = true; // nothing begins early any more
      await early?.discard();
      throw err;
    }
  }
  let prepared: PreparedPath | undefined;
  let lock: HeldLock | undefined;
  let locking: Promise<HeldLock> | undefined;
  let sinkOpening: Promise<BlockSink> | undefined;
  let started = false;
  let ok = false;
  let hasher: Promise<boolean> | undefined;
  let workDirGone = false;
  try {
    if (session && s.previous) await session.helper.killStale(ui.signal);
    const run = `${s.jobId}.${Date.now().toString(36)}`;
    const takeLock = (onChannel?: () => void) => lockTarget(s, s.target.endpoint ? session : undefined, run, ui, onChannel, lockSession);
    // An existing target's lock is asked for now, while the ends are checked and the path
    // prepared (their refusals come first); a new one's once the target exists. Taking it
    // changes nothing: the record says this run writes only just before it does.
    let lockChannel: Promise<unknown> = Promise.resolve();
    if (targetExists(s, session)) {
      const held = holdingSlot(takeLock);
      locking = held.done;
      locking.catch(() => undefined); // awaited below, or released in the end
      lockChannel = held.channel;
    }
    // ddt-hash, the streaming hasher: its upload and self-test run while the ends are checked and
    // the target locked. Its channel takes a slot of the connection the workers' sessions share:
    // the workers open only once it has it (`hasherChannel`), or they could take every slot and
    // wait for it (or, where the run does not wait for it, one worker waits out the upload).
    let hasherChannel: Promise<unknown> = Promise.resolve();
    const startHasher = (remote: RemoteSession, say: (m: string) => void) => {
      const held = holdingSlot((onOpen) => installHasher(remote.helper, remote.probe, { signal: ui.signal, warn: say, onOpen }).catch(() => false));
      hasher = held.done.then((installed) => (trace(`ddt-hash ${installed ? 'installed' : 'not installed'}`), installed));
      hasherChannel = held.channel;
    };
    // It serves --skip-identical and a resume's re-check of proven blocks: those wait for it.
    const hashStreams = session !== undefined && hashing;
    if (session && hashStreams) startHasher(session, (m) => warn(ui, m));
    const ends = await checkEnds(s, session, ui);
    trace('ends checked');
    // It also proves written blocks faster than dd and a hash tool (one process; its O_DIRECT
    // reads of holes and offloaded zeros cost next to nothing, where dd | xxhsum spends about
    // half a CPU-second per GiB). For a big target its upload (under 1 MB) pays for itself: it
    // runs beside the transfer, and the helper takes it for its next read-back once it has
    // passed its self-test, proving blocks with its shell tools until then (so a failure is
    // only traced).
    if (session && !hashStreams && s.target.endpoint && !s.dryRun && ends.source.size >= HASHER_WORTH_BYTES) {
      startHasher(session, (m) => trace(`no ddt-hash: ${m}`));
    }
    query.blockLength = Math.min(s.blockSize, ends.source.size);
    const choice = choosePath({ ...query, probe: session?.probe }, { asked: s.asked, recorded: s.recordedPath });
    pathChosen = true;
    if (choice.path !== first.path) await early?.discard();
    for (const w of choice.warnings) warn(ui, w);
    const ctx: PathContext = { session, query: { ...query, probe: session?.probe }, jobId: s.jobId, reconnectTimeoutMs: s.options.reconnectTimeoutMs, signal: ui.signal, warn: (m) => warn(ui, m), early };
    // With no question to ask, the remote target's workers start while the lock is taken (once
    // its session has its slot: the workers cannot take them all). They write nothing before
    // the record names this run. A sink that leaves staging behind waits for the journal
    // that will name it. A re-sync's target hashing starts on a worker of its own, first.
    const go = session && s.target.endpoint && locking && !s.dryRun && (s.yes || !ends.overwrites);
    const plan = planBlocks(ends.source.size, s.blockSize);
    const workers = choice.path.sinkWorkers?.(ctx.query);
    // The sessions of the ssh2 connection: the lock holds one for the whole run, the hasher's
    // install one for a moment, and the path's workers, where they run there (not on OpenSSH's
    // own), need one at least. An early target stream holds one until the pipeline takes its
    // hashes: only where that leaves them room.
    const spare = session ? session.pool.capacity() - 1 - (workers ? 0 : 1) : 0;
    const aheadBlocks = go && resync && spare >= 1 ? plan : undefined;
    const hashTarget = (ready: Promise<unknown>) => startEarlyTarget(ahead, session!.helper, s.target.path, aheadBlocks!, ends.checksum, { signal: ui.signal, ready, after: hasherChannel });
    const aheadChannel = session && locking && aheadBlocks ? ((await takePrehash(ahead, aheadBlocks, ends.checksum)) ? Promise.resolve() : hashTarget(Promise.all([locking, hasher]))) : undefined;
    if (!aheadChannel) dropPrehash(ahead);
    // With no session to spare for the install beside them, the workers open after it.
    const hasherFirst = hashStreams || spare < (aheadChannel ? 1 : 0) + (hasher ? 1 : 0);
    // A re-sync's first blocks go over exec channels of the ssh2 connection (the stream path's
    // sink on it): the path's own connections are set up only once those have sent a share.
    // Its workers take the spare sessions but the target's early stream's, which may have to
    // start again after them (a prehash not taken): the stream's checksums are what the workers'
    // blocks wait for. No more of them than the blocks the pipeline puts in flight (the path's
    // workers): each one's start is a helper and its dozen set-up processes on the remote host.
    const share = lightBytes();
    const lightWorkers = Math.min(spare - 1, workers ?? 0);
    const light = share === undefined || lightWorkers < 1 ? undefined : () => PATHS.stream.prepare({ ...ctx, query: { ...ctx.query, connections: 1, channels: lightWorkers }, early: undefined }).then((p) => p.openSink());
    prepared = ahead.target && workers ? deferredPath({ name: choice.path.name, workers, prepare: () => prepare(choice, ctx), unitAlgo: () => session?.helper.unitAlgo, light, lightBytes: share }) : await prepare(choice, ctx);
    trace(`path ${prepared.name} prepared`);
    const blocks = plan.length;
    if (go && session && !prepared.sinkLeavesState) {
      await lockChannel;
      await (hasherFirst ? hasher : hasherChannel);
      await aheadChannel;
      const opening = prepared.openSink({ rttMs: session.pool.rttEstimateMs() });
      opening.catch(() => undefined); // adopted by transfer, or closed in the end
      sinkOpening = opening;
      // A sink that opens at its first write opens now if a block is known to differ already.
      void differs.then(async (d) => d && (await opening).expectWrite?.()).catch(() => undefined);
    }
    // An existing target is locked before the question (a busy one is refused at once). A dry
    // run only checks that it could be.
    if (!ends.createTarget) {
      lock = await (locking ?? takeLock());
      locking = undefined;
      trace('target locked');
    }
    if (s.dryRun) return { kind: 'dry-run', plan: [...ends.describe, `blocks: ${blocks} × ${s.blockSize} bytes, checksum ${ends.checksum}, journal ${s.journalPath}`, ...prepared.describe] };
    if (!s.yes && ends.overwrites) {
      if (!(await ui.confirm(ends.overwrites))) throw new DdtError('NOT_CONFIRMED', 'not confirmed: nothing was written');
    }
    // A target that did not exist is created only now; what identifies it goes into the header.
    const target = (await ends.createTarget?.()) ?? ends.target;
    lock ??= await takeLock();
    if (session && !(await confirmPrehash(ahead, lock.last, session.helper))) void hashTarget(Promise.resolve(hasher));
    // The record names this run before its first write (a round trip, while the ends open).
    // A re-sync names itself there at its first write; where the early checksums have shown a
    // block that differs already, that write is coming: the record (written and flushed on the
    // target, with its dir) goes at once, beside the journal's start and the ends' opening,
    // instead of in front of the first block. A hint not known by now is not waited for.
    const writing = namingRecord(lock, !resync || (await trueByNow(differs)));
    const recorded = s.previous?.header;
    const header: JobHeader = recorded
      ? { ...recorded, options: s.options, path: prepared.record }
      : newHeader(s, { source: ends.source, target, checksum: ends.checksum, path: prepared.record, blocks });
    const journal = recorded ? JournalWriter.append(s.journalPath) : JournalWriter.create(s.journalPath, header);
    started = true;
    const distrusted = s.previous && (s.reverify ? 'asked for (--reverify)' : distrust(lock.last, s.jobId, lastRunOf(s.previous)));
    const opening = sinkOpening;
    sinkOpening = undefined; // transfer closes it
    await (hasherFirst ? hasher : hasherChannel);
    const summary = await transfer(header, journal, s, prepared, { run, recheck: distrusted || undefined, lock, writing, sink: opening, rttMs: session?.pool.rttEstimateMs(), ahead }, ui);
    ok = summary.ok;
    trace('transfer done');
    if (ok) {
      // A finished run's remote work dir goes with the lock, in its last round trip (unless the
      // logs are kept); the upload of ddt-hash into it ends first.
      const removeWorkDir = Boolean(session) && !s.options.keepLogs;
      if (removeWorkDir) await hasher;
      workDirGone = await lock.finish({ removeWorkDir });
      trace(`lock record clean, lock released${workDirGone ? ', work dir removed' : ''}`);
    }
    return { kind: 'done', summary };
  } finally {
    pathChosen = true; // nothing begins early any more
    await sinkOpening?.then((sink) => sink.close()).catch(() => undefined);
    await hasher; // a refused run's upload ends before its work dir goes
    await lock?.release().catch(() => undefined);
    await locking?.then((l) => l.release()).catch(() => undefined);
    await lockSession?.discard();
    // The rest ends side by side: the path's own connections and staging, and the remote work
    // dir (whose helpers, the lock's holder among them, have ended by now).
    const closing = async () => {
      await prepared?.close(ok).catch(() => undefined);
      await early?.discard();
      // A job that staged blocks in an earlier run (now on another path) leaves no staging dir behind.
      // The probe resolved the staging dir's parent ($HOME, or the recorded --remote-dir).
      const dir = session?.probe.dir;
      if (session && dir && ok && s.previous?.header.path.name === 'sftp' && prepared?.name !== 'sftp') await removeStagingDir(session.pool, stagingDirOf(dir, s.jobId));
    };
    trace('closing');
    if (session) await closeRemote(session, !workDirGone && (!started || (ok && !s.options.keepLogs)), closing);
    else await closing();
    trace('closed');
  }
}

/**
 * Prepare the chosen path. The default OpenSSH path falls back to ssh2 exec channels with a
 * warning when the local ssh cannot connect; asked for explicitly, that is the run's error.
 */
async function prepare(choice: PathChoice, ctx: PathContext): Promise<PreparedPath> {
  try {
    return await choice.path.prepare(ctx);
  } catch (err) {
    if (choice.explicit || choice.path.name !== 'openssh' || !(err instanceof DdtError) || err.exitCode !== 3) throw err;
    ctx.warn(`sending with --via stream, the OpenSSH client could not connect: ${messageOf(err)}`);
    return PATHS.stream.prepare({ ...ctx, early: undefined });
  }
}

/**
 * Open both ends of this run, shape the sink, run the pipeline, close the ends. Nothing is
 * written before `writing` (the target's record naming this run) has resolved: the shaped
 * sink's writes wait for it, while hashing the target may already run. `rttMs`: the
 * link's round trip as the channel opens measured it (the lock's first answer also waits for
 * the helper's own start), which decides how a remote sink spreads its channels.
 */
async function transfer(
  header: JobHeader,
  journal: JournalWriter,
  s: JobSetup,
  prepared: PreparedPath,
  o: { run: string; recheck?: string; lock: HeldLock; writing: ReturnType<typeof namingRecord>; sink?: Promise<BlockSink>; rttMs?: number; ahead?: EarlyEnds },
  ui: JobUi,
) {
  let source: BlockSource | undefined;
  let sink: BlockSink | undefined;
  const opening = o.sink;
  try {
    source = header.source.remote ? await prepared.openSource() : await openLocalSource(header, ui);
    const rttMs = o.rttMs;
    sink = header.target.remote
      ? await (opening ?? prepared.openSink({ rttMs }))
      : await LocalTarget.open(header.target.path, { capacity: header.command === 'copy' ? header.options.channels : Infinity, zeros: zeroModeOf(header.options) });
    trace('ends open');
    // Parts are a format of the link to a remote helper; a local target (pull) takes whole blocks.
    // Its writes wait for the record naming this run; hashing (--skip-identical) starts at once.
    const shaped = shapeSink(sink, { ...header.options, takesParts: header.target.remote !== undefined && prepared.takesParts, lock: { held: o.lock, writing: o.writing.beforeWrite } });
    const from = source;
    // The pipeline does not know connections; a remote source knows which one carried a block.
    const emit: ProgressListener = from.connectionOf ? (e) => ui.emit(e.type === 'bytes' ? { ...e, connection: e.connection ?? from.connectionOf!(e.index) } : e) : ui.emit;
    const summary = await executeJob(header, journal, s.previous, { source, sink: shaped }, { run: o.run, recheck: o.recheck, rttMs, emit, signal: ui.signal, ahead: o.ahead });
    await o.writing.done(); // a run that had nothing to write still fails when its record could not be written
    return summary;
  } catch (err) {
    journal.close();
    throw err;
  } finally {
    await source?.close().catch(() => undefined);
    // A sink opened early that this run never got to (its source failed to open) closes too.
    await (sink ? sink.close() : opening?.then((x) => x.close()))?.catch(() => undefined);
  }
}

/** The job's local source, read as its header says (`--noerror`, the device's sector size). */
async function openLocalSource(header: JobHeader, ui: JobUi): Promise<BlockReader> {
  const info = await probeDevice(header.source.path);
  const reader = await BlockReader.open(header.source.path, undefined, { noerror: header.options.noerror, sectorSize: info?.sectorSize ?? 512 });
  if (reader.cacheWarning) warn(ui, reader.cacheWarning);
  return reader;
}
