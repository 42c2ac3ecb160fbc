// Garbage collection of blob files the store holds without a row (orphans), and scheduled collections,
// on both backends. Orphans written before the grace period are freed and reported (beside the blobs
// with rows), fresh ones kept, a dry run reports and keeps them; one an upload commits a row for while
// the collector waits for its lock is kept; the OpenAPI document describes the report. A registry with
// ZEDGE_GC_INTERVAL_SECONDS collects by itself, never while another run goes; two registries of one
// deployment (production) collect once per interval between them, never at once.
import t from 'tap';
import type { GcRun } from '../../registry/gc.ts';
import type { Digest } from '../../shared/digest.ts';
import type { StateStore } from '../../shared/state.ts';
import { apiAs } from '../../test/support/auth.ts';
import {
  BACKENDS,
  provisionBackend,
  type RunningRegistry,
  startRegistry,
  type Teardown,
} from '../../test/support/backends.ts';
import { runCli } from '../../test/support/cli.ts';
import { collectGarbage, followRun, writeOrphan } from '../../test/support/gc.ts';
import { pushImage, randomBlob } from '../../test/support/oci.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check` holds, polling; fails the wait after `seconds`. */
async function until(what: string, check: () => Promise<boolean>, seconds = 30): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Watches a registry's state store for the collector asking for `key`'s lock; `hold` takes that lock
 * as an upload committing would (without being seen).
 */
function watchLock(t: Teardown, state: StateStore, key: string) {
  const withLock = state.withLock.bind(state);
  let asked!: () => void;
  const requested = new Promise<void>((resolve) => {
    asked = resolve;
  });
  state.withLock = <T>(name: string, ttl: number, work: () => Promise<T>) => {
    if (name === key) asked();
    return withLock(name, ttl, work);
  };
  t.teardown(() => {
    state.withLock = withLock;
  });
  return {
    hold: <T>(work: () => Promise<T>) => withLock(key, 60_000, work),
    /** Resolves once the collector asked for the lock. */
    requested: async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`nobody asked for ${key}`)), 20_000);
      });
      await Promise.race([requested, timeout]).finally(() => clearTimeout(timer));
    },
  };
}

const orphansOf = (run: GcRun) => run.freed.filter((blob) => blob.orphan).map((blob) => blob.digest);

async function runsOf(registry: RunningRegistry): Promise<GcRun[]> {
  return (await apiAs(registry.url, registry.admin)('GET', '/gc')).body.data as GcRun[];
}

