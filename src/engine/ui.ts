/** What the CLI gives a job: the only way the engine talks to the user. */
import type { ProgressListener } from '../progress/events.js';
import type { JobSummary } from './summary.js';

export interface JobUi {
  /** Ask before overwriting; resolves false to refuse. Throws (exit 2) when nobody can be asked. */
  confirm(question: string): Promise<boolean>;
  emit: ProgressListener;
  signal: AbortSignal;
}

export type JobOutcome = { kind: 'done'; summary: JobSummary } | { kind: 'dry-run'; plan: string[] };

/** A warning through the progress display (never silent, see the CLI). */
export function warn(ui: Pick<JobUi, 'emit'>, message: string): void {
  ui.emit({ type: 'warning', message });
}
