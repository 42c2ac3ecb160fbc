// VM images with real disks made by Debian's qemu-img (qemu-utils): the format read from each header and
// the virtual size `qemu-img info` reports; damaged, truncated and unusable headers refused. Then, on
// both backends, VM images as OCI artifacts through /v2 (a declared format that is not the file's is
// refused with MANIFEST_INVALID) and registered over REST (POST /api/v1/images/<id>/versions), bad input
// included, and pulled back with skopeo.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { vmDiskMediaType, vmImageArtifactType } from '../../shared/media-types.ts';
import { type DiskReader, inspectDisk } from '../../shared/vm-disk.ts';
import { apiAs, createUser, credsOf, fetchAs } from '../../test/support/auth.ts';
import { BACKENDS, provisionBackend, startRegistry } from '../../test/support/backends.ts';
import { pushBlobMonolithic, putManifest, sha256 } from '../../test/support/oci.ts';
import { skopeo } from '../../test/support/oci-layout.ts';

const run = promisify(execFile);

interface Disk {
  /** qemu-img's name of the format. */
  qemuFormat: string;
  /** The registry's name of it. */
  format: 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'raw';
  file: string;
  virtualSize: number;
}

const work = await mkdtemp(join(tmpdir(), 'zedge-vm-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

/** `qemu-img create` then `qemu-img info`: the file and the virtual size qemu reads from it. */
async function makeDisk(
  name: string,
  qemuFormat: string,
  size: string,
  options: string[] = [],
): Promise<Disk> {
  const file = join(work, name);
  await run('qemu-img', ['create', '-q', '-f', qemuFormat, ...options, file, size]);
  const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', qemuFormat, file])).stdout);
  const format =
    ({ vpc: 'vhd' } as Record<string, Disk['format']>)[qemuFormat] ?? (qemuFormat as Disk['format']);
  return { qemuFormat, format, file, virtualSize: info['virtual-size'] };
}

function fileReader(bytes: Buffer): DiskReader {
  return async (offset, length) => bytes.subarray(offset, offset + length);
}

const disks = {
  qcow2: await makeDisk('disk.qcow2', 'qcow2', '20G'),
  vmdk: await makeDisk('disk.vmdk', 'vmdk', '3G'),
  vhd: await makeDisk('disk.vhd', 'vpc', '5G'),
  vhdx: await makeDisk('disk.vhdx', 'vhdx', '30G'),
  raw: await makeDisk('disk.raw', 'raw', '1M'),
};

t.test('format and virtual size from the header, as qemu-img info reads them', async (t) => {
  const more = [
    await makeDisk('stream.vmdk', 'vmdk', '700M', ['-o', 'subformat=streamOptimized']),
    await makeDisk('fixed.vhd', 'vpc', '3M', ['-o', 'subformat=fixed']),
    await makeDisk('hyperv.vhd', 'vpc', '64M', ['-o', 'force_size=on']),
    await makeDisk('v2.qcow2', 'qcow2', '1G', ['-o', 'compat=0.10']),
  ];
  for (const disk of [...Object.values(disks), ...more]) {
    const bytes = await readFile(disk.file);
    const info = await inspectDisk(fileReader(bytes), bytes.length);
    t.equal(info.format, disk.format, `${disk.file}: ${disk.format}`);
    t.equal(info.virtualSize, disk.virtualSize, `${disk.file}: virtual size ${disk.virtualSize}`);
  }
});

t.test('unusable headers are refused with the reason', async (t) => {
  const qcow2 = await readFile(disks.qcow2.file);
  const inspect = (bytes: Buffer) => inspectDisk(fileReader(bytes), bytes.length);
  await t.rejects(inspect(qcow2.subarray(0, 40)), /truncated qcow2 header/);
  await t.rejects(inspect(Buffer.alloc(0)), /empty/);
  const vhdx = await readFile(disks.vhdx.file);
  await t.rejects(inspect(vhdx.subarray(0, 100 * 1024)), /damaged or truncated VHDX/);
  const vhd = Buffer.from(await readFile(disks.vhd.file));
  vhd[50] = (vhd[50]! + 1) & 0xff;
  await t.rejects(inspect(vhd), /checksum mismatch/);
  const overlay = join(work, 'overlay.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', disks.qcow2.file, '-F', 'qcow2', overlay]);
  await t.rejects(inspect(await readFile(overlay)), /backing file/);
  const descriptor = join(work, 'flat.vmdk');
  await run('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', descriptor, '1M']);
  await t.rejects(inspect(await readFile(descriptor)), /descriptor file without its extents/);
  // A file of zeros is a raw disk of its size; its first bytes alone would be one too.
  t.same(await inspect(Buffer.alloc(4096)), { format: 'raw', virtualSize: 4096 });
});

