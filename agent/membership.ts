// This host in the registry's fleet: registered when the agent starts, a heartbeat every interval the
// registry asks for. Heartbeat answers carry the host's distribution jobs, which go to the
// prefetcher: the registry never connects to hosts, hosts ask. A registry that cannot be reached
// delays nothing; the agent keeps trying.
import { authorizationOf } from '../shared/center-client.ts';
import type { Logger } from '../shared/logger.ts';
import type { Assignment } from './prefetch.ts';

export interface MembershipOptions {
  centerUrl: string;
  /** The host's credential at the center (see authorizationOf). */
  credential: string | undefined;
  hostId: string;
  zone: string;
  address: string;
  cacheCapacityBytes: number;
  cacheUsedBytes: () => number;
  agentVersion: string;
  onJobs: (jobs: Assignment[]) => void;
  log: Logger;
}

interface Answer {
  heartbeatIntervalSeconds: number;
  jobs: Assignment[];
}

const REQUEST_TIMEOUT_MS = 5_000;

export class Membership {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private intervalMs = 10_000;
  private warned = false;
  private stopped = false;

  constructor(private readonly options: MembershipOptions) {}

  start(): void {
    void this.beat();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Sends a job's progress report; resolves to the job's status at the registry. */
  async report(jobId: string, report: unknown): Promise<string> {
    const answer = (await this.call(
      'PUT',
      `/api/v1/distributions/${jobId}/hosts/${encodeURIComponent(this.options.hostId)}`,
      report,
    )) as { status: string };
    return answer.status;
  }

  private async beat(): Promise<void> {
    try {
      const { hostId, zone, address, cacheCapacityBytes, agentVersion } = this.options;
      const cacheUsedBytes = this.options.cacheUsedBytes();
      let answer: Answer | undefined;
      if (this.registered) {
        answer = (await this.call('PUT', `/api/v1/hosts/${encodeURIComponent(hostId)}/heartbeat`, {
          cacheUsedBytes,
        }).catch((error: Error & { status?: number }) => {
          // The registry forgot this host (a new database): register again.
          if (error.status === 404) this.registered = false;
          else throw error;
        })) as Answer | undefined;
      }
      if (!this.registered) {
        answer = (await this.call('POST', '/api/v1/hosts', {
          hostId,
          zone,
          address,
          cacheCapacityBytes,
          cacheUsedBytes,
          agentVersion,
        })) as Answer;
        this.registered = true;
        this.options.log.info({ hostId, zone }, 'registered with the registry');
      }
      this.warned = false;
      this.intervalMs = answer!.heartbeatIntervalSeconds * 1000;
      if (answer!.jobs.length > 0) this.options.onJobs(answer!.jobs);
    } catch (error) {
      const log = this.options.log;
      (this.warned ? log.debug : log.warn).call(log, { err: error }, 'registry heartbeat failed');
      this.warned = true;
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.intervalMs).unref();
  }

  private async call(method: string, path: string, body: unknown): Promise<unknown> {
    const response = await fetch(`${this.options.centerUrl}${path}`, {
      method,
      headers: {
        'content-type': 'application/json',
        ...(this.options.credential ? { authorization: authorizationOf(this.options.credential) } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    if (!response.ok)
      throw Object.assign(new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`), {
        status: response.status,
      });
    return JSON.parse(text);
  }
}
