/**
 * `ddt pull [user@]host:SOURCE TARGET`: the send pipeline the other way round. The helper on the
 * source host reads each block, detects all-zero blocks there (sent as a command, not data) and
 * hashes exactly the bytes it sends; ddt writes them locally, flushes, reads them back (O_DIRECT
 * where the target allows) and compares. The local target gets the same checks as `copy`.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { initChecksums } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { UsageError } from '../errors.js';
import { defaultJournalPath, JournalWriter, type JournalState } from '../journal/journal.js';
import { JOURNAL_VERSION, type JobHeader } from '../journal/records.js';
import { planBlocks, validateBlockSize } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import type { RemoteProbe } from '../remote/probe.js';
import { validateRemotePath } from '../remote/quote.js';
import { RemoteSourceReader, remoteSourceInfo, type RemoteSourceInfo } from '../remote/remote-source.js';
import { identityChange, probeDevice, type DeviceInfo } from '../source/device.js';
import { resolveEndpoint, type Endpoint, type EndpointOptions } from '../transport/endpoint.js';
import { parseRemoteSpec } from '../transport/target-spec.js';
import { executeJob, runSettingsOf } from './job.js';
import { checkLocalTarget, checkResumedLocalTarget, createTargetFile, type JobOutcome, type JobUi } from './local-job.js';
import { LocalTarget } from './local-target.js';
import { chooseChecksum, closeRemote, openRemote, type RemoteSession, type ResumeOverrides } from './remote-job.js';

export interface PullRequest extends EndpointOptions {
  /** `[user@]host:/path` */
  source: string;
  /** local device or file */
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  retries: number;
  connections: number;
  channels: number;
  targetZeroed: boolean;
  skipIdentical: boolean;
  force: boolean;
  yes: boolean;
  dryRun: boolean;
  journal?: string;
  acceptNewHostKey: boolean;
  keepLogs: boolean;
  reconnectTimeoutMs: number;
}

/** Refusals on the remote source: nothing is written before these pass. */
function checkRemoteSource(info: RemoteSourceInfo, probe: RemoteProbe, where: string, user: string): void {
  if (!probe.exists) throw new UsageError('SOURCE_MISSING', `remote source ${where} does not exist: check the path`);
  if (info.kind === 'other') throw new UsageError('NOT_A_DEVICE', `remote source ${where} is neither a block device nor a regular file: give the path of a device or an image file`);
  if (!info.readable) throw new UsageError('SOURCE_UNREADABLE', `remote source ${where} is not readable by ${user}: connect as a user who can read it (e.g. -l root)`);
  if (info.size === 0) throw new UsageError('SOURCE_EMPTY', `remote source ${where} is empty (0 bytes): nothing to copy`);
  if (!probe.seekBytes) throw new UsageError('REMOTE_DD', 'dd on the remote host lacks skip_bytes/count_bytes: install GNU coreutils there');
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|ip6-localhost)$/i;

/** Pulling from this very machine: refuse the source as its own target (as copy does). */
async function refuseSameObject(endpoint: Endpoint, info: RemoteSourceInfo, target: DeviceInfo | undefined, targetPath: string): Promise<void> {
  if (!target || !info.object || !endpoint.hosts.some((h) => LOOPBACK.test(h))) return;
  const st = await fs.stat(targetPath);
  const local = target.kind === 'block' ? target.devno : `${st.dev}:${st.ino}`;
  if (local === info.object) throw new UsageError('SAME_FILE', `source and target are the same ${target.kind}: ${targetPath}: pick another target`);
}

function endpointOf(h: JobHeader): Endpoint {
  const s = h.source;
  return { hosts: s.hosts ?? [s.host!], port: s.port ?? 22, user: s.user ?? 'root', identityFiles: s.identity_files ?? [], knownHostsFile: s.knownHosts };
}

