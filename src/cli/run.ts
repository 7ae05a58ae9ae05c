import type { JobOutcome, JobUi } from '../engine/ui.js';
import { exitCodeOf, messageOf } from '../errors.js';
import { printJson, printSummary } from './output.js';
import { clean } from './terminal.js';
import { RunUi, type ProgressMode } from './ui.js';

/** Shared tail of every transfer command: progress, the outcome on stdout, the exit code. */
export async function runTransfer(
  o: { [key: string]: unknown },
  start: (ui: JobUi) => Promise<JobOutcome>,
): Promise<void> {
  const ui = new RunUi(o.progress as ProgressMode);
  try {
    const outcome = await start(ui.jobUi(Boolean(o.yes)));
    if (outcome.kind === 'dry-run') {
      process.stdout.write(`dry run, nothing written:\n  ${outcome.plan.map((l) => clean(l, { newlines: false })).join('\n  ')}\n`);
      return;
    }
    ui.finish(outcome.summary);
    printSummary(outcome.summary, Boolean(o.json), { bytesProven: ui.bytesProvenThisRun() });
    process.exitCode = outcome.summary.exitCode;
  } catch (err) {
    // A run that ends before its summary (refused, unreachable) still tells a script how, on
    // stdout as one JSON object with --json; the one-line message goes to stderr as always.
    const exitCode = ui.signal.aborted ? 130 : exitCodeOf(err);
    ui.finish({ ok: false, exitCode });
    if (o.json) printJson({ ok: false, exitCode, error: messageOf(err) });
    throw err;
  } finally {
    ui.finish();
  }
}
