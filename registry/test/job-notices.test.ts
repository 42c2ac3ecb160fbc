// A job created or cancelled wakes the long polls of its own hosts, on every registry sharing the state
// store, and no others: each woken poll reads its host's jobs again. Real state stores: in process, and
// two registries' Redis connections.
import t from 'tap';
import { openStateStore, type StateStore } from '../../shared/state.ts';
import { BACKENDS, provisionBackend } from '../../test/support/backends.ts';
import { JobNotices } from '../job-notices.ts';

/** A wait whose end can be seen without awaiting it. */
function watch(notices: JobNotices, hostId: string) {
  // Longer than the test may take: only a notice (or the close) ends it.
  const wait = notices.wait(hostId, 120_000);
  const watched = { ended: false, ...wait };
  void wait.changed.then(() => (watched.ended = true));
  return watched;
}

for (const backend of BACKENDS) {
  t.test(`${backend}: a notice wakes the polls of the hosts it names`, async (t) => {
    const resources = await provisionBackend(t, backend);
    const open = (): StateStore =>
      openStateStore({ redisUrl: resources.env.REDIS_URL, prefix: resources.env.ZEDGE_REDIS_PREFIX });
    const stores = backend === 'production' ? [open(), open()] : [open()];
    t.teardown(() => Promise.all(stores.map((store) => store.close())));
    const here = new JobNotices(stores[0]!);
    const there = new JobNotices(stores.at(-1)!);
    t.teardown(() => {
      here.close();
      there.close();
    });

    // Redis subscriptions are made in the background: a registry is up long before its first notice.
    for (let probe = watch(there, 'probe'); !probe.ended; ) {
      await here.changed(['probe']);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const other = watch(there, 'h1');
    const targetThere = watch(there, 'h2');
    const targetHere = watch(here, 'h2');
    const again = watch(there, 'h2');
    await here.changed(['h2', 'h3']);
    await targetThere.changed;
    await targetHere.changed;
    await again.changed;
    // The notice reached the other registry and woke h2's polls there; the same notice left h1's.
    t.notOk(other.ended, "a job of other hosts does not wake a host's poll");

    // A notice that names no hosts (a registry of an earlier version) wakes every poll.
    await stores[0]!.publish('distribution-jobs');
    await other.changed;
    t.pass('an unreadable notice woke every poll');

    const late = watch(there, 'h4');
    there.close();
    await late.changed;
    await there.wait('h5', 120_000).changed;
    t.pass('a closing registry ends its waits, and later ones at once');
  });
}
