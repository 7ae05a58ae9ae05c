import type { BlockTally, PipelineCounters } from './pipeline.js';
import { ExitCode, messageOf, type ExitCodeValue } from '../errors.js';

/** The `--json` summary: whole-job figures, plus this run's wire bytes and time. */
export interface JobSummary extends BlockTally {
  ok: boolean;
  exitCode: ExitCodeValue;
  command: string;
  source: string;
  target: string;
  blocks: number;
  pending: number;
  badRanges: { offset: number; length: number }[];
  bytesTotal: number;
  bytesOnWire: number;
  seconds: number;
  checksum: string;
  engine: string;
  /** the data path of this run */
  via: string;
  /** blocks in flight at once (workers, sessions), and the round trip to the target's host where measured */
  channels: number;
  rttMs?: number;
  journal: string;
  error?: string;
}

export function exitCodeFor(c: PipelineCounters, pending: number, badRanges: number): ExitCodeValue {
  if (c.interrupted) return ExitCode.interrupted;
  if (c.fatal || c.failed > 0 || pending > 0) return ExitCode.incomplete;
  if (badRanges > 0) return ExitCode.badSectors;
  return ExitCode.ok;
}

export function errorText(c: PipelineCounters, journal: string): string | undefined {
  if (c.interrupted) return `interrupted: the journal is consistent, continue with: ddt resume ${journal}`;
  if (c.fatal) return `${messageOf(c.fatal)}; fix the cause and continue with: ddt resume ${journal}`;
  if (c.failed > 0) return `${c.failed} block(s) still differ after retries (${c.lastError ?? 'unknown'}); continue with: ddt resume ${journal}`;
  return undefined;
}