/** No two runs were running at once: each started after the one before it finished. */
function overlapping(runs: GcRun[]): string[] {
  const ordered = [...runs].sort((a, b) => a.started_at.localeCompare(b.started_at));
  return ordered.slice(1).flatMap((run, index) => {
    const before = ordered[index]!;
    return !before.finished_at || before.finished_at > run.started_at ? [`${before.id} and ${run.id}`] : [];
  });
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources);
    const { store, state, metadata } = registry.server.context;
    const inStore = async (digest: string) => (await store.stat(digest as Digest)) !== undefined;

    t.test('orphans past the grace period are freed and reported, fresh ones kept', async (t) => {
      const image = await pushImage(registry, 'lib/app', 'v1', [3000, 5000]);
      const unreferenced = randomBlob(700);
      const uploaded = await registry.fetch(
        `${registry.url}/v2/lib/app/blobs/uploads/?digest=${unreferenced.digest}`,
        { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: unreferenced.data },
      );
      t.equal(uploaded.status, 201);
      const old = await writeOrphan(store, randomBlob(4321));

      const kept = await collectGarbage(registry, { grace_seconds: 3600 });
      t.match(kept, { blobs_freed: 0, orphans_freed: 0, orphan_bytes_freed: 0, scheduled: false });
      t.ok(kept.store_files_examined >= 5, `${kept.store_files_examined} store files listed`);
      t.ok(await inStore(old.digest), 'an orphan written within the grace period is kept');

      // S3 times objects to the second: the old orphan is 6 s old, the fresh one under 1 s.
      await sleep(6000);
      const fresh = await writeOrphan(store, randomBlob(1234));
      const dry = await collectGarbage(registry, { grace_seconds: 4, dry_run: true });
      const real = await collectGarbage(registry, { grace_seconds: 4 });
      for (const [run, what] of [
        [dry, 'a dry run reports'],
        [real, 'a run frees'],
      ] as const) {
        t.same(orphansOf(run), [old.digest], `${what} the orphan past the grace period only`);
        t.match(run, {
          orphans_freed: 1,
          orphan_bytes_freed: 4321,
          blobs_freed: 2,
          bytes_freed: 4321 + 700,
          blobs_total: 1,
        });
        t.same(
          run.freed.find((blob) => blob.digest === old.digest),
          { digest: old.digest, size: 4321, orphan: true },
        );
        t.same(
          run.freed.find((blob) => blob.digest === unreferenced.digest),
          { digest: unreferenced.digest, size: 700 },
          'beside the unreferenced blob with a row',
        );
      }
      t.notOk(await inStore(old.digest), 'the run deleted the old orphan');
      t.ok(await inStore(fresh.digest), 'and kept the fresh one');
      for (const layer of image.layers) t.ok(await inStore(layer.digest), 'referenced blobs stay');
      const pulled = await registry.fetch(`${registry.url}/v2/lib/app/blobs/${image.layers[0]!.digest}`);
      t.same(Buffer.from(await pulled.arrayBuffer()), image.layers[0]!.data);

      const cli = await runCli(['gc', '--dry-run', '--grace-seconds', '0', '--registry', registry.url]);
      t.equal(cli.code, 0, cli.stderr);
      t.match(cli.stdout, `would free ${fresh.digest} 1234 (store file without a row)`);
      t.match(cli.stdout, /would free 1 blobs, 1234 bytes \(1 store files without a row, 1234 bytes\)/);
      t.ok(await inStore(fresh.digest), 'a dry run keeps it');
      const last = await collectGarbage(registry, { grace_seconds: 0 });
      t.same(orphansOf(last), [fresh.digest]);
      t.notOk(await inStore(fresh.digest));
      t.match(await collectGarbage(registry), { blobs_freed: 0 }, 'nothing left');
    });

    t.test('an orphan whose upload commits its row while the collector waits is kept', async (t) => {
      const orphan = await writeOrphan(store, randomBlob(2048));
      const lock = watchLock(t, state, `blob:${orphan.digest}`);
      let runId = '';
      await lock.hold(async () => {
        const started = await apiAs(registry.url, registry.admin)('POST', '/gc', { grace_seconds: 0 });
        t.equal(started.status, 202);
        runId = started.body.id;
        await lock.requested();
        // What an upload of the same bytes does under the lock: its row.
        await metadata.recordBlob('lib/late', orphan.digest, 2048, store.kind, store.pathOf(orphan.digest));
      });
      const run = await followRun(registry, runId);
      t.equal(run.status, 'completed');
      t.same(orphansOf(run), [], 'it found the row under the lock');
      t.ok(await inStore(orphan.digest), 'the bytes stay');
      const pulled = await registry.fetch(`${registry.url}/v2/lib/late/blobs/${orphan.digest}`);
      t.equal(pulled.status, 200);
      t.same(Buffer.from(await pulled.arrayBuffer()), orphan.data);
    });

    t.test('the OpenAPI document describes the report', async (t) => {
      const document = (await (await fetch(`${registry.url}/docs/json`)).json()) as {
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      };
      const fields = ['orphans_freed', 'orphan_bytes_freed', 'store_files_examined', 'scheduled', 'orphan'];
      for (const [path, method, status] of [
        ['/api/v1/gc', 'post', '202'],
        ['/api/v1/gc/{id}', 'get', '200'],
        ['/api/v1/gc', 'get', '200'],
      ] as const) {
        const schema = JSON.stringify(document.paths[path]?.[method]?.responses[status]);
        for (const field of fields) t.match(schema, `"${field}"`, `${method} ${path} ${field}`);
      }
    });
  });

  t.test(`${backend}: scheduled collections`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources, {
      ZEDGE_GC_INTERVAL_SECONDS: '1',
      ZEDGE_GC_GRACE_SECONDS: '0',
    });
    const { store, state } = registry.server.context;

    const orphan = await writeOrphan(store, randomBlob(999));
    await until('a scheduled run to free the orphan', async () => !(await store.stat(orphan.digest)));
    const freedIt = (await runsOf(registry)).find((run) => orphansOf(run).includes(orphan.digest));
    t.match(freedIt, {
      scheduled: true,
      started_by: null,
      grace_seconds: 0,
      dry_run: false,
      orphans_freed: 1,
    });

    // A run held up for three intervals (an orphan's lock is taken): no other run starts meanwhile.
    const held = randomBlob(100);
    const lock = watchLock(t, state, `blob:${held.digest}`);
    let blocked!: GcRun;
    await lock.hold(async () => {
      await writeOrphan(store, held);
      await lock.requested();
      const running = (await runsOf(registry)).filter((run) => run.status === 'running');
      t.equal(running.length, 1, 'a run waits for the lock');
      blocked = running[0]!;
      await sleep(3500);
      const runs = await runsOf(registry);
      t.same(
        runs.filter((run) => run.status === 'running').map((run) => run.id),
        [blocked.id],
        'it is the only one running',
      );
      t.same(
        runs.filter((run) => run.started_at > blocked.started_at),
        [],
        'no run started while it ran',
      );
    });
    t.match(await followRun(registry, blocked.id), {
      status: 'completed',
      scheduled: true,
      orphans_freed: 1,
    });
    await until('a scheduled run after it', async () =>
      (await runsOf(registry)).some((run) => run.started_at > blocked.started_at),
    );
    t.same(overlapping(await runsOf(registry)), [], 'runs never overlapped');

    await registry.close();
    const observer = await startRegistry(t, resources);
    const after = (await runsOf(observer)).length;
    await sleep(2500);
    t.equal((await runsOf(observer)).length, after, 'a closed registry collects no more');
  });
}

if (BACKENDS.includes('production')) {
  t.test('production: two registries collect once per interval between them', async (t) => {
    const resources = await provisionBackend(t, 'production');
    const settings = { ZEDGE_GC_INTERVAL_SECONDS: '2', ZEDGE_GC_GRACE_SECONDS: '0' };
    const began = Date.now();
    const a = await startRegistry(t, resources, settings);
    const b = await startRegistry(t, resources, settings);
    await writeOrphan(a.server.context.store, randomBlob(10));
    await sleep(9000);
    await a.close();
    await b.close();
    const seconds = (Date.now() - began) / 1000;
    const runs = await runsOf(await startRegistry(t, resources));
    t.ok(runs.length >= 3, `${runs.length} scheduled runs in ${seconds} s`);
    t.ok(runs.length <= Math.floor(seconds / 2) + 1, 'one per interval, not one per registry and interval');
    t.ok(
      runs.every((run) => run.scheduled),
      'all started by a schedule',
    );
    t.same(overlapping(runs), [], 'never two at once');
    t.equal(runs.filter((run) => run.orphans_freed === 1).length, 1, 'the orphan freed once');
  });
}
