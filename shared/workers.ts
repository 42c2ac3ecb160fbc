// Starting worker threads whose module may be TypeScript source (tests and development run the
// sources through tsx; the build runs .js). A worker does not reliably get the parent's loader before
// its entry module resolves, so a .ts worker registers tsx itself first.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** The sibling module `name` of `base` (an import.meta.url), with the extension `base` has. */
export function siblingModule(name: string, base: string): URL {
  return new URL(`./${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base);
}

export function startWorker(module: URL, options: WorkerOptions = {}): Worker {
  if (!module.pathname.endsWith('.ts')) return new Worker(module, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(module.href)}))`;
  return new Worker(bootstrap, { ...options, eval: true });
}
