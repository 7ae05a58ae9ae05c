import { accessSync, closeSync, constants, existsSync, fdatasyncSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { DdtError } from '../errors.js';
import type { BlockRecord, JobHeader, JournalRecord, RunRecord } from './records.js';
import { validBlock, validHeader, validRun } from './validate.js';

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
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw existsError(path);
      throw new DdtError('JOURNAL_UNWRITABLE', `cannot create journal ${path}: ${(err as Error).message}: choose another --journal`, { cause: err });
    }
    const w = new JournalWriter(path, fd);
    w.append(header, true);
    return w;
  }

  /**
   * Refuse, before connecting to anything, a journal path that `create` would refuse: one that
   * exists, or whose directory does not exist or cannot be written.
   */
  static assertCreatable(path: string): void {
    if (existsSync(path)) throw existsError(path);
    const dir = dirname(path);
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw new DdtError('JOURNAL_UNWRITABLE', `cannot create journal ${path}: ${dir} ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not a writable directory'}: choose another --journal`, { cause: err });
    }
  }

  /** Reopen an existing journal for appending (resume). */
  static append(path: string): JournalWriter {
    let fd: number;
    try {
      fd = openSync(path, 'a+');
    } catch (err) {
      throw new DdtError('JOURNAL_UNWRITABLE', `cannot append to journal ${path}: ${(err as Error).message}`, { cause: err });
    }
    const w = new JournalWriter(path, fd);
    // A torn last line from a crash would glue onto our first record: start on a fresh line.
    const size = statSync(path).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) writeSync(fd, '\n');
    }
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

function existsError(path: string): DdtError {
  return new DdtError('JOURNAL_EXISTS', `journal ${path} already exists: use 'ddt resume ${path}' or pick another --journal`);
}

/** Per-block knowledge folded from the journal: the last record of each block wins. */
export interface BlockStatus {
  state: BlockRecord['state'];
  source?: string;
  target?: string;
  how?: BlockRecord['how'];
  reason?: string;
  ranges?: { offset: number; length: number }[];
  holes?: number;
  offloaded?: number;
  written?: number;
}

export interface JournalState {
  header: JobHeader;
  blocks: Map<number, BlockStatus>;
  runs: RunRecord[];
  lastError?: string;
  /** the run whose record `lastError` came from (1-based), when known */
  lastErrorRun?: number;
  /** a torn or unparsable line was skipped */
  tornLines: number;
}

/** A line longer than this is not ddt's (its longest are block records with bad ranges). */
const MAX_LINE = 64 << 20;
const CHUNK = 1 << 20;

/** Read a journal, every record validated; refuses a path that is not a regular file. */
export function readJournal(path: string): JournalState {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new DdtError('JOURNAL_MISSING', `journal ${path} does not exist: give the path printed by the run`);
  }
  if (!st.isFile()) throw new DdtError('JOURNAL_INVALID', `journal ${path} is not a regular file: give the path printed by the run`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new DdtError('JOURNAL_INVALID', `cannot read journal ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return fold(path, linesOf(fd));
  } finally {
    closeSync(fd);
  }
}

/** The file's lines, read a chunk at a time (a journal can hold millions of records). */
function* linesOf(fd: number): Generator<string> {
  const buf = Buffer.alloc(CHUNK);
  let rest = '';
  for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
    const text = rest + buf.toString('utf8', 0, n);
    const lines = text.split('\n');
    rest = lines.pop()!;
    if (rest.length > MAX_LINE) throw new DdtError('JOURNAL_INVALID', `a line of ${rest.length} bytes without an end: this is not a ddt journal`);
    yield* lines;
  }
  if (rest) yield rest;
}

function fold(path: string, lines: Iterable<string>): JournalState {
  let header: JobHeader | undefined;
  const blocks = new Map<number, BlockStatus>();
  const runs: RunRecord[] = [];
  let lastError: string | undefined;
  let lastErrorRun: number | undefined;
  let tornLines = 0;
  let n = 0;
  for (const line of lines) {
    n++;
    if (!line.trim()) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      tornLines++; // a crash tears at most the last line; a resume appends after it
      continue;
    }
    const where = `journal ${path} line ${n}`;
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new DdtError('JOURNAL_INVALID', `${where}: not a record: start a new run`);
    const r = rec as Record<string, unknown>;
    if (!header) {
      if (r.type !== 'job') throw new DdtError('JOURNAL_INVALID', `${path} does not start with a job header: it is not a ddt journal`);
      if (r.version === 1) throw new DdtError('JOURNAL_INVALID', `journal ${path} was written by an earlier ddt (format 1): finish it with that version, or start a new run`);
      header = validHeader(r, where);
    } else if (r.type === 'block') {
      const b = validBlock(r, header, where);
      const prev = blocks.get(b.block);
      blocks.set(b.block, {
        state: b.state,
        source: b.source ?? prev?.source,
        target: b.target,
        how: b.how,
        reason: b.reason,
        ranges: b.ranges ?? (b.state === 'verified' ? prev?.ranges : undefined),
        ...(b.holes !== undefined && { holes: b.holes }),
        ...(b.offloaded !== undefined && { offloaded: b.offloaded }),
        ...(b.written !== undefined && { written: b.written }),
      });
      if (b.state === 'failed' && b.reason) {
        lastError = `block ${b.block}: ${b.reason}`;
        lastErrorRun = runs.filter((x) => x.event === 'start').length;
      }
    } else if (r.type === 'run') {
      const run = validRun(r, where);
      runs.push(run);
      if (run.error) {
        lastError = run.error;
        lastErrorRun = runs.filter((x) => x.event === 'start').length;
      }
    } else if (r.type === 'job') {
      throw new DdtError('JOURNAL_INVALID', `${where}: a second job header: it is not a ddt journal`);
    } else {
      throw new DdtError('JOURNAL_INVALID', `${where}: unknown record type ${JSON.stringify(String(r.type).slice(0, 40))}`);
    }
  }
  if (!header) throw new DdtError('JOURNAL_INVALID', `${path} has no job header: it is not a ddt journal`);
  return { header, blocks, runs, lastError, lastErrorRun, tornLines };
}

/** Verified means: a record says verified and its source and target checksums agree. */
export function isProven(s: BlockStatus | undefined): boolean {
  return !!s && s.state === 'verified' && !!s.source && s.source === s.target;
}

/**
 * What a proven block of `length` bytes did to the target: bytes made holes, zeroed by offload,
 * and written (a delta's `written`, else the rest of the block); none for one proven unsent.
 */
export function targetBytes(length: number, s: BlockStatus): { holes: number; offloaded: number; written: number } {
  if (s.how !== 'data' && s.how !== 'zero') return { holes: 0, offloaded: 0, written: 0 };
  const holes = s.holes ?? 0;
  const offloaded = s.offloaded ?? 0;
  return { holes, offloaded, written: s.written ?? length - holes - offloaded };
}

export function allProven(state: JournalState): boolean {
  let proven = 0;
  for (const s of state.blocks.values()) if (isProven(s)) proven++;
  return proven === state.header.blocks;
}

export function defaultJournalPath(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `./ddt-${stamp}.journal`;
}
