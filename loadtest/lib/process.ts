// Helpers for benchmarks: services as child processes, their CPU time, free ports, timing.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function startProcess(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  stderr: 'inherit' | 'ignore' = 'inherit',
  /** A file for the process's stdout and stderr (its logs) instead. */
  logFile?: string,
): ChildProcess {
  const log = logFile === undefined ? undefined : openSync(logFile, 'a');
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: log === undefined ? ['ignore', 'ignore', stderr] : ['ignore', log, log],
  });
  if (log !== undefined) closeSync(log);
  const stop = () => child.kill('SIGKILL');
  // A benchmark starts a few dozen services: each leaves its own exit listener.
  process.setMaxListeners(Math.max(process.getMaxListeners(), 100));
  process.once('exit', stop);
  return child;
}

export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs `work` and returns its wall time in seconds and the CPU seconds `pid` used meanwhile. */
export async function measure(
  pid: number,
  work: () => Promise<unknown>,
): Promise<{ seconds: number; cpu: number }> {
  const cpuBefore = cpuSeconds(pid);
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cpu: cpuSeconds(pid) - cpuBefore };
}
