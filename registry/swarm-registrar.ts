// Tells the trackers about every torrent the registry makes, so that a swarm is registered before any
// agent announces to it. Best effort: a tracker that missed it asks the registry on first announce.
import type { Logger } from '../shared/logger.ts';

const TIMEOUT_MS = 3_000;

/** The tracker's HTTP base for an HTTP announce URL; UDP trackers share their HTTP twin's state. */
export function trackerApiBase(announce: string): string | undefined {
  if (!/^https?:\/\//.test(announce)) return undefined;
  return announce.replace(/\/announce$/, '');
}

export class SwarmRegistrar {
  private readonly bases: string[];

  constructor(
    trackers: string[],
    private readonly log: Logger,
  ) {
    this.bases = [
      ...new Set(trackers.map(trackerApiBase).filter((base): base is string => base !== undefined)),
    ];
  }

  async register(infoHash: string, digest: string): Promise<void> {
    await Promise.all(
      this.bases.map(async (base) => {
        try {
          const response = await fetch(`${base}/api/v1/swarms`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ infoHash, digest }),
            signal: AbortSignal.timeout(TIMEOUT_MS),
          });
          await response.arrayBuffer();
          if (!response.ok) throw new Error(`tracker answered ${response.status}`);
        } catch (error) {
          this.log.warn({ err: error, tracker: base, infoHash }, 'could not register swarm with tracker');
        }
      }),
    );
  }
}
