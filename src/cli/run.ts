import type { JobOutcome, JobUi } from '../engine/ui.js';
import { printSummary } from './output.js';
import { canAsk, RunUi, type ProgressMode } from './ui.js';

/** Shared tail of every transfer command: progress, the outcome on stdout, the exit code. */
export async function runTransfer(
  o: { [key: string]: unknown },
  start: (ui: JobUi) => Promise<JobOutcome>,
): Promise<void> {
  // Without --yes a question may come: nothing is drawn before it is answered.
  const ui = new RunUi(o.progress as ProgressMode, { holdForQuestion: !o.yes && canAsk() });
  try {
    const outcome = await start(ui.jobUi(Boolean(o.yes)));
    if (outcome.kind === 'dry-run') {
      process.stdout.write(`dry run, nothing written:\n  ${outcome.plan.join('\n  ')}\n`);
      return;
    }
    ui.finish(outcome.summary);
    printSummary(outcome.summary, Boolean(o.json), { bytesProven: ui.bytesProvenThisRun() });
    process.exitCode = outcome.summary.exitCode;
  } finally {
    ui.finish();
  }
}
