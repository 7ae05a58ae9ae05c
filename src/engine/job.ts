/**
 * The one skeleton every run of every job goes through (send, pull and copy; new or resumed):
 * open the ends → check them → choose and prepare the data path → confirm → journal → execute
 * the pipeline → close. Pull is send with the remote end at the other side.
 */
import type { BlockSink, BlockSource } from '../block/types.js';
import { initChecksums } from '../checksum/hasher.js';
import { DdtError, messageOf } from '../errors.js';
import { JournalWriter, type JournalState } from '../journal/journal.js';
import type { JobHeader } from '../journal/records.js';
import { BlockReader } from '../local/block-reader.js';
import { probeDevice } from '../local/device.js';
import { LocalTarget } from '../local/local-target.js';
import { planBlocks } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import { choosePath, PATHS, type PathChoice } from '../paths/registry.js';
import type { EarlyStart, PathContext, PathQuery, PreparedPath, RemoteSession } from '../paths/types.js';
import { installHasher } from '../remote/native-hasher.js';
import { removeStagingDir } from '../remote/sftp-target.js';
import { lockRemoteTarget, type HeldLock } from '../remote/target-lock.js';
import { lockLocalTarget } from '../local/lock.js';
import { distrust } from '../block/last-writer.js';
import { findOnPath } from '../transport/local-process.js';
import { executeJob } from './execute.js';
import { checkEnds } from './job-checks.js';
import { newHeader, setUp, type JobRequest, type JobSetup } from './job-setup.js';
import { closeRemote, openRemote } from './remote-end.js';
import { shapeSink } from './shaping.js';
import { warn, type JobOutcome, type JobUi } from './ui.js';

export type { JobRequest } from './job-setup.js';

