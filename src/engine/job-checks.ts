/**
 * Both ends of a run checked before anything is written: they exist, the target is large enough
 * and not in use, and on resume each is still the device or file the journal recorded. Gives
 * what the header records about them, the question to ask before overwriting, and how to
 * create a target that does not exist yet.
 */
import { describeIdentity, identityChange } from '../block/identity.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { EndRecord } from '../journal/records.js';
import { probeDevice, probeSource } from '../local/device.js';
import type { RemoteSession } from '../paths/types.js';
import { remotePathInfo } from '../remote/remote-source.js';
import { checkLocalTarget, checkResumedLocalTarget, createTargetFile } from './local-end.js';
import { checkRemoteSource, checkRemoteTarget } from './remote-end.js';
import { checkRemoteTools, chooseChecksum } from '../remote/tools.js';
import { remoteRecordOf, type EndSetup, type JobSetup } from './job-setup.js';
import { warn, type JobUi } from './ui.js';

export interface CheckedEnds {
  source: EndRecord;
  target: EndRecord;
  checksum: ChecksumAlgo;
  /** `--dry-run` lines. */
  describe: string[];
  /** The confirmation question when an existing target would be overwritten (new runs). */
  overwrites?: string;
  /** Create a target that does not exist yet (after the confirmation); gives its record. */
  createTarget?: () => Promise<EndRecord>;
}

/** What the checks of a target give. */
interface TargetCheck {
  record: EndRecord;
  line: string;
  overwrites?: string;
  create?: () => Promise<EndRecord>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|ip6-localhost)$/i;

export async function checkEnds(s: JobSetup, session: RemoteSession | undefined, ui: JobUi): Promise<CheckedEnds> {
  if (session) checkRemoteTools(session.probe, session.endpoint.hosts[0]!);
  const source = s.source.endpoint ? await remoteSource(s, s.source, session!, ui) : await localSource(s.source);
  const checksum = s.previous ? s.previous.header.checksum : s.checksum === 'auto' && !session ? 'xxh64' : s.checksum;
  const algo = session ? chooseChecksum(checksum, session.probe, session.endpoint.hosts[0]!) : (checksum as ChecksumAlgo);
  const target = s.target.endpoint ? await remoteTarget(s, session!, source.record.size, ui) : await localTarget(s, source.record, session);
  return {
    source: source.record,
    target: target.record,
    checksum: algo,
    describe: [source.line, target.line],
    ...(target.overwrites && { overwrites: `Overwrite ${target.overwrites} with ${source.shown} (${source.record.size} bytes)?` }),
    ...(target.create && { createTarget: target.create }),
  };
}

/** A change of the source since the job began: resuming would mix two sources. */
function refuseChangedSource(s: EndSetup, now: EndRecord, where: string): void {
  const recorded = s.record?.device;
  const change = recorded && now.device && identityChange(recorded, now.device);
  if (change) throw new DdtError('SOURCE_CHANGED', `source ${where} changed since the run began: ${change}; resuming would mix two sources, start a new run instead`);
}

async function localSource(s: EndSetup) {
  const info = await probeSource(s.path);
  const record: EndRecord = { path: info.path, size: info.size, device: info.identity };
  refuseChangedSource(s, record, s.path);
  return { record, shown: info.path, line: `source: ${info.path} (${info.kind}, ${info.size} bytes)` };
}

async function remoteSource(s: JobSetup, end: EndSetup, session: RemoteSession, ui: JobUi) {
  const where = `${session.endpoint.hosts[0]}:${end.path}`;
  const info = await remotePathInfo(session.helper, end.path, ui.signal);
  checkRemoteSource(info, session.probe, where, session.endpoint.user);
  const record: EndRecord = { path: end.path, size: info.size, device: info.identity, remote: remoteRecordOf(session.endpoint, s.sudo) };
  refuseChangedSource(end, record, where);
  if (session.probe.mounted) warn(ui, `remote source ${where} (or a partition of it) is mounted: the copy is consistent only if nothing writes to it meanwhile`);
  return { record, shown: where, line: `source: ${session.endpoint.user}@${where} (${info.kind}, ${info.size} bytes, ${session.probe.cores} cores)` };
}

