// Garbage collection on both backends: deleting a tag, a version (/v2 and REST) and an image releases
// blobs, and a run frees exactly the blobs nothing references (rows and store bytes), reporting them;
// the grace period keeps fresh uploads; dry runs free nothing; admins only; bad input; the CLI. And the
// race: pushers upload, mount and push manifests over HTTP while collections run back to back; every
// manifest the registry accepted has every blob it references, and a push that lost the race was told
// so (MANIFEST_BLOB_UNKNOWN), never a 500.
import t from 'tap';
import type { Digest } from '../../shared/digest.ts';
import { apiAs, createUser, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { runCli } from '../../test/support/cli.ts';
import { collectGarbage } from '../../test/support/gc.ts';
import {
  errorCode,
  imageManifest,
  pushBlobMonolithic,
  putManifest,
  randomBlob,
  sha256,
} from '../../test/support/oci.ts';
import type { GcRun } from '../gc.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const registry = await startRegistry(t, resources);
    const { url, server } = registry;
    const store = server.context.store;
    const asAdmin = apiAs(url, registry.admin);
    const alice = await createUser(url, 'alice');
    const asAlice = apiAs(url, alice);
    const pusher = { url, fetch: fetchAs(alice) };

    const collect = (body?: Record<string, unknown>) => collectGarbage(registry, body);
    const freedDigests = (run: GcRun) => run.freed.map((blob) => blob.digest).sort();
    const inStore = async (digest: string) => (await store.stat(digest as Digest)) !== undefined;
    async function pushWith(name: string, tag: string, blobs: { data: Buffer; digest: string }[]) {
      for (const blob of blobs) {
        const response = await pushBlobMonolithic(pusher, name, blob.data);
        if (response.status !== 201) throw new Error(`blob: ${response.status}`);
      }
      const [config, ...layers] = blobs.map((blob) => ({ digest: blob.digest, size: blob.data.length }));
      const pushed = await putManifest(pusher, name, tag, imageManifest(config!, layers));
      if (pushed.response.status !== 201) throw new Error(`manifest: ${pushed.response.status}`);
      return pushed.digest;
    }

    t.test('deletes release blobs; a run frees what nothing references, and reports it', async (t) => {
      const config = randomBlob(100);
      const shared = randomBlob(3000);
      const onlyApp = randomBlob(5000);
      const onlyOther = randomBlob(7000);
      const orphan = randomBlob(11_000);
      const appDigest = await pushWith('alice/app', 'v1', [config, shared, onlyApp]);
      await pushWith('alice/other', 'v1', [config, shared, onlyOther]);
      t.equal((await pushBlobMonolithic(pusher, 'alice/app', orphan.data)).status, 201);

      const kept = await collect({ grace_seconds: 3600, dry_run: true });
      t.same(kept.freed, [], 'within the grace period an unreferenced upload is kept');
      const dry = await collect({ grace_seconds: 0, dry_run: true });
      t.same(freedDigests(dry), [orphan.digest], 'a dry run reports the orphan');
      t.ok(await inStore(orphan.digest), 'and frees nothing');

      t.equal(
        (await fetchAs(alice)(`${url}/v2/alice/app/manifests/v1`, { method: 'DELETE' })).status,
        202,
        'tag deleted',
      );
      const first = await collect();
      t.same(freedDigests(first), [orphan.digest], 'the untagged version still holds its blobs');
      t.match(first, { blobs_freed: 1, bytes_freed: 11_000, dry_run: false });
      t.notOk(await inStore(orphan.digest), 'the orphan left the store');
      t.equal((await fetchAs(alice)(`${url}/v2/alice/app/blobs/${orphan.digest}`)).status, 404);

      const appId = (await asAlice('GET', '/images?name=alice/app')).body.data[0].id;
      const version = (await asAlice('GET', `/images/${appId}/versions`)).body.data[0];
      t.equal(version.manifest_digest, appDigest);
      t.equal((await asAlice('DELETE', `/images/${appId}/versions/${version.id}`)).status, 204);
      t.equal((await asAlice('DELETE', `/images/${appId}/versions/${version.id}`)).status, 404);
      const second = await collect();
      t.same(freedDigests(second), [onlyApp.digest], 'only the blob no other image references');
      t.ok(await inStore(shared.digest), 'the shared layer stays');
      t.ok(await inStore(config.digest));
      const pulled = await fetchAs(alice)(`${url}/v2/alice/other/blobs/${shared.digest}`);
      t.equal(sha256(Buffer.from(await pulled.arrayBuffer())), shared.digest, 'and pulls');

      const otherId = (await asAlice('GET', '/images?name=alice/other')).body.data[0].id;
      t.equal((await asAlice('DELETE', `/images/${otherId}`)).status, 204);
      const third = await collect();
      t.same(
        freedDigests(third),
        [config.digest, shared.digest, onlyOther.digest].sort(),
        'a deleted image releases its blobs',
      );
      for (const blob of [config, shared, onlyOther]) t.notOk(await inStore(blob.digest));

      const listed = await asAdmin('GET', '/gc');
      t.equal(listed.body.data[0].id, third.id, 'runs are listed, newest first');
      t.equal((await collect()).blobs_freed, 0, 'nothing left');
    });

    t.test('who may, and bad input', async (t) => {
      t.equal((await asAlice('POST', '/gc', {})).status, 403);
      t.equal((await apiAs(url, undefined)('POST', '/gc', {})).status, 401);
      t.equal((await asAlice('GET', '/gc')).status, 403);
      for (const [what, body] of [
        ['malformed JSON', '{"dry_run": tru'],
        ['a wrong type', { dry_run: 'yes' }],
        ['a negative grace', { grace_seconds: -1 }],
        ['an unknown field', { everything: true }],
      ] as const) {
        const answer = await asAdmin('POST', '/gc', body);
        t.equal(answer.status, 400, what);
        t.equal(answer.headers.get('content-type'), 'application/problem+json; charset=utf-8', what);
      }
      t.equal((await asAdmin('GET', '/gc/00000000-0000-0000-0000-000000000001')).status, 404);
      t.equal((await asAdmin('GET', '/gc/nope')).status, 400);
    });

    t.test('zedge-p2p gc', async (t) => {
      const orphan = randomBlob(4096);
      t.equal((await pushBlobMonolithic(pusher, 'alice/cli', orphan.data)).status, 201);
      const dry = await runCli(['gc', '--dry-run', '--grace-seconds', '0', '--registry', url]);
      t.equal(dry.code, 0, dry.stderr);
      t.match(dry.stdout, `would free ${orphan.digest} 4096`);
      t.ok(await inStore(orphan.digest));
      const real = await runCli(['gc', '--grace-seconds', '0', '--registry', url]);
      t.equal(real.code, 0, real.stderr);
      t.match(real.stdout, /completed: freed 1 blobs, 4096 bytes/);
      t.notOk(await inStore(orphan.digest));
    });

    t.test('collections racing uploads, mounts and manifest pushes', async (t) => {
      const accepted: { name: string; digest: string; blobs: string[] }[] = [];
      const refusals: Record<string, number> = {};
      let stop = false;
      let freed = 0;
      let runs = 0;
      let held = 0;
      // A client that lost the race three times asks for a pause (a zero grace with collections back
      // to back could starve it for good: the default grace is an hour), so that every run has
      // accepted manifests to check whatever the backend's speed.
      let holds = 0;
      let collecting: Promise<unknown> = Promise.resolve();
      const collector = (async () => {
        while (!stop) {
          if (holds > 0) {
            await new Promise((resolve) => setTimeout(resolve, 20));
            continue;
          }
          const run = collect();
          collecting = run;
          freed += (await run).blobs_freed;
          runs++;
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 60));
        }
      })();

      /** A client's push: blobs (uploaded, or mounted from `from`), then the manifest; again if refused. */
      async function push(
        name: string,
        tag: string,
        blobs: { data: Buffer; digest: string }[],
        from?: string,
      ) {
        for (let attempt = 0; ; attempt++) {
          const hold = attempt >= 3;
          if (hold) {
            holds++;
            held++;
            await collecting;
          }
          try {
            if (await pushOnce(name, tag, blobs, from)) return;
          } finally {
            if (hold) holds--;
          }
        }
      }

      /** One try of a push; false when a blob was collected under it (the client uploads again). */
      async function pushOnce(
        name: string,
        tag: string,
        blobs: { data: Buffer; digest: string }[],
        from?: string,
      ): Promise<boolean> {
        for (const blob of blobs) {
          if (from) {
            const mounted = await pusher.fetch(
              `${url}/v2/${name}/blobs/uploads/?mount=${blob.digest}&from=${from}`,
              { method: 'POST' },
            );
            if (mounted.status === 201) continue;
            t.equal(mounted.status, 202, 'a mount that cannot be done starts an upload');
            const location = new URL(mounted.headers.get('location')!, url);
            location.searchParams.set('digest', blob.digest);
            const put = await pusher.fetch(location, { method: 'PUT', body: blob.data });
            t.equal(put.status, 201);
          } else {
            t.equal((await pushBlobMonolithic(pusher, name, blob.data)).status, 201);
          }
        }
        const [config, ...layers] = blobs.map((blob) => ({ digest: blob.digest, size: blob.data.length }));
        const { response, digest } = await putManifest(pusher, name, tag, imageManifest(config!, layers));
        if (response.status === 201) {
          accepted.push({ name, digest, blobs: blobs.map((blob) => blob.digest) });
          return true;
        }
        const code = await errorCode(response);
        refusals[`${response.status} ${code}`] = (refusals[`${response.status} ${code}`] ?? 0) + 1;
        return response.status !== 404 || code !== 'MANIFEST_BLOB_UNKNOWN';
      }

      const config = randomBlob(64);
      const rounds = backend === 'embedded' ? 10 : 5;
      const pushers = [0, 1, 2].map(async (pusherIndex) => {
        for (let round = 0; round < rounds; round++) {
          const base = randomBlob(2048 + round);
          const top = randomBlob(1024 + pusherIndex);
          const name = `alice/race-${pusherIndex}`;
          await push(name, `r${round}`, [config, base, top]);
          // Another repository mounts the same blobs and pushes its own manifest.
          await push(`alice/mirror-${pusherIndex}`, `r${round}`, [config, base, top], name);
          // Untag some so that collections find work while pushes go on.
          if (round % 2 === 0) {
            await pusher.fetch(`${url}/v2/${name}/manifests/r${round}`, { method: 'DELETE' });
            const digest = accepted.find((entry) => entry.name === name)?.digest;
            if (digest) await pusher.fetch(`${url}/v2/${name}/manifests/${digest}`, { method: 'DELETE' });
          }
        }
      });
      await Promise.all(pushers).finally(() => {
        stop = true;
      });
      await collector;
      await collect();
      t.ok(runs > 1, `${runs} collections ran during the pushes`);
      t.ok(freed > 0, `they freed ${freed} blobs meanwhile`);
      t.same(
        Object.keys(refusals).filter((key) => key !== '404 MANIFEST_BLOB_UNKNOWN'),
        [],
        `pushes refused only for blobs collected before them (${JSON.stringify(refusals)})`,
      );

      // Every accepted manifest that was not deleted pulls, and so does every blob it references.
      let checked = 0;
      for (const entry of accepted) {
        const manifest = await pusher.fetch(`${url}/v2/${entry.name}/manifests/${entry.digest}`);
        if (manifest.status === 404) continue;
        t.equal(manifest.status, 200);
        for (const digest of entry.blobs) {
          const blob = await pusher.fetch(`${url}/v2/${entry.name}/blobs/${digest}`);
          t.equal(blob.status, 200, `${entry.name} ${digest}`);
          t.equal(sha256(Buffer.from(await blob.arrayBuffer())), digest);
          checked++;
        }
      }
      t.ok(checked > 0, `${checked} blobs of live manifests checked`);
      t.ok(accepted.length > 0, `${accepted.length} pushes got through, ${held} tries in a pause`);
    });
  });
}
