// A download's watchdog must not take the agent's own stalls (a busy host) for a silent source.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { Silence } from '../silence.ts';

// As the downloader's watchdog. The checks leave room for timers made late by a loaded machine.
const TICK_MS = 200;

function holdUpEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {}
}

t.test('silence grows while the process runs and nothing is heard', async (t) => {
  const silence = new Silence(TICK_MS);
  let silent = 0;
  for (let tick = 0; tick < 8; tick++) {
    await sleep(TICK_MS);
    silent = silence.tick();
  }
  t.ok(silent >= 4 * TICK_MS, `silent for ${silent} ms after 8 ticks`);
  silence.heard();
  await sleep(TICK_MS);
  t.ok(silence.tick() < 3 * TICK_MS, 'hearing the source starts it again');
});

t.test('time the process itself was held up is not silence', async (t) => {
  const silence = new Silence(TICK_MS);
  await sleep(TICK_MS);
  t.ok(silence.tick() < 3 * TICK_MS, 'nothing heard for one tick');
  holdUpEventLoop(1500);
  const silent = silence.tick();
  t.ok(silent < 3 * TICK_MS, `after a 1.5 s stall of the event loop: silent for ${silent} ms, not 1500`);
  // A real silence after the stall is still seen.
  for (let tick = 0; tick < 8; tick++) {
    await sleep(TICK_MS);
    silence.tick();
  }
  t.ok(silence.tick() >= 4 * TICK_MS, 'silence after the stall counts');
});
