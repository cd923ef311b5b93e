// Waits for one job at a time to complete, through a QueueEvents reader: completions that arrive
// before the caller asks (the id is known only once the add returns) are kept until asked for.
'use strict';
const { QueueEvents } = require('bullmq');

class Completions {
  constructor(queueName, { connection, prefix }) {
    this.events = new QueueEvents(queueName, { connection, prefix, autorun: true });
    this.waiting = new Map();
    this.early = new Map();
    this.events.on('error', () => undefined);
    this.events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { returnvalue }));
    this.events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { error: new Error(`job ${jobId} failed: ${failedReason}`) }));
  }

  ready() {
    return this.events.waitUntilReady();
  }

  settle(jobId, outcome) {
    const waiter = this.waiting.get(jobId);
    if (!waiter) {
      this.early.set(jobId, outcome);
      return;
    }
    this.waiting.delete(jobId);
    clearTimeout(waiter.timer);
    if (outcome.error) waiter.reject(outcome.error);
    else waiter.resolve(parse(outcome.returnvalue));
  }

  /** Resolves with the job's return value once it has completed. */
  wait(jobId, timeoutMs) {
    const early = this.early.get(jobId);
    if (early) {
      this.early.delete(jobId);
      return early.error ? Promise.reject(early.error) : Promise.resolve(parse(early.returnvalue));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(jobId);
        reject(new Error(`job ${jobId} did not complete within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(jobId, { resolve, reject, timer });
    });
  }

  close() {
    return this.events.close();
  }
}

function parse(value) {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

module.exports = { Completions };
