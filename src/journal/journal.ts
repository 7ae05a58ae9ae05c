import { openSync, writeSync, fdatasyncSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { JOURNAL_VERSION, type BlockRecord, type JobHeader, type JournalRecord, type RunRecord } from './records.js';

/**
 * Append-only JSON Lines journal. Each record is one write(2) of one whole line, so a crash at
 * any instant leaves at worst a torn last line, which the reader ignores: losing a record only
 * means redoing a block. A block is recorded `verified` only after its read-back matched.
 */
export class JournalWriter {
  private lastSync = Date.now();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** Create a new journal (refuses to overwrite one) and write its header. */
  static create(path: string, header: JobHeader): JournalWriter {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        throw new UsageError('JOURNAL_EXISTS', `journal ${path} already exists: use 'ddt resume ${path}' or pick another --journal`);
      }
      throw new UsageError('JOURNAL_UNWRITABLE', `cannot create journal ${path}: ${(err as Error).message}`, { cause: err });
    }
    const w = new JournalWriter(path, fd);
    w.append(header, true);
    return w;
  }

  /** Throw the same refusal `create` would, without creating anything. */
  static assertFree(path: string): void {
    if (existsSync(path)) {
      throw new UsageError('JOURNAL_EXISTS', `journal ${path} already exists: use 'ddt resume ${path}' or pick another --journal`);
    }
  }

  /** Reopen an existing journal for appending (resume). */
  static append(path: string): JournalWriter {
    const fd = openSync(path, 'a');
    const w = new JournalWriter(path, fd);
    // A torn last line from a crash would glue onto our first record: start on a fresh line.
    const text = readFileSync(path, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) writeSync(fd, '\n');
    return w;
  }

  append(record: JournalRecord, sync = false): void {
    if (this.closed) return;
    writeSync(this.fd, JSON.stringify(record) + '\n');
    // Page cache survives a process crash; fdatasync bounds what a power loss can take.
    if (sync || Date.now() - this.lastSync > 5000) {
      fdatasyncSync(this.fd);
      this.lastSync = Date.now();
    }
  }

  block(rec: Omit<BlockRecord, 'type' | 'time'>): void {
    this.append({ type: 'block', time: new Date().toISOString(), ...rec });
  }

  run(rec: Omit<RunRecord, 'type' | 'time'>): void {
    this.append({ type: 'run', time: new Date().toISOString(), ...rec }, true);
  }

  close(): void {
    if (this.closed) return;
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.closed = true;
  }
}

/** Per-block knowledge folded from the journal: the last record of each block wins. */
export interface BlockStatus {
  state: BlockRecord['state'];
  source?: string;
  target?: string;
  how?: BlockRecord['how'];
  reason?: string;
  ranges?: { offset: number; length: number }[];
}

export interface JournalState {
  header: JobHeader;
  blocks: Map<number, BlockStatus>;
  runs: RunRecord[];
  lastError?: string;
  /** a torn or unparsable line was skipped */
  tornLines: number;
}

export function readJournal(path: string): JournalState {
  if (!existsSync(path)) throw new UsageError('JOURNAL_MISSING', `journal ${path} does not exist: give the path printed by the run`);
  const lines = readFileSync(path, 'utf8').split('\n');
  let header: JobHeader | undefined;
  const blocks = new Map<number, BlockStatus>();
  const runs: RunRecord[] = [];
  let lastError: string | undefined;
  let tornLines = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    let rec: JournalRecord;
    try {
      rec = JSON.parse(line) as JournalRecord;
    } catch {
      tornLines++;
      continue;
    }
    if (rec.type === 'job') {
      if (header) throw new UsageError('JOURNAL_CORRUPT', `journal ${path} has two job headers: it is not a ddt journal`);
      if (rec.version !== JOURNAL_VERSION) {
        throw new UsageError('JOURNAL_VERSION', `journal ${path} has format version ${rec.version}, this ddt reads version ${JOURNAL_VERSION}`);
      }
      header = rec;
    } else if (rec.type === 'block' && header && Number.isInteger(rec.block) && rec.block >= 0 && rec.block < header.blocks) {
      const prev = blocks.get(rec.block);
      blocks.set(rec.block, {
        state: rec.state,
        source: rec.source ?? prev?.source,
        target: rec.target,
        how: rec.how,
        reason: rec.reason,
        ranges: rec.ranges ?? (rec.state === 'verified' ? prev?.ranges : undefined),
      });
      if (rec.state === 'failed' && rec.reason) lastError = `block ${rec.block}: ${rec.reason}`;
    } else if (rec.type === 'run') {
      runs.push(rec);
      if (rec.error) lastError = rec.error;
    }
  }
  if (!header) throw new UsageError('JOURNAL_CORRUPT', `${path} has no job header: it is not a ddt journal`);
  return { header, blocks, runs, lastError, tornLines };
}

/** Verified means: a record says verified and its source and target checksums agree. */
export function isProven(s: BlockStatus | undefined): boolean {
  return !!s && s.state === 'verified' && !!s.source && s.source === s.target;
}

export function defaultJournalPath(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `./ddt-${stamp}.journal`;
}
