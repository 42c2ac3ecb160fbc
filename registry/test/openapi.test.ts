// The OpenAPI document at /docs/json is generated from the route schemas (key routes, their parameters
// and bodies, grouped by resource; /v2 left out), and /docs serves Swagger UI with its assets from the
// registry itself (no Internet needed). Embedded backend: the document does not depend on the backend.
import t from 'tap';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';

t.test('OpenAPI document and interactive docs', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { url } = await startRegistry(t, resources);

  const response = await fetch(`${url}/docs/json`);
  t.equal(response.status, 200);
  const document = (await response.json()) as {
    openapi: string;
    info: { title: string };
    paths: Record<string, Record<string, { tags?: string[]; requestBody?: unknown; parameters?: unknown[] }>>;
    components: { securitySchemes: Record<string, unknown> };
  };
  t.equal(document.openapi, '3.1.0');
  t.equal(document.info.title, 'zedge-p2p registry');
  t.same(Object.keys(document.components.securitySchemes).sort(), ['basic', 'bearer']);
  const expected: [string, string][] = [
    ['/api/v1/images', 'get'],
    ['/api/v1/images', 'post'],
    ['/api/v1/images/{id}', 'get'],
    ['/api/v1/images/{id}/versions', 'get'],
    ['/api/v1/images/{id}/versions', 'post'],
    ['/api/v1/images/{id}/versions/{vid}', 'delete'],
    ['/api/v1/images/{id}/versions/upload/init', 'post'],
    ['/api/v1/images/{id}/tags/{tag}', 'put'],
    ['/api/v1/images/{id}/permissions', 'post'],
    ['/api/v1/users', 'post'],
    ['/api/v1/tokens', 'post'],
    ['/api/v1/distributions', 'post'],
    ['/api/v1/hosts', 'post'],
    ['/api/v1/gc', 'post'],
    ['/api/v1/gc/{id}', 'get'],
    ['/api/v1/blobs/{digest}/torrent', 'get'],
    ['/token', 'get'],
    ['/healthz', 'get'],
  ];
  for (const [path, method] of expected)
    t.ok(document.paths[path]?.[method], `${method.toUpperCase()} ${path}`);
  t.notOk(
    Object.keys(document.paths).some((path) => path.startsWith('/v2') || path.startsWith('/docs')),
    'no /v2 or /docs routes',
  );
  const register = document.paths['/api/v1/images/{id}/versions']!.post!;
  t.same(register.tags, ['images']);
  t.match(JSON.stringify(register.requestBody), /disk_digest/, 'bodies come from the route schemas');
  t.match(JSON.stringify(register.requestBody), /qcow2/);
  t.match(JSON.stringify(register.parameters), /"id"/);

  const page = await fetch(`${url}/docs`, { redirect: 'follow' });
  t.equal(page.status, 200);
  const html = await page.text();
  t.match(html, /swagger-ui/i, 'the UI page');
  const scripts = [...html.matchAll(/src="([^"]+\.js)"/g)].map((match) => match[1]!);
  t.ok(scripts.length > 0, 'it loads scripts');
  for (const script of scripts) {
    t.notOk(/^https?:/.test(script), `${script} is served by the registry`);
    const asset = await fetch(new URL(script, page.url));
    t.equal(asset.status, 200, script);
    t.ok((await asset.arrayBuffer()).byteLength > 1000, `${script} has content`);
  }
  const initializer = await fetch(`${url}/docs/static/swagger-initializer.js`);
  t.equal(initializer.status, 200);
  t.match(await initializer.text(), /json/, 'the UI reads the document');
});
