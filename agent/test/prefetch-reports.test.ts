// A distribution job's last report is what the registry's job waits for: when the registry does not
// take it (a registry overloaded by a large fleet answers 503 or not at all), the agent tries again
// instead of leaving the host "running" for good. The registry is real; between it and the agent, a
// proxy refuses the first completion reports.
import { createServer } from 'node:http';
import t from 'tap';
import { startFleetAgent } from '../../test/support/agent.ts';
import { asAdmin } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushImage } from '../../test/support/oci.ts';
import { eventually } from '../../test/support/seeder.ts';

const REFUSED = 2;

t.test('a completion report the registry refuses is sent again until taken', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources, { ZEDGE_HEARTBEAT_SECONDS: '1' });
  await pushImage(registry, 'jobs/report', 'v1', [40_000]);

  let completionReports = 0;
  const proxy = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const isReport =
      request.method === 'PUT' && /^\/api\/v1\/distributions\/[^/]+\/hosts\//.test(request.url!);
    if (isReport && JSON.parse(body.toString()).status === 'completed' && ++completionReports <= REFUSED) {
      response.writeHead(503, { 'content-type': 'application/problem+json' });
      return response.end('{"title":"overloaded","status":503}');
    }
    const upstream = await fetch(`${registry.url}${request.url}`, {
      method: request.method!,
      headers: Object.fromEntries(
        Object.entries(request.headers).filter(([name]) => !['host', 'connection'].includes(name)),
      ) as Record<string, string>,
      ...(body.length > 0 ? { body } : {}),
    });
    const headers = Object.fromEntries(upstream.headers);
    delete headers['content-encoding'];
    delete headers['transfer-encoding'];
    response.writeHead(upstream.status, headers);
    response.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  // The agent's long poll may be waiting in the proxy: cut it rather than wait for it.
  t.teardown(
    () =>
      new Promise((resolve) => {
        proxy.close(resolve);
        proxy.closeAllConnections();
      }),
  );
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

  await startFleetAgent(t, { registryUrl: registry.url, centerUrl: proxyUrl, hostId: 'reporter' });
  const created = await asAdmin(`${registry.url}/api/v1/distributions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: 'jobs/report:v1', all: true }),
  });
  t.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  const job = await eventually(async () => {
    const view = (await (await asAdmin(`${registry.url}/api/v1/distributions/${id}`)).json()) as {
      status: string;
    };
    return view.status === 'completed' && view;
  }, 20_000);
  t.equal(job.status, 'completed', 'the job completed');
  t.equal(completionReports, REFUSED + 1, 'after two refused completion reports, the third was taken');
});
