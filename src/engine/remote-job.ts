import { randomBytes } from 'node:crypto';
import { initChecksums } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { SshError, UsageError } from '../errors.js';
import { defaultJournalPath, JournalWriter, type JournalState } from '../journal/journal.js';
import { JOURNAL_VERSION, type JobHeader } from '../journal/records.js';
import { planBlocks, validateBlockSize } from '../plan/block-plan.js';
import { RemoteHelper, type InstallOptions } from '../remote/helper.js';
import type { RemoteProbe } from '../remote/probe.js';
import { validateRemotePath } from '../remote/quote.js';
import { identityChange, probeSource } from '../source/device.js';
import { knownHostsFilesOf, resolveEndpoint, type Endpoint, type EndpointOptions } from '../transport/endpoint.js';
import { SshPool } from '../transport/ssh-pool.js';
import { parseRemoteSpec } from '../transport/target-spec.js';
import { executeJob, runSettingsOf } from './job.js';
import { DEFAULT_VIA, openRemoteWriter, type RemoteWriter } from './remote-writers.js';
import { planStaging, removeStaging, type StagingPlan } from './sftp-staging.js';
import { OpenSshStart, stopOpenSshPath, useOpenSsh, type Via } from './openssh-path.js';
import { findOnPath } from '../transport/local-process.js';
import { checkLocalRsync, engineOf, poolConnectionsFor, removeRsyncLeftovers, RsyncSession, type CompressMode, type EngineName } from './rsync-session.js';
import type { JobSummary } from './summary.js';
import { openSourceReader, type JobOutcome, type JobUi } from './local-job.js';

export interface SendRequest extends EndpointOptions {
  source: string;
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  retries: number;
  connections: number;
  channels: number;
  targetZeroed: boolean;
  force: boolean;
  yes: boolean;
  dryRun: boolean;
  journal?: string;
  acceptNewHostKey: boolean;
  keepLogs: boolean;
  reconnectTimeoutMs: number;
  noerror: boolean;
  skipIdentical: boolean;
  compress: 'none' | 'gzip' | 'auto';
  /** `--bwlimit` as typed (a rate or a schedule), validated before connecting */
  bwlimit?: string;
  /** data path [openssh where it can work, else sftp, else stream] */
  via?: Via;
  /** `--via sftp`: where the staging dir goes [remote $HOME]; `--remote-reserve` as typed */
  remoteDir?: string;
  remoteReserve?: string;
  /** `--engine` [native]; `--local-dir`: where the rsync engine stages blocks [system temp dir] */
  engine?: EngineName;
  localDir?: string;
}

export interface RemoteSession {
  pool: SshPool;
  helper: RemoteHelper;
  /** `--engine rsync`: staging and the OpenSSH connection rsync uses (closed with the session). */
  rsync?: RsyncSession;
}

/** Connect with at most `connections` TCP connections (setup included) and install the helper. */
export async function openRemote(
  e: Endpoint,
  o: { connections: number; channels: number; acceptNewHostKey: boolean; reconnectTimeoutMs: number; jobId: string; probe?: InstallOptions['probe'] },
  ui: JobUi,
): Promise<RemoteSession> {
  const pool = await SshPool.open({
    hosts: e.hosts,
    port: e.port,
    user: e.user,
    identityFiles: e.identityFiles,
    agent: process.env.SSH_AUTH_SOCK || undefined,
    knownHostsFiles: knownHostsFilesOf(e),
    acceptNewHostKey: o.acceptNewHostKey,
    connections: o.connections,
    channelsPerConnection: o.channels,
    reconnectTimeoutMs: o.reconnectTimeoutMs,
    onWarning: (msg) => ui.emit({ type: 'warning', message: msg }),
  });
  try {
    const helper = await RemoteHelper.install(pool, { jobId: o.jobId, signal: ui.signal, probe: o.probe });
    return { pool, helper };
  } catch (err) {
    await pool.close();
    throw err;
  }
}

