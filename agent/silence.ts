// How long a source has been silent, as a watchdog sees it. Time this process did not run does not
// count: on a busy host an event loop held up for seconds runs its timers before it reads the bytes
// that arrived meanwhile, and would judge a sending source silent (and call in the edge or the center,
// or give up on the swarm) for its own stall.

/** A watchdog's tick this much later than its interval means the process itself was held up. */
const LATE_MS = 100;

export class Silence {
  private lastHeard: number;
  private lastTick: number;

  constructor(private readonly tickMs: number) {
    this.lastHeard = this.lastTick = Date.now();
  }

  /** The source sent something. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /** Called by the watchdog every `tickMs`: milliseconds of silence, the process's own stalls left out. */
  tick(): number {
    const now = Date.now();
    const stalled = now - this.lastTick - this.tickMs;
    if (stalled > LATE_MS) this.lastHeard = Math.min(now, this.lastHeard + stalled);
    this.lastTick = now;
    return now - this.lastHeard;
  }
}
