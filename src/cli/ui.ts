import { createInterface } from 'node:readline/promises';
import { ProgressAggregator } from '../progress/aggregator.js';
import { createRenderer } from '../progress/select.js';
import type { ProgressRenderer } from '../progress/renderer.js';
import type { ProgressListener } from '../progress/events.js';
import { progressLine } from '../progress/plain.js';
import type { JobUi } from '../engine/ui.js';
import { DdtError, ExitCode } from '../errors.js';
import { clean } from './terminal.js';

export type { ProgressMode } from '../progress/select.js';
import type { ProgressMode } from '../progress/select.js';

export function canAsk(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/** Ask on the terminal; refuse (exit 2) when there is none, since nobody can say yes. */
export async function confirmOnTty(question: string): Promise<boolean> {
  if (!canAsk()) {
    throw new DdtError('NOT_CONFIRMED', `refusing to overwrite without confirmation and there is no terminal to ask on: ${question} Pass --yes to proceed`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** How long a stopping run may take after the first signal before the process just exits. */
export const STOP_WITHIN_MS = 1_000;

/**
 * The run's user interface: progress renderer, warnings, and SIGINT/SIGTERM turned into an
 * abort (first signal: stop cleanly, journal consistent; second: leave at once). Whatever the
 * phase (a name lookup, a server that never sends its banner, a flush), the process ends with
 * 130 within STOP_WITHIN_MS of the first signal: the journal is written synchronously, so it is
 * consistent at any instant, and whatever stopping in order did not finish by then a resume
 * takes care of.
 *
 * A run that may ask before overwriting (`holdForQuestion`: no --yes, and a terminal to ask on)
 * draws nothing until the transfer starts, after the answer: a display redrawn every 250 ms
 * would overwrite the question, and the user would answer blind; and the bars start with the
 * transfer's figures, not a setup frame. Warnings meanwhile are written as plain lines, except
 * while the question waits: they follow its answer.
 */
export class RunUi {
  readonly aggregator = new ProgressAggregator();
  private renderer: ProgressRenderer | undefined;
  private held: boolean;
  private asking = false;
  private finished = false;
  /** warnings already written as plain lines, which the renderer must not repeat */
  private warningsShown = 0;
  private readonly controller = new AbortController();
  private signals = 0;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.signals++;
    if (this.signals > 1) process.exit(ExitCode.interrupted);
    process.stderr.write(`\nddt: ${sig} received, stopping after the blocks in flight (again to quit at once)\n`);
    if (this.stopWithinMs !== false) setTimeout(() => process.exit(ExitCode.interrupted), this.stopWithinMs).unref();
    this.controller.abort(new DdtError('INTERRUPTED', `interrupted by ${sig}: the journal is consistent`));
  };
  /** bytes an earlier run had proven (resume): not this run's work */
  private bytesBefore = 0;
  // `kill -USR1 PID`: one status line, whatever the display (dd's habit).
  private readonly onUsr1 = () => {
    const s = this.aggregator.snapshot();
    process.stderr.write(s.phase === 'setup' ? 'ddt: connecting and checking, no block moved yet\n' : `${progressLine(s)}\n`);
  };

  private readonly stopWithinMs: number | false;

  /** `stopWithinMs`: false for a caller that cleans up after the run itself (the demo). */
  constructor(
    private readonly mode: ProgressMode,
    o: { holdForQuestion?: boolean; stopWithinMs?: number | false } = {},
  ) {
    this.held = o.holdForQuestion ?? false;
    this.stopWithinMs = o.stopWithinMs ?? STOP_WITHIN_MS;
    // Started now, not at the first block: warnings during connection setup (a host key
    // accepted, fewer channels than asked) must show too.
    if (!this.held) this.startRenderer();
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGUSR1', this.onUsr1);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The error a run ends with: once a signal stopped it, whatever failed on the way is the interruption. */
  outcomeOf(err: unknown): unknown {
    return this.signal.aborted ? this.signal.reason : err;
  }

  readonly emit: ProgressListener = (event) => {
    if (event.type === 'start') this.bytesBefore = event.bytesDone;
    this.aggregator.handle(event);
    // With no display (or none yet), warnings still reach the user: they are never silent. A
    // JSON stream held for a question sends them as its own events once it starts (or stops).
    if (event.type === 'warning' && !this.asking && (this.mode === 'none' || (!this.renderer && this.mode !== 'json'))) {
      process.stderr.write(`ddt: warning: ${clean(event.message, { newlines: false })}\n`);
      this.warningsShown = this.aggregator.warningCount;
    }
    // The transfer starts: no question is coming any more.
    if (event.type === 'start') this.release();
  };

  /** Ask, with nothing drawn meanwhile. */
  private async ask(question: string): Promise<boolean> {
    this.asking = true;
    try {
      return await confirmOnTty(question);
    } finally {
      this.asking = false;
      // What arrived while the question waited, now below its answer (JSON: as events, later).
      if (this.mode !== 'json') {
        for (const message of this.aggregator.warningsSince(this.warningsShown)) process.stderr.write(`ddt: warning: ${clean(message, { newlines: false })}\n`);
        this.warningsShown = this.aggregator.warningCount;
      }
    }
  }

  private release(): void {
    if (!this.held) return;
    this.held = false;
    this.startRenderer();
  }

  private startRenderer(start = true): void {
    if (this.renderer || this.finished) return;
    this.renderer = createRenderer(this.mode, this.aggregator, process.stderr, Boolean(process.stderr.isTTY), { warningsSeen: this.warningsShown });
    if (start) this.renderer.start();
  }

  /** Bytes proven by this run (zero and identical blocks included), for throughput and savings. */
  bytesProvenThisRun(): number {
    return Math.max(0, this.aggregator.snapshot().bytesVerified - this.bytesBefore);
  }

  jobUi(yes: boolean): JobUi {
    return {
      confirm: (q) => (yes ? Promise.resolve(true) : this.ask(q)),
      emit: this.emit,
      signal: this.signal,
    };
  }

  finish(result?: { ok: boolean; exitCode: number }): void {
    // A display never started still owes its last word (JSON's `done` event), not its bars.
    if (!this.finished) this.startRenderer(false);
    this.finished = true;
    this.renderer?.stop(result);
    this.renderer = undefined;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGUSR1', this.onUsr1);
  }
}