export async function runJob(req: JobRequest, ui: JobUi): Promise<JobOutcome> {
  const s = await setUp(req);
  await initChecksums();
  const remote = s.source.endpoint ? s.source : s.target.endpoint ? s.target : undefined;
  const query: PathQuery = {
    command: s.command,
    connections: s.options.connections,
    channels: s.options.channels,
    compress: s.options.compress,
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
  let early: EarlyStart | undefined;
  let session: RemoteSession | undefined;
  if (remote?.endpoint) {
    // Known host keys: the OpenSSH masters connect while ssh2 does (OpenSSH checks the same
    // files, strictly). With --accept-new-host-key they wait until ssh2 has recorded the key.
    const o = { connections: s.options.connections, jobId: s.jobId, reconnectTimeoutMs: s.options.reconnectTimeoutMs, warn: (m: string) => warn(ui, m) };
    early = s.acceptNewHostKey ? undefined : first.path.begin?.(remote.endpoint, o);
    try {
      session = await openRemote(remote.endpoint, { ...s.options, ...o, connections: first.path.poolConnections(s.options.connections), acceptNewHostKey: s.acceptNewHostKey, path: remote.path, remoteDir: s.staging.remoteDir, sudo: s.sudo }, ui);
    } catch (err) {
      await early?.discard();
      throw err;
    }
  }
  let prepared: PreparedPath | undefined;
  let lock: HeldLock | undefined;
  let started = false;
  let ok = false;
  let hasher: Promise<boolean> | undefined;
  try {
    if (session && s.previous) await session.helper.killStale(ui.signal);
    // The streaming hasher serves --skip-identical and a resume's re-check of proven blocks. Its
    // upload and self-test run while the ends are checked and the target locked.
    hasher = session && !s.dryRun && (s.options.skipIdentical || s.previous) ? installHasher(session.helper, session.probe, { signal: ui.signal, warn: (m) => warn(ui, m) }).catch(() => false) : undefined;
    const ends = await checkEnds(s, session, ui);
    query.blockLength = Math.min(s.blockSize, ends.source.size);
    const choice = choosePath({ ...query, probe: session?.probe }, { asked: s.asked, recorded: s.recordedPath });
    if (choice.path !== first.path) await early?.discard();
    for (const w of choice.warnings) warn(ui, w);
    const ctx: PathContext = { session, query: { ...query, probe: session?.probe }, jobId: s.jobId, reconnectTimeoutMs: s.options.reconnectTimeoutMs, signal: ui.signal, warn: (m) => warn(ui, m), early };
    prepared = await prepare(choice, ctx);
    const blocks = planBlocks(ends.source.size, s.blockSize).length;
    const run = `${s.jobId}.${Date.now().toString(36)}`;
    const takeLock = () => lockTarget(s, s.target.endpoint ? session : undefined, run, ui);
    // An existing target is locked before the question (a busy one is refused at once); a new
    // one once it exists. A dry run only checks that it could be.
    if (!ends.createTarget) lock = await takeLock();
    if (s.dryRun) return { kind: 'dry-run', plan: [...ends.describe, `blocks: ${blocks} × ${s.blockSize} bytes, checksum ${ends.checksum}, journal ${s.journalPath}`, ...prepared.describe] };
    if (!s.yes && ends.overwrites) {
      if (!(await ui.confirm(ends.overwrites))) throw new DdtError('NOT_CONFIRMED', 'not confirmed: nothing was written');
    }
    // A target that did not exist is created only now; what identifies it goes into the header.
    const target = (await ends.createTarget?.()) ?? ends.target;
    lock ??= await takeLock();
    const recorded = s.previous?.header;
    const header: JobHeader = recorded
      ? { ...recorded, options: s.options, path: prepared.record }
      : newHeader(s, { source: ends.source, target, checksum: ends.checksum, path: prepared.record, blocks });
    const journal = recorded ? JournalWriter.append(s.journalPath) : JournalWriter.create(s.journalPath, header);
    started = true;
    const distrusted = s.previous && (s.reverify ? 'asked for (--reverify)' : distrust(lock.last, s.jobId, lastRunOf(s.previous)));
    await hasher;
    const summary = await transfer(header, journal, s, prepared, { run, recheck: distrusted || undefined }, ui);
    ok = summary.ok;
    if (ok) await lock.clean();
    return { kind: 'done', summary };
  } finally {
    await hasher; // a refused run's upload ends before its work dir goes
    await lock?.release().catch(() => undefined);
    await prepared?.close(ok).catch(() => undefined);
    await early?.discard();
    if (session) {
      // A job that staged blocks in an earlier run (now on another path) leaves no staging dir behind.
      if (ok && s.previous?.header.path.name === 'sftp' && prepared?.name !== 'sftp') await removeStagingDir(session.pool, s.staging.remoteDir, s.jobId);
      await closeRemote(session, !started || (ok && !s.options.keepLogs));
    }
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

/** The id of the last run a journal knows of. */
function lastRunOf(state: JournalState): string | undefined {
  return state.runs.filter((r) => r.event === 'start').at(-1)?.run;
}

/** Hold the target's lock for the run: through the helper on its host, or here. */
async function lockTarget(s: JobSetup, remote: RemoteSession | undefined, run: string, ui: JobUi): Promise<HeldLock> {
  const path = s.target.path;
  const lock = remote ? await lockRemoteTarget(remote.helper, path, run, `${remote.endpoint.hosts[0]}:${path}`, ui.signal, (m) => warn(ui, m)) : await lockLocalTarget(path, s.jobId, run);
  if (lock.tookOver) warn(ui, `took over the lock of ${path} from job ${lock.tookOver}, which is gone`);
  return lock;
}

/** Open both ends of this run, shape the sink, run the pipeline, close the ends. */
async function transfer(header: JobHeader, journal: JournalWriter, s: JobSetup, prepared: PreparedPath, o: { run: string; recheck?: string }, ui: JobUi) {
  let source: BlockSource | undefined;
  let sink: BlockSink | undefined;
  try {
    source = header.source.remote ? await prepared.openSource() : await openLocalSource(header);
    sink = header.target.remote ? await prepared.openSink() : await LocalTarget.open(header.target.path, { capacity: header.command === 'copy' ? header.options.channels : Infinity });
    const shaped = shapeSink(sink, { ...header.options, takesParts: prepared.takesParts });
    const from = source;
    // The pipeline does not know connections; a remote source knows which one carried a block.
    const emit: ProgressListener = from.connectionOf ? (e) => ui.emit(e.type === 'block' && e.state === 'sent' ? { ...e, connection: e.connection ?? from.connectionOf!(e.index) } : e) : ui.emit;
    return await executeJob(header, journal, s.previous, { source, sink: shaped }, { ...o, emit, signal: ui.signal });
  } catch (err) {
    journal.close();
    throw err;
  } finally {
    await source?.close().catch(() => undefined);
    await sink?.close().catch(() => undefined);
  }
}

/** The job's local source, read as its header says (`--noerror`, the device's sector size). */
async function openLocalSource(header: JobHeader): Promise<BlockReader> {
  const info = await probeDevice(header.source.path);
  return BlockReader.open(header.source.path, undefined, { noerror: header.options.noerror, sectorSize: info?.sectorSize ?? 512 });
}
