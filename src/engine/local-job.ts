import { promises as fs } from 'node:fs';
import type { ChecksumAlgo } from '../checksum/types.js';
import { initChecksums } from '../checksum/hasher.js';
import { UsageError } from '../errors.js';
import { defaultJournalPath, JournalWriter, readJournal, isProven, type JournalState } from '../journal/journal.js';
import { JOURNAL_VERSION, type JobHeader, type TargetRecord } from '../journal/records.js';
import { planBlocks, validateBlockSize } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import { BlockReader } from '../source/block-reader.js';
import { identityChange, probeDevice, probeSource, type DeviceInfo } from '../source/device.js';
import { targetUsers } from '../source/usage.js';
import { executeJob, runSettingsOf } from './job.js';
import { LocalTarget } from './local-target.js';
import type { JobSummary } from './summary.js';

/** What the CLI supplies: the only way the engine talks to the user. */
export interface JobUi {
  /** Ask before overwriting; resolves false to refuse. Throws a UsageError when nobody can be asked. */
  confirm(question: string): Promise<boolean>;
  info(line: string): void;
  emit: ProgressListener;
  signal: AbortSignal;
}

export interface CopyRequest {
  source: string;
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  retries: number;
  concurrency: number;
  targetZeroed: boolean;
  force: boolean;
  yes: boolean;
  dryRun: boolean;
  journal?: string;
  /** zero-fill unreadable source sectors instead of stopping (exit 5 at the end) */
  noerror: boolean;
  skipIdentical: boolean;
}

export type JobOutcome = { kind: 'done'; summary: JobSummary } | { kind: 'dry-run'; plan: string[] } | { kind: 'nothing-to-do'; summary: JobSummary };

/**
 * Refusals for a local target (DESIGN §3), shared by copy and pull: too small, in use (mounted,
 * swap, holders), the source itself. Undefined when it does not exist (it will be created).
 * `source.path` is a local source; a remote source (pull) checks sameness itself.
 */
export async function checkLocalTarget(source: { size: number; path?: string }, targetPath: string, force: boolean): Promise<DeviceInfo | undefined> {
  const target = await probeDevice(targetPath);
  if (!target) return undefined;
  if (source.path !== undefined) {
    const [s, t] = await Promise.all([fs.stat(source.path), fs.stat(targetPath)]);
    if (s.dev === t.dev && s.ino === t.ino) {
      throw new UsageError('SAME_FILE', `source and target are the same ${target.kind}: ${targetPath}: pick another target`);
    }
  }
  if (target.size < source.size) {
    throw new UsageError(
      'TARGET_TOO_SMALL',
      `target ${targetPath} has ${target.size} bytes, smaller than the source's ${source.size}: use a target of at least that size`,
    );
  }
  const users = await targetUsers(targetPath);
  if (users.length > 0 && !force) {
    throw new UsageError('TARGET_IN_USE', `target is in use (${users.join('; ')}): unmount or release it first, or pass --force`);
  }
  return target;
}