async function localTarget(s: JobSetup, source: EndRecord, session: RemoteSession | undefined): Promise<TargetCheck> {
  const path = s.target.path;
  if (s.previous) {
    const rec = s.previous.header.target;
    const info = await checkResumedLocalTarget(path, rec.device, rec.size);
    await checkLocalTarget(source.size, path, s.options.force);
    return { record: rec, line: `target: ${path} (${info.kind}, ${info.size} bytes, as recorded)` };
  }
  const existing = await checkLocalTarget(source.size, path, s.options.force, s.source.endpoint ? undefined : s.source.path);
  if (existing && session && source.device && session.endpoint.hosts.some((h) => LOOPBACK.test(h))) {
    // Pulling from this very machine: the source must not be its own target.
    const d = source.device;
    const same = existing.kind === 'block' ? d.devno === existing.identity.devno : d.dev === existing.identity.dev && d.ino === existing.identity.ino;
    if (same) throw new DdtError('TARGET_INVALID', `source and target are the same ${existing.kind}: ${path}: pick another target`);
  }
  if (existing) {
    return { record: { path, size: existing.size, device: existing.identity }, overwrites: `${existing.kind} ${path} (${existing.size} bytes)`, line: `target: ${path} (existing ${existing.kind}, ${existing.size} bytes, will be overwritten)` };
  }
  const create = async (): Promise<EndRecord> => {
    await createTargetFile(path, source.size);
    const info = await probeDevice(path);
    return { path, size: source.size, ...(info && { device: info.identity }) };
  };
  return { record: { path, size: source.size }, create, line: `target: ${path} (new file of ${source.size} bytes)` };
}

async function remoteTarget(s: JobSetup, session: RemoteSession, sourceSize: number, ui: JobUi): Promise<TargetCheck> {
  const p = session.probe;
  const where = `${session.endpoint.hosts[0]}:${s.target.path}`;
  const remote = remoteRecordOf(session.endpoint, s.sudo);
  const line = `target: ${session.endpoint.user}@${where} (${p.type}, ${p.size} bytes, ${p.cores} cores, read-back ${p.direct ? 'O_DIRECT' : 'through the page cache'})`;
  if (s.previous) {
    const rec = s.previous.header.target;
    if (!p.exists || p.size !== rec.size) throw new DdtError('TARGET_CHANGED', `remote target ${where} changed size from ${rec.size} to ${p.exists ? p.size : 'missing'}: start a new run`);
    checkRemoteTarget(p, where, sourceSize, s.options.force);
    const now = (await remotePathInfo(session.helper, s.target.path, ui.signal)).identity;
    const change = rec.device && identityChange(rec.device, now, { target: true });
    if (change) throw new DdtError('TARGET_CHANGED', `remote target ${where} is not the one this job wrote: ${change} (recorded ${describeIdentity(rec.device!)}, now ${describeIdentity(now)}): start a new run for it`);
    return { record: rec, line };
  }
  if (!p.exists) return newRemoteFile(s, session, sourceSize, where, line, ui);

  checkRemoteTarget(p, where, sourceSize, s.options.force);
  const device = (await remotePathInfo(session.helper, s.target.path, ui.signal)).identity;
  return {
    record: { path: s.target.path, size: p.size, device, remote },
    overwrites: `${p.type} ${where} (${p.size} bytes) on ${session.endpoint.hosts.join(',')}`,
    line,
  };
}

/**
 * A remote target file that does not exist is created at the source's size (sparse), after the
 * confirmation, as a local one is; never under /dev, where a missing device is a mistake.
 */
async function newRemoteFile(s: JobSetup, session: RemoteSession, sourceSize: number, where: string, line: string, ui: JobUi): Promise<TargetCheck> {
  const path = s.target.path;
  if (path === '/dev' || path.startsWith('/dev/')) throw new DdtError('TARGET_MISSING', `remote target ${where} does not exist: a device must be there already; check the path`);
  await session.helper.createFile(path, sourceSize, ui.signal, { check: true });
  const remote = remoteRecordOf(session.endpoint, s.sudo);
  const create = async (): Promise<EndRecord> => {
    await session.helper.createFile(path, sourceSize, ui.signal);
    const device = (await remotePathInfo(session.helper, path, ui.signal)).identity;
    return { path, size: sourceSize, device, remote };
  };
  return { record: { path, size: sourceSize, remote }, create, line: line.replace(/\(other, 0 bytes[^)]*\)/, `(new file of ${sourceSize} bytes)`) };
}
