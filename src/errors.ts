/**
 * Typed errors with a stable `code` and the process exit code DESIGN §2 assigns to them.
 * Only cli/ turns these into process exits; everything else throws them.
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

export class DdtError extends Error {
  readonly code: string;
  readonly exitCode: ExitCodeValue;
  constructor(code: string, exitCode: ExitCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DdtError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad input or a refusal: nothing has been written (exit 2). */
export class UsageError extends DdtError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, ExitCode.badInput, message, options);
    this.name = 'UsageError';
  }
}

/** SSH connection, authentication or host-key failure (exit 3). */
export class SshError extends DdtError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, ExitCode.ssh, message, options);
    this.name = 'SshError';
  }
}

/** The run stopped with blocks still unproven; the journal is consistent and resumable (exit 4). */
export class IncompleteError extends DdtError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, ExitCode.incomplete, message, options);
    this.name = 'IncompleteError';
  }
}

/** The run was interrupted by a signal (exit 130). */
export class InterruptedError extends DdtError {
  constructor(message = 'interrupted', options?: { cause?: unknown }) {
    super('INTERRUPTED', ExitCode.interrupted, message, options);
    this.name = 'InterruptedError';
  }
}

export function exitCodeOf(err: unknown): ExitCodeValue {
  return err instanceof DdtError ? err.exitCode : ExitCode.internal;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The source could not be read (EIO, vanished device): the run stops resumable (exit 4). */
export class SourceReadError extends DdtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SOURCE_READ', ExitCode.incomplete, message, options);
    this.name = 'SourceReadError';
  }
}
