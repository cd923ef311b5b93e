// The soak's workload: its lanes (each with retention settings that bound what Redis keeps), the
// mix of jobs it sends (built-in handlers only), what each kind of job must end as, and the Redis
// memory that the retention settings allow.
'use strict';

/**
 * Kinds of job, per 1,000 sent: mostly fast successes, some slower or CPU-bound ones, transient
 * failures that succeed on their next attempt, and permanent failures that end as dead letters
 * (at once, or after every attempt failed).
 */
const KINDS = {
  fast: { per1000: 870, outcome: 'completed', job: () => ({ name: 'noop', data: {} }) },
  cpu: { per1000: 10, outcome: 'completed', job: () => ({ name: 'cpu', data: { ms: 5 } }) },
  slow: { per1000: 40, outcome: 'completed', job: (i) => ({ name: 'sleep', data: { ms: 20 + ((i * 37) % 280) } }) },
  transient: { per1000: 40, outcome: 'completed', job: () => ({ name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 2 } }) },
  rateLimited: {
    per1000: 10,
    outcome: 'completed',
    job: () => ({ name: 'fail', data: { kind: 'rate_limited', retryAfterMs: 250, succeedOnAttempt: 2 } }),
  },
  permanent: { per1000: 25, outcome: 'dead', job: () => ({ name: 'fail', data: { kind: 'permanent' } }) },
  exhausted: { per1000: 5, outcome: 'dead', job: () => ({ name: 'fail', data: { kind: 'retryable' } }) },
};
const BLOCK = Object.values(KINDS).reduce((sum, k) => sum + k.per1000, 0);
if (BLOCK !== 1000) throw new Error(`the soak mix adds up to ${BLOCK} per 1000`);

/** Shared by every lane: three attempts, short backoff so retries do not wait for minutes. */
const LANE_DEFAULTS = {
  concurrency: 25,
  maxQueueSize: 20_000,
  attempts: 3,
  backoff: { strategy: 'exponential', baseMs: 200, capMs: 2000 },
  timeoutMs: 10_000,
};

/** Four lanes whose retention differs, so that each bound is exercised. */
const LANES = {
  interactive: { completed: 1000, failed: 2000 },
  batch: { completed: 5000, failed: 500 },
  webhooks: { completed: 200, failed: 5000 },
  reports: { completed: 2000, failed: 1000 },
};

function lanesFile() {
  const lanes = {};
  for (const [name, keep] of Object.entries(LANES)) {
    lanes[name] = {
      ...LANE_DEFAULTS,
      retention: { completed: { ageSeconds: 3600, count: keep.completed }, failed: { ageSeconds: 7 * 24 * 3600, count: keep.failed } },
    };
  }
  return { maxHandlersPerProcess: 100, lanes };
}

/** A small seeded generator (mulberry32), so that two runs send the same sequence. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The kinds in shuffled blocks of 1,000, so that every 1,000 jobs sent hold the mix exactly. */
class MixStream {
  constructor(seed = 7) {
    this.random = seeded(seed);
    this.block = [];
    this.sent = 0;
  }

  next() {
    if (this.block.length === 0) {
      for (const [kind, k] of Object.entries(KINDS)) for (let i = 0; i < k.per1000; i += 1) this.block.push(kind);
      for (let i = this.block.length - 1; i > 0; i -= 1) {
        const j = Math.floor(this.random() * (i + 1));
        [this.block[i], this.block[j]] = [this.block[j], this.block[i]];
      }
    }
    const kind = this.block.pop();
    this.sent += 1;
    return { kind, job: KINDS[kind].job(this.sent) };
  }

  /** The next `size` jobs: { kinds, jobs } in the same order. */
  take(size) {
    const kinds = [];
    const jobs = [];
    for (let i = 0; i < size; i += 1) {
      const { kind, job } = this.next();
      kinds.push(kind);
      jobs.push(job);
    }
    return { kinds, jobs };
  }
}

/** What each kind ends as: 'completed' or 'dead'. */
const outcomeOf = (kind) => KINDS[kind].outcome;

/**
 * Assumed upper bounds on Redis memory per item, checked against what the run measures: a
 * completed or waiting job (its hash, its attempt log and its place in a state set), a dead
 * letter (larger: the error and stack of each of its attempts), and one entry of an event stream.
 */
const ASSUMED_BYTES = { job: 4096, deadLetter: 12_288, streamEntry: 256 };

/**
 * What the lanes' settings let Redis hold, above the baseline measured before the first job: the
 * retained completed jobs and dead letters, each lane's backlog (the soak keeps it under
 * maxBacklog, plus one batch in flight and the jobs active in every worker), and each event
 * stream at its approximate maximum length (XADD MAXLEN ~ may overshoot by a node of entries).
 */
function redisBound({ baselineBytes, eventsMaxLen, maxBacklog, batch, workers }) {
  const lanes = Object.values(lanesFile().lanes);
  const retainedJobs = lanes.reduce((sum, l) => sum + l.retention.completed.count, 0);
  const retainedDeadLetters = lanes.reduce((sum, l) => sum + l.retention.failed.count, 0);
  const backlogJobs = lanes.reduce((sum, l) => sum + maxBacklog + batch + l.concurrency * workers, 0);
  const streamEntries = lanes.length * (eventsMaxLen + 1000);
  const bytes =
    baselineBytes +
    (retainedJobs + backlogJobs) * ASSUMED_BYTES.job +
    retainedDeadLetters * ASSUMED_BYTES.deadLetter +
    streamEntries * ASSUMED_BYTES.streamEntry;
  return { bytes, baselineBytes, retainedJobs, retainedDeadLetters, backlogJobs, streamEntries, assumedBytes: ASSUMED_BYTES };
}

module.exports = { KINDS, LANES, MixStream, lanesFile, outcomeOf, redisBound, ASSUMED_BYTES };
