import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadExporterConfig } from './config';

describe('loadExporterConfig', () => {
  it('allows the lanes job names and the built-in handlers as job_name values by default', () => {
    const config = loadExporterConfig({});
    expect([...config.jobNames].sort()).toEqual(['cpu', 'fail', 'http', 'noop', 'sleep']);
    expect(config.batchSize).toBe(1000);
    expect(config.leaderLeaseMs).toBe(10_000);
    expect(config.core.exporterPort).toBe(9400);
  });

  it('takes the job_name allow-list from EXPORTER_JOB_NAMES and tenants from the API keys', () => {
    const config = loadExporterConfig({ EXPORTER_JOB_NAMES: 'resize, ocr,resize', API_KEYS: 'acme:acme-key-1,beta:beta-key-22' });
    expect(config.jobNames).toEqual(['resize', 'ocr']);
    expect(config.tenants).toEqual(['acme', 'beta']);
  });

  it('counts jobs of an API without authentication under its tenant "default", not "other"', () => {
    expect(loadExporterConfig({ AUTH_DISABLED: 'true' }).tenants).toEqual(['default']);
    expect(loadExporterConfig({ AUTH_DISABLED: 'false', API_KEYS: 'acme:acme-key-1' }).tenants).toEqual(['acme']);
  });

  it('refuses an API_KEYS_FILE without any key, as the API does, unless authentication is off', () => {
    const reading = (text: string) => ({ readFile: (file: string) => (file === '/keys.txt' ? text : readFileSync(file, 'utf8')) });
    expect(() => loadExporterConfig({ API_KEYS_FILE: '/keys.txt' }, reading('# acme:acme-key-1\n'))).toThrow(
      /^API_KEYS_FILE \(\/keys.txt\): expected at least one tenant:key entry; set AUTH_DISABLED=true/,
    );
    expect(loadExporterConfig({ API_KEYS_FILE: '/keys.txt' }, reading('acme:acme-key-1\n')).tenants).toEqual(['acme']);
    expect(loadExporterConfig({ API_KEYS_FILE: '/keys.txt', AUTH_DISABLED: 'true' }, reading('')).tenants).toEqual(['default']);
  });

  it('names the variable and what was expected for a bad value', () => {
    expect(() => loadExporterConfig({ EXPORTER_JOB_NAMES: 'ok,not ok' })).toThrow(/EXPORTER_JOB_NAMES: expected job names .*got "not ok"/);
    // Naming no job would label every job `other`.
    expect(() => loadExporterConfig({ EXPORTER_JOB_NAMES: ',' })).toThrow(/^EXPORTER_JOB_NAMES: expected one or more comma-separated job names, or unset, got ","/);
    expect(() => loadExporterConfig({ EXPORTER_BATCH_SIZE: '0' })).toThrow(/EXPORTER_BATCH_SIZE: expected an integer from 1 to 100000/);
    expect(() => loadExporterConfig({ EXPORTER_PORT: 'x' })).toThrow(/EXPORTER_PORT/);
    expect(loadExporterConfig({ EXPORTER_LEADER_LEASE_MS: '2500' }).leaderLeaseMs).toBe(2500);
    expect(() => loadExporterConfig({ EXPORTER_LEADER_LEASE_MS: '999' })).toThrow(/EXPORTER_LEADER_LEASE_MS: expected an integer from 1000 to 600000, got "999"/);
  });

  it('takes the lifecycle event log from EVENT_LOG_FILE, EVENT_LOG_MAX_BYTES and EVENT_LOG_MAX_FILES, off by default', () => {
    expect(loadExporterConfig({}).core.eventLogFile).toBeUndefined();
    const config = loadExporterConfig({ EVENT_LOG_FILE: 'logs/events.jsonl', EVENT_LOG_MAX_BYTES: '4096', EVENT_LOG_MAX_FILES: '2' });
    expect(config.core).toMatchObject({ eventLogFile: path.resolve('logs/events.jsonl'), eventLogMaxBytes: 4096, eventLogMaxFiles: 2 });
    expect(() => loadExporterConfig({ EVENT_LOG_MAX_BYTES: 'lots' })).toThrow(/EVENT_LOG_MAX_BYTES/);
  });
});
