// Agents learn of their distribution jobs by a long poll (GET /api/v1/hosts/<id>/jobs?wait=) as well
// as by their heartbeat: a deploy starts on every host at once instead of up to a heartbeat interval
// late. A job created or cancelled on any registry sharing the state store (Redis) wakes the long
// polls waiting on all of them; the registry still never connects to hosts.
import type { StateStore } from '../shared/state.ts';

const CHANNEL = 'distribution-jobs';

export class JobNotices {
  private readonly waiters = new Set<() => void>();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(private readonly state: StateStore) {
    // Subscribed from the start: a subscription made at a long poll's first wait could miss a notice.
    this.unsubscribe = state.subscribe(CHANNEL, () => this.wakeAll());
  }

  /** The registry is closing: waits end at once. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Some host's set of live jobs changed (a job was created or cancelled). */
  async changed(): Promise<void> {
    await this.state.publish(CHANNEL);
  }

  /**
   * A wait that ends at the next change, after `ms`, or when the registry closes; registered at once,
   * so a change that comes while the caller reads the jobs still ends it. `cancel` when done early.
   */
  wait(ms: number): { changed: Promise<void>; cancel: () => void } {
    let cancel = () => {};
    const changed = new Promise<void>((resolve) => {
      if (this.closed) return resolve();
      const timer = setTimeout(() => cancel(), ms);
      cancel = () => {
        clearTimeout(timer);
        this.waiters.delete(cancel);
        resolve();
      };
      this.waiters.add(cancel);
    });
    return { changed, cancel: () => cancel() };
  }

  /** Ends every wait (the registry is closing) and stops listening. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const end of [...this.waiters]) end();
  }
}
