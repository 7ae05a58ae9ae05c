import { createInterface } from 'node:readline/promises';
import { ProgressAggregator } from '../progress/aggregator.js';
import { createRenderer } from '../progress/select.js';
import type { ProgressRenderer } from '../progress/renderer.js';
import type { ProgressListener } from '../progress/events.js';
import { progressLine } from '../progress/plain.js';
import type { JobUi } from '../engine/ui.js';
import { DdtError } from '../errors.js';
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

/**
 * The run's user interface: progress renderer, warnings, and SIGINT/SIGTERM turned into an
 * abort (first signal: stop cleanly, journal consistent; second: leave at once).
 */
export class RunUi {
  readonly aggregator = new ProgressAggregator();
  private renderer: ProgressRenderer | undefined;
  private readonly controller = new AbortController();
  private signals = 0;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.signals++;
    if (this.signals > 1) process.exit(130);
    process.stderr.write(`\nddt: ${sig} received, stopping after the blocks in flight (again to quit at once)\n`);
    this.controller.abort(new DdtError('INTERRUPTED', `interrupted by ${sig}: the journal is consistent`));
  };
  /** bytes an earlier run had proven (resume): not this run's work */
  private bytesBefore = 0;
  // `kill -USR1 PID`: one status line, whatever the display (dd's habit).
  private readonly onUsr1 = () => {
    const s = this.aggregator.snapshot();
    process.stderr.write(s.phase === 'setup' ? 'ddt: connecting and checking, no block moved yet\n' : `${progressLine(s)}\n`);
  };

  constructor(private readonly mode: ProgressMode) {
    // Started now, not at the first block: warnings during connection setup (a host key
    // accepted, fewer channels than asked) must show too.
    this.renderer = createRenderer(mode, this.aggregator, process.stderr, Boolean(process.stderr.isTTY));
    this.renderer.start();
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGUSR1', this.onUsr1);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly emit: ProgressListener = (event) => {
    if (event.type === 'start') this.bytesBefore = event.bytesDone;
    this.aggregator.handle(event);
    // With no display, warnings still reach the user: they are never silent.
    if (event.type === 'warning' && this.mode === 'none') process.stderr.write(`ddt: warning: ${clean(event.message, { newlines: false })}\n`);
  };

  /** Bytes proven by this run (zero and identical blocks included), for throughput and savings. */
  bytesProvenThisRun(): number {
    return Math.max(0, this.aggregator.snapshot().bytesVerified - this.bytesBefore);
  }

  jobUi(yes: boolean): JobUi {
    return {
      confirm: (q) => (yes ? Promise.resolve(true) : confirmOnTty(q)),
      emit: this.emit,
      signal: this.signal,
    };
  }

  finish(result?: { ok: boolean; exitCode: number }): void {
    this.renderer?.stop(result);
    this.renderer = undefined;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGUSR1', this.onUsr1);
  }
}
