// The processes the bench starts (redis-server, the apps, the HTTP floor, the exporter bench): each
// is tracked from spawn to exit so that every one is stopped, on success, on error and on a signal.
'use strict';
const { spawn } = require('node:child_process');
const readline = require('node:readline');

const TAIL_LINES = 40;

class Child {
  constructor(name, child, { group }) {
    this.name = name;
    this.child = child;
    this.group = group;
    this.tail = [];
    this.watchers = new Set();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      readline.createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
    this.exited.then((status) => {
      for (const watcher of this.watchers) watcher.fail(new Error(`${name} exited (${status.signal ?? status.code}) before ${watcher.what}${this.tailText()}`));
    });
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  onLine(line) {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    for (const watcher of this.watchers) watcher.test(line);
  }

  tailText() {
    return this.tail.length ? `; its last output:\n  ${this.tail.join('\n  ')}` : '';
  }

  /** Resolves with the first output line matching `pattern` (a RegExp's match), within timeoutMs. */
  waitForLine(pattern, what, timeoutMs) {
    return new Promise((resolve, reject) => {
      const watcher = {
        what,
        test: (line) => {
          const match = pattern.exec(line);
          if (match) done(() => resolve(match));
        },
        fail: (err) => done(() => reject(err)),
      };
      const timer = setTimeout(() => watcher.fail(new Error(`timed out after ${timeoutMs} ms waiting for ${this.name}: ${what}${this.tailText()}`)), timeoutMs);
      const done = (settle) => {
        if (!this.watchers.delete(watcher)) return;
        clearTimeout(timer);
        settle();
      };
      this.watchers.add(watcher);
      for (const line of this.tail) watcher.test(line);
    });
  }

  signal(sig) {
    if (!this.running) return;
    try {
      // A child started in its own process group (the exporter bench) takes its own children along.
      if (this.group) process.kill(-this.child.pid, sig);
      else this.child.kill(sig);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit status. */
  async stop(graceMs = 10_000) {
    if (this.running) {
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

class Children {
  constructor() {
    this.all = new Set();
  }

  /**
   * Starts a process with stdout and stderr read line by line (the last lines are kept for error
   * messages). `group: true` starts it in a process group of its own, stopped as a whole.
   */
  spawn(name, command, args, { env, cwd, group = false } = {}) {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
    const handle = new Child(name, child, { group });
    this.all.add(handle);
    handle.exited.then(() => this.all.delete(handle));
    return handle;
  }

  /** Stops every process still running, in reverse start order. */
  async stopAll(graceMs = 5000) {
    for (const handle of [...this.all].reverse()) await handle.stop(graceMs);
  }

  /** Last resort from a synchronous 'exit' handler: SIGKILL whatever is still running. */
  killAllNow() {
    for (const handle of this.all) handle.signal('SIGKILL');
  }
}

/** CPU seconds (user + system) a process has used, from /proc; undefined off Linux or once it exited. */
function cpuSeconds(pid) {
  try {
    const fields = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes, from /proc; undefined off Linux or once it exited. */
function rssBytes(pid) {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return kb ? Number(kb[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Bounds a run in time and leaves nothing behind: a signal or an overrun runs `cleanup` (which
 * stops `children`) and exits; an exit by any other path kills whatever is still running.
 * Returns a function that disarms the time limit once the run has finished.
 */
function guardRun({ name, children, limitMs, cleanup }) {
  const abort = (why, code) => {
    process.stderr.write(`${name}: ${why}; stopping everything it started\n`);
    cleanup().finally(() => process.exit(code));
  };
  const overrun = setTimeout(() => abort(`exceeded its time limit of ${limitMs / 1000} s`, 1), limitMs);
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  process.on('exit', () => children.killAllNow());
  return () => clearTimeout(overrun);
}

module.exports = { Children, cpuSeconds, guardRun, rssBytes };
