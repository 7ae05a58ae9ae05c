/**
 * Every failure ddt reports carries a stable code; the code decides the process exit code and
 * what a failed block attempt does next. Only cli/ turns errors into exits; everything else
 * throws `DdtError`s.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  badInput: 2,
  ssh: 3,
  incomplete: 4,
  badSectors: 5,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What a block attempt that failed with this error does next:
 * - `block`: try the block again (a mismatch, a worker or channel that died, a torn frame);
 * - `run`: stop the run, resumable: the next run may succeed (host unreachable, source unreadable);
 * - `never`: stop at once: nothing gets better until someone fixes the cause (a missing tool,
 *   a refused login, bad input).
 */
export type RetryClass = 'block' | 'run' | 'never';

const bad = { exit: ExitCode.badInput, retry: 'never' } as const;
const ssh = { exit: ExitCode.ssh, retry: 'run' } as const;
const sshFatal = { exit: ExitCode.ssh, retry: 'never' } as const;
const blockRetry = { exit: ExitCode.incomplete, retry: 'block' } as const;
const runStop = { exit: ExitCode.incomplete, retry: 'run' } as const;

/** The codes, each with its exit code and retry class. */
export const ERROR_CODES = {
  // bad input or a refusal before anything is written (exit 2)
  BAD_OPTION: bad,
  BAD_PATH: bad,
  BAD_SIZE: bad,
  BAD_TARGET: bad,
  BAD_SSH_CONFIG: bad,
  NOT_CONFIRMED: bad,
  PATH_REFUSED: bad,
  JOURNAL_EXISTS: bad,
  JOURNAL_MISSING: bad,
  JOURNAL_INVALID: bad,
  JOURNAL_UNWRITABLE: bad,
  SOURCE_MISSING: bad,
  SOURCE_INVALID: bad,
  SOURCE_CHANGED: bad,
  TARGET_MISSING: bad,
  TARGET_INVALID: bad,
  TARGET_CHANGED: bad,
  TARGET_IN_USE: bad,
  TARGET_LOCKED: bad,
  JOB_RUNNING: bad,
  TOOL_MISSING: bad,
  STAGING_SPACE: bad,
  REMOTE_USAGE: bad,
  // SSH connection, authentication, host key (exit 3)
  SSH_CONNECT: ssh,
  SSH_NO_CHANNEL: ssh,
  SSH_AUTH: sshFatal,
  SSH_NO_AUTH: sshFatal,
  SSH_HOST_KEY_UNKNOWN: sshFatal,
  SSH_HOST_KEY_CHANGED: sshFatal,
  SSH_SUDO: sshFatal,
  SSH_SETUP: sshFatal,
  // a channel that broke under a block: the block goes again
  SSH_CHANNEL: { exit: ExitCode.ssh, retry: 'block' },
  // incomplete, resumable (exit 4)
  REMOTE_ERR: blockRetry,
  REMOTE_PROTOCOL: blockRetry,
  REMOTE_COMMAND: blockRetry,
  WORKER_DEAD: blockRetry,
  PAYLOAD: blockRetry,
  SFTP: blockRetry,
  RSYNC_FAILED: blockRetry,
  WRITE_FAILED: blockRetry,
  REMOTE_PERMANENT: { exit: ExitCode.incomplete, retry: 'never' },
  SOURCE_READ: runStop,
  STAGING_FULL: runStop,
  CLOSED: runStop,
  // the target's lock went with a dropped connection and could not be taken back as it was
  LOCK_LOST: runStop,
  INTERRUPTED: { exit: ExitCode.interrupted, retry: 'never' },
} as const satisfies Record<string, { exit: ExitCodeValue; retry: RetryClass }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DdtError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DdtError';
    this.code = code;
  }

  get exitCode(): ExitCodeValue {
    return ERROR_CODES[this.code].exit;
  }

  get retry(): RetryClass {
    return ERROR_CODES[this.code].retry;
  }
}

/** Is `err` a DdtError (of one of `codes`, when given)? */
export function isDdtError(err: unknown, ...codes: ErrorCode[]): err is DdtError {
  return err instanceof DdtError && (codes.length === 0 || codes.includes(err.code));
}

export function exitCodeOf(err: unknown): ExitCodeValue {
  return err instanceof DdtError ? err.exitCode : ExitCode.internal;
}

/**
 * An error's retry class. One that is not a DdtError (an I/O error of a local target, say) is
 * tried again like a mismatch: after the retries the block stays unproven, the run resumable.
 */
export function retryClassOf(err: unknown): RetryClass {
  return err instanceof DdtError ? err.retry : 'block';
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