export async function runPull(req: PullRequest, ui: JobUi): Promise<JobOutcome> {
  validateBlockSize(req.blockSize);
  const spec = parseRemoteSpec(req.source);
  validateRemotePath(spec.path, 'remote source');
  const endpoint = await resolveEndpoint(spec, req);
  const journalPath = req.journal ?? defaultJournalPath();
  JournalWriter.assertFree(journalPath);
  const jobId = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(4).toString('hex')}`;
  const session = await openRemote(endpoint, { ...req, jobId, probe: { target: spec.path } }, ui);
  let ok = false;
  let started = false;
  try {
    const where = `${endpoint.hosts[0]}:${spec.path}`;
    const [probe, info] = await Promise.all([session.helper.probe(spec.path, undefined, ui.signal), remoteSourceInfo(session.helper, spec.path, ui.signal)]);
    checkRemoteSource(info, probe, where, endpoint.user);
    const existing = await checkLocalTarget({ size: info.size }, req.target, req.force);
    await refuseSameObject(endpoint, info, existing, req.target);
    if (probe.mounted) ui.emit({ type: 'warning', message: `remote source ${where} (or a partition of it) is mounted: the copy is consistent only if nothing writes to it meanwhile` });
    const algo = chooseChecksum(req.checksum, probe);
    const blocks = planBlocks(info.size, req.blockSize);
    if (req.dryRun) {
      ok = true;
      return {
        kind: 'dry-run',
        plan: [
          `source: ${endpoint.user}@${where} (${info.kind}, ${info.size} bytes, ${probe.cores} cores)`,
          `target: ${req.target} (${existing ? `existing ${existing.kind}, ${existing.size} bytes, will be overwritten` : `new file of ${info.size} bytes`})`,
          `blocks: ${blocks.length} × ${req.blockSize} bytes, checksum ${algo}, ${req.connections} connection(s) × ${req.channels} channel(s), journal ${journalPath}`,
        ],
      };
    }
    if (existing && !req.yes) {
      const yes = await ui.confirm(`Overwrite ${existing.kind} ${req.target} (${existing.size} bytes) with ${where} (${info.size} bytes)?`);
      if (!yes) throw new UsageError('NOT_CONFIRMED', 'not confirmed: nothing was written');
    }
    await initChecksums();
    const header: JobHeader = {
      type: 'job',
      version: JOURNAL_VERSION,
      command: 'pull',
      options: {
        retries: req.retries,
        connections: req.connections,
        channels: req.channels,
        targetZeroed: req.targetZeroed,
        skipIdentical: req.skipIdentical,
        force: req.force,
        keepLogs: req.keepLogs,
        reconnectTimeoutMs: req.reconnectTimeoutMs,
        jobId,
      },
      source: {
        path: spec.path,
        size: info.size,
        identity: info.identity,
        host: endpoint.hosts[0],
        hosts: endpoint.hosts,
        port: endpoint.port,
        user: endpoint.user,
        identity_files: endpoint.identityFiles,
        knownHosts: endpoint.knownHostsFile,
      },
      target: { path: req.target, size: existing?.size ?? info.size },
      blockSize: req.blockSize,
      blocks: blocks.length,
      checksum: algo,
      engine: 'native',
      via: 'stream',
      startedAt: new Date().toISOString(),
    };
    JournalWriter.assertFree(journalPath);
    if (!existing) await createTargetFile(req.target, info.size);
    header.target.localIdentity = (await probeDevice(req.target))?.identity;
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
  const target = await LocalTarget.open(header.target.path);
  let reader: RemoteSourceReader | undefined;
  try {
    reader = await RemoteSourceReader.open(s.helper, header.source.path, { workers: o.channels, signal: ui.signal });
    const r = reader;
    // The pipeline does not know channels; the reader knows which connection carried a block.
    const emit: ProgressListener = (e) => {
      if (e.type === 'block' && e.state === 'sent') ui.emit({ ...e, connection: e.connection ?? r.connectionOf(e.index) });
      else {
        if (e.type === 'block' && e.state !== 'read' && e.state !== 'retry') r.connectionOf(e.index);
        ui.emit(e);
      }
    };
    const summary = await executeJob(
      header,
      journal,
      previous,
      { reader, target },
      runSettingsOf(header, reader.workers),
      emit,
      ui.signal,
    );
    return { kind: 'done', summary };
  } finally {
    await reader?.close().catch(() => {});
    await target.close();
  }
}

/** Continue a pull from its journal: the recorded endpoint and settings, a re-checked source and target. */
export async function resumePull(state: JournalState, journalPath: string, o: ResumeOverrides, ui: JobUi): Promise<JobOutcome> {
  const h = state.header;
  await checkResumedLocalTarget(h.target);
  await checkLocalTarget({ size: h.source.size }, h.target.path, Boolean(h.options.force));
  const recorded = endpointOf(h);
  const endpoint: Endpoint = { ...recorded, identityFiles: o.identity?.length ? o.identity : recorded.identityFiles, knownHostsFile: o.knownHosts ?? recorded.knownHostsFile };
  const connections = o.connections ?? Number(h.options.connections ?? 2);
  const channels = o.channels ?? Number(h.options.channels ?? 4);
  const jobId = String(h.options.jobId);
  const session = await openRemote(endpoint, { connections, channels, acceptNewHostKey: false, reconnectTimeoutMs: Number(h.options.reconnectTimeoutMs ?? 600_000), jobId }, ui);
  let ok = false;
  try {
    await session.helper.killStale(ui.signal);
    const where = `${endpoint.hosts[0]}:${h.source.path}`;
    const [probe, info] = await Promise.all([session.helper.probe(h.source.path, undefined, ui.signal), remoteSourceInfo(session.helper, h.source.path, ui.signal)]);
    checkRemoteSource(info, probe, where, endpoint.user);
    const change = identityChange(h.source.identity, info.identity);
    if (change) throw new UsageError('SOURCE_CHANGED', `remote source ${where} changed since the run began: ${change}; resuming would mix two sources, start a new run instead`);
    await initChecksums();
    const journal = JournalWriter.append(journalPath);
    const outcome = await transfer(h, journal, state, session, { channels: connections * channels }, ui);
    ok = outcome.kind === 'done' && outcome.summary.ok;
    return outcome;
  } finally {
    await closeRemote(session, ok && !h.options.keepLogs);
  }
}
