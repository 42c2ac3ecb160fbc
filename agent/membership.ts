// This host in the registry's fleet: registered when the agent starts, a heartbeat every interval the
// registry asks for. The host's distribution jobs come by a long poll (answered as soon as a job for
// it is created or cancelled) and with every heartbeat answer, and go to the prefetcher: the registry
// never connects to hosts, hosts ask. A registry that cannot be reached delays nothing; the agent
// keeps trying.
import { setTimeout as delay } from 'node:timers/promises';
import { authorizationOf } from '../shared/center-client.ts';
import { MAX_KNOWN_JOBS } from '../shared/job-long-poll.ts';
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
/** How long the registry holds a long poll for jobs open (it answers sooner when they change). */
const LONG_POLL_SECONDS = 25;
/** Long polls start at most this often (a registry answering at once cannot make the agent spin). */
const LONG_POLL_MIN_INTERVAL_MS = 1_000;
/** The pause after a failed long poll grows to this (an older registry without the route: 404). */
const LONG_POLL_MAX_BACKOFF_MS = 30_000;

export class Membership {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private intervalMs = 10_000;
  private warned = false;
  private stopped = false;
  private polling = false;
  // The ids of the host's live jobs in the registry's last answer: the long poll waits for others.
  private knownJobs: string[] = [];
  // Ends the pause between long polls.
  private readonly stopping = new AbortController();

  constructor(private readonly options: MembershipOptions) {}

  start(): void {
    void this.beat();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopping.abort();
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
      this.takeJobs(answer!.jobs);
      void this.poll();
    } catch (error) {
      const log = this.options.log;
      (this.warned ? log.debug : log.warn).call(log, { err: error }, 'registry heartbeat failed');
      this.warned = true;
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.intervalMs).unref();
  }

  /** Asks for the host's jobs until the agent stops; one loop however often it is called. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    let failures = 0;
    while (!this.stopped) {
      const started = Date.now();
      let pause = LONG_POLL_MIN_INTERVAL_MS;
      try {
        const known = this.knownJobs.length > 0 ? `&known=${this.knownJobs.join(',')}` : '';
        const answer = (await this.call(
          'GET',
          `/api/v1/hosts/${encodeURIComponent(this.options.hostId)}/jobs?wait=${LONG_POLL_SECONDS}${known}`,
          undefined,
          LONG_POLL_SECONDS * 1000 + REQUEST_TIMEOUT_MS,
        )) as { jobs: Assignment[] };
        // Not aborted by stop(): a registry keeps a connection whose request was cut open until its
        // keep-alive timeout, and so takes that long to close; an answer after stop() is dropped.
        if (this.stopped) break;
        failures = 0;
        this.takeJobs(answer.jobs);
      } catch (error) {
        if (this.stopped) break;
        failures++;
        pause = Math.min(LONG_POLL_MAX_BACKOFF_MS, LONG_POLL_MIN_INTERVAL_MS * 2 ** failures);
        this.options.log.debug({ err: error }, 'long poll for jobs failed');
      }
      const rest = pause - (Date.now() - started);
      if (rest > 0 && !this.stopped)
        await delay(rest, undefined, { signal: this.stopping.signal }).catch(() => {});
    }
    this.polling = false;
  }

  private takeJobs(jobs: Assignment[]): void {
    // A host with more than the registry takes hears of the rest by the heartbeat.
    this.knownJobs = jobs.slice(0, MAX_KNOWN_JOBS).map((job) => job.id);
    // An empty list too: a job running here that the registry no longer lists may have been cancelled.
    this.options.onJobs(jobs);
  }

  private async call(
    method: string,
    path: string,
    body: unknown,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<unknown> {
    const response = await fetch(`${this.options.centerUrl}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(this.options.credential ? { authorization: authorizationOf(this.options.credential) } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (!response.ok)
      throw Object.assign(new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`), {
        status: response.status,
      });
    return JSON.parse(text);
  }
}
