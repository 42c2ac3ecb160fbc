// Distribution jobs on this host: every layer of the job fetched into the cache through the usual
// download ladder (peers, edge, center), with progress reported to the registry about once a second
// and once at the end. A job the registry reports cancelled stops being reported.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../shared/digest.ts';
import { parseDigest } from '../shared/digest.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import type { Logger } from '../shared/logger.ts';
import type { Downloader } from './downloader.ts';
import { type ByteSource, emptyTally } from './sources.ts';

export interface Assignment {
  id: string;
  image: string;
  layers: { digest: string; size: number }[];
}

export interface JobReport {
  status: 'running' | 'completed' | 'failed';
  bytesDone: number;
  bytesBySource: Record<ByteSource, number>;
  error?: string;
}

/** Sends a report; resolves to the job's status at the registry. */
export type Reporter = (jobId: string, report: JobReport) => Promise<string>;

// Every host of a deploy reports: a thousand hosts send the registry 500 reports a second.
const REPORT_EVERY_MS = 2000;
/**
 * The job's last report (completed or failed) is what the registry's job waits for: it is tried again
 * after 1, 2, 4, 8 and 16 s when the registry does not answer (a registry busy with a large fleet),
 * not only once.
 */
const FINAL_REPORT_ATTEMPTS = 6;

export class Prefetcher {
  private readonly running = new Set<string>();

  constructor(
    private readonly cache: LayerCache,
    private readonly downloader: Downloader,
    private readonly report: Reporter,
    private readonly log: Logger,
  ) {}

  /** Starts the jobs not already running here. */
  take(jobs: Assignment[]): void {
    for (const job of jobs) {
      if (this.running.has(job.id)) continue;
      this.running.add(job.id);
      this.run(job)
        .catch((error) => this.log.warn({ err: error, job: job.id }, 'distribution job failed'))
        .finally(() => this.running.delete(job.id));
    }
  }

  get jobs(): string[] {
    return [...this.running];
  }

  private async run(job: Assignment): Promise<void> {
    this.log.info({ job: job.id, image: job.image, layers: job.layers.length }, 'prefetching');
    const bytesBySource = emptyTally();
    let done = 0;
    const inFlight = new Set<{ written(): number }>();
    let cancelled = false;
    const send = async (status: JobReport['status'], error?: string) => {
      let bytesDone = done;
      for (const download of inFlight) bytesDone += download.written();
      const answer = await this.report(job.id, {
        status,
        bytesDone,
        bytesBySource,
        ...(error ? { error } : {}),
      });
      if (answer === 'cancelled') cancelled = true;
    };
    // A progress report waits for the one before it: a slow registry is not sent a pile of them.
    let reporting = false;
    const ticker = setInterval(() => {
      if (reporting) return;
      reporting = true;
      send('running')
        .catch(() => {})
        .finally(() => (reporting = false));
    }, REPORT_EVERY_MS);
    try {
      await send('running');
      // Every layer at once: each is a swarm of its own, and one after another would leave the host's
      // link idle while a layer's last pieces trickle in.
      await Promise.all(
        job.layers.map(async (layer) => {
          if (cancelled) return;
          const digest = parseDigest(layer.digest).digest as Digest;
          if (!this.cache.has(digest)) {
            const download = this.downloader.fetch(digest, { prefetch: true });
            const before = { ...download.bytes };
            const progress = { written: () => download.flight.written };
            inFlight.add(progress);
            try {
              await download.flight.done;
            } finally {
              inFlight.delete(progress);
            }
            for (const source of ['peers', 'edge', 'center'] as const)
              bytesBySource[source] += download.bytes[source] - before[source];
          }
          done += layer.size;
        }),
      );
      if (cancelled) return;
      clearInterval(ticker);
      if (!cancelled) await finalReport(() => send('completed'));
      this.log.info({ job: job.id, bytesBySource }, 'prefetched');
    } catch (error) {
      clearInterval(ticker);
      await finalReport(() => send('failed', (error as Error).message)).catch(() => {});
      throw error;
    } finally {
      clearInterval(ticker);
    }
  }
}

/** Sends a job's last report, again after a pause while the registry does not answer or fails (5xx). */
async function finalReport(send: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      const status = (error as { status?: number }).status;
      const refused = status !== undefined && status < 500;
      if (refused || attempt === FINAL_REPORT_ATTEMPTS) throw error;
      // Unref'd: a retry pending does not keep a stopping agent's process alive.
      await sleep(1000 * 2 ** (attempt - 1), undefined, { ref: false });
    }
  }
}
