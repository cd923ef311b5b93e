// Submitting no-op jobs to one lane of a running API process and following them to completion,
// for the tests that run the apps through a Redis failover.
import type { AppProcess } from './prometheus';
import { waitUntil } from './wait';

export interface LaneJobs {
  /** POSTs one no-op job; its status and answer. */
  submit(): Promise<{ status: number; body: { id?: string; code?: string } }>;
  /** The job's state, or `http <status>` when the API does not answer 200. */
  state(id: string): Promise<string>;
  /** Resolves once the job is completed (within 30 s). */
  completes(id: string): Promise<unknown>;
}

/** `api` is asked for at each call, so the helpers can be made before the API is started. */
export function laneJobs(api: () => AppProcess, key: string, lane: string): LaneJobs {
  const authorization = `Bearer ${key}`;
  const state = async (id: string) => {
    const res = await fetch(`${api().url}/v1/lanes/${lane}/jobs/${id}`, { headers: { authorization } });
    return res.ok ? ((await res.json()) as { state: string }).state : `http ${res.status}`;
  };
  return {
    async submit() {
      const res = await fetch(`${api().url}/v1/lanes/${lane}/jobs`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'noop', data: {} }),
      });
      return { status: res.status, body: (await res.json()) as { id?: string; code?: string } };
    },
    state,
    completes: (id) => waitUntil(async () => (await state(id)) === 'completed', { timeoutMs: 30_000, what: `job ${id} to complete` }),
  };
}
