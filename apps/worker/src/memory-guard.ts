// Stops a worker from taking new jobs while its RSS is over the limit, and lets it take jobs
// again once RSS is back under a fraction of the limit (hysteresis, so it does not flap).
// Far from the limit it samples once a second. Near it (from the resume threshold's fraction of the
// limit up), and while intake is stopped, it samples ten times as often: a worker that resumes
// leases a burst of jobs at once, and a second between samples lets such a burst carry RSS well
// past the limit before intake stops again.
import { EventEmitter } from 'node:events';

export interface MemoryUsageSample {
  rss: number;
  heapUsed: number;
}

export interface MemoryGuardOptions {
  /** RSS above which intake stops; default 512 MiB. */
  maxRssBytes?: number;
  /** Intake resumes below maxRssBytes × this; default 0.9. */
  resumeFraction?: number;
  /** Heap used above which a warning is raised; default 400 MiB. */
  heapWarnBytes?: number;
  /** How often memory is sampled while RSS is far below the limit; default 1000 ms. */
  intervalMs?: number;
  /**
   * How often memory is sampled while RSS is at or above `nearFraction` of the limit, or intake is
   * stopped; default intervalMs / 10.
   */
  nearIntervalMs?: number;
  /** From this fraction of maxRssBytes up, memory is sampled every nearIntervalMs; default 0.8. */
  nearFraction?: number;
  /** Memory reader, for tests; default process.memoryUsage. */
  sample?: () => MemoryUsageSample;
}

export interface MemoryGuardEvents {
  'memory:over-limit': [MemoryUsageSample];
  'memory:recovered': [MemoryUsageSample];
  'memory:heap-warning': [MemoryUsageSample];
}

const MiB = 1024 * 1024;

export class MemoryGuard extends EventEmitter<MemoryGuardEvents> {
  readonly maxRssBytes: number;
  readonly resumeBelowBytes: number;
  readonly heapWarnBytes: number;
  private readonly intervalMs: number;
  private readonly nearIntervalMs: number;
  private readonly nearBytes: number;
  private readonly sample: () => MemoryUsageSample;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private overLimit = false;
  private heapWarned = false;
  private last: MemoryUsageSample = { rss: 0, heapUsed: 0 };

  constructor(options: MemoryGuardOptions = {}) {
    super();
    this.maxRssBytes = options.maxRssBytes ?? 512 * MiB;
    this.resumeBelowBytes = this.maxRssBytes * (options.resumeFraction ?? 0.9);
    this.heapWarnBytes = options.heapWarnBytes ?? 400 * MiB;
    this.intervalMs = options.intervalMs ?? 1000;
    this.nearIntervalMs = options.nearIntervalMs ?? Math.max(1, Math.round(this.intervalMs / 10));
    this.nearBytes = this.maxRssBytes * (options.nearFraction ?? 0.8);
    this.sample = options.sample ?? (() => process.memoryUsage());
  }

  /** True while intake is stopped. */
  get paused(): boolean {
    return this.overLimit;
  }

  get heapWarning(): boolean {
    return this.heapWarned;
  }

  get lastSample(): MemoryUsageSample {
    return this.last;
  }

  /** How long until the next sample, given the last one. */
  get nextSampleInMs(): number {
    return this.overLimit || this.last.rss >= this.nearBytes ? this.nearIntervalMs : this.intervalMs;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.tick();
  }

  private tick(): void {
    this.check();
    if (!this.started) return; // a listener closed the guard
    this.timer = setTimeout(() => this.tick(), this.nextSampleInMs);
    this.timer.unref();
  }

  /** Samples memory once and changes state when a threshold is crossed. */
  check(): void {
    const { rss, heapUsed } = this.sample();
    this.last = { rss, heapUsed };
    if (!this.overLimit && rss > this.maxRssBytes) {
      this.overLimit = true;
      this.emit('memory:over-limit', this.last);
    } else if (this.overLimit && rss < this.resumeBelowBytes) {
      this.overLimit = false;
      this.emit('memory:recovered', this.last);
    }
    const heapHigh = heapUsed > this.heapWarnBytes;
    const warnedBefore = this.heapWarned;
    // State first, so that listeners see the state they are told about.
    this.heapWarned = heapHigh;
    if (heapHigh && !warnedBefore) this.emit('memory:heap-warning', this.last);
  }

  close(): void {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