/** Refusals on the remote target (DESIGN §3): nothing is written before these pass. */
export function checkRemoteTarget(p: RemoteProbe, where: string, sourceSize: number, force: boolean): void {
  if (!p.exists) throw new UsageError('TARGET_MISSING', `remote target ${where} does not exist: create it or check the path`);
  if (p.type === 'other') throw new UsageError('NOT_A_DEVICE', `remote target ${where} is neither a block device nor a regular file`);
  if (!p.seekBytes) throw new UsageError('REMOTE_DD', `dd on the remote host lacks seek_bytes/count_bytes: install GNU coreutils there`);
  if (p.size < sourceSize) {
    throw new UsageError('TARGET_TOO_SMALL', `remote target ${where} has ${p.size} bytes, smaller than the source's ${sourceSize}: use a target of at least that size`);
  }
  const users: string[] = [];
  if (p.mounted) users.push('it or one of its partitions is mounted');
  if (p.swap) users.push('it is in use as swap');
  if (p.holders.length) users.push(`it is held by ${p.holders.join(', ')}`);
  if (users.length && !force) throw new UsageError('TARGET_IN_USE', `remote target ${where} is in use (${users.join('; ')}): release it first, or pass --force`);
  if (!p.writable) throw new UsageError('TARGET_READONLY', `remote target ${where} is not writable by the remote user`);
}

export function chooseChecksum(wanted: ChecksumAlgo | 'auto', p: RemoteProbe): ChecksumAlgo {
  if (wanted === 'xxh64' && !p.xxhsum) throw new UsageError('NO_XXHSUM', 'the remote host has no xxhsum for --checksum xxh64: install the xxhash package there or use --checksum sha256');
  if (wanted === 'sha256' && !p.sha256sum && !p.openssl) throw new UsageError('NO_SHA256', 'the remote host has neither sha256sum nor openssl');
  if (wanted !== 'auto') return wanted;
  return p.xxhsum ? 'xxh64' : 'sha256';
}

function endpointOf(h: JobHeader): Endpoint {
  const t = h.target;
  return { hosts: t.hosts ?? [t.host!], port: t.port ?? 22, user: t.user ?? 'root', identityFiles: t.identity ?? [], knownHostsFile: t.knownHosts };
}

/**
 * The data path of a new send: `--via` as given (sftp refused with exit 2 when it cannot stage,
 * also when only `--remote-dir` or `--remote-reserve` asked for staging), else DEFAULT_VIA,
 * falling back to stream, with a warning, where staging cannot work. Returns the staging plan
 * for sftp, undefined for stream.
 */
function chooseVia(req: SendRequest, engine: string, probe: RemoteProbe, blockLength: number, jobId: string, warn: (m: string) => void): StagingPlan | undefined {
  const via = req.via ?? (engine === 'native' && req.compress !== 'gzip' ? DEFAULT_VIA : 'stream');
  if (via !== 'sftp') return undefined;
  const asked = req.via !== undefined || req.remoteDir !== undefined || req.remoteReserve !== undefined;
  try {
    return planStaging(probe, req.remoteDir, req.remoteReserve, blockLength, jobId, req.connections * req.channels);
  } catch (err) {
    if (asked || !(err instanceof UsageError)) throw err;
    warn(`sending with --via stream, staging is not possible: ${err.message}`);
    return undefined;
  }
}

