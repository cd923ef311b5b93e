// BullMQ's Worker for one lane, told what a lost reply to a completion means. The lane's
// connection sends again, once it is back, the commands whose replies a dropped connection lost
// (Redis restarted, failed over, or the network cut the connection after Redis ran them). When
// Redis had already stored a job's completion, the resent completion finds the job's lock gone
// and fails with "Missing lock"; BullMQ would then report an error, try to fail the job (which
// fails the same way) and emit neither 'completed' nor 'failed', though the job completed. Here
// the job is read back, and a completion stored for this very start is the job's outcome.
import { ErrorCode, Job, Worker, type Processor, type WorkerOptions } from 'bullmq';

export interface LostCompletionReply {
  jobId: string;
  attemptsStarted: number;
}

/** The Worker's options, plus what to do when a completion's reply was lost and Redis had stored it. */
export type LaneBullWorkerOptions = WorkerOptions & {
  onLostCompletionReply?: (lost: LostCompletionReply) => void;
};

export class LaneBullWorker extends Worker {
  private readonly onLostCompletionReply: ((lost: LostCompletionReply) => void) | undefined;

  constructor(name: string, processor: Processor, options: LaneBullWorkerOptions) {
    const { onLostCompletionReply, ...opts } = options;
    super(name, processor, opts);
    this.onLostCompletionReply = onLostCompletionReply;
  }

  protected override async handleCompleted(result: unknown, job: Job, token: string, fetchNextCallback?: () => boolean, span?: Parameters<Worker['handleCompleted']>[4]): Promise<Job> {
    try {
      return await super.handleCompleted(result, job, token, fetchNextCallback, span);
    } catch (err) {
      if ((err as { code?: unknown }).code !== ErrorCode.JobLockNotExist) throw err;
      const stored = await this.completedByThisStart(job);
      if (!stored) throw err;
      // As BullMQ's moveToCompleted leaves the job when Redis answers.
      job.returnvalue = result;
      job.finishedOn = stored.finishedOn;
      job.attemptsMade = stored.attemptsMade;
      this.onLostCompletionReply?.({ jobId: job.id ?? '', attemptsStarted: job.attemptsStarted });
      this.emit('completed', job, result, 'active');
      // The next job is fetched as usual. One the stored completion leased for this worker came in
      // the lost reply: no one runs it, and stall recovery takes it back once its lock expires,
      // counting a stall against it (a job at its lane's maxStalls fails as stalled).
      return undefined as unknown as Job;
    }
  }

  /**
   * The job as stored, when Redis holds its completion by the start this worker ran: completed,
   * and not started again since (another worker that took the job over after this one lost its
   * lock would have started it).
   */
  private async completedByThisStart(job: Job): Promise<Job | undefined> {
    if (!job.id) return undefined;
    const stored = await Job.fromId(this, job.id);
    if (!stored?.finishedOn || stored.attemptsStarted !== job.attemptsStarted || stored.processedOn !== job.processedOn) return undefined;
    return (await stored.getState()) === 'completed' ? stored : undefined;
  }
}
