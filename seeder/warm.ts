// Warm jobs: layers fetched into the cache ahead of a mass deploy. Each job lists its layers with
// their progress; at most `concurrency` layers of all jobs are fetched at once (a deploy of hundreds
// of layers must not open hundreds of upstream streams), the rest wait queued. Reads through HTTP do
// not wait in this queue, and both share one fetch per layer.
import { randomUUID } from 'node:crypto';
import type { Digest } from '../shared/digest.ts';
import type { Flight } from '../shared/layer-flight.ts';

export type WarmLayerState = 'queued' | 'fetching' | 'cached' | 'failed';

export interface WarmLayerStatus {
  digest: Digest;
  state: WarmLayerState;
  bytesDone: number;
  bytesTotal: number | null;
  error?: string;
}

export interface WarmJobStatus {
  id: string;
  /** The image reference the layers were resolved from, when the job named one. */
  image?: string;
  createdAt: string;
  state: 'running' | 'done' | 'failed';
  /** Sums over the layers, for a progress bar. */
  bytesDone: number;
  bytesTotal: number | null;
  layers: WarmLayerStatus[];
}

/** What warming needs of the seeder: the cached size of a layer, or the fetch that brings it in. */
export interface WarmTarget {
  /** The layer's size when it is cached now (marking it used), else undefined. */
  cachedSize(digest: Digest): number | undefined;
  fetch(digest: Digest): Flight;
  /** A failure's reason as a client should see it. */
  describe(error: Error): string;
}

interface WarmLayer {
  digest: Digest;
  state: WarmLayerState;
  flight?: Flight;
  size?: number;
  error?: string;
}

interface WarmJob {
  id: string;
  image?: string;
  createdAt: Date;
  layers: WarmLayer[];
}

// Finished jobs are kept for status queries; the oldest are forgotten past this many.
const KEPT_JOBS = 200;

export class WarmJobs {
  private readonly jobs = new Map<string, WarmJob>();
  private readonly queue: WarmLayer[] = [];
  private active = 0;

  constructor(
    private readonly target: WarmTarget,
    private readonly concurrency: number,
  ) {}

  /** Starts warming `digests` (duplicates count once); returns the job's status. */
  create(digests: Digest[], image?: string): WarmJobStatus {
    const job: WarmJob = {
      id: randomUUID(),
      ...(image ? { image } : {}),
      createdAt: new Date(),
      layers: [...new Set(digests)].map((digest) => ({ digest, state: 'queued' })),
    };
    this.jobs.set(job.id, job);
    for (const id of this.jobs.keys()) {
      if (this.jobs.size <= KEPT_JOBS) break;
      this.jobs.delete(id);
    }
    for (const layer of job.layers) {
      const size = this.target.cachedSize(layer.digest);
      if (size === undefined) this.queue.push(layer);
      else Object.assign(layer, { state: 'cached', size });
    }
    this.pump();
    return this.view(job);
  }

  get(id: string): WarmJobStatus | undefined {
    const job = this.jobs.get(id);
    return job && this.view(job);
  }

  list(): WarmJobStatus[] {
    return [...this.jobs.values()].map((job) => this.view(job));
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const layer = this.queue.shift()!;
      this.active++;
      this.warm(layer).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async warm(layer: WarmLayer): Promise<void> {
    // It may have arrived while queued (another job, or a read through HTTP).
    const size = this.target.cachedSize(layer.digest);
    if (size !== undefined) {
      Object.assign(layer, { state: 'cached', size });
      return;
    }
    try {
      layer.flight = this.target.fetch(layer.digest);
      layer.state = 'fetching';
      await layer.flight.done;
      Object.assign(layer, { state: 'cached', size: layer.flight.size });
    } catch (error) {
      layer.state = 'failed';
      layer.error = this.target.describe(error as Error);
    } finally {
      if (layer.flight) layer.size ??= layer.flight.size;
      layer.flight = undefined;
    }
  }

  private view(job: WarmJob): WarmJobStatus {
    const layers = job.layers.map((layer): WarmLayerStatus => {
      const total = layer.flight?.size ?? layer.size;
      const done = layer.state === 'cached' ? (total ?? 0) : (layer.flight?.written ?? 0);
      return {
        digest: layer.digest,
        state: layer.state,
        bytesDone: done,
        bytesTotal: total ?? null,
        ...(layer.error ? { error: layer.error } : {}),
      };
    });
    const finished = layers.every((layer) => layer.state === 'cached' || layer.state === 'failed');
    const sizesKnown = layers.every((layer) => layer.bytesTotal !== null);
    return {
      id: job.id,
      ...(job.image ? { image: job.image } : {}),
      createdAt: job.createdAt.toISOString(),
      state: !finished ? 'running' : layers.some((layer) => layer.state === 'failed') ? 'failed' : 'done',
      bytesDone: layers.reduce((sum, layer) => sum + layer.bytesDone, 0),
      bytesTotal: sizesKnown ? layers.reduce((sum, layer) => sum + (layer.bytesTotal ?? 0), 0) : null,
      layers,
    };
  }
}
