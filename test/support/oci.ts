// A minimal OCI client for tests: raw HTTP on loopback, so every header and status is visible.
import { createHash, randomBytes } from 'node:crypto';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function randomBlob(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size);
  return { data, digest: sha256(data) };
}

/**
 * Where the helpers send requests and as whom: a registry's URL (anonymous requests), or a URL with a
 * fetch that carries credentials, such as a RunningRegistry (its admin) or `{ url, fetch: fetchAs(user) }`.
 */
export type Target = string | { url: string; fetch: typeof fetch };

function endpoint(target: Target): { base: string; send: typeof fetch } {
  return typeof target === 'string'
    ? { base: target, send: fetch }
    : { base: target.url, send: target.fetch };
}

export async function pushBlobMonolithic(target: Target, name: string, data: Buffer): Promise<Response> {
  const { base, send } = endpoint(target);
  return send(`${base}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
}

/** POST, then PATCH in chunks of `chunkSize`, then PUT; returns the final response. */
export async function pushBlobChunked(
  target: Target,
  name: string,
  data: Buffer,
  chunkSize: number,
): Promise<Response> {
  const { base, send } = endpoint(target);
  const start = await send(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
  let location = new URL(start.headers.get('location')!, base).toString();
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const chunk = data.subarray(offset, Math.min(offset + chunkSize, data.length));
    const response = await send(location, {
      method: 'PATCH',
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Range': `${offset}-${offset + chunk.length - 1}`,
      },
      body: chunk,
    });
    if (response.status !== 202) throw new Error(`PATCH: ${response.status} ${await response.text()}`);
    location = new URL(response.headers.get('location')!, base).toString();
  }
  const separator = location.includes('?') ? '&' : '?';
  return send(`${location}${separator}digest=${sha256(data)}`, { method: 'PUT' });
}

export function imageManifest(
  config: { digest: string; size: number },
  layers: { digest: string; size: number }[],
  layerMediaType = 'application/vnd.oci.image.layer.v1.tar+gzip',
) {
  return {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((layer) => ({ mediaType: layerMediaType, digest: layer.digest, size: layer.size })),
  };
}

export async function putManifest(
  target: Target,
  name: string,
  reference: string,
  manifest: unknown,
  mediaType = 'application/vnd.oci.image.manifest.v1+json',
): Promise<{ response: Response; digest: string; bytes: Buffer }> {
  const { base, send } = endpoint(target);
  const bytes = Buffer.from(JSON.stringify(manifest));
  const response = await send(`${base}/v2/${name}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: bytes,
  });
  return { response, digest: sha256(bytes), bytes };
}

/** Pushes a config blob, `layerCount` random layers and a manifest tagged `tag`. */
export async function pushImage(
  base: Target,
  name: string,
  tag: string,
  layerSizes: number[] = [1024, 2048],
) {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const configDigest = sha256(config);
  await pushBlobMonolithic(base, name, config);
  const layers = [];
  for (const size of layerSizes) {
    const layer = randomBlob(size);
    const response = await pushBlobMonolithic(base, name, layer.data);
    if (response.status !== 201) throw new Error(`layer push: ${response.status}`);
    layers.push({ digest: layer.digest, size, data: layer.data });
  }
  const manifest = imageManifest({ digest: configDigest, size: config.length }, layers);
  const pushed = await putManifest(base, name, tag, manifest);
  if (pushed.response.status !== 201)
    throw new Error(`manifest push: ${pushed.response.status} ${await pushed.response.text()}`);
  return {
    manifest,
    manifestDigest: pushed.digest,
    manifestBytes: pushed.bytes,
    layers,
    config: { digest: configDigest, data: config },
  };
}

export async function errorCode(response: Response): Promise<string | undefined> {
  const body = (await response.json().catch(() => undefined)) as { errors?: { code: string }[] } | undefined;
  return body?.errors?.[0]?.code;
}
