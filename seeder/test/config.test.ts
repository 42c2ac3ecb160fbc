// The seeder's settings: every default, and refusals of bad values.
import { resolve } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../shared/config.ts';
import { seederConfig } from '../config.ts';

t.test('defaults', async (t) => {
  const config = seederConfig({});
  t.match(config, {
    host: '127.0.0.1',
    port: 5002,
    zone: 'default',
    cacheDir: resolve('.data/seeder-cache'),
    cacheBytes: 10 * 1024 ** 3,
    centerUrl: 'http://127.0.0.1:5000',
    torrentPort: 6881,
    blobStore: undefined,
    warmConcurrency: 4,
    logLevel: 'info',
  });
});

t.test('settings from the environment', async (t) => {
  const config = seederConfig({
    ZEDGE_SEEDER_LISTEN: '0.0.0.0:7002',
    ZEDGE_SEEDER_ZONE: 'rack-7',
    ZEDGE_DATA_DIR: '/srv/zedge',
    ZEDGE_SEEDER_CACHE_BYTES: '1048576',
    ZEDGE_REGISTRY_URL: 'http://center.zedge.internal:5000/',
    ZEDGE_SEEDER_TORRENT_PORT: '51413',
    ZEDGE_SEEDER_STORE_ACCESS: 'true',
    S3_ENDPOINT: 'http://127.0.0.1:7480',
    S3_BUCKET: 'layers',
    ZEDGE_SEEDER_WARM_CONCURRENCY: '2',
  });
  t.match(config, {
    host: '0.0.0.0',
    port: 7002,
    zone: 'rack-7',
    cacheDir: '/srv/zedge/seeder-cache',
    cacheBytes: 1048576,
    centerUrl: 'http://center.zedge.internal:5000',
    torrentPort: 51413,
    blobStore: { kind: 's3', endpoint: 'http://127.0.0.1:7480', bucket: 'layers' },
    warmConcurrency: 2,
  });
  t.equal(seederConfig({ ZEDGE_SEEDER_CACHE_DIR: '/var/cache/zedge' }).cacheDir, '/var/cache/zedge');
  t.match(seederConfig({ ZEDGE_SEEDER_STORE_ACCESS: 'true', ZEDGE_DATA_DIR: '/d' }).blobStore, {
    kind: 'filesystem',
    root: '/d/blobs',
  });
});

t.test('bad values are refused', async (t) => {
  for (const env of [
    { ZEDGE_SEEDER_LISTEN: 'nowhere' },
    { ZEDGE_SEEDER_CACHE_BYTES: '10GB' },
    { ZEDGE_SEEDER_CACHE_BYTES: '0' },
    { ZEDGE_SEEDER_TORRENT_PORT: '70000' },
    { ZEDGE_SEEDER_STORE_ACCESS: 'yes' },
  ]) {
    t.throws(() => seederConfig(env), ConfigError, JSON.stringify(env));
  }
});
