// Polling for a condition in tests: a clear error naming what never happened, not a mocha timeout.

/** Resolve once `check` holds; checked every `everyMs`, given up after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check()); await new Promise((r) => setTimeout(r, everyMs))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}
