// An active attempt aborted on request (DELETE of an active job): the job fails and is never retried.
import { BullpenError, type ErrorClass } from './errors';

export class CancelledError extends BullpenError {
  override readonly name = 'CancelledError';
  readonly code = 'cancelled';
  readonly retryable = false;
  readonly errorClass: ErrorClass = 'cancelled';
}
