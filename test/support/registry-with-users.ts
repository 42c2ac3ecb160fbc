// A registry on one backend with two users, alice and bob, and an /api/v1 client for each of them and
// for the admin: where tests about who did what, and who may, begin.
import { apiAs, type Credentials, createUser } from './auth.ts';
import {
  type BackendName,
  provisionBackend,
  type RunningRegistry,
  startRegistry,
  type Teardown,
} from './backends.ts';

type ApiClient = ReturnType<typeof apiAs>;

export interface RegistryWithUsers {
  registry: RunningRegistry;
  url: string;
  alice: Credentials & { id: string };
  bob: Credentials & { id: string };
  asAdmin: ApiClient;
  asAlice: ApiClient;
  asBob: ApiClient;
}

/** Provisions `backend`, starts a registry on it (both gone at teardown) and creates alice and bob. */
export async function startRegistryWithUsers(t: Teardown, backend: BackendName): Promise<RegistryWithUsers> {
  const registry = await startRegistry(t, await provisionBackend(t, backend));
  const { url } = registry;
  const alice = await createUser(url, 'alice');
  const bob = await createUser(url, 'bob');
  return {
    registry,
    url,
    alice,
    bob,
    asAdmin: apiAs(url, registry.admin),
    asAlice: apiAs(url, alice),
    asBob: apiAs(url, bob),
  };
}
