// The zedge-p2p command as a newcomer runs it: a real process that serves, and stops cleanly on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';

const root = resolve(import.meta.dirname, '..');

t.test('zedge-p2p registry serves and shuts down on SIGTERM', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'zedge-cli-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'cli/main.ts'),
      'registry',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('registry did not start within 30 s')), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'registry ready' && entry.url) {
        clearTimeout(timer);
        resolveUrl(entry.url);
      }
    });
  });
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal((await fetch(`${url}/v2/`)).status, 200);
  t.equal((await fetch(`${url}/healthz`)).status, 200);
  const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0, 'clean exit');
});

t.test('a bad setting is a clear error, not a stack trace', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'registry'], {
    cwd: root,
    env: { ...process.env, ZEDGE_BLOB_STORE: 'tape' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((done) => child.on('exit', (exitCode) => done(exitCode)));
  t.equal(code, 2);
  t.match(stderr, /zedge-p2p: ZEDGE_BLOB_STORE must be "filesystem" or "s3"/);
});
