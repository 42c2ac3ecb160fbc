// Agents learn of their distribution jobs by a long poll (GET /api/v1/hosts/<id>/jobs?wait=) as well
// as by their heartbeat: a deploy starts on every host at once instead of up to a heartbeat interval
// late. A job created or cancelled on any registry sharing the state store (Redis) wakes the long
// polls of its hosts on all of them, and only those: each woken poll reads its host's jobs again, and
// a fleet of thousands would otherwise read them all for a job of a few hosts. The registry still
// never connects to hosts.
import type { StateStore } from '../shared/state.ts';

const CHANNEL = 'distribution-jobs';

export class JobNotices {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(private readonly state: StateStore) {
    // Subscribed from the start: a subscription made at a long poll's first wait could miss a notice.
    this.unsubscribe = state.subscribe(CHANNEL, (message) => this.wake(hostsOf(message)));
  }

  /** The registry is closing: waits end at once. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The live jobs of `hostIds` changed (a job of theirs was created or cancelled). */
  async changed(hostIds: readonly string[]): Promise<void> {
    if (hostIds.length > 0) await this.state.publish(CHANNEL, JSON.stringify(hostIds));
  }

  /**
   * A wait that ends at the next change of `hostId`'s jobs, after `ms`, or when the registry closes;
   * registered at once, so a change that comes while the caller reads the jobs still ends it. `cancel`
   * when done early.
   */
  wait(hostId: string, ms: number): { changed: Promise<void>; cancel: () => void } {
    let cancel = () => {};
    const changed = new Promise<void>((resolve) => {
      if (this.closed) return resolve();
      const ofHost = this.waiters.get(hostId) ?? new Set<() => void>();
      this.waiters.set(hostId, ofHost);
      const timer = setTimeout(() => cancel(), ms);
      cancel = () => {
        clearTimeout(timer);
        ofHost.delete(cancel);
        if (ofHost.size === 0 && this.waiters.get(hostId) === ofHost) this.waiters.delete(hostId);
        resolve();
      };
      ofHost.add(cancel);
    });
    return { changed, cancel: () => cancel() };
  }

  /** Ends every wait (the registry is closing) and stops listening. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    this.wake('all');
  }

  private wake(hostIds: readonly string[] | 'all'): void {
    const sets = hostIds === 'all' ? [...this.waiters.values()] : hostIds.map((id) => this.waiters.get(id));
    for (const ofHost of sets) for (const end of [...(ofHost ?? [])]) end();
  }
}

/** The hosts a notice names; a notice that names none readably (another version's) wakes every poll. */
function hostsOf(message: string): readonly string[] | 'all' {
  try {
    const hosts: unknown = JSON.parse(message);
    if (Array.isArray(hosts) && hosts.every((id) => typeof id === 'string')) return hosts;
  } catch {}
  return 'all';
}
