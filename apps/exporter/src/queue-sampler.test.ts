import IORedis from 'ioredis';
import { laneEventsKey, MetricLabels, metricsOf } from '@bullpen/core';
import { createExporterMetrics } from './exporter-metrics';
import { countWorkers, QueueSampler, workerConnectionName } from './queue-sampler';
import { SeriesStore } from './stored-series';
import { cleanupPrefix, testConfig } from '../../../test/support/config';
import { redisUrl, testPrefix } from '../../../test/support/wait';
describe('counting workers from CLIENT LIST', () => {
  it('counts BullMQ worker connections per lane, named or not, and nothing else', () => {
    const a = workerConnectionName('bp', 'tool_call');
    expect(a).toBe('bp:{tool_call}:dG9vbF9jYWxs'); // the lane's BullMQ prefix, then the base64 queue name
    const list = [
      `id=1 addr=x fd=8 name=${a} age=1 cmd=bzpopmin`,
      `id=2 addr=x fd=9 name=${a}:w:worker-1 age=1 cmd=bzpopmin`,
      `id=3 addr=x fd=9 name=${workerConnectionName('other', 'tool_call')} age=1`,
      `id=4 addr=x fd=9 name=${a}:qe age=1`,
      `id=5 addr=x fd=9 name= age=1`,
      `id=6 addr=x fd=9 name=${workerConnectionName('bp', 'critic')}:w:w2 age=1`,
    ].join('\n');
    expect(countWorkers(list, 'bp', ['tool_call', 'critic', 'file_read'])).toEqual(
      new Map([
        ['tool_call', 2],
        ['critic', 1],
        ['file_read', 0],
      ]),
    );
  });
});

describe('the event lag', () => {
  const prefix = testPrefix('sampler-lag');
  let redis: IORedis;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  it('is measured on the clock of Redis, which writes the stream ids, whatever the exporter host clock says', async () => {
    const config = testConfig({ prefix, lanesFile: { lanes: { alpha: { concurrency: 1 } } } });
    // An entry written 5 s ago by Redis's clock, which the exporter has not counted yet.
    const [seconds] = await redis.time();
    await redis.xadd(laneEventsKey(prefix, 'alpha'), `${(Number(seconds) - 5) * 1000}-0`, 'event', 'completed');
    const sampler = new QueueSampler(redis, prefix, ['alpha'], () => '0-0');
    const metrics = createExporterMetrics({
      config,
      labels: new MetricLabels({ jobNames: [], tenants: [] }),
      store: new SeriesStore(metricsOf('exporter-events')),
      sample: () => sampler.sample(),
      loaded: () => true,
      up: () => true,
      leading: () => true,
      position: () => '0-0',
    });
    const lag = async (): Promise<number | undefined> => {
      const metric = await metrics.registry.getSingleMetric('bullpen_exporter_event_lag_seconds')?.get();
      return metric?.values.find((v) => v.labels.lane === 'alpha')?.value;
    };

    const realNow = Date.now.bind(Date);
    for (const skewMs of [0, 90_000, -90_000]) {
      // The exporter's host runs ahead of Redis's (a fake lag), then behind it (a hidden one).
      jest.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs);
      const seen = await lag();
      expect(`skew ${skewMs} ms: lag ${seen !== undefined && seen >= 5 && seen < 7 ? 'about 5 s' : `${seen} s`}`).toBe(
        `skew ${skewMs} ms: lag about 5 s`,
      );
      jest.restoreAllMocks();
    }
  });
});
