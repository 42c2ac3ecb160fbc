// Distribution jobs at /api/v1/distributions: the orchestrator starts mass deploys and watches them;
// agents report their progress per job. Starting (and cancelling) a deploy needs read access to the
// image, as pulling it would; any signed-in account watches jobs; reports come from hosts (or admins).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../../shared/errors.ts';
import { formatImageReference, parseImageReference } from '../../shared/image-reference.ts';
import type { RegistryContext } from '../context.ts';
import { JOB_STATUSES, type JobStatus, type ProgressReport, type Target } from '../distributions.ts';
import { resolveImageLayers } from '../image-layers.ts';
import { hostOrAdmin, principalOf, signedIn } from './guard.ts';

const HOST = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const ZONE = '^[A-Za-z0-9._-]{1,64}$';
// Long enough for an edge to check every layer of the warm request with the center.
const WARM_TOKEN_SECONDS = 600;

interface CreateBody {
  image: string;
  platform?: string;
  timeoutSeconds?: number;
  hosts?: string[];
  zones?: string[];
  all?: boolean;
}

export async function distributionRoutes(app: FastifyInstance, context: RegistryContext): Promise<void> {
  const { distributions, edgeWarmer, metadata } = context;
  /** Deploying an image (or cancelling its deploy) takes what pulling it takes: read access. */
  async function mayDeploy(request: FastifyRequest, name: string): Promise<void> {
    const user = await signedIn(context, request);
    if (user.kind !== 'user') throw problems.forbidden('host accounts cannot start or cancel deploys');
    const decision = await context.access.authorize(await principalOf(context, request), name, 'pull');
    if (!decision.allowed) throw problems.forbidden(`deploying ${name} needs read access to it`);
  }

  const idParams = {
    type: 'object',
    properties: { id: { type: 'string', maxLength: 64 } },
    required: ['id'],
  } as const;

  app.post<{ Body: CreateBody }>(
    '/distributions',
    {
      schema: {
        body: {
          type: 'object',
          required: ['image'],
          properties: {
            image: { type: 'string', minLength: 1, maxLength: 512 },
            platform: { type: 'string', pattern: '^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$' },
            hosts: { type: 'array', maxItems: 100_000, items: { type: 'string', pattern: HOST } },
            zones: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: ZONE } },
            all: { type: 'boolean', const: true },
            // Up to 30 days.
            timeoutSeconds: { type: 'integer', minimum: 1, maximum: 2_592_000 },
          },
        },
      },
    },
    async (request, reply) => {
      const { image, platform, hosts, zones, all, timeoutSeconds } = request.body;
      const targets = [hosts, zones, all].filter((value) => value !== undefined);
      if (targets.length !== 1)
        throw problems.badRequest('name exactly one target: "hosts", "zones" or "all"');
      const target: Target = hosts ? { hosts } : zones ? { zones } : { all: true };
      let reference: ReturnType<typeof parseImageReference>;
      try {
        reference = parseImageReference(image);
      } catch (error) {
        throw problems.badRequest((error as Error).message);
      }
      await mayDeploy(request, reference.name);
      const resolved = await resolveImageLayers(metadata, context.store, reference, platform);
      const targetHosts = await distributions.resolveTarget(target);
      const { view, created } = await distributions.create({
        image: formatImageReference(reference),
        manifestDigest: resolved.manifestDigest,
        platform,
        layers: resolved.layers,
        target,
        hosts: targetHosts,
        ...(timeoutSeconds !== undefined && { timeoutSeconds }),
      });
      if (!created) return reply.code(200).header('Location', `/api/v1/distributions/${view.id}`).send(view);
      const digests = resolved.layers.map((layer) => layer.digest);
      // Edges warm only for callers the center lets read the layers: they get a token of the
      // deployer's, good for these layers only.
      const deployer = await signedIn(context, request);
      const { token } = await context.auth.tokens.issue(
        deployer,
        digests.map((digest) => ({ type: 'blob', name: digest, actions: ['pull'] })),
        WARM_TOKEN_SECONDS,
      );
      const warming = await edgeWarmer.warm(
        targetHosts.map((host) => host.zone),
        digests,
        `Bearer ${token}`,
      );
      request.log.info({ id: view.id, image: view.image, hosts: targetHosts.length }, 'distribution created');
      return reply
        .code(201)
        .header('Location', `/api/v1/distributions/${view.id}`)
        .send({ ...view, warming });
    },
  );

  app.get<{ Querystring: { status?: JobStatus } }>(
    '/distributions',
    { schema: { querystring: { type: 'object', properties: { status: { enum: JOB_STATUSES } } } } },
    async (request) => {
      await signedIn(context, request);
      const jobs = await distributions.list(request.query);
      return { distributions: jobs, total: jobs.length };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/distributions/:id',
    { schema: { params: idParams } },
    async (request) => {
      await signedIn(context, request);
      const view = await distributions.get(request.params.id);
      if (!view) throw problems.notFound(`distribution ${request.params.id}`);
      return view;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/distributions/:id',
    { schema: { params: idParams } },
    async (request) => {
      const job = await distributions.get(request.params.id);
      if (!job) throw problems.notFound(`distribution ${request.params.id}`);
      await mayDeploy(request, parseImageReference(job.image).name);
      const view = await distributions.cancel(request.params.id);
      if (!view) throw problems.notFound(`distribution ${request.params.id}`);
      return view;
    },
  );

  app.put<{ Params: { id: string; hostId: string }; Body: ProgressReport }>(
    '/distributions/:id/hosts/:hostId',
    {
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', maxLength: 64 }, hostId: { type: 'string', pattern: HOST } },
          required: ['id', 'hostId'],
        },
        body: {
          type: 'object',
          required: ['status', 'bytesDone'],
          properties: {
            status: { enum: ['running', 'completed', 'failed'] },
            bytesDone: { type: 'integer', minimum: 0 },
            bytesBySource: {
              type: 'object',
              properties: {
                peers: { type: 'integer', minimum: 0 },
                edge: { type: 'integer', minimum: 0 },
                center: { type: 'integer', minimum: 0 },
              },
            },
            layers: {
              type: 'array',
              maxItems: 10_000,
              items: {
                type: 'object',
                required: ['digest', 'status', 'bytesDone'],
                properties: {
                  digest: { type: 'string', maxLength: 200 },
                  status: { enum: ['pending', 'running', 'completed', 'failed'] },
                  bytesDone: { type: 'integer', minimum: 0 },
                },
              },
            },
            error: { type: 'string', maxLength: 2000 },
          },
        },
      },
    },
    async (request) => {
      await hostOrAdmin(context, request);
      return { status: await distributions.report(request.params.id, request.params.hostId, request.body) };
    },
  );
}
