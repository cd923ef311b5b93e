import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog } from './event-log';

describe('EventLog', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-eventlog-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes one JSON object per line', async () => {
    const file = path.join(dir, 'events.jsonl');
    const log = new EventLog({ file });
    log.write({ event: 'completed', lane: 'a', job_id: '1' });
    log.write({ event: 'failed', lane: 'a', job_id: '2' });
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { event: 'completed', lane: 'a', job_id: '1' },
      { event: 'failed', lane: 'a', job_id: '2' },
    ]);
  });

  it('rotates at the configured size and keeps the configured number of files', async () => {
    const file = path.join(dir, 'events.jsonl');
    const log = new EventLog({ file, maxBytes: 1000, maxFiles: 2 });
    for (let i = 0; i < 100; i += 1) log.write({ event: 'completed', n: i, pad: 'x'.repeat(50) });
    await log.close();
    const files = readdirSync(dir).sort();
    expect(files).toEqual(['events.jsonl', 'events.jsonl.1', 'events.jsonl.2']);
    for (const f of files) expect(readFileSync(path.join(dir, f)).length).toBeLessThanOrEqual(1000);
    expect(log.rotations).toBeGreaterThanOrEqual(2);
    // The newest line is in the live file, and older ones in .1 precede it.
    const live = readFileSync(file, 'utf8').trim().split('\n');
    expect(JSON.parse(live[live.length - 1] ?? '{}').n).toBe(99);
  });

  it('counts and reports once, without throwing, when the path cannot be written', async () => {
    const blocker = path.join(dir, 'not-a-dir');
    require('node:fs').writeFileSync(blocker, 'x');
    const errors: string[] = [];
    const log = new EventLog({ file: path.join(blocker, 'events.jsonl'), onError: (e) => errors.push(e.code ?? '') });
    log.write({ event: 'a' });
    await log.flush();
    log.write({ event: 'b' });
    await log.close();
    expect(log.errors).toBe(2);
    expect(log.droppedLines).toBe(2);
    expect(errors).toHaveLength(1);
  });

  it('ends a partial last line left by a killed writer before appending, so only that line is lost', async () => {
    const file = path.join(dir, 'events.jsonl');
    require('node:fs').writeFileSync(file, '{"event":"completed"}\n{"event":"fai');
    const log = new EventLog({ file });
    log.write({ event: 'lease_created' });
    await log.close();
    expect(readFileSync(file, 'utf8')).toBe('{"event":"completed"}\n{"event":"fai\n{"event":"lease_created"}\n');
  });
});
