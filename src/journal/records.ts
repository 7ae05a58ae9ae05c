import type { ChecksumAlgo } from '../checksum/types.js';
import type { SourceIdentity } from '../source/device.js';

export const JOURNAL_VERSION = 1;

export type JobCommand = 'copy' | 'send' | 'pull';

/** Where the target lives; `host` absent for local targets. */
export interface TargetRecord {
  path: string;
  size: number;
  host?: string;
  hosts?: string[];
  port?: number;
  user?: string;
  identity?: string[];
  knownHosts?: string;
  /** identity of a local target (copy/pull), to refuse a swapped target on resume */
  localIdentity?: SourceIdentity;
}

export interface SourceRecord {
  path: string;
  size: number;
  identity: SourceIdentity;
  host?: string;
  hosts?: string[];
  port?: number;
  user?: string;
  identity_files?: string[];
  knownHosts?: string;
}

/** First line of every journal: enough to resume the job with nothing else given. */
export interface JobHeader {
  type: 'job';
  version: number;
  command: JobCommand;
  /** options that shape the data: resume reuses them */
  options: Record<string, unknown>;
  source: SourceRecord;
  target: TargetRecord;
  blockSize: number;
  blocks: number;
  checksum: ChecksumAlgo;
  engine: string;
  via?: string;
  startedAt: string;
}

export type BlockState = 'read' | 'sent' | 'verified' | 'failed' | 'bad';

export interface BlockRecord {
  type: 'block';
  block: number;
  state: BlockState;
  source?: string;
  target?: string;
  /** how the block was proven: written data, zero command, already identical on the target */
  how?: 'data' | 'zero' | 'identical' | 'skipped-zero';
  reason?: string;
  ranges?: { offset: number; length: number }[];
  time?: string;
}

/** One line per run (first run and every resume), and the end of a run. */
export interface RunRecord {
  type: 'run';
  event: 'start' | 'end';
  time: string;
  pid?: number;
  exitCode?: number;
  error?: string;
  /** `end` of a run: bytes sent on the wire during that run */
  bytesOnWire?: number;
}

export type JournalRecord = JobHeader | BlockRecord | RunRecord;
