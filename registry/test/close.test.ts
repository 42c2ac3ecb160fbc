// Closing a registry with requests in flight: each is answered and its connection ends with it, so the
// close does not wait out the keep-alive timeout (72 s) of connections that were busy when it began;
// a request still unfinished after the grace period is cut.
import { Agent, type IncomingMessage, request } from 'node:http';
import t from 'tap';
import { CLOSE_GRACE_MS } from '../../shared/listen.ts';
import { basicAuth } from '../../test/support/auth.ts';
import { provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushBlobMonolithic, randomBlob } from '../../test/support/oci.ts';

const MiB = 1024 * 1024;

t.test(
  'a close with an upload and a download in flight answers both and ends their connections',
  async (t) => {
    const resources = await provisionBackend(t, 'embedded');
    const registry = await startRegistry(t, resources);
    const blob = randomBlob(16 * MiB);
    t.equal((await pushBlobMonolithic(registry, 'close/app', blob.data)).status, 201);
    const started = await registry.fetch(`${registry.url}/v2/close/app/blobs/uploads/`, { method: 'POST' });
    const uploadUrl = new URL(started.headers.get('location')!, registry.url);

    // A client that keeps its connections: only the registry can end them.
    const agent = new Agent({ keepAlive: true, timeout: 120_000 });
    t.teardown(() => agent.destroy());
    const headers = { authorization: basicAuth(registry.admin) };
    const upload = request(uploadUrl, {
      method: 'PATCH',
      agent,
      headers: { ...headers, 'content-type': 'application/octet-stream' },
    });
    upload.write(Buffer.alloc(MiB));
    const download = await new Promise<IncomingMessage>((resolve, reject) =>
      request(`${registry.url}/v2/close/app/blobs/${blob.digest}`, { agent, headers }, resolve)
        .on('error', reject)
        .end(),
    );
    t.equal(download.statusCode, 200);
    download.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));

    const began = performance.now();
    const closed = registry.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Both requests go on as if nothing happened.
    upload.end(Buffer.alloc(1000));
    const uploaded = await new Promise<IncomingMessage>((resolve) => upload.on('response', resolve));
    t.equal(uploaded.statusCode, 202, 'the upload in flight was taken');
    t.equal(uploaded.headers.connection, 'close', 'and its answer says the connection ends');
    uploaded.resume();
    const parts: Buffer[] = [];
    download.on('data', (part: Buffer) => parts.push(part)).resume();
    await new Promise((resolve) => download.on('end', resolve));
    t.ok(Buffer.concat(parts).equals(blob.data), 'the download in flight got every byte');
    await closed;
    const seconds = (performance.now() - began) / 1000;
    t.ok(
      seconds < 10,
      `the close ended both connections instead of waiting out their keep-alive (${seconds} s)`,
    );
  },
);

t.test('a client that stalls mid-request is cut after the grace period, not waited for', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const registry = await startRegistry(t, resources);
  const started = await registry.fetch(`${registry.url}/v2/close/stall/blobs/uploads/`, { method: 'POST' });
  const stalled = request(new URL(started.headers.get('location')!, registry.url), {
    method: 'PATCH',
    headers: {
      authorization: basicAuth(registry.admin),
      'content-type': 'application/octet-stream',
      'content-length': String(2 * MiB),
    },
  });
  const cut = new Promise<void>((resolve) => stalled.on('error', () => resolve()).on('close', resolve));
  stalled.write(Buffer.alloc(MiB));
  await new Promise((resolve) => setTimeout(resolve, 300));

  const began = performance.now();
  // Uploads may take as long as they need (no request timeout): only the close's grace ends this one.
  await registry.close();
  const seconds = (performance.now() - began) / 1000;
  await cut;
  t.ok(
    seconds >= CLOSE_GRACE_MS / 1000 - 1 && seconds < CLOSE_GRACE_MS / 1000 + 5,
    `closed after the grace period (${seconds} s)`,
  );
});
