// A tracker's `GET /stats` (JSON), as the CLI's `status` and the registry's dashboard read it.

export interface SwarmStats {
  infoHash: string;
  /** The layer the swarm is for, when the tracker knows it. */
  digest: string | null;
  seeders: number;
  leechers: number;
  completed: number;
}

export interface TrackerStats {
  swarms: SwarmStats[];
  totals: { swarms: number; seeders: number; leechers: number; peers: number };
  announcesPerSecond: number;
}

/** Reads one tracker's stats; throws when it does not answer in time or answers other than 200. */
export async function fetchTrackerStats(statsUrl: string, timeoutMs = 5_000): Promise<TrackerStats> {
  const response = await fetch(statsUrl, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`answered ${response.status}`);
  }
  return (await response.json()) as TrackerStats;
}
