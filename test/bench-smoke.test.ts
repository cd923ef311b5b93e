// `npm run bench` works end to end: `node bench/run.js --smoke` (N=500, one-second phases, a small
// exporter backlog) runs every section against the suite's Redis, exits 0 and writes a result
// file with every section. It never checks speed: targets are reported, not asserted.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBenchScript, type ScriptRun } from './support/bench-script';

const SMOKE_TIMEOUT_MS = 200_000;

type Json = Record<string, unknown>;

function runSmoke(out: string): Promise<ScriptRun> {
  return runBenchScript('run.js', ['--smoke', '--out', out], SMOKE_TIMEOUT_MS - 10_000);
}

/** The value at a dotted path of the report. */
function at(report: Json, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((value, key) => (value as Json | undefined)?.[key], report);
}

function expectPositive(report: Json, paths: string[]): void {
  const bad = paths.filter((p) => {
    const value = at(report, p);
    return typeof value !== 'number' || !Number.isFinite(value) || value <= 0;
  });
  expect(bad.map((p) => `${p} = ${JSON.stringify(at(report, p))}`)).toEqual([]);
}

describe('the benchmark (smoke run)', () => {
  let dir: string;
  let run: ScriptRun;
  let report: Json;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-bench-smoke-'));
    const out = path.join(dir, 'result.json');
    run = await runSmoke(out);
    report = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as Json) : {};
  }, SMOKE_TIMEOUT_MS);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 and prints the table', () => {
    expect({ code: run.code, signal: run.signal, tail: run.code === 0 ? '' : run.output.slice(-4000) }).toEqual({ code: 0, signal: null, tail: '' });
    expect(run.output).toContain('bullpen bench: N=500 (smoke)');
  });

  it('records the machine and the configuration it ran with', () => {
    expectPositive(report, ['machine.cpus', 'machine.memGiB', 'config.n', 'config.seconds', 'config.pickupJobs']);
    expect(at(report, 'config.n')).toBe(500);
    expect(at(report, 'machine.node')).toBe(process.version);
    expect(at(report, 'machine.redisVersion')).toMatch(/^\d+\.\d+/);
  });

  it('reports enqueue and worker throughput for bare BullMQ and for bullpen', () => {
    expectPositive(report, [
      'results.workerThroughput.bare.enqueue.jobsPerSec',
      'results.workerThroughput.bare.drain.jobsPerSec',
      'results.workerThroughput.bullpen.enqueue.jobsPerSec',
      'results.workerThroughput.bullpen.drain.jobsPerSec',
      'ratios.workerThroughput',
      'ratios.restBulkEnqueue',
    ]);
  });

  it('reports how much of the machine stayed idle during each drain', () => {
    for (const arm of ['bare', 'bullpen']) {
      const share = at(report, `results.workerThroughput.${arm}.drain.machineIdleShare`);
      expect({ arm, share: typeof share }).toEqual({ arm, share: 'number' });
      expect(share).toBeGreaterThanOrEqual(0);
      expect(share).toBeLessThanOrEqual(1);
    }
    expect(run.output).toContain('machine CPU idle during the drain');
  });

  it('reports single-job enqueue rates and latencies for the HTTP floor, queue.add and bullpen', () => {
    const paths = ['httpFloor', 'httpFloorNodeDefault', 'expressQueueAdd', 'bareQueueAdd', 'bullpen'].flatMap((target) =>
      ['perSecond', 'p50Ms', 'p99Ms', ...(target === 'bareQueueAdd' ? [] : ['serverCpuMsPerOp'])].map((field) => `results.singleEnqueue.${target}.${field}`),
    );
    expectPositive(report, [...paths, 'ratios.singleRestEnqueueVsHttpFloor', 'ratios.singleRestEnqueueVsNodeDefaultExpress', 'ratios.singleRestEnqueueVsExpressQueueAdd']);
  });

  it('reports idle pickup latency for bare BullMQ and bullpen over every job', () => {
    expectPositive(report, [
      'results.pickup.bare.sendToStart.p50Ms',
      'results.pickup.bare.sendToStart.p99Ms',
      'results.pickup.bullpen.sendToStart.p50Ms',
      'results.pickup.bullpen.sendToStart.p99Ms',
    ]);
    for (const arm of ['bare', 'bullpen']) {
      expect(at(report, `results.pickup.${arm}.pickup.count`)).toBe(50);
      // Whole milliseconds: a pickup within the millisecond it was added reads 0.
      expect(at(report, `results.pickup.${arm}.pickup.p99Ms`)).toBeGreaterThanOrEqual(0);
    }
  });

  it('reports worker throughput with tracing off and at 100% sampling, and the spans the sink received', () => {
    expectPositive(report, [
      'results.tracing.off.drain.jobsPerSec',
      'results.tracing.on.drain.jobsPerSec',
      'results.tracing.spansReceived.spans',
      'ratios.tracingThroughput',
    ]);
    expect(typeof at(report, 'results.tracing.workerSpansReceived')).toBe('boolean');
  });

  it("includes the exporter benchmark's events per second and /metrics latency", () => {
    expectPositive(report, ['results.exporter.eventsPerSec', 'results.exporter.metrics.p50Ms', 'results.exporter.metrics.p99Ms', 'results.exporter.metrics.waitingJobs']);
  });

  it('states every target with its value and whether it was met, without failing on a miss', () => {
    const targets = (report.targets ?? {}) as Record<string, Json>;
    expect(Object.keys(targets).sort()).toEqual(
      ['exporterEvents', 'exporterScrape', 'pickupP99', 'restBulkEnqueue', 'singleRestEnqueue', 'tracingOverhead', 'workerThroughput'].sort(),
    );
    for (const [name, t] of Object.entries(targets)) {
      expect({ name, met: typeof t.met, value: typeof t.value }).toEqual({ name, met: 'boolean', value: 'number' });
    }
  });
});
