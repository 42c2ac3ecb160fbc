// A webtorrent leecher in its own process (test/support/leech.ts), as tests start and watch it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const leechScript = join(import.meta.dirname, 'leech.ts');

export interface Leecher {
  /** Resolves once it has the whole layer (or exited). */
  done: Promise<void>;
  /** Resolves when it exited, with its output. */
  exited: Promise<{ code: number | null; output: string }>;
  /** Ends its standard input: a leecher told to keep seeding stops. */
  release(): void;
  /** Stops it now (a test that expects it never to finish). */
  kill(): void;
}

/** A leecher process of `torrentFile` into `dir`, given `peers` (host:port) and no tracker. */
export function startLeecher(
  torrentFile: string,
  dir: string,
  peers: string[],
  { port = 0, keepSeeding = false } = {},
): Leecher {
  const child = spawn(process.execPath, ['--import', 'tsx', leechScript, torrentFile, dir, ...peers], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ZEDGE_LEECH_PORT: String(port),
      ZEDGE_LEECH_KEEP_SEEDING: keepSeeding ? '1' : '0',
    },
  });
  let output = '';
  let markDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (markDone = resolve));
  child.stdout.on('data', (chunk) => {
    output += chunk;
    if (output.includes('"done":true')) markDone();
  });
  child.stderr.on('data', (chunk) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
  const exited = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      markDone();
      resolve({ code, output });
    }),
  );
  return {
    done,
    exited,
    release: () => child.stdin.end(),
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
