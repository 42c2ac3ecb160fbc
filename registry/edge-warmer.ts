// Asking the edge seeders of a deploy's zones to warm its layers before the hosts ask for them. The
// registry knows each zone's seeder from ZEDGE_SEEDERS; a seeder that does not answer delays nothing
// (its zone's agents fall back to the center).
import type { Logger } from '../shared/logger.ts';

export interface WarmRequest {
  zone: string;
  seeder: string;
  /** The seeder's warm job, or why it could not be asked. */
  job?: string;
  error?: string;
}

const ASK_TIMEOUT_MS = 3_000;

export class EdgeWarmer {
  constructor(
    /** zone -> seeder base URL */
    private readonly seeders: Map<string, string>,
    private readonly log: Logger,
  ) {}

  /** `authorization`: the deployer's, which each edge has the center check for every layer. */
  async warm(zones: Iterable<string>, digests: string[], authorization: string): Promise<WarmRequest[]> {
    const asks = [...new Set(zones)]
      .filter((zone) => this.seeders.has(zone))
      .map(async (zone): Promise<WarmRequest> => {
        const seeder = this.seeders.get(zone)!;
        try {
          const response = await fetch(`${seeder}/api/v1/warm`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization },
            body: JSON.stringify({ digests }),
            signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
          });
          const body = (await response.json().catch(() => ({}))) as { id?: string; detail?: string };
          if (response.status !== 202)
            throw new Error(`answered ${response.status} ${body.detail ?? ''}`.trim());
          return { zone, seeder, job: body.id };
        } catch (error) {
          this.log.warn({ err: error, zone, seeder }, 'edge seeder did not take the warm request');
          return { zone, seeder, error: (error as Error).message };
        }
      });
    return Promise.all(asks);
  }
}
