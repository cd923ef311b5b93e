// `noop` {}: completes at once; the baseline for throughput benchmarks.
import { z } from 'zod';
import { defineHandler } from '../handler';

export const noopHandler = defineHandler({
  name: 'noop',
  payload: z.object({}).strict().optional(),
  run: () => ({ ok: true }),
});
