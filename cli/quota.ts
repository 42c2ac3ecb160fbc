// `zedge-p2p quota recalc`: recomputes every image's size and every account's usage from the registry's
// rows (POST /api/v1/quotas/recalculate, admins only) and prints the accounts whose usage was wrong.
// `zedge-p2p quota show <user|org/name>`: one account's limits and usage.
import { registryApi } from './registry-api.ts';

interface Recalculated {
  principal_type: string;
  principal_name: string;
  before: { storage_bytes: number; image_count: number };
  after: { storage_bytes: number; image_count: number };
}

interface QuotaView {
  principal_type: string;
  principal_name: string;
  max_storage_bytes: number | null;
  max_image_count: number | null;
  max_image_size_bytes: number | null;
  current_storage_bytes: number;
  current_image_count: number;
}

export async function quotaRecalc(
  registry: string,
  print: (line: string) => void = console.log,
): Promise<void> {
  const { data } = await registryApi<{ data: Recalculated[] }>(registry, 'POST', '/quotas/recalculate');
  if (data.length === 0) {
    print('usage was right for every account');
    return;
  }
  print('ACCOUNT                          STORAGE BYTES (was -> is)          IMAGES (was -> is)');
  for (const row of data) {
    const account = `${row.principal_type} ${row.principal_name}`.padEnd(32);
    const storage = `${row.before.storage_bytes} -> ${row.after.storage_bytes}`.padEnd(34);
    print(`${account} ${storage} ${row.before.image_count} -> ${row.after.image_count}`);
  }
  print(`corrected ${data.length} account${data.length === 1 ? '' : 's'}`);
}

/** `user` (a user name) or `org/<name>` (an organization). */
export async function quotaShow(
  registry: string,
  account: string,
  print: (line: string) => void = console.log,
): Promise<void> {
  const path = account.startsWith('org/')
    ? `/organizations/${encodeURIComponent(account.slice(4))}/quota`
    : `/users/${encodeURIComponent(account)}/quota`;
  const quota = await registryApi<QuotaView>(registry, 'GET', path);
  const limit = (value: number | null) => (value === null ? 'unlimited' : String(value));
  print(`${quota.principal_type} ${quota.principal_name}`);
  print(`  storage bytes   ${quota.current_storage_bytes} of ${limit(quota.max_storage_bytes)}`);
  print(`  images          ${quota.current_image_count} of ${limit(quota.max_image_count)}`);
  print(`  image size max  ${limit(quota.max_image_size_bytes)}`);
}
