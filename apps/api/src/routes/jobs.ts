// /v1/lanes/:lane/jobs: submit one job or a batch, read a job, cancel a job.
import type { Request, Response } from 'express';
import type { BullpenConfig } from '@bullpen/core';
import { laneAccess, laneOf, principalOf } from '../auth';
import { bodyBytesOf, jsonBody } from '../body';
import type { JobAccess } from '../job-access';
import { ProblemError } from '../problem';
import type { JobProducer } from '../producer';
import type { RouteTable } from '../route-table';
import { bulkSubmissionSchema, jobSubmissionSchema, parseWith } from '../schemas';
import { checkSubmission } from '../submission';

export interface JobRoutesDeps {
  config: BullpenConfig;
  producer: JobProducer;
  access: JobAccess;
}

type LaneRequest = Request<{ lane: string }>;
type JobRequest = Request<{ lane: string; id: string }>;

export function jobRoutes(router: RouteTable, { config, producer, access }: JobRoutesDeps): void {
  const lane = laneAccess(config);
  const body = jsonBody(config.bodyLimitBytes);

  router.post('/lanes/:lane/jobs', lane, ...body, async (req: LaneRequest, res: Response) => {
    const context = laneOf(res);
    const parsed = parseWith(jobSubmissionSchema, req.body, 'body');
    if (!parsed.ok) throw new ProblemError('validation_failed', 'The job is invalid', { errors: parsed.errors });
    const rejection = checkSubmission(parsed.value, context.policy, 'body');
    if (rejection) {
      const detail =
        rejection.code === 'job_name_not_allowed'
          ? `Lane ${context.lane} does not accept jobs named ${JSON.stringify(parsed.value.name)}`
          : 'The job is invalid';
      throw new ProblemError(rejection.code, detail, { errors: rejection.errors });
    }
    const outcome = await producer.submit(context, principalOf(res).tenant, parsed.value, bodyBytesOf(res));
    if (outcome.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(outcome.replayed ? 200 : 201).json(outcome.job);
  });

  router.post('/lanes/:lane/jobs/bulk', lane, ...body, async (req: LaneRequest, res: Response) => {
    const parsed = parseWith(bulkSubmissionSchema, req.body, 'body');
    if (!parsed.ok) throw new ProblemError('validation_failed', 'The batch is invalid', { errors: parsed.errors });
    const outcome = await producer.submitBulk(laneOf(res), principalOf(res).tenant, parsed.value.jobs, bodyBytesOf(res));
    if (outcome.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(outcome.retryAfterSeconds));
    res.status(200).json(outcome.result);
  });

  router.get('/lanes/:lane/jobs/:id', lane, async (req: JobRequest, res: Response) => {
    const status = await access.status(laneOf(res).lane, req.params.id, principalOf(res).tenant);
    res.status(200).json(status);
  });

  router.delete('/lanes/:lane/jobs/:id', lane, async (req: JobRequest, res: Response) => {
    const outcome = await access.cancel(laneOf(res).lane, req.params.id, principalOf(res).tenant);
    res.status(outcome.kind === 'removed' ? 200 : 202).json(outcome.body);
  });
}
