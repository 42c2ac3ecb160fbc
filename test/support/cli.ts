// The zedge-p2p command in its own process, as operators run it: started with arguments and
// environment, ready once every service it runs has logged "<role> ready", stopped with SIGTERM.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ADMIN, credsOf, TEST_ADMIN_PASSWORD } from './auth.ts';
import type { Teardown } from './backends.ts';

const root = resolve(import.meta.dirname, '../..');
const cliMain = resolve(root, 'cli/main.ts');
// A registry the command starts has the tests' admin; commands that call a registry do so as it.
const AUTH_ENV = { ZEDGE_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, ZEDGE_CREDENTIAL: credsOf(ADMIN) };

/** Runs `zedge-p2p <args>` and resolves with the URL of every service once each logged "<role> ready". */
export async function startCli(
  t: Teardown,
  args: string[],
  roles: string[],
  env: Record<string, string> = {},
): Promise<{ urls: Record<string, string>; stop(): Promise<number | null>; kill(): Promise<unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, ...args], {
    cwd: root,
    env: { ...process.env, ...AUTH_ENV, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const urls: Record<string, string> = {};
  await new Promise<void>((resolveUrls, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${roles.join(', ')} did not start within 60 s`)),
      60_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string; role?: string };
      const role = entry.msg?.match(/^(\w+) ready$/)?.[1];
      if (role && entry.url) urls[role] = entry.url;
      if (roles.every((name) => urls[name])) {
        clearTimeout(timer);
        resolveUrls();
      }
    });
    exit.then((code) => reject(new Error(`zedge-p2p exited with ${code} before it was ready`)));
  });
  return {
    urls,
    stop: () => {
      child.kill('SIGTERM');
      return exit;
    },
    // A crash: no cleanup of any kind.
    kill: () => {
      child.kill('SIGKILL');
      return exit;
    },
  };
}

/** Runs a `zedge-p2p` command to its end; its exit code and output. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, ...args], {
    cwd: root,
    env: { ...process.env, ...AUTH_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}
