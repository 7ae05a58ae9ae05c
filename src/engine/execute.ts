/**
 * Run (or continue) a job whose header is settled and whose ends are open: plan the blocks,
 * skip the ones the journal proves, push the rest through the pipeline, and summarise the
 * whole job.
 */
import type { BlockSink, BlockSource } from '../block/types.js';
import { ExitCode } from '../errors.js';
import { isProven, type JournalState, type JournalWriter } from '../journal/journal.js';
import { describeEnd, type JobHeader } from '../journal/records.js';
import { mergeRanges, planBlocks } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import { runPipeline } from './pipeline.js';
import { changedSinceProven } from './recheck.js';
import { errorText, exitCodeFor, type JobSummary } from './summary.js';

export async function executeJob(
  header: JobHeader,
  journal: JournalWriter,
  previous: JournalState | undefined,
  ends: { source: BlockSource; sink: BlockSink },
  /** `recheck`: why the blocks proven earlier must be hashed again before they are trusted. */
  o: { run: string; recheck?: string; emit: ProgressListener; signal: AbortSignal },
): Promise<JobSummary> {
  const started = Date.now();
  const blocks = planBlocks(header.source.size, header.blockSize);
  let provenBefore = blocks.filter((b) => isProven(previous?.blocks.get(b.index)));
  let todo = blocks.filter((b) => !isProven(previous?.blocks.get(b.index)));
  if (o.recheck && previous && provenBefore.length) {
    o.emit({ type: 'warning', message: `re-checking the ${provenBefore.length} block(s) an earlier run proved before trusting them: ${o.recheck}` });
    const changed = await changedSinceProven(provenBefore, previous, ends.sink, header.checksum, o.signal);
    if (changed.length) {
      o.emit({ type: 'warning', message: `${changed.length} block(s) proven earlier read differently on the target now: they are sent again` });
      const again = new Set(changed.map((b) => b.index));
      provenBefore = provenBefore.filter((b) => !again.has(b.index));
      todo = blocks.filter((b) => again.has(b.index) || !isProven(previous.blocks.get(b.index)));
    }
  }
  const engine = header.path.name === 'rsync' ? 'rsync' : 'native';
  journal.run({ event: 'start', run: o.run, pid: process.pid });
  o.emit({
    type: 'start',
    command: header.command,
    blocks: blocks.length,
    blockSize: header.blockSize,
    bytesTotal: header.source.size,
    blocksDone: provenBefore.length,
    bytesDone: provenBefore.reduce((n, b) => n + b.length, 0),
    engine,
    source: describeEnd(header.source),
    target: describeEnd(header.target),
  });
  const concurrency = Math.max(1, Math.min(ends.sink.capacity, ends.source.capacity, header.command === 'copy' ? header.options.channels : Infinity));
  let counters;
  try {
    counters = await runPipeline(
      todo,
      { source: ends.source, sink: ends.sink, journal, emit: o.emit },
      {
        algo: header.checksum,
        retries: header.options.retries,
        concurrency,
        targetZeroed: header.options.targetZeroed,
        skipIdentical: header.options.skipIdentical,
      },
      o.signal,
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
    errorText(counters, journal.path) ??
    (badRanges.length ? `finished, but ${badRanges.length} unreadable source range(s) were zero-filled on the target: see ddt status ${journal.path}` : undefined);
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
    engine,
    via: header.path.name,
    channels: concurrency,
    ...(ends.sink.rttMs !== undefined && { rttMs: Math.round(ends.sink.rttMs * 10) / 10 }),
    journal: journal.path,
  };
  if (error) summary.error = error;
  o.emit({ type: 'done', ok: summary.ok, exitCode, summary: summary as unknown as Record<string, unknown> });
  return summary;
}
