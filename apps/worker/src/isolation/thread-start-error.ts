// Why an isolated lane's attempt got no handler thread: the thread it waited for could not start.
import { BullpenError, type ErrorClass } from '@bullpen/core';

/**
 * A handler thread could not start: its handlers failed to load (`thread_start_failed`) or it was
 * not ready within the lane's threadStartTimeoutMs (`thread_start_timeout`). The handler never ran;
 * the attempt that was waiting for the thread fails with it, and may be retried.
 */
export class ThreadStartError extends BullpenError {
  override readonly name = 'ThreadStartError';
  readonly retryable = true;
  readonly errorClass: ErrorClass = 'thread_start';
  constructor(
    message: string,
    readonly code: 'thread_start_failed' | 'thread_start_timeout',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
