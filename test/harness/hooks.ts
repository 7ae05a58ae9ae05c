// Process-wide cleanup registry for the test harness.
//
// Resources that outlive a test if it crashes or is interrupted (sshd
// processes, loop devices, temp dirs) register a *synchronous* cleanup here
// at creation time. It runs on normal exit, on SIGINT/SIGTERM/SIGHUP and from
// the optional mocha root hook, so nothing is left behind even when a test
// forgets its `after` hook. Registration happens at import, so no mocha
// `--require` is needed; `mochaHooks` is exported for anyone who wants the
// cleanup to run before mocha's own exit as well.

type Cleanup = () => void;

const cleanups = new Map<number, Cleanup>();
const diagnostics = new Map<number, () => string>();
let nextId = 0;
let installed = false;

/** Register a synchronous cleanup; returns a function that unregisters it. */
export function registerCleanup(fn: Cleanup): () => void {
  installHandlers();
  const id = nextId++;
  cleanups.set(id, fn);
  return () => {
    cleanups.delete(id);
  };
}

/**
 * Register what to print when a test fails while the resource lives (a private sshd's log
 * tail: CI keeps nothing else of it). Returns a function that unregisters it.
 */
export function registerDiagnostic(fn: () => string): () => void {
  const id = nextId++;
  diagnostics.set(id, fn);
  return () => {
    diagnostics.delete(id);
  };
}

/**
 * Run every registered cleanup, newest first (a loop device attached to a
 * file in a temp dir is detached before the dir is removed). Each runs once;
 * a failing one does not stop the others.
 */
export function runCleanups(): void {
  const pending = [...cleanups.entries()].reverse();
  cleanups.clear();
  for (const [, fn] of pending) {
    try {
      fn();
    } catch {
      // Best effort at exit: there is nobody left to report to.
    }
  }
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runCleanups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runCleanups();
      // Listening for a signal disables Node's default "die" behaviour. If
      // nobody else handles it, restore the default and re-raise so the
      // process still ends with the conventional signal status.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/** Mocha root hooks (.mocharc.json requires this file): diagnostics of a failed test. */
export const mochaHooks = {
  afterEach(this: Mocha.Context): void {
    if (this.currentTest?.state !== 'failed') return;
    for (const fn of diagnostics.values()) {
      try {
        process.stderr.write(`${fn()}\n`);
      } catch {
        // A diagnostic must never fail the run.
      }
    }
  },
  afterAll(): void {
    runCleanups();
  },
};
