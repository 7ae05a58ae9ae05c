// Matchers for the errors tests expect, by what users see of them: `err instanceof UsageError`
// is true for any DdtError that exits 2, and `assert.throws(fn, UsageError)` works the same way.
import { DdtError, type ErrorCode } from '../../src/errors.js';

function byExit(exit: number) {
  return class extends DdtError {
    static [Symbol.hasInstance](e: unknown): boolean {
      return e instanceof DdtError && e.exitCode === exit;
    }
  };
}

function byCode(code: ErrorCode) {
  return class extends DdtError {
    static [Symbol.hasInstance](e: unknown): boolean {
      return e instanceof DdtError && e.code === code;
    }
  };
}

/** Bad input or a refusal: exit 2. */
export const UsageError = byExit(2);
/** SSH connection, authentication or host key: exit 3. */
export const SshError = byExit(3);
/** Incomplete, resumable: exit 4. */
export const RemoteHelperError = byExit(4);
export const SourceReadError = byCode('SOURCE_READ');