/** `ddt send SRC [user@]host:TARGET`: the SSH engines (native over stream or sftp, or rsync). */
export async function runSend(req: SendRequest, ui: JobUi): Promise<JobOutcome> {
  validateBlockSize(req.blockSize);
  const spec = parseRemoteSpec(req.target);
  validateRemotePath(spec.path, 'remote target');
  if (req.remoteDir !== undefined) validateRemotePath(req.remoteDir, '--remote-dir');
  const source = await probeSource(req.source);
  const endpoint = await resolveEndpoint(spec, req);
  const journalPath = req.journal ?? defaultJournalPath();
  JournalWriter.assertFree(journalPath);
  const jobId = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(4).toString('hex')}`;
  const engine = engineOf(req.engine);
  if (engine === 'rsync' && req.via === 'sftp') throw new UsageError('ENGINE_VIA', '--via sftp is a data path of the native engine; --engine rsync sends blocks with rsync: drop one of them');
  // --remote-dir / --remote-reserve without --via ask for staging: sftp, as before openssh existed.
  const stagingAsked = req.remoteDir !== undefined || req.remoteReserve !== undefined;
  const viaOpenSsh = useOpenSsh(req.via, engine, req.connections) && !(req.via === undefined && stagingAsked);
  const poolConnections = viaOpenSsh ? 1 : poolConnectionsFor(engine, req.connections);
  const localRsync = engine === 'rsync' ? await checkLocalRsync() : undefined;
  const onWarning = (message: string) => ui.emit({ type: 'warning', message });
  // Known host keys: the masters connect while ssh2 does (OpenSSH checks the same files, strictly).
  // With --accept-new-host-key they wait until ssh2 has recorded the key.
  const early = viaOpenSsh && !req.acceptNewHostKey ? new OpenSshStart(endpoint, { masters: req.connections - 1, jobId, reconnectTimeoutMs: req.reconnectTimeoutMs, onWarning }) : undefined;
  let session: RemoteSession;
  try {
    session = await openRemote(endpoint, { ...req, connections: poolConnections, jobId, probe: { target: spec.path, remoteDir: req.remoteDir } }, ui);
  } catch (err) {
    await early?.discard();
    throw err;
  }
  let ok = false;
  let started = false;
  try {
    const probe = await session.helper.probe(spec.path, req.remoteDir, ui.signal);
    const where = `${endpoint.hosts[0]}:${spec.path}`;
    checkRemoteTarget(probe, where, source.size, req.force);
    const algo = chooseChecksum(req.checksum, probe);
    const staging = viaOpenSsh ? undefined : chooseVia(req, engine, probe, Math.min(req.blockSize, source.size) || req.blockSize, jobId, onWarning);
    const blocks = planBlocks(source.size, req.blockSize);
    if (localRsync) {
      session.rsync = await RsyncSession.open(localRsync, { ...session, endpoint }, {
        ...req,
        target: spec.path,
        largestBlock: Math.min(req.blockSize, source.size) || req.blockSize,
        jobId,
        signal: ui.signal,
        onWarning: (message) => ui.emit({ type: 'warning', message }),
      });
    }
    if (req.dryRun) {
      ok = true;
      return {
        kind: 'dry-run',
        plan: [
          `source: ${source.path} (${source.kind}, ${source.size} bytes)`,
          `target: ${endpoint.user}@${where} (${probe.type}, ${probe.size} bytes, ${probe.cores} cores, read-back ${probe.direct ? 'O_DIRECT' : 'through the page cache'})`,
          `blocks: ${blocks.length} × ${req.blockSize} bytes, checksum ${algo}, ${req.connections} connection(s) × ${req.channels} channel(s), journal ${journalPath}`,
          ...(staging ? [`via sftp: staging in ${staging.stagingDir} (${staging.free} bytes available, ${staging.reserve} kept free)`] : []),
          ...(session.rsync ? [session.rsync.describe()] : []),
        ],
      };
    }
    if (!req.yes) {
      const yes = await ui.confirm(`Overwrite ${probe.type} ${where} (${probe.size} bytes) on ${endpoint.hosts.join(',')} with ${source.path} (${source.size} bytes)?`);
      if (!yes) throw new UsageError('NOT_CONFIRMED', 'not confirmed: nothing was written');
    }
    let via: Via = staging ? 'sftp' : 'stream';
    let dataConnections = poolConnections;
    if (viaOpenSsh) {
      const masters = req.connections - 1;
      if (await openSshOrStream(session, endpoint, { masters, channels: req.channels, jobId, reconnectTimeoutMs: req.reconnectTimeoutMs, explicit: req.via === 'openssh', early }, ui)) {
        via = 'openssh';
        dataConnections = masters;
      }
    }
    await initChecksums();
    const header: JobHeader = {
      type: 'job',
      version: JOURNAL_VERSION,
      command: 'send',
      options: {
        retries: req.retries,
        connections: req.connections,
        channels: req.channels,
        targetZeroed: req.targetZeroed,
        skipIdentical: req.skipIdentical,
        compress: req.compress,
        bwlimit: req.bwlimit,
        force: req.force,
        keepLogs: req.keepLogs,
        reconnectTimeoutMs: req.reconnectTimeoutMs,
        noerror: req.noerror,
        jobId,
        // As given: a default (the remote $HOME) is resolved again by every run.
        ...(staging ? { remoteDir: req.remoteDir, remoteReserve: req.remoteReserve } : {}),
        ...session.rsync?.recorded,
      },
      source: { path: source.path, size: source.size, identity: source.identity },
      target: {
        path: spec.path,
        size: probe.size,
        host: endpoint.hosts[0],
        hosts: endpoint.hosts,
        port: endpoint.port,
        user: endpoint.user,
        identity: endpoint.identityFiles,
        knownHosts: endpoint.knownHostsFile,
      },
      blockSize: req.blockSize,
      blocks: blocks.length,
      checksum: algo,
      engine,
      via,
      startedAt: new Date().toISOString(),
    };
    const journal = JournalWriter.create(journalPath, header);
    started = true;
    const outcome = await transfer(header, journal, undefined, session, { channels: req.channels * dataConnections }, ui);
    ok = outcome.kind === 'done' && outcome.summary.ok;
    return outcome;
  } finally {
    await early?.discard();
    // A refused or dry run leaves nothing behind; an unfinished run keeps the helper's PID list for resume.
    await closeRemote(session, !started || (ok && !req.keepLogs));
  }
}

async function transfer(header: JobHeader, journal: JournalWriter, previous: JournalState | undefined, s: RemoteSession, o: { channels: number }, ui: JobUi): Promise<JobOutcome> {
  const reader = await openSourceReader(header);
  let target: RemoteWriter | undefined;
  let summary: JobSummary | undefined;
  try {
    target = await openRemoteWriter(header, s, { channels: o.channels, signal: ui.signal, onWarning: (message) => ui.emit({ type: 'warning', message }) });
    summary = await executeJob(
      header,
      journal,
      previous,
      { reader, target },
      runSettingsOf(header, target.workers),
      ui.emit,
      ui.signal,
    );
    return { kind: 'done', summary };
  } finally {
    await reader.close();
    await target?.close().catch(() => {});
    // A job that staged blocks in this run or an earlier one (resumed with --via stream), or in
    // an explicit --remote-dir (the rsync engine stages there too).
    const staged = header.via === 'sftp' || previous?.header.via === 'sftp' || header.options.remoteDir !== undefined;
    if (summary?.ok && staged) await removeStaging(header, s.helper, ui.signal);
  }
}

/**
 * Start the OpenSSH masters for `--via openssh`. True when they carry the blocks; false when
 * the default path could not start them (warned: the run streams over ssh2 instead). Asked for
 * explicitly, a failure is the run's error.
 */
async function openSshOrStream(
  s: RemoteSession,
  endpoint: Endpoint,
  o: { masters: number; channels: number; jobId: string; reconnectTimeoutMs: number; explicit: boolean; early?: OpenSshStart },
  ui: JobUi,
): Promise<boolean> {
  const onWarning = (message: string) => ui.emit({ type: 'warning', message });
  try {
    // OpenSSH's MaxSessions (10 by default) counts the master's own session too: refusals shrink the share.
    await (o.early ?? new OpenSshStart(endpoint, { ...o, onWarning })).adopt(s.helper, o.channels, onWarning);
    return true;
  } catch (err) {
    if (o.explicit || !(err instanceof SshError)) throw err;
    onWarning(`sending with --via stream, the OpenSSH client could not connect: ${(err as Error).message}`);
    return false;
  }
}

export async function closeRemote(s: RemoteSession, removeWorkDir: boolean): Promise<void> {
  // The masters and the work dir's removal (over the ssh2 connection) do not wait for each
  // other: the block workers on the masters have quit already (the target writer's close).
  await Promise.all([
    stopOpenSshPath(s.helper),
    (async () => {
      await s.rsync?.close().catch(() => {});
      if (removeWorkDir) await s.helper.cleanup().catch(() => {});
    })(),
  ]);
  await s.pool.close();
}

export interface ResumeOverrides {
  connections?: number;
  channels?: number;
  identity?: string[];
  knownHosts?: string;
  /** data path for this run (the journal keeps the recorded one) */
  via?: Via;
  /** engine for this run: either one continues the other's journal (same checksums) */
  engine?: EngineName;
}

/** Continue a send from its journal: the recorded endpoint and settings, a re-checked target. */
export async function resumeSend(state: JournalState, journalPath: string, o: ResumeOverrides, ui: JobUi): Promise<JobOutcome> {
  const h = state.header;
  const source = await probeSource(h.source.path);
  const change = identityChange(h.source.identity, source.identity);
  if (change) throw new UsageError('SOURCE_CHANGED', `source ${h.source.path} changed since the run began: ${change}; resuming would mix two sources, start a new run instead`);
  const recorded = endpointOf(h);
  const endpoint: Endpoint = { ...recorded, identityFiles: o.identity?.length ? o.identity : recorded.identityFiles, knownHostsFile: o.knownHosts ?? recorded.knownHostsFile };
  const connections = o.connections ?? Number(h.options.connections ?? 2);
  const channels = o.channels ?? Number(h.options.channels ?? 4);
  const jobId = String(h.options.jobId);
  const engine = o.engine ?? engineOf(h.engine);
  // The recorded data path, or this run's override; openssh falls back to stream where it cannot
  // work now (fewer connections, no local ssh), unless the override asks for it.
  const wantOpenSsh = engine === 'native' && (o.via ?? h.via) === 'openssh';
  const viaOpenSsh = wantOpenSsh && (o.via === 'openssh' ? useOpenSsh('openssh', engine, connections) : connections >= 2 && findOnPath('ssh') !== undefined);
  const poolConnections = viaOpenSsh ? 1 : poolConnectionsFor(engine, connections);
  const localRsync = engine === 'rsync' ? await checkLocalRsync() : undefined;
  await removeRsyncLeftovers(jobId, h.options.localDir === undefined ? undefined : String(h.options.localDir));
  const reconnectTimeoutMs = Number(h.options.reconnectTimeoutMs ?? 600_000);
  const session = await openRemote(endpoint, { connections: poolConnections, channels, acceptNewHostKey: false, reconnectTimeoutMs, jobId }, ui);
  let ok = false;
  try {
    await session.helper.killStale(ui.signal);
    const probe = await session.helper.probe(h.target.path, undefined, ui.signal);
    if (!probe.exists || probe.size !== h.target.size) {
      throw new UsageError('TARGET_CHANGED', `remote target ${h.target.path} changed size from ${h.target.size} to ${probe.exists ? probe.size : 'missing'}: start a new run`);
    }
    checkRemoteTarget(probe, `${endpoint.hosts[0]}:${h.target.path}`, h.source.size, Boolean(h.options.force));
    if (localRsync) {
      const recorded = (k: string) => (h.options[k] === undefined ? undefined : String(h.options[k]));
      session.rsync = await RsyncSession.open(localRsync, { ...session, endpoint }, {
        target: h.target.path,
        largestBlock: Math.min(h.blockSize, h.source.size) || h.blockSize,
        localDir: recorded('localDir'),
        remoteDir: recorded('remoteDir'),
        remoteReserve: recorded('remoteReserve'),
        compress: (recorded('compress') ?? 'none') as CompressMode,
        channels,
        jobId,
        reconnectTimeoutMs,
        signal: ui.signal,
        onWarning: (message) => ui.emit({ type: 'warning', message }),
      });
    }
    let via = o.via ?? h.via;
    let dataConnections = poolConnections;
    if (wantOpenSsh) {
      const masters = connections - 1;
      if (viaOpenSsh && (await openSshOrStream(session, endpoint, { masters, channels, jobId, reconnectTimeoutMs, explicit: o.via === 'openssh' }, ui))) dataConnections = masters;
      else {
        if (!viaOpenSsh) ui.emit({ type: 'warning', message: 'resuming with --via stream: --via openssh needs --connections 2 or more and ssh on PATH' });
        via = 'stream';
      }
    }
    await initChecksums();
    const journal = JournalWriter.append(journalPath);
    // This run's engine and data path; the journal's header keeps what the job began with.
    const effective: JobHeader = { ...h, engine, ...(via ? { via } : {}) };
    const outcome = await transfer(effective, journal, state, session, { channels: dataConnections * channels }, ui);
    ok = outcome.kind === 'done' && outcome.summary.ok;
    return outcome;
  } finally {
    await closeRemote(session, ok && !h.options.keepLogs);
  }
}