/** A VM image artifact's manifest: empty config, one disk layer. */
function vmManifest(
  layer: { digest: string; size: number; mediaType: string },
  annotations?: Record<string, string>,
  extraLayers: { digest: string; size: number; mediaType: string }[] = [],
) {
  return {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: vmImageArtifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
    layers: [layer, ...extraLayers],
    ...(annotations ? { annotations } : {}),
  };
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const resources = await provisionBackend(t, backend);
    const { url } = await startRegistry(t, resources);
    const alice = await createUser(url, 'alice');
    const asAlice = apiAs(url, alice);
    const pusher = { url, fetch: fetchAs(alice) };
    const upload = async (name: string, data: Buffer) => {
      const response = await pushBlobMonolithic(pusher, name, data);
      t.equal(response.status, 201, `blob of ${data.length} bytes uploaded`);
      return { digest: sha256(data), size: data.length };
    };

    t.test('/v2: a VM image artifact, its format checked and its virtual size recorded', async (t) => {
      const bytes = await readFile(disks.qcow2.file);
      const disk = await upload('alice/vm', bytes);
      await upload('alice/vm', Buffer.from('{}'));
      const pushed = await putManifest(
        pusher,
        'alice/vm',
        '1.0.0',
        vmManifest(
          { ...disk, mediaType: vmDiskMediaType('qcow2') },
          { 'io.zedge.vm.min_cpu_cores': '2', 'io.zedge.vm.recommended_memory_mb': '4096' },
        ),
      );
      t.equal(pushed.response.status, 201);
      const image = (await asAlice('GET', '/images?name=alice/vm')).body.data[0];
      t.match(image, { format: 'qcow2', min_cpu_cores: 2, recommended_memory_mb: 4096 });
      const versions = (await asAlice('GET', `/images/${image.id}/versions`)).body.data;
      t.match(versions[0], {
        version: '1.0.0',
        manifest_digest: pushed.digest,
        disk_format: 'qcow2',
        virtual_size_bytes: disks.qcow2.virtualSize,
        artifact_type: vmImageArtifactType,
      });
      const pulled = await fetchAs(alice)(`${url}/v2/alice/vm/blobs/${disk.digest}`);
      t.equal(sha256(Buffer.from(await pulled.arrayBuffer())), disk.digest, 'the disk pulls back');
    });

    t.test('/v2: refused when the declared format is not the file', async (t) => {
      const qcow2 = await upload('alice/bad', await readFile(disks.qcow2.file));
      const raw = await upload('alice/bad', await readFile(disks.raw.file));
      const truncated = await upload('alice/bad', (await readFile(disks.qcow2.file)).subarray(0, 50));
      await upload('alice/bad', Buffer.from('{}'));
      const cases: [string, unknown, RegExp][] = [
        [
          'qcow2 declared vmdk',
          vmManifest({ ...qcow2, mediaType: vmDiskMediaType('vmdk') }),
          /declared format vmdk, but the file is a qcow2 image/,
        ],
        [
          'raw declared vhdx',
          vmManifest({ ...raw, mediaType: vmDiskMediaType('vhdx') }),
          /declared format vhdx, but the file has no vhdx header/,
        ],
        [
          'qcow2 declared raw',
          vmManifest({ ...qcow2, mediaType: vmDiskMediaType('raw') }),
          /declared format raw, but the file is a qcow2 image/,
        ],
        [
          'a truncated header',
          vmManifest({ ...truncated, mediaType: vmDiskMediaType('qcow2') }),
          /truncated/,
        ],
        [
          'two layers',
          vmManifest({ ...qcow2, mediaType: vmDiskMediaType('qcow2') }, undefined, [
            { ...raw, mediaType: vmDiskMediaType('raw') },
          ]),
          /exactly one layer/,
        ],
        [
          'a layer that is no disk',
          vmManifest({ ...qcow2, mediaType: 'application/vnd.oci.image.layer.v1.tar' }),
          /disk media type/,
        ],
        [
          'a resource that is no count',
          vmManifest(
            { ...qcow2, mediaType: vmDiskMediaType('qcow2') },
            { 'io.zedge.vm.min_cpu_cores': 'two' },
          ),
          /must be a positive integer/,
        ],
      ];
      for (const [what, manifest, message] of cases) {
        const { response } = await putManifest(pusher, 'alice/bad', 'v1', manifest);
        t.equal(response.status, 400, what);
        const body = (await response.json()) as { errors: { code: string; message: string }[] };
        t.equal(body.errors[0]!.code, 'MANIFEST_INVALID', what);
        t.match(body.errors[0]!.message, message, what);
      }
      const tags = await fetchAs(alice)(`${url}/v2/alice/bad/tags/list`);
      t.same(((await tags.json()) as { tags: string[] }).tags, [], 'nothing was stored');
    });

    t.test('REST: register a version of each format from an uploaded disk', async (t) => {
      const created = await asAlice('POST', '/images', { name: 'alice/desktop', image_type: 'os_base' });
      t.equal(created.status, 201);
      const id = created.body.id as string;
      let minor = 0;
      for (const disk of Object.values(disks)) {
        const blob = await upload('alice/desktop', await readFile(disk.file));
        const version = `1.${minor++}.0`;
        const registered = await asAlice('POST', `/images/${id}/versions`, {
          version,
          format: disk.format,
          disk_digest: blob.digest,
          tags: [`${disk.format}-latest`],
          changelog: `the ${disk.format} build`,
          min_cpu_cores: 2,
          min_memory_mb: 2048,
          recommended_disk_gb: 40,
        });
        t.equal(registered.status, 201, `${disk.format}: ${JSON.stringify(registered.body)}`);
        t.match(registered.body, {
          version,
          disk_format: disk.format,
          virtual_size_bytes: disk.virtualSize,
          artifact_type: vmImageArtifactType,
          changelog: `the ${disk.format} build`,
        });
        const again = await asAlice('GET', `/images/${id}/versions/${registered.body.id}`);
        t.same(again.body.tags.sort(), [`${disk.format}-latest`, version].sort());
        const manifest = await fetchAs(alice)(`${url}/v2/alice/desktop/manifests/${version}`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        const document = (await manifest.json()) as {
          artifactType: string;
          layers: { mediaType: string; digest: string }[];
          annotations: Record<string, string>;
        };
        t.equal(document.artifactType, vmImageArtifactType);
        t.same(
          document.layers.map((layer) => [layer.mediaType, layer.digest]),
          [[vmDiskMediaType(disk.format), blob.digest]],
        );
        t.equal(document.annotations['io.zedge.vm.virtual_size'], String(disk.virtualSize));
      }
      const image = (await asAlice('GET', `/images/${id}`)).body;
      t.match(image, { format: 'raw', min_cpu_cores: 2, min_memory_mb: 2048, recommended_disk_gb: 40 });

      const repeat = await asAlice('POST', `/images/${id}/versions`, {
        version: '1.4.0',
        format: 'raw',
        disk_digest: sha256(await readFile(disks.raw.file)),
        min_cpu_cores: 2,
        min_memory_mb: 2048,
        recommended_disk_gb: 40,
      });
      t.equal(repeat.status, 200, 'registering the same version again changes nothing');
    });

    t.test('REST: bad input', async (t) => {
      const id = (await asAlice('GET', '/images?name=alice/desktop')).body.data[0].id as string;
      const qcow2 = sha256(await readFile(disks.qcow2.file));
      const base = { version: '2.0.0', format: 'qcow2', disk_digest: qcow2 };
      const cases: [string, unknown, number, RegExp][] = [
        ['malformed JSON', '{"version": "2.0.0",', 400, /JSON|Unexpected|Bad/i],
        ['a wrong type', { ...base, format: 5 }, 400, /format/],
        ['an unknown format', { ...base, format: 'iso' }, 400, /format/],
        ['an unknown field', { ...base, size: 1 }, 400, /additional/i],
        ['an oversized version', { ...base, version: `1.0.0-${'x'.repeat(200)}` }, 400, /version/],
        ['no semantic version', { ...base, version: 'nightly' }, 400, /semantic version/],
        ['a negative resource', { ...base, min_cpu_cores: -1 }, 400, /min_cpu_cores/],
        ['a malformed digest', { ...base, disk_digest: `sha256:${'z'.repeat(64)}` }, 400, /digest/],
        ['a disk not uploaded', { ...base, disk_digest: sha256('nothing') }, 404, /upload it first/],
        [
          'the wrong format',
          { ...base, format: 'vhdx' },
          400,
          /declared format vhdx, but the file is a qcow2/,
        ],
        ['a taken version', { ...base, version: '1.0.0', format: 'qcow2', min_cpu_cores: 8 }, 409, /already/],
      ];
      for (const [what, body, status, detail] of cases) {
        const answer = await asAlice('POST', `/images/${id}/versions`, body);
        t.equal(answer.status, status, what);
        t.equal(answer.headers.get('content-type'), 'application/problem+json; charset=utf-8', what);
        t.match(answer.body.detail, detail, what);
      }
      const mismatch = await asAlice('POST', `/images/${id}/versions`, { ...base, format: 'vmdk' });
      t.match(mismatch.body, { type: 'https://zedge.dev/problems/disk-format', status: 400 });
      const bob = await createUser(url, 'bob');
      const asBob = apiAs(url, bob);
      t.equal((await asBob('POST', `/images/${id}/versions`, base)).status, 403, 'read-less users may not');
      t.equal((await apiAs(url, undefined)('POST', `/images/${id}/versions`, base)).status, 401);
    });

    if (backend === 'embedded') {
      t.test('skopeo pulls a VM image into an OCI layout, the disk byte for byte', async (t) => {
        const dir = join(work, 'pulled');
        await skopeo([
          'copy',
          '--quiet',
          '--src-tls-verify=false',
          `--src-creds=${credsOf(alice)}`,
          `docker://${new URL(url).host}/alice/desktop:1.0.0`,
          `oci:${dir}:vm`,
        ]);
        const digest = sha256(await readFile(disks.qcow2.file));
        const stored = join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
        t.equal((await stat(stored)).size, (await stat(disks.qcow2.file)).size);
        t.equal(sha256(await readFile(stored)), digest);
      });
    }
  });
}
