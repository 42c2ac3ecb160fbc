// The fleet at /api/v1/hosts: agents register and heartbeat (with a host account's credentials, or an
// admin's); any signed-in account lists hosts.
import type { FastifyInstance } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { MAX_KNOWN_JOBS, MAX_WAIT_SECONDS } from '../../shared/job-long-poll.ts';
import type { RegistryContext } from '../context.ts';
import type { HostRegistration, HostReport, HostState } from '../fleet.ts';
import { hostOrAdmin, signedIn } from './guard.ts';

const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const JOB_ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const ZONE = '^[A-Za-z0-9._-]{1,64}$';

const registration = {
  type: 'object',
  required: ['hostId', 'zone', 'address', 'cacheCapacityBytes'],
  properties: {
    hostId: { type: 'string', pattern: NAME },
    zone: { type: 'string', pattern: ZONE },
    address: { type: 'string', pattern: '^https?://', maxLength: 512 },
    cacheCapacityBytes: { type: 'integer', minimum: 0 },
    cacheUsedBytes: { type: 'integer', minimum: 0 },
    agentVersion: { type: 'string', maxLength: 64 },
  },
} as const;

export async function hostRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  const { fleet, distributions } = context;
  const hostParams = {
    type: 'object',
    properties: { hostId: { type: 'string', pattern: NAME } },
    required: ['hostId'],
  } as const;

  app.post<{ Body: HostRegistration }>(
    '/hosts',
    { schema: { body: registration } },
    async (request, reply) => {
      await hostOrAdmin(context, request);
      const host = await fleet.register(request.body);
      request.log.info({ hostId: host.hostId, zone: host.zone }, 'host registered');
      return reply
        .code(200)
        .header('Location', `/api/v1/hosts/${host.hostId}`)
        .send({
          host,
          heartbeatIntervalSeconds: fleet.heartbeatIntervalSeconds,
          jobs: await distributions.assignmentsFor(host.hostId),
        });
    },
  );

  app.put<{ Params: { hostId: string }; Body: HostReport | undefined }>(
    '/hosts/:hostId/heartbeat',
    {
      schema: {
        params: hostParams,
        body: { type: 'object', properties: { cacheUsedBytes: { type: 'integer', minimum: 0 } } },
      },
    },
    async (request) => {
      await hostOrAdmin(context, request);
      const host = await fleet.heartbeat(request.params.hostId, request.body ?? {});
      if (!host) throw problems.notFound(`host ${request.params.hostId} (register with POST /api/v1/hosts)`);
      // The heartbeat answer carries the host's live distribution jobs: agents learn of deploys here.
      return {
        host,
        heartbeatIntervalSeconds: fleet.heartbeatIntervalSeconds,
        jobs: await distributions.assignmentsFor(host.hostId),
      };
    },
  );

  // The long poll for a host's jobs: answers at once when its live jobs are not the `known` ones (the
  // ids the agent has), else at the next job created or cancelled, or after `wait` seconds.
  app.get<{ Params: { hostId: string }; Querystring: { wait?: number; known?: string } }>(
    '/hosts/:hostId/jobs',
    {
      schema: {
        params: hostParams,
        querystring: {
          type: 'object',
          properties: {
            wait: { type: 'integer', minimum: 0, maximum: MAX_WAIT_SECONDS, default: 0 },
            known: { type: 'string', pattern: `^(${JOB_ID}(,${JOB_ID}){0,${MAX_KNOWN_JOBS - 1}})?$` },
          },
        },
      },
    },
    async (request, reply) => {
      await hostOrAdmin(context, request);
      const { hostId } = request.params;
      if (!(await fleet.get(hostId)))
        throw problems.notFound(`host ${hostId} (register with POST /api/v1/hosts)`);
      const known = new Set(request.query.known ? request.query.known.split(',') : []);
      const deadline = Date.now() + (request.query.wait ?? 0) * 1000;
      // An agent that stopped (or a proxy that cut the request) is not waited for.
      let gone = false;
      let ended = () => {};
      reply.raw.once('close', () => {
        gone = true;
        ended();
      });
      for (;;) {
        const wait = context.jobNotices.wait(hostId, Math.max(0, deadline - Date.now()));
        ended = wait.cancel;
        const jobs = await distributions.assignmentsFor(hostId);
        const changed = jobs.length !== known.size || jobs.some((job) => !known.has(job.id));
        if (changed || gone || Date.now() >= deadline || context.jobNotices.isClosed) {
          wait.cancel();
          return { jobs };
        }
        await wait.changed;
      }
    },
  );

  app.get<{ Querystring: { zone?: string; state?: HostState } }>(
    '/hosts',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { zone: { type: 'string', pattern: ZONE }, state: { enum: ['online', 'offline'] } },
        },
      },
    },
    async (request) => {
      await signedIn(context, request);
      const hosts = await fleet.list(request.query);
      return { hosts, total: hosts.length };
    },
  );

  app.get<{ Params: { hostId: string } }>(
    '/hosts/:hostId',
    { schema: { params: hostParams } },
    async (request) => {
      await signedIn(context, request);
      const host = await fleet.get(request.params.hostId);
      if (!host) throw problems.notFound(`host ${request.params.hostId}`);
      return host;
    },
  );
}
