// Distribution jobs on this host: every layer of the job fetched into the cache through the usual
// download ladder (peers, edge, center), with progress (per layer and for the host) reported to the
// registry every few seconds and once at the end. A job that ended at the registry (cancelled, most
// often) stops here too: its downloads that no pull wants stop, keeping their verified pieces.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../shared/digest.ts';
import { parseDigest } from '../shared/digest.ts';
import type { LayerCache } from '../shared/layer-cache.ts';
import type { Logger } from '../shared/logger.ts';
import type { Download, Downloader } from './downloader.ts';
import { type ByteSource, emptyTally } from './sources.ts';

export interface Assignment {
  id: string;
  image: string;
  layers: { digest: string; size: number }[];
}

export type LayerStatus = 'pending' | 'running' | 'completed' | 'failed';

export interface LayerReport {
  digest: string;
  status: LayerStatus;
  /** Bytes of the layer this host holds checked. */
  bytesDone: number;
}

export interface JobReport {
  status: 'running' | 'completed' | 'failed';
  bytesDone: number;
  bytesBySource: Record<ByteSource, number>;
  layers: LayerReport[];
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
const LIVE = ['pending', 'running'];

export class Prefetcher {
  private readonly running = new Map<string, JobRun>();

  constructor(
    private readonly cache: LayerCache,
    private readonly downloader: Downloader,
    private readonly report: Reporter,
    private readonly log: Logger,
  ) {}

  /**
   * Takes the host's live jobs as the registry lists them: starts those not running here, and asks
   * about those running here that the list lacks (cancelled, or ended for this host at the registry).
   */
  take(jobs: Assignment[]): void {
    const listed = new Set(jobs.map((job) => job.id));
    for (const [id, run] of this.running) if (!listed.has(id)) run.reportNow();
    for (const job of jobs) {
      if (this.running.has(job.id)) continue;
      const run = new JobRun(job, this.cache, this.downloader, this.report, this.log);
      this.running.set(job.id, run);
      run
        .run()
        .catch((error) => this.log.warn({ err: error, job: job.id }, 'distribution job failed'))
        .finally(() => this.running.delete(job.id));
    }
  }

  /** The jobs running here and their layers, as the agent's status shows them. */
  status(): { id: string; image: string; layers: LayerReport[] }[] {
    return [...this.running.values()].map((run) => run.status());
  }
}

interface LayerState {
  digest: Digest;
  size: number;
  status: LayerStatus;
  download?: Download;
  /** The download's byte counts when this job took it up (another pull may have started it). */
  before?: Record<ByteSource, number>;
}

/** One job on this host: its layers' downloads and its reports. */
class JobRun {
  // Aborted when the job ended at the registry: the downloads only this job wants stop.
  private readonly stop = new AbortController();
  private readonly layers: LayerState[];
  private readonly bytesBySource = emptyTally();
  private reporting = false;
  private finishing = false;

  constructor(
    private readonly job: Assignment,
    private readonly cache: LayerCache,
    private readonly downloader: Downloader,
    private readonly report: Reporter,
    private readonly log: Logger,
  ) {
    this.layers = job.layers.map((layer) => ({
      digest: parseDigest(layer.digest).digest as Digest,
      size: layer.size,
      status: 'pending',
    }));
  }

  private get ended(): boolean {
    return this.stop.signal.aborted;
  }

  /** A progress report now (unless one is on its way, or the last one is being sent). */
  reportNow(): void {
    if (this.reporting || this.finishing || this.ended) return;
    this.reporting = true;
    this.send('running')
      .catch(() => {})
      .finally(() => (this.reporting = false));
  }

  async run(): Promise<void> {
    const { job } = this;
    this.log.info({ job: job.id, image: job.image, layers: job.layers.length }, 'prefetching');
    const ticker = setInterval(() => this.reportNow(), REPORT_EVERY_MS);
    try {
      await this.send('running');
      // Every layer at once: each is a swarm of its own, and one after another would leave the host's
      // link idle while a layer's last pieces trickle in.
      await Promise.all(this.layers.map((layer) => this.fetch(layer)));
      clearInterval(ticker);
      if (this.ended) return;
      this.finishing = true;
      await finalReport(() => this.send('completed'));
      this.log.info({ job: job.id, bytesBySource: this.bytesBySource }, 'prefetched');
    } catch (error) {
      clearInterval(ticker);
      if (this.ended) {
        this.log.info({ job: job.id }, 'distribution job ended at the registry: prefetch stopped');
        return;
      }
      this.finishing = true;
      await finalReport(() => this.send('failed', (error as Error).message)).catch(() => {});
      throw error;
    } finally {
      clearInterval(ticker);
    }
  }

  private async fetch(layer: LayerState): Promise<void> {
    if (this.ended) return;
    if (!this.cache.has(layer.digest)) {
      layer.status = 'running';
      const download = this.downloader.fetch(layer.digest, { prefetch: true, signal: this.stop.signal });
      layer.download = download;
      layer.before = { ...download.bytes };
      try {
        // A download that a pull (or another job) also wants goes on without this job once it ended.
        await Promise.race([download.flight.done, untilAborted(this.stop.signal)]);
      } catch (error) {
        if (!this.ended) layer.status = 'failed';
        throw error;
      } finally {
        for (const [source, bytes] of Object.entries(this.sourcesOf(layer)))
          this.bytesBySource[source as ByteSource] += bytes;
        layer.download = undefined;
      }
    }
    layer.status = 'completed';
  }

  /** The bytes a layer's download got for this job so far, by source. */
  private sourcesOf(layer: LayerState): Record<ByteSource, number> {
    const tally = emptyTally();
    if (layer.download && layer.before)
      for (const source of Object.keys(tally) as ByteSource[])
        tally[source] = layer.download.bytes[source] - layer.before[source];
    return tally;
  }

  status(): { id: string; image: string; layers: LayerReport[] } {
    return { id: this.job.id, image: this.job.image, layers: this.layerReports() };
  }

  private layerReports(): LayerReport[] {
    return this.layers.map((layer) => {
      const bytesDone =
        layer.status === 'completed' ? layer.size : Math.min(layer.size, layer.download?.checked ?? 0);
      return { digest: layer.digest, status: layer.status, bytesDone };
    });
  }

  private async send(status: JobReport['status'], error?: string): Promise<void> {
    const bytesBySource = { ...this.bytesBySource };
    for (const layer of this.layers)
      for (const [source, bytes] of Object.entries(this.sourcesOf(layer)))
        bytesBySource[source as ByteSource] += bytes;
    const layers = this.layerReports();
    const answer = await this.report(this.job.id, {
      status,
      bytesDone: layers.reduce((sum, layer) => sum + layer.bytesDone, 0),
      bytesBySource,
      layers,
      ...(error ? { error } : {}),
    });
    // Ended at the registry while this host was still at it (cancelled): stop.
    if (status === 'running' && !LIVE.includes(answer) && !this.ended) {
      this.log.info({ job: this.job.id, status: answer }, 'distribution job ended at the registry');
      this.stop.abort(new Error(`distribution ${this.job.id} is ${answer}`));
    }
  }
}

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
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