/** `ddt copy SRC DST`: local → local through the same engine interfaces as the SSH engine. */
export async function runCopy(req: CopyRequest, ui: JobUi): Promise<JobOutcome> {
  validateBlockSize(req.blockSize);
  const source = await probeSource(req.source);
  const existing = await checkLocalTarget(source, req.target, req.force);
  const algo: ChecksumAlgo = req.checksum === 'auto' ? 'xxh64' : req.checksum;
  const blocks = planBlocks(source.size, req.blockSize);
  const journalPath = req.journal ?? defaultJournalPath();
  const plan = [
    `source: ${source.path} (${source.kind}, ${source.size} bytes)`,
    `target: ${req.target} (${existing ? `existing ${existing.kind}, ${existing.size} bytes, will be overwritten` : `new file of ${source.size} bytes`})`,
    `blocks: ${blocks.length} × ${req.blockSize} bytes, checksum ${algo}, journal ${journalPath}`,
  ];
  if (req.dryRun) return { kind: 'dry-run', plan };
  if (existing && !req.yes) {
    const ok = await ui.confirm(`Overwrite ${existing.kind} ${req.target} (${existing.size} bytes) with ${source.path} (${source.size} bytes)?`);
    if (!ok) throw new UsageError('NOT_CONFIRMED', 'not confirmed: nothing was written');
  }
  await initChecksums();
  const header: JobHeader = {
    type: 'job',
    version: JOURNAL_VERSION,
    command: 'copy',
    options: { retries: req.retries, concurrency: req.concurrency, targetZeroed: req.targetZeroed, skipIdentical: req.skipIdentical, force: req.force, noerror: req.noerror },
    source: { path: source.path, size: source.size, identity: source.identity },
    target: { path: req.target, size: existing?.size ?? source.size },
    blockSize: req.blockSize,
    blocks: blocks.length,
    checksum: algo,
    engine: 'native',
    startedAt: new Date().toISOString(),
  };
  // Refuse an existing journal before anything touches the target.
  JournalWriter.assertFree(journalPath);
  if (!existing) await createTargetFile(req.target, source.size);
  header.target.localIdentity = (await probeDevice(req.target))?.identity;
  const journal = JournalWriter.create(journalPath, header);
  return runLocal(header, journal, undefined, req.concurrency, ui);
}

async function runLocal(header: JobHeader, journal: JournalWriter, previous: JournalState | undefined, concurrency: number, ui: JobUi): Promise<JobOutcome> {
  const reader = await openSourceReader(header);
  const target = await LocalTarget.open(header.target.path);
  try {
    const summary = await executeJob(
      header,
      journal,
      previous,
      { reader, target },
      runSettingsOf(header, concurrency),
      ui.emit,
      ui.signal,
    );
    return { kind: 'done', summary };
  } finally {
    await reader.close();
    await target.close();
  }
}

/** The job's source, read as its header says (`--noerror` and the device's sector size). */
export async function openSourceReader(header: JobHeader): Promise<BlockReader> {
  const info = await probeSource(header.source.path);
  return BlockReader.open(header.source.path, undefined, { noerror: Boolean(header.options.noerror), sectorSize: info.sectorSize });
}

/** Continue a copy from its journal: same settings; refuse a changed source or target. */
export async function resumeCopy(state: JournalState, journalPath: string, overrides: { concurrency?: number }, ui: JobUi): Promise<JobOutcome> {
  const h = state.header;
  const source = await probeSource(h.source.path);
  const change = identityChange(h.source.identity, source.identity);
  if (change) throw new UsageError('SOURCE_CHANGED', `source ${h.source.path} changed since the run began: ${change}; resuming would mix two sources, start a new run instead`);
  await checkResumedLocalTarget(h.target);
  await initChecksums();
  const journal = JournalWriter.append(journalPath);
  return runLocal(h, journal, state, overrides.concurrency ?? Number(h.options.concurrency ?? 4), ui);
}

/** A local target that does not exist yet: a new file of the source's size (mode 600). */
export async function createTargetFile(path: string, size: number): Promise<void> {
  const fh = await fs.open(path, 'wx', 0o600);
  await fh.truncate(size);
  await fh.close();
}

/** On resume (copy, pull), the local target must be the one the journal describes. */
export async function checkResumedLocalTarget(t: TargetRecord): Promise<void> {
  const target = await probeDevice(t.path);
  if (!target) throw new UsageError('TARGET_MISSING', `target ${t.path} no longer exists: start a new run`);
  if (target.size !== t.size) {
    throw new UsageError('TARGET_CHANGED', `target ${t.path} changed size from ${t.size} to ${target.size} bytes: start a new run`);
  }
  const rec = t.localIdentity;
  if (rec && rec.kind === 'file' && rec.ino !== target.identity.ino) {
    throw new UsageError('TARGET_CHANGED', `target ${t.path} is a different file than when the run began: start a new run`);
  }
}

export function allProven(state: JournalState): boolean {
  for (let i = 0; i < state.header.blocks; i++) if (!isProven(state.blocks.get(i))) return false;
  return true;
}

export { readJournal };
