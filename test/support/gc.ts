// Garbage collection as the tests drive it: runs over REST as the admin, followed to their end, and
// blob files written straight into a registry's store with no row (what a registry that died between
// writing a blob's bytes and committing its row leaves).
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { GcRun } from '../../registry/gc.ts';
import type { BlobStore } from '../../shared/blobstore/index.ts';
import type { Digest } from '../../shared/digest.ts';
import { apiAs, type Credentials } from './auth.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A run started over REST (again while another runs: 409), followed to its end; throws unless completed. */
export async function collectGarbage(
  registry: { url: string; admin: Credentials },
  body: Record<string, unknown> = { grace_seconds: 0 },
): Promise<GcRun> {
  const asAdmin = apiAs(registry.url, registry.admin);
  let answer = await asAdmin('POST', '/gc', body);
  while (answer.status === 409) {
    await sleep(20);
    answer = await asAdmin('POST', '/gc', body);
  }
  if (answer.status !== 202) throw new Error(`gc: ${answer.status} ${JSON.stringify(answer.body)}`);
  const run = await followRun(registry, (answer.body as GcRun).id);
  if (run.status !== 'completed') throw new Error(`gc ${run.id}: ${JSON.stringify(run)}`);
  return run;
}

/** The run once it is no longer running. */
export async function followRun(registry: { url: string; admin: Credentials }, id: string): Promise<GcRun> {
  const asAdmin = apiAs(registry.url, registry.admin);
  for (;;) {
    const run = (await asAdmin('GET', `/gc/${id}`)).body as GcRun;
    if (run.status !== 'running') return run;
    await sleep(20);
  }
}

/** Writes a blob into the store as an upload's commit does, and records no row for it. */
export async function writeOrphan(
  store: BlobStore,
  blob: { data: Buffer; digest: string },
): Promise<{ data: Buffer; digest: Digest }> {
  const digest = blob.digest as Digest;
  const id = randomUUID();
  await store.createUpload(id);
  await store.writeChunk(id, 0, Readable.from([blob.data]));
  await store.commitUpload(id, [0], blob.data.length, digest);
  return { data: blob.data, digest };
}
