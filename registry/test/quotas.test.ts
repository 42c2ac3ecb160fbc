// Quotas on both backends: usage follows pushes, mounts, deletes and REST uploads (kept by the
// database in the change's own transaction); storage, image count and image size are checked before an
// upload is accepted on /v2 (403 DENIED) and /api/v1 (403 quota-exceeded), exactly at the limit allowed
// and one byte over refused; organizations' images count against the organization; who may read and
// set quotas; bad input; and the recalculation (REST and `zedge-p2p quota recalc`).
import { createHash } from 'node:crypto';
import t from 'tap';
import { apiAs, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS } from '../../test/support/backends.ts';
import { runCli } from '../../test/support/cli.ts';
import { errorCode, pushBlobMonolithic, pushImage, randomBlob } from '../../test/support/oci.ts';
import { startRegistryWithUsers } from '../../test/support/registry-with-users.ts';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { registry, url, alice, bob, asAdmin, asAlice, asBob } = await startRegistryWithUsers(t, backend);
    const aliceTarget = { url, fetch: fetchAs(alice) };
    const usage = async (path = '/users/alice/quota') => (await asAdmin('GET', path)).body;

    t.test('usage follows what the repositories hold', async (t) => {
      t.match(await usage(), { current_storage_bytes: 0, current_image_count: 0, max_storage_bytes: null });
      const image = await pushImage(aliceTarget, 'alice/app', 'v1', [1000, 2000]);
      const stored = 1000 + 2000 + image.config.data.length;
      t.match(await usage(), { current_storage_bytes: stored, current_image_count: 1 });
      t.match((await asAlice('GET', '/users/me/quota')).body, {
        principal_type: 'user',
        principal_name: 'alice',
        current_storage_bytes: stored,
      });
      // A blob mounted into another repository counts there too (each image's size is its blobs).
      const mounted = await fetchAs(alice)(
        `${url}/v2/alice/copy/blobs/uploads/?mount=${image.layers[0]!.digest}&from=alice/app`,
        { method: 'POST' },
      );
      t.equal(mounted.status, 201);
      t.match(await usage(), { current_storage_bytes: stored + 1000, current_image_count: 2 });
      // Unlinking a blob and deleting an image give their bytes back.
      const unlinked = await fetchAs(alice)(`${url}/v2/alice/copy/blobs/${image.layers[0]!.digest}`, {
        method: 'DELETE',
      });
      t.equal(unlinked.status, 202);
      t.match(await usage(), { current_storage_bytes: stored, current_image_count: 2 });
      const copy = (await asAlice('GET', '/images?name=alice/copy')).body.data[0];
      t.equal((await asAlice('DELETE', `/images/${copy.id}`)).status, 204);
      t.match(await usage(), { current_storage_bytes: stored, current_image_count: 1 });
    });

    t.test('storage: exactly at the limit, then one byte over, on /v2', async (t) => {
      const before = (await usage()).current_storage_bytes as number;
      const set = await asAdmin('PUT', '/users/alice/quota', { max_storage_bytes: before + 500 });
      t.equal(set.status, 200);
      t.match(set.body, {
        max_storage_bytes: before + 500,
        max_image_count: null,
        current_storage_bytes: before,
      });
      const fits = randomBlob(500);
      t.equal(
        (await pushBlobMonolithic(aliceTarget, 'alice/app', fits.data)).status,
        201,
        'exactly at the limit',
      );
      t.equal((await usage()).current_storage_bytes, before + 500);

      const over = randomBlob(1);
      const refused = await pushBlobMonolithic(aliceTarget, 'alice/app', over.data);
      t.equal(refused.status, 403, 'one byte over');
      const body = (await refused.json()) as { errors: { code: string; message: string }[] };
      t.equal(body.errors[0]!.code, 'DENIED');
      t.match(
        body.errors[0]!.message,
        /max_storage_bytes of user alice is \d+, this upload would make it \d+/,
      );
      // A chunked /v2 upload is refused at the PATCH that would break the quota, before its bytes are read.
      const start = await fetchAs(alice)(`${url}/v2/alice/app/blobs/uploads/`, { method: 'POST' });
      t.equal(start.status, 202);
      const patch = await fetchAs(alice)(new URL(start.headers.get('location')!, url), {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': '0-9' },
        body: randomBlob(10).data,
      });
      t.equal(patch.status, 403);
      t.equal(await errorCode(patch), 'DENIED');
      // A blob the repository has already costs nothing more.
      t.equal((await pushBlobMonolithic(aliceTarget, 'alice/app', fits.data)).status, 201);
      t.equal((await usage()).current_storage_bytes, before + 500, 'refusals changed nothing');
      const blob = await fetchAs(alice)(`${url}/v2/alice/app/blobs/${over.digest}`);
      t.equal(blob.status, 404, 'the refused blob is not there');
    });

    t.test('storage and image size on the REST chunked upload', async (t) => {
      const image = await asAlice('POST', '/images', { name: 'alice/disk', format: 'raw' });
      t.equal(image.status, 201);
      const id = image.body.id as string;
      const over = await asAlice('POST', `/images/${id}/versions/upload/init`, { total_size_bytes: 501 });
      t.equal(over.status, 403);
      t.match(over.body, {
        type: /quota-exceeded$/,
        title: 'Quota exceeded',
        detail: /max_storage_bytes of user alice/,
      });
      // The version adds the disk and its 2-byte config (the empty JSON object).
      await asAdmin('PUT', '/users/alice/quota', { max_image_size_bytes: 302 });
      const tooBig = await asAlice('POST', `/images/${id}/versions/upload/init`, { total_size_bytes: 301 });
      t.match(tooBig, {
        status: 403,
        body: { detail: /max_image_size_bytes of user alice is 302, this upload would make it 303/ },
      });
      const disk = randomBlob(300);
      const init = await asAlice('POST', `/images/${id}/versions/upload/init`, {
        total_size_bytes: 300,
        version: '1.0.0',
      });
      t.equal(init.status, 200, 'exactly the image size limit');
      const chunk = await fetchAs(alice)(
        `${url}/api/v1/images/${id}/versions/upload/${init.body.upload_id}/chunks/0`,
        {
          method: 'PUT',
          headers: {
            'content-type': 'application/octet-stream',
            'x-checksum-sha256': createHash('sha256').update(disk.data).digest('hex'),
          },
          body: disk.data,
        },
      );
      t.equal(chunk.status, 200);
      const done = await asAlice('POST', `/images/${id}/versions/upload/${init.body.upload_id}/complete`);
      t.equal(done.status, 201, JSON.stringify(done.body));
      t.equal(
        (await asAlice('GET', `/images/${id}`)).body.total_size_bytes,
        302,
        'the disk and the empty config',
      );
      await asAdmin('PUT', '/users/alice/quota', {});
    });

    t.test('image count: the first push and POST /images are refused at the limit', async (t) => {
      const count = (await usage()).current_image_count as number;
      await asAdmin('PUT', '/users/alice/quota', { max_image_count: count + 1 });
      t.equal((await asAlice('POST', '/images', { name: 'alice/last' })).status, 201, 'exactly at the limit');
      const api = await asAlice('POST', '/images', { name: 'alice/one-more' });
      t.equal(api.status, 403);
      t.match(api.body, {
        type: /quota-exceeded$/,
        detail: /max_image_count of user alice is \d+, this would make it \d+/,
      });
      const pushed = await pushBlobMonolithic(aliceTarget, 'alice/pushed', randomBlob(10).data);
      t.equal(pushed.status, 403);
      t.equal(await errorCode(pushed), 'DENIED');
      t.equal((await asAlice('GET', '/images?name=alice/pushed')).body.data.length, 0, 'no image was made');
      t.equal((await usage()).current_image_count, count + 1);
      // Pushes to existing images go on; a lower limit refuses growth only.
      await asAdmin('PUT', '/users/alice/quota', { max_image_count: 0 });
      t.equal((await pushBlobMonolithic(aliceTarget, 'alice/app', randomBlob(10).data)).status, 201);
      await asAdmin('PUT', '/users/alice/quota', {});
    });

    t.test("an organization's images count against the organization", async (t) => {
      const org = await asAlice('POST', '/organizations', { name: 'acme' });
      t.equal(org.status, 201);
      await asAdmin('PUT', '/organizations/acme/quota', { max_storage_bytes: 100 });
      const aliceBefore = await usage();
      t.equal((await pushBlobMonolithic(aliceTarget, 'acme/tool', randomBlob(100).data)).status, 201);
      t.match((await asAlice('GET', '/organizations/acme/quota')).body, {
        principal_type: 'organization',
        principal_name: 'acme',
        current_storage_bytes: 100,
        current_image_count: 1,
        max_storage_bytes: 100,
      });
      t.same(await usage(), aliceBefore, "alice's own usage is unchanged");
      const refused = await pushBlobMonolithic(aliceTarget, 'acme/tool', randomBlob(1).data);
      t.equal(refused.status, 403);
      t.match(
        ((await refused.json()) as { errors: { message: string }[] }).errors[0]!.message,
        /of organization acme/,
      );
      t.equal((await asBob('GET', '/organizations/acme/quota')).status, 403, 'not a member');
    });

    t.test('who may, and bad input', async (t) => {
      t.equal(
        (await asAlice('PUT', '/users/alice/quota', { max_storage_bytes: 1e12 })).status,
        403,
        'only admins set',
      );
      t.equal((await asBob('GET', '/users/alice/quota')).status, 403);
      t.equal((await apiAs(url, undefined)('GET', '/users/alice/quota')).status, 401);
      t.equal((await asAlice('GET', '/quotas')).status, 403);
      t.equal((await asAlice('POST', '/quotas/recalculate')).status, 403);
      t.equal((await asAdmin('GET', '/users/nobody/quota')).status, 404);
      t.equal((await asAdmin('PUT', '/organizations/nothing/quota', {})).status, 404);
      const bad: [string, unknown][] = [
        ['malformed JSON', '{"max_storage_bytes": '],
        ['negative', { max_storage_bytes: -1 }],
        ['a string', { max_storage_bytes: '100' }],
        ['fractional', { max_image_count: 1.5 }],
        ['too large', { max_image_count: 2 ** 31 }],
        ['unknown field', { max_storage_bytes: 1, current_storage_bytes: 0 }],
        ['not an object', [1]],
      ];
      for (const [what, body] of bad) {
        const answer = await asAdmin('PUT', '/users/alice/quota', body);
        t.equal(answer.status, 400, what);
        t.match(answer.headers.get('content-type'), /^application\/problem\+json/, what);
      }
      const listed = await asAdmin('GET', '/quotas?principal_type=organization');
      t.match(listed.body, { data: [{ principal_name: 'acme' }], pagination: { total_count: 1 } });
      t.equal((await asAdmin('GET', '/quotas?principal_type=group')).status, 400);
    });

    t.test('recalculation corrects drifted usage (REST and the CLI)', async (t) => {
      const right = await usage();
      const db = registry.server.context.db;
      await db.query(
        "UPDATE image_quotas SET current_storage_bytes = 7, current_image_count = 99 WHERE principal_type = 'user' AND principal_id = $1",
        [alice.id],
      );
      const recalculated = await asAdmin('POST', '/quotas/recalculate');
      t.equal(recalculated.status, 200);
      t.match(recalculated.body, {
        changed: 1,
        data: [{ principal_name: 'alice', before: { storage_bytes: 7, image_count: 99 } }],
      });
      t.match(await usage(), {
        current_storage_bytes: right.current_storage_bytes,
        current_image_count: right.current_image_count,
      });

      await db.query("UPDATE images SET total_size_bytes = 1 WHERE name = 'acme/tool'");
      const cli = await runCli(['quota', 'recalc', '--registry', url]);
      t.equal(cli.code, 0, cli.stderr);
      t.match(cli.stdout, /organization acme\s+1 -> 100\s+1 -> 1/);
      t.match(cli.stdout, /corrected 1 account/);
      const again = await runCli(['quota', 'recalc', '--registry', url]);
      t.match(again.stdout, /usage was right for every account/);
      const shown = await runCli(['quota', 'show', 'org/acme', '--registry', url]);
      t.match(shown.stdout, /storage bytes\s+100 of 100/);
      const denied = await runCli(['quota', 'recalc', '--registry', url], {
        ZEDGE_CREDENTIAL: `bob:${bob.password}`,
      });
      t.equal(denied.code, 2);
      t.match(denied.stderr, /403/);
    });
  });
}
