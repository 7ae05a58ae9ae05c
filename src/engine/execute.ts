/**
 * Run (or continue) a job whose header is settled and whose ends are open: plan the blocks,
 * skip the ones the journal proves, push the rest through the pipeline, and summarise the
 * whole job.
 */
import type { BlockSink, BlockSource } from '../block/types.js';
import { ExitCode, messageOf } from '../errors.js';
import { isProven, targetBytes, type BlockStatus, type JournalState, type JournalWriter } from '../journal/journal.js';
import { describeEnd, type JobHeader } from '../journal/records.js';
import { mergeRanges, planBlocks } from '../plan/block-plan.js';
import type { ProgressListener } from '../progress/events.js';
import { runPipeline, type PipelineCounters } from './pipeline.js';
import { checkGpt, type GptCheck } from './gpt-fix.js';
import { changedSinceProven } from './recheck.js';
import type { EarlyEnds } from './skip-identical.js';
import { StallWatch } from './stall-watch.js';
import { errorText, exitCodeFor, type JobSummary } from './summary.js';

export async function executeJob(
  header: JobHeader,
  journal: JournalWriter,
  previous: JournalState | undefined,
  ends: { source: BlockSource; sink: BlockSink },
  /** `recheck`: why the blocks proven earlier must be hashed again before they are trusted. */
  o: { run: string; recheck?: string; emit: ProgressListener; signal: AbortSignal; rttMs?: number; ahead?: EarlyEnds },
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
  const remote = header.target.remote ? header.target : header.source.remote ? header.source : undefined;
  const watch = new StallWatch(o.emit, { peer: describeEnd(remote ?? header.target), reconnectTimeoutMs: remote ? header.options.reconnectTimeoutMs : undefined });
  let counters;
  try {
    counters = await runPipeline(
      todo,
      { source: ends.source, sink: ends.sink, journal, emit: watch.listen },
      {
        algo: header.checksum,
        retries: header.options.retries,
        concurrency,
        targetZeroed: header.options.targetZeroed,
        skipIdentical: header.options.skipIdentical,
        ahead: o.ahead,
      },
      o.signal,
    );
  } catch (err) {
    journal.run({ event: 'end', exitCode: ExitCode.internal, error: (err as Error).message });
    journal.close();
    throw err;
  } finally {
    watch.stop();
  }
  const verified = provenBefore.length + counters.verified;
  const pending = blocks.length - verified - counters.failed;
  const badRanges = mergeRanges([...provenBefore.flatMap((b) => previous?.blocks.get(b.index)?.ranges ?? []), ...counters.badRanges]);
  let exitCode = exitCodeFor(counters, pending, badRanges.length);
  let error =
    errorText(counters, journal.path) ??
    (badRanges.length ? `finished, but ${badRanges.length} unreadable source range(s) were zero-filled on the target: see ddt status ${journal.path}` : undefined);
  // Every block is proven: the target is the source, GPT included, wherever it ended.
  const gpt: GptCheck = {};
  if (exitCode === ExitCode.ok || exitCode === ExitCode.badSectors) {
    try {
      Object.assign(gpt, await checkGpt(header, ends, { fix: header.options.fixGpt === true, firstIndex: blocks.length, signal: o.signal }));
    } catch (err) {
      // Only a relocation that was asked for fails the run; a look that failed is no news.
      if (header.options.fixGpt) {
        exitCode = ExitCode.incomplete;
        error = `every block is verified, but moving the backup GPT to the end of the target failed: ${messageOf(err)}`;
      }
    }
    if (gpt.warning) o.emit({ type: 'warning', message: gpt.warning });
  }
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
    ...zeroBytes(provenBefore.map((b) => ({ length: b.length, s: previous?.blocks.get(b.index) })), counters),
    sourceHoleBytes: ends.source.holeBytes ?? 0,
    seconds: (Date.now() - started) / 1000,
    checksum: header.checksum,
    engine,
    via: header.path.name,
    channels: concurrency,
    ...(o.rttMs !== undefined && { rttMs: Math.round(o.rttMs * 10) / 10 }),
    journal: journal.path,
  };
  if (error) summary.error = error;
  if (gpt.warning) summary.warnings = [gpt.warning];
  if (gpt.fixed) summary.gptFixed = gpt.fixed;
  o.emit({ type: 'done', ok: summary.ok, exitCode, summary: summary as unknown as Record<string, unknown> });
  return summary;
}

/** Holes, offloaded and written bytes of the whole job: earlier runs' from the journal, plus this run's. */
function zeroBytes(before: Array<{ length: number; s?: BlockStatus }>, c: PipelineCounters): Pick<JobSummary, 'bytesHoles' | 'bytesOffloaded' | 'bytesWritten'> {
  const r = { bytesHoles: c.bytesHoles, bytesOffloaded: c.bytesOffloaded, bytesWritten: c.bytesWritten };
  for (const { length, s } of before) {
    if (!s) continue;
    const t = targetBytes(length, s);
    r.bytesHoles += t.holes;
    r.bytesOffloaded += t.offloaded;
    r.bytesWritten += t.written;
  }
  return r;
}
