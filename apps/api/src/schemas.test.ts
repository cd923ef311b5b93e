import { bulkSubmissionSchema, jobSubmissionSchema, MAX_BULK_JOBS, MAX_DATA_DEPTH, parseWith } from './schemas';

describe('jobSubmissionSchema', () => {
  it('accepts a minimal job and defaults data to an empty object', () => {
    const parsed = parseWith(jobSubmissionSchema, { name: 'noop' }, 'body');
    expect(parsed).toEqual({ ok: true, value: { name: 'noop', data: {} } });
  });

  it('passes any JSON value through as data', () => {
    for (const data of [null, 0, 'text', [1, 2], { nested: { deep: true } }]) {
      const parsed = parseWith(jobSubmissionSchema, { name: 'noop', data }, 'body');
      expect(parsed).toEqual({ ok: true, value: { name: 'noop', data } });
    }
  });

  it('accepts data nested up to 64 levels and refuses deeper data, naming the field', () => {
    const nested = (levels: number): unknown => JSON.parse('['.repeat(levels) + ']'.repeat(levels));
    expect(parseWith(jobSubmissionSchema, { name: 'noop', data: nested(MAX_DATA_DEPTH) }, 'body').ok).toBe(true);
    expect(parseWith(jobSubmissionSchema, { name: 'noop', data: nested(MAX_DATA_DEPTH + 1) }, 'body.jobs[2]')).toEqual({
      ok: false,
      errors: [{ field: 'body.jobs[2].data', message: 'expected arrays and objects nested at most 64 levels deep' }],
    });
    // Deep enough to overflow a recursive walk: still a field error, not a RangeError.
    expect(parseWith(jobSubmissionSchema, { name: 'noop', data: nested(100_000) }, 'body')).toEqual({
      ok: false,
      errors: [{ field: 'body.data', message: 'expected arrays and objects nested at most 64 levels deep' }],
    });
  });

  it('reports one message per offending field with its path', () => {
    const parsed = parseWith(
      jobSubmissionSchema,
      { name: '9lives', priority: 0, delayMs: -1, attempts: 2.5, idempotencyKey: '', deadlineMs: 'soon', timeoutMs: 0 },
      'body',
    );
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors.map((e) => e.field)).toEqual([
      'body.name',
      'body.idempotencyKey',
      'body.priority',
      'body.delayMs',
      'body.attempts',
      'body.deadlineMs',
      'body.timeoutMs',
    ]);
    expect(parsed.errors.find((e) => e.field === 'body.priority')?.message).toBe('expected an integer from 1 to 2097151');
    expect(parsed.errors.find((e) => e.field === 'body.attempts')?.message).toBe('expected an integer from 1 to 100');
  });

  it('says a missing name is required', () => {
    expect(parseWith(jobSubmissionSchema, {}, 'body')).toEqual({
      ok: false,
      errors: [{ field: 'body.name', message: 'required' }],
    });
  });

  it('rejects unknown fields by name, including prototype keys, without polluting any prototype', () => {
    const body = JSON.parse('{"name":"noop","__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"extra":1}');
    const parsed = parseWith(jobSubmissionSchema, body, 'body');
    expect(parsed).toEqual({
      ok: false,
      errors: [
        { field: 'body.__proto__', message: 'unknown field' },
        { field: 'body.constructor', message: 'unknown field' },
        { field: 'body.extra', message: 'unknown field' },
      ],
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects a body that is not an object', () => {
    for (const body of [null, [], 'x', 3]) {
      expect(parseWith(jobSubmissionSchema, body, 'body')).toEqual({
        ok: false,
        errors: [{ field: 'body', message: 'expected a JSON object' }],
      });
    }
  });

  it('uses the item path for bulk items', () => {
    const parsed = parseWith(jobSubmissionSchema, { name: 'a', attempts: 0 }, 'body.jobs[3]');
    expect(parsed).toEqual({ ok: false, errors: [{ field: 'body.jobs[3].attempts', message: 'expected an integer from 1 to 100' }] });
  });
});

describe('bulkSubmissionSchema', () => {
  it('accepts 1 to 1000 items of any shape, leaving them to per-item validation', () => {
    expect(parseWith(bulkSubmissionSchema, { jobs: [{ name: 'a' }, 'junk'] }, 'body').ok).toBe(true);
  });

  it('rejects an empty batch, an oversized batch and a missing jobs array', () => {
    const tooMany = { jobs: Array.from({ length: MAX_BULK_JOBS + 1 }, () => ({ name: 'a' })) };
    for (const body of [{ jobs: [] }, tooMany, {}, { jobs: 'x' }]) {
      const parsed = parseWith(bulkSubmissionSchema, body, 'body');
      expect(parsed).toEqual({ ok: false, errors: [{ field: 'body.jobs', message: expect.stringMatching(/1 to 1000 jobs|required|expected/) }] });
    }
  });
});
