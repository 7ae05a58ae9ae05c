import { isProven, type JournalWriter, type JournalState } from '../journal/journal.js';
import type { JobHeader } from '../journal/records.js';
import type { ProgressListener } from '../progress/events.js';
import { mergeRanges, planBlocks } from '../plan/block-plan.js';
import { ExitCode } from '../errors.js';
import { runPipeline } from './pipeline.js';
import { errorText, exitCodeFor, type JobSummary } from './summary.js';
import type { SourceReader, TargetHasher, TargetWriter } from './types.js';

export interface RunSettings {
  concurrency: number;
  retries: number;
  targetZeroed: boolean;
  skipIdentical?: boolean;
}

/** The per-run settings a job's header records (resume reuses them). */
export function runSettingsOf(header: JobHeader, concurrency: number): RunSettings {
  const o = header.options;
  return { concurrency, retries: Number(o.retries ?? 3), targetZeroed: Boolean(o.targetZeroed), skipIdentical: Boolean(o.skipIdentical) };
}

/**
 * Run (or continue) a job whose header is settled: plan the blocks, skip the ones the journal
 * proves, push the rest through the pipeline, and summarise the whole job.
 */
export async function executeJob(
  header: JobHeader,
  journal: JournalWriter,
  previous: JournalState | undefined,
  io: { reader: SourceReader; target: TargetWriter & TargetHasher },
  settings: RunSettings,
  emit: ProgressListener,
  signal: AbortSignal,
): Promise<JobSummary> {
  const started = Date.now();
  const blocks = planBlocks(header.source.size, header.blockSize);
  const provenBefore = blocks.filter((b) => isProven(previous?.blocks.get(b.index)));
  const todo = blocks.filter((b) => !isProven(previous?.blocks.get(b.index)));
  const journalPath = journal.path;
  journal.run({ event: 'start', pid: process.pid });
  emit({
    type: 'start',
    command: header.command,
    blocks: blocks.length,
    blockSize: header.blockSize,
    bytesTotal: header.source.size,
    blocksDone: provenBefore.length,
    bytesDone: provenBefore.reduce((n, b) => n + b.length, 0),
    engine: header.engine,
    source: describeEnd(header.source),
    target: describeEnd(header.target),
  });
  let counters;
  try {
    counters = await runPipeline(
      todo,
      { reader: io.reader, writer: io.target, hasher: io.target, journal, emit },
      { algo: header.checksum, retries: settings.retries, concurrency: settings.concurrency, targetZeroed: settings.targetZeroed, skipIdentical: settings.skipIdentical },
      signal,
    );
  } catch (err) {
    journal.run({ event: 'end', exitCode: ExitCode.internal, error: (err as Error).message });
    journal.close();
    throw err;
  }
  const verified = provenBefore.length + counters.verified;
  const pending = blocks.length - verified - counters.failed;
  const badRanges = mergeRanges([...provenBefore.flatMap((b) => previous?.blocks.get(b.index)?.ranges ?? []), ...counters.badRanges]);
  const exitCode = exitCodeFor(counters, pending, badRanges.length);
  const error =
    errorText(counters, journalPath) ??
    (badRanges.length ? `finished, but ${badRanges.length} unreadable source range(s) were zero-filled on the target: see ddt status ${journalPath}` : undefined);
  journal.run({ event: 'end', exitCode, error, bytesOnWire: counters.bytesOnWire });
  journal.close();
  const summary: JobSummary = {
    ok: exitCode === ExitCode.ok,
    exitCode,
    command: header.command,
    source: describeEnd(header.source),
    target: describeEnd(header.target),
    blocks: blocks.length,
    verified,
    sent: counters.sent,
    zeroBlocks: counters.zeroBlocks + provenBefore.filter((b) => /zero/.test(previous?.blocks.get(b.index)?.how ?? '')).length,
    identicalBlocks: counters.identicalBlocks,
    retransmitted: counters.retransmitted,
    failed: counters.failed,
    pending: Math.max(0, pending),
    badRanges,
    bytesTotal: header.source.size,
    bytesOnWire: counters.bytesOnWire,
    seconds: (Date.now() - started) / 1000,
    checksum: header.checksum,
    engine: header.engine,
    journal: journalPath,
  };
  if (error) summary.error = error;
  emit({ type: 'done', ok: summary.ok, exitCode, summary: summary as unknown as Record<string, unknown> });
  return summary;
}

export function describeEnd(end: { path: string; host?: string; user?: string }): string {
  if (!end.host) return end.path;
  const host = end.host.includes(':') ? `[${end.host}]` : end.host;
  return `${end.user ? end.user + '@' : ''}${host}:${end.path}`;
}
