import { randomBytes } from 'node:crypto';
import { initChecksums } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { UsageError } from '../errors.js';
import { defaultJournalPath, JournalWriter, type JournalState } from '../journal/journal.js';
import { JOURNAL_VERSION, type JobHeader } from '../journal/records.js';
import { planBlocks, validateBlockSize } from '../plan/block-plan.js';
import { RemoteHelper } from '../remote/helper.js';
import type { RemoteProbe } from '../remote/probe.js';
import { validateRemotePath } from '../remote/quote.js';
import { identityChange, probeSource } from '../source/device.js';
import { knownHostsFilesOf, resolveEndpoint, type Endpoint, type EndpointOptions } from '../transport/endpoint.js';
import { SshPool } from '../transport/ssh-pool.js';
import { parseRemoteSpec } from '../transport/target-spec.js';
import { executeJob } from './job.js';
import { openRemoteWriter, type RemoteWriter } from './remote-writers.js';
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
}

export interface RemoteSession {
  pool: SshPool;
  helper: RemoteHelper;
}

/** Connect with at most `connections` TCP connections (setup included) and install the helper. */
export async function openRemote(
  e: Endpoint,
  o: { connections: number; channels: number; acceptNewHostKey: boolean; reconnectTimeoutMs: number; jobId: string },
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
    const helper = await RemoteHelper.install(pool, { jobId: o.jobId, signal: ui.signal });
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

/** `ddt send SRC [user@]host:TARGET`: the native SSH engine over `--via stream`. */
export async function runSend(req: SendRequest, ui: JobUi): Promise<JobOutcome> {
  validateBlockSize(req.blockSize);
  const spec = parseRemoteSpec(req.target);
  validateRemotePath(spec.path, 'remote target');
  const source = await probeSource(req.source);
  const endpoint = await resolveEndpoint(spec, req);
  const journalPath = req.journal ?? defaultJournalPath();
  JournalWriter.assertFree(journalPath);
  const jobId = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(4).toString('hex')}`;
  const session = await openRemote(endpoint, { ...req, jobId }, ui);
  let ok = false;
  let started = false;
  try {
    const probe = await session.helper.probe(spec.path, undefined, ui.signal);
    const where = `${endpoint.hosts[0]}:${spec.path}`;
    checkRemoteTarget(probe, where, source.size, req.force);
    const algo = chooseChecksum(req.checksum, probe);
    const blocks = planBlocks(source.size, req.blockSize);
    if (req.dryRun) {
      ok = true;
      return {
        kind: 'dry-run',
        plan: [
          `source: ${source.path} (${source.kind}, ${source.size} bytes)`,
          `target: ${endpoint.user}@${where} (${probe.type}, ${probe.size} bytes, ${probe.cores} cores, read-back ${probe.direct ? 'O_DIRECT' : 'through the page cache'})`,
          `blocks: ${blocks.length} × ${req.blockSize} bytes, checksum ${algo}, ${req.connections} connection(s) × ${req.channels} channel(s), journal ${journalPath}`,
        ],
      };
    }
    if (!req.yes) {
      const yes = await ui.confirm(`Overwrite ${probe.type} ${where} (${probe.size} bytes) on ${endpoint.hosts.join(',')} with ${source.path} (${source.size} bytes)?`);
      if (!yes) throw new UsageError('NOT_CONFIRMED', 'not confirmed: nothing was written');
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
        force: req.force,
        keepLogs: req.keepLogs,
        reconnectTimeoutMs: req.reconnectTimeoutMs,
        noerror: req.noerror,
        jobId,
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
      engine: 'native',
      via: 'stream',
      startedAt: new Date().toISOString(),
    };
    const journal = JournalWriter.create(journalPath, header);
    started = true;
    const outcome = await transfer(header, journal, undefined, session, { channels: req.channels * req.connections }, ui);
    ok = outcome.kind === 'done' && outcome.summary.ok;
    return outcome;
  } finally {
    // A refused or dry run leaves nothing behind; an unfinished run keeps the helper's PID list for resume.
    await closeRemote(session, !started || (ok && !req.keepLogs));
  }
}

async function transfer(header: JobHeader, journal: JournalWriter, previous: JournalState | undefined, s: RemoteSession, o: { channels: number }, ui: JobUi): Promise<JobOutcome> {
  const reader = await openSourceReader(header);
  let target: RemoteWriter | undefined;
  try {
    target = await openRemoteWriter(header, s, { channels: o.channels, signal: ui.signal });
    const summary = await executeJob(
      header,
      journal,
      previous,
      { reader, target },
      { concurrency: target.workers, retries: Number(header.options.retries ?? 3), targetZeroed: Boolean(header.options.targetZeroed) },
      ui.emit,
      ui.signal,
    );
    return { kind: 'done', summary };
  } finally {
    await reader.close();
    await target?.close().catch(() => {});
  }
}

async function closeRemote(s: RemoteSession, removeWorkDir: boolean): Promise<void> {
  if (removeWorkDir) await s.helper.cleanup().catch(() => {});
  await s.pool.close();
}

export interface ResumeOverrides {
  connections?: number;
  channels?: number;
  identity?: string[];
  knownHosts?: string;
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
  const session = await openRemote(endpoint, { connections, channels, acceptNewHostKey: false, reconnectTimeoutMs: Number(h.options.reconnectTimeoutMs ?? 600_000), jobId }, ui);
  let ok = false;
  try {
    await session.helper.killStale(ui.signal);
    const probe = await session.helper.probe(h.target.path, undefined, ui.signal);
    if (!probe.exists || probe.size !== h.target.size) {
      throw new UsageError('TARGET_CHANGED', `remote target ${h.target.path} changed size from ${h.target.size} to ${probe.exists ? probe.size : 'missing'}: start a new run`);
    }
    checkRemoteTarget(probe, `${endpoint.hosts[0]}:${h.target.path}`, h.source.size, Boolean(h.options.force));
    await initChecksums();
    const journal = JournalWriter.append(journalPath);
    const outcome = await transfer(h, journal, state, session, { channels: connections * channels }, ui);
    ok = outcome.kind === 'done' && outcome.summary.ok;
    return outcome;
  } finally {
    await closeRemote(session, ok && !h.options.keepLogs);
  }
}
