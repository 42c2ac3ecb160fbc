// The fleet and distribution REST API as a test drives it in place of agents: hosts register, jobs
// are created, progress is reported.
import { asAdmin } from './auth.ts';

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON answers, of many shapes
  body: any;
}

/** A call as the registry's admin (who may do what agents and the orchestrator do). */
export async function apiCall(url: string, method: string, body?: unknown): Promise<ApiAnswer> {
  const response = await asAdmin(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Registers a host with the registry at `registry` (its base URL), as its agent would at start. */
export async function registerHost(
  registry: string,
  hostId: string,
  zone: string,
  cacheCapacityBytes = 1 << 30,
): Promise<void> {
  const { status } = await apiCall(`${registry}/api/v1/hosts`, 'POST', {
    hostId,
    zone,
    address: `http://${hostId}.test:5001`,
    cacheCapacityBytes,
  });
  if (status !== 200) throw new Error(`register ${hostId}: ${status}`);
}

/** Starts a distribution job; resolves to the new job's view. */
export async function createDistribution(
  registry: string,
  request: Record<string, unknown>,
): Promise<{ id: string; layers: { digest: string; size: number }[] }> {
  const { status, body } = await apiCall(`${registry}/api/v1/distributions`, 'POST', request);
  if (status !== 201) throw new Error(`create distribution: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** Reports a host's progress in a job, as its agent would; resolves to the job's status. */
export async function reportProgress(
  registry: string,
  jobId: string,
  hostId: string,
  report: {
    status: string;
    bytesDone: number;
    bytesBySource?: Record<string, number>;
    layers?: { digest: string; status: string; bytesDone: number }[];
    error?: string;
  },
): Promise<string> {
  const { status, body } = await apiCall(
    `${registry}/api/v1/distributions/${jobId}/hosts/${hostId}`,
    'PUT',
    report,
  );
  if (status !== 200) throw new Error(`report ${hostId}: ${status} ${JSON.stringify(body)}`);
  return body.status;
}
