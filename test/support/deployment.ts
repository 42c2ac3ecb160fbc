// A registry with its tracker and one zone's edge seeder, wired as in a deployment: the registry names
// the tracker in its torrents and asks the seeder to warm the deploys to its zone (ZEDGE_SEEDERS); the
// seeder reads from the registry. The registry's port is chosen first: the seeder must know it.
import {
  type BackendResources,
  freeUdpAndTcpPort,
  type RunningRegistry,
  type RunningTracker,
  startRegistryAndTracker,
  type Teardown,
} from './backends.ts';
import { type RunningSeeder, startSeeder } from './seeder.ts';

export async function startCenterWithEdge(
  t: Teardown,
  resources: BackendResources,
  options: {
    zone: string;
    registry?: Record<string, string>;
    tracker?: Record<string, string>;
    /** More `zone=url` pairs for ZEDGE_SEEDERS, after the edge's. */
    moreSeeders?: string;
  },
): Promise<{ registry: RunningRegistry; tracker: RunningTracker; seeder: RunningSeeder }> {
  const registryPort = await freeUdpAndTcpPort();
  const seeder = await startSeeder(t, {
    ZEDGE_REGISTRY_URL: `http://127.0.0.1:${registryPort}`,
    ZEDGE_SEEDER_ZONE: options.zone,
  });
  const { registry, tracker } = await startRegistryAndTracker(t, resources, {
    registry: {
      ZEDGE_REGISTRY_LISTEN: `127.0.0.1:${registryPort}`,
      ZEDGE_SEEDERS: [`${options.zone}=${seeder.url}`, options.moreSeeders].filter(Boolean).join(','),
      ...options.registry,
    },
    tracker: options.tracker,
  });
  return { registry, tracker, seeder };
}
