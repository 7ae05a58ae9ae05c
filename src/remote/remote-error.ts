import { DdtError, ExitCode } from '../errors.js';

/**
 * The remote helper could not do what a block asked (an `ERR` line, a dead worker, a failed
 * command). Per block this is retryable; if it still fails, blocks stay unproven and the run is
 * resumable, hence exit 4.
 */
export class RemoteHelperError extends DdtError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, ExitCode.incomplete, message, options);
    this.name = 'RemoteHelperError';
  }
}
