// Scheduled garbage collection (ZEDGE_GC_INTERVAL_SECONDS): a registry wakes when a collection is due
// (the interval after the last one that was not a dry run started, whoever started it, in any registry
// of the deployment) and asks for one with the configured grace period. The collector's insert starts
// it only if it is still due and none is running (gc.ts), so of several registries waking together one
// starts it and the others sleep until the next is due: a deployment collects once per interval however
// many registries it has, and a manual collection counts as the interval's.
import type { Logger } from '../shared/logger.ts';
import type { GarbageCollector } from './gc.ts';

/** While a run started long ago is still going (or the database fails), look again this often at most. */
const RECHECK_SECONDS = 60;
/** Timers sleep at most this long (setTimeout's limit is 24.8 days); a registry then looks again. */
const MAX_SLEEP_SECONDS = 24 * 3600;

export interface GcSchedule {
  intervalSeconds: number;
  graceSeconds: number;
}

export class GcScheduler {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly gc: GarbageCollector,
    private readonly schedule: GcSchedule,
    private readonly log: Logger,
  ) {}

  /** Looks at once whether a collection is due, then whenever the next one will be. */
  start(): void {
    this.arm(0);
  }

  /** No collection is asked for any more; resolves once a look in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
  }

  private arm(seconds: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
      });
    }, Math.min(seconds, MAX_SLEEP_SECONDS) * 1000).unref();
  }

  private async tick(): Promise<void> {
    const { intervalSeconds, graceSeconds } = this.schedule;
    let wait = 0;
    try {
      // The insert itself checks that a run is due (and none is going): no look beforehand.
      const run = await this.gc.startIfDue({ dryRun: false, graceSeconds }, intervalSeconds);
      if (run) this.log.info({ run: run.id, graceSeconds }, 'scheduled garbage collection started');
      wait = await this.gc.secondsUntilDue(intervalSeconds);
    } catch (error) {
      if (this.stopped) return;
      this.log.warn({ err: error }, 'scheduled garbage collection could not start');
    }
    // Still due: a run (a dry run, or one longer than the interval) is going; look again a little later.
    this.arm(wait > 0 ? Math.min(wait, intervalSeconds) : Math.min(intervalSeconds, RECHECK_SECONDS));
  }
}
