// The operators' dashboard as a fastify plugin: the page at /dashboard/ (one HTML file, a script and a
// stylesheet, no build step), its data at GET /api/v1/dashboard/snapshot (JSON) and, live, at
// GET /api/v1/dashboard/events (server-sent events: a `snapshot` event at once and then every push
// interval; a `failure` event when the registry could not build one). Event streams end when the
// browser leaves, and all of them end when the registry closes, so that closing never waits on them.
// It shows every host, job and image name: registry admins only. A caller without credentials gets a
// Basic challenge, so that a browser asks for them once and sends them with every request after.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problemOf } from '../../shared/errors.ts';
import type { Dashboard, Snapshot } from './snapshot.ts';

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/** The page runs only its own script and style, and talks only to its own registry (`data:`: no favicon). */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

/**
 * The page's files: beside this module when it runs from the sources; from the compiled `dist/` the
 * TypeScript build does not copy them, so they are read from the sources the checkout has.
 */
function pageDirectory(): string {
  const candidates = [
    join(import.meta.dirname, 'page'),
    resolve(import.meta.dirname, '../../../registry/dashboard/page'),
  ];
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (!found) throw new Error(`the dashboard page is missing (looked in ${candidates.join(', ')})`);
  return found;
}

/** SSE framing of one event: `data` lines carry the JSON (which has no newlines). */
function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function failureOf(error: Error): { detail: string } {
  return { detail: problemOf(error).message };
}

export async function dashboardRoutes(
  app: FastifyInstance,
  dashboard: Dashboard,
  /** Throws (401, 403) unless the request comes from a registry admin. */
  adminOnly: (request: FastifyRequest) => Promise<unknown>,
): Promise<void> {
  const directory = pageDirectory();
  const files = new Map(
    Object.entries(ASSETS).map(([name, type]) => [name, { type, body: readFileSync(join(directory, name)) }]),
  );
  const streams = new Set<PassThrough>();

  app.setErrorHandler((error, request, reply) => {
    const problem = problemOf(error);
    if (problem.status >= 500) request.log.error({ err: error }, 'dashboard error');
    if (problem.status === 401)
      reply.header('WWW-Authenticate', 'Basic realm="zedge-p2p dashboard", charset="UTF-8"');
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });
  app.addHook('onRequest', async (request) => {
    await adminOnly(request);
  });

  // Relative links in the page (its script, its stylesheet, the API) need the trailing slash.
  app.get('/dashboard', async (_request, reply) => reply.redirect('/dashboard/', 302));

  for (const [name, file] of files) {
    app.get(name === 'index.html' ? '/dashboard/' : `/dashboard/${name}`, async (_request, reply) =>
      reply
        .type(file.type)
        .header('Cache-Control', 'no-cache')
        .header('X-Content-Type-Options', 'nosniff')
        .header('Content-Security-Policy', CONTENT_SECURITY_POLICY)
        .send(file.body),
    );
  }

  app.get('/api/v1/dashboard/snapshot', async (_request, reply) =>
    reply.header('Cache-Control', 'no-store').send(await dashboard.snapshot()),
  );

  app.get('/api/v1/dashboard/events', async (request, reply) => {
    const stream = new PassThrough();
    streams.add(stream);
    let unsubscribe = () => {};
    let waitingForDrain = false;
    const send = (result: Snapshot | Error) => {
      // A browser that reads slower than snapshots come skips some rather than buffering them.
      if (waitingForDrain || stream.destroyed || stream.writableEnded) return;
      const ok = stream.write(
        result instanceof Error ? event('failure', failureOf(result)) : event('snapshot', result),
      );
      if (!ok) {
        waitingForDrain = true;
        stream.once('drain', () => {
          waitingForDrain = false;
        });
      }
    };
    stream.on('close', () => {
      streams.delete(stream);
      unsubscribe();
    });
    // The browser retries 2 s after a lost connection.
    stream.write('retry: 2000\n\n');
    // The first snapshot at once, then one per push interval.
    dashboard.snapshot().then(send, send);
    unsubscribe = dashboard.subscribe(send);
    request.log.debug({ watchers: dashboard.subscribers }, 'dashboard watcher joined');
    return (
      reply
        .type('text/event-stream; charset=utf-8')
        .header('Cache-Control', 'no-store')
        // One stream per connection: the socket is not kept for another request once the stream ends.
        .header('Connection', 'close')
        .header('X-Accel-Buffering', 'no')
        .send(stream)
    );
  });

  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
  });
}
