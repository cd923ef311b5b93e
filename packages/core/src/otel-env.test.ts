import { loadConfig } from './config';

describe('OTEL_RESOURCE_ATTRIBUTES', () => {
  const attributes = (value: string) => loadConfig({ OTEL_RESOURCE_ATTRIBUTES: value }).tracing.resourceAttributes;

  it('reads comma-separated key=value pairs, trimmed and percent-decoded, skipping empty entries', () => {
    expect(loadConfig({}).tracing.resourceAttributes).toEqual({});
    expect(attributes('deployment.environment=prod,service.namespace=payments')).toEqual({ 'deployment.environment': 'prod', 'service.namespace': 'payments' });
    expect(attributes(' team = a%2Cb%3Dc ,, region=eu%20west,empty=')).toEqual({ team: 'a,b=c', region: 'eu west', empty: '' });
  });

  it('lets OTEL_SERVICE_NAME win over a service.name among them, which wins over the app default', () => {
    expect(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=payments' }).tracing.serviceName).toBe('payments');
    expect(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=payments', OTEL_SERVICE_NAME: 'bullpen-api-eu' }).tracing.serviceName).toBe('bullpen-api-eu');
    expect(loadConfig({}).tracing.serviceName).toBeUndefined();
  });

  it('refuses a value OpenTelemetry would discard whole, naming the variable and the entry', () => {
    expect(() => attributes('a=1,b')).toThrow(/^OTEL_RESOURCE_ATTRIBUTES: expected comma-separated key=value pairs .*, got "b"$/);
    expect(() => attributes('a=1=2')).toThrow(/^OTEL_RESOURCE_ATTRIBUTES: expected comma-separated key=value pairs .*, got "a=1=2"$/);
    expect(() => attributes('=x')).toThrow(/^OTEL_RESOURCE_ATTRIBUTES: expected a key before each =, got "=x"$/);
    expect(() => attributes('a=%zz')).toThrow(/^OTEL_RESOURCE_ATTRIBUTES: expected valid percent-encoding/);
    expect(() => attributes(`a=${'x'.repeat(256)}`)).toThrow(/^OTEL_RESOURCE_ATTRIBUTES: expected keys and values of at most 255 characters/);
  });
});

describe('OTEL_LOG_LEVEL', () => {
  it('is warn by default, takes the specification values in any case, and names itself when it cannot', () => {
    expect(loadConfig({}).tracing.logLevel).toBe('warn');
    expect(loadConfig({ OTEL_LOG_LEVEL: 'DEBUG' }).tracing.logLevel).toBe('debug');
    expect(loadConfig({ OTEL_LOG_LEVEL: 'none' }).tracing.logLevel).toBe('none');
    expect(() => loadConfig({ OTEL_LOG_LEVEL: 'loud' })).toThrow(/^OTEL_LOG_LEVEL: expected none, error, warn, info, debug, verbose, all, got "loud"$/);
  });
});
