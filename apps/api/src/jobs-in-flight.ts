// How many jobs the API has on their way to Redis at once (their admission and their add). Redis
// runs one command at a time, so submissions sent faster than it adds them only queue there, and
// a call that waits its turn behind others' adds for longer than the guard's bound is answered
// redis_timeout: outcome unknown, although Redis is healthy and will apply it. Twenty concurrent
// bulk requests of 1,000 jobs did that to half of them on a 2-vCPU machine, and forty to all.
// Past this limit a submission waits here instead, before anything is sent, and one that cannot
// be let through in time is refused as api_overloaded, when it is known that nothing was enqueued.
import { ProblemError } from './problem';

/** What a client is told to wait after api_overloaded. */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

interface Waiter {
  jobs: number;
  grant(): void;
}

export class JobsInFlight {
  private inFlight = 0;
  /** Submissions waiting for room, oldest first: a bulk is not overtaken by singles forever. */
  private readonly waiting: Waiter[] = [];

  /**
   * @param limit    jobs that may be on their way to Redis at once (API_MAX_INFLIGHT_JOBS). A
   *                 submission of more jobs than that goes alone.
   * @param maxWaitMs how long a submission may wait for room before api_overloaded
   *                 (API_INFLIGHT_WAIT_MS); 0 refuses at once when there is none.
   */
  constructor(
    readonly limit: number,
    readonly maxWaitMs: number,
  ) {}

  /** Jobs on their way to Redis now. */
  get current(): number {
    return this.inFlight;
  }

  /** Submissions waiting for room now. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Takes room for `jobs` if there is some now and nobody is waiting for it; else false. */
  tryEnter(jobs: number): boolean {
    const n = this.weight(jobs);
    if (this.waiting.length > 0 || !this.fits(n)) return false;
    this.inFlight += n;
    return true;
  }

  /**
   * Takes room for `jobs`, waiting behind earlier submissions for at most maxWaitMs. Rejects with
   * api_overloaded (nothing was sent) if the room did not come in time.
   */
  enter(jobs: number): Promise<void> {
    if (this.tryEnter(jobs)) return Promise.resolve();
    const n = this.weight(jobs);
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        jobs: n,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const refuse = () => {
        const at = this.waiting.indexOf(waiter);
        if (at < 0) return;
        this.waiting.splice(at, 1);
        // The refused one may have been first in line, holding back smaller ones behind it.
        this.grantWaiting();
        reject(overloaded(jobs, this.limit));
      };
      this.waiting.push(waiter);
      if (this.maxWaitMs === 0) refuse();
      else timer = setTimeout(refuse, this.maxWaitMs);
    });
  }

  /** Gives back the room `jobs` took (the same count it was entered with). */
  leave(jobs: number): void {
    this.inFlight = Math.max(0, this.inFlight - this.weight(jobs));
    this.grantWaiting();
  }

  private grantWaiting(): void {
    while (this.waiting.length > 0) {
      const first = this.waiting[0] as Waiter;
      if (!this.fits(first.jobs)) return;
      this.waiting.shift();
      this.inFlight += first.jobs;
      first.grant();
    }
  }

  /** A submission larger than the whole limit counts as the whole limit: it goes alone. */
  private weight(jobs: number): number {
    return Math.min(Math.max(jobs, 1), this.limit);
  }

  private fits(n: number): boolean {
    return this.inFlight + n <= this.limit;
  }
}

function overloaded(jobs: number, limit: number): ProblemError {
  const what = jobs === 1 ? 'The job was' : `The ${jobs} jobs were`;
  return new ProblemError(
    'api_overloaded',
    `The API has ${limit} jobs on their way to Redis and no room for more in time. ${what} not enqueued; retry shortly.`,
    { headers: { 'Retry-After': String(OVERLOADED_RETRY_AFTER_SECONDS) } },
  );
}
