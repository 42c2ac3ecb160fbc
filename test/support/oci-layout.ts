// Builds an OCI image layout on disk (what skopeo, podman and oras read with `oci:<dir>:<tag>`):
// real tar layers of random files, streamed so that large images never sit in memory.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Credentials, credsOf } from './auth.ts';
import { imageManifest } from './oci.ts';

const run = promisify(execFile);

export interface LayoutImage {
  dir: string;
  tag: string;
  manifestDigest: string;
  layerDigests: string[];
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  const chunk = 4 * 1024 * 1024;
  for (let written = 0; written < size; written += chunk) {
    const part = randomBytes(Math.min(chunk, size - written));
    if (!out.write(part)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk);
  return hash.digest('hex');
}

async function addBlob(dir: string, source: string): Promise<{ digest: string; size: number }> {
  const hex = await sha256File(source);
  await rename(source, join(dir, 'blobs', 'sha256', hex));
  return { digest: `sha256:${hex}`, size: (await stat(join(dir, 'blobs', 'sha256', hex))).size };
}

async function addJson(
  dir: string,
  value: unknown,
): Promise<{ digest: string; size: number; bytes: Buffer }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(dir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length, bytes };
}

/** An image of uncompressed tar layers, one random file of each given size per layer. */
export async function buildLayout(parent: string, tag: string, layerSizes: number[]): Promise<LayoutImage> {
  const dir = await mkdtemp(join(parent, 'layout-'));
  const scratch = await mkdtemp(join(parent, 'scratch-'));
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layers = [];
  for (const [index, size] of layerSizes.entries()) {
    const content = join(scratch, `file-${index}`);
    await writeRandomFile(content, size);
    const tarball = join(scratch, `layer-${index}.tar`);
    await run('tar', ['-cf', tarball, '-C', scratch, `file-${index}`]);
    await rm(content);
    layers.push(await addBlob(dir, tarball));
  }
  await rm(scratch, { recursive: true, force: true });
  const config = await addJson(dir, {
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
  });
  const manifest = await addJson(
    dir,
    imageManifest(config, layers, 'application/vnd.oci.image.layer.v1.tar'),
  );
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifest.digest,
          size: manifest.size,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return { dir, tag, manifestDigest: manifest.digest, layerDigests: layers.map((layer) => layer.digest) };
}

/** skopeo with the flags that keep layers byte-for-byte (no recompression) against plain-HTTP registries. */
export async function skopeo(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 * 1024 * 1024 });
}

export const SKOPEO_COPY_FLAGS = ['--preserve-digests', '--dest-oci-accept-uncompressed-layers', '--quiet'];

/** skopeo's --creds value for credentials (none: anonymous). */
function credsFlag(flag: string, creds: Credentials | undefined): string[] {
  return creds ? [`${flag}=${credsOf(creds)}`] : [];
}

/** `skopeo inspect --raw` of `reference` (a `docker://` reference on a plain-HTTP registry) as `creds`. */
export function inspectRaw(
  reference: string,
  creds: Credentials | undefined,
): Promise<{ stdout: string; stderr: string }> {
  return skopeo(['inspect', '--raw', '--tls-verify=false', ...credsFlag('--creds', creds), reference]);
}

/**
 * Pushes the layout's image tagged `tag` to `destination` (a `docker://` reference on a plain-HTTP
 * registry) as `creds` (skopeo --dest-creds: the registry's token flow).
 */
export async function pushLayout(
  dir: string,
  tag: string,
  destination: string,
  creds: Credentials | undefined,
): Promise<void> {
  await skopeo([
    'copy',
    ...SKOPEO_COPY_FLAGS,
    '--dest-tls-verify=false',
    ...credsFlag('--dest-creds', creds),
    `oci:${dir}:${tag}`,
    destination,
  ]);
}

/**
 * Pulls `source` (a `docker://` reference on a plain-HTTP registry) into an OCI layout as `creds` (none:
 * anonymously); the blobs it got.
 */
export async function pullToLayout(
  source: string,
  dir: string,
  creds: Credentials | undefined,
): Promise<string[]> {
  await skopeo([
    'copy',
    ...SKOPEO_COPY_FLAGS,
    '--src-tls-verify=false',
    ...credsFlag('--src-creds', creds),
    source,
    `oci:${dir}:pulled`,
  ]);
  return (await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`);
}
