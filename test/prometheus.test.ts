// The example Prometheus setup in deploy/prometheus: promtool accepts the scrape config and the alert
// rules, its unit tests of the rules (alerts.test.yml) pass, and every zedge metric the rules use is
// one the services really expose.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startAgent } from './support/agent.ts';
import { asAdmin } from './support/auth.ts';
import { provisionBackend, startRegistryAndTracker } from './support/backends.ts';
import { startSeeder } from './support/seeder.ts';

// Seeders serve layers and warm only for callers the center lets read them: requests here come from its admin.
const fetch = asAdmin;

const run = promisify(execFile);
const dir = resolve(import.meta.dirname, '../deploy/prometheus');

t.test('promtool accepts the scrape config and the alert rules', async (t) => {
  const config = await run('promtool', ['check', 'config', '--syntax-only', join(dir, 'prometheus.yml')]);
  t.match(config.stdout, /SUCCESS/);
  const rules = await run('promtool', ['check', 'rules', join(dir, 'alerts.yml')]);
  t.match(rules.stdout, /SUCCESS: \d+ rules found/);
});

t.test("the alert rules fire when they should: promtool's unit tests of them", async (t) => {
  // Run from the directory: alerts.test.yml names alerts.yml relative to itself.
  const tests = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir });
  t.match(tests.stdout, /SUCCESS/);
});

t.test('the alert rules use metrics the services expose', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry, tracker } = await startRegistryAndTracker(t, resources);
  const seeder = await startSeeder(t, { ZEDGE_REGISTRY_URL: registry.url });
  const agent = await startAgent(t, { ZEDGE_REGISTRY_URL: registry.url });
  let exposed = '';
  for (const base of [registry.url, tracker.url, seeder.url, agent.url])
    exposed += await (await fetch(`${base}/metrics`)).text();
  const used = new Set((await readFile(join(dir, 'alerts.yml'), 'utf8')).match(/zedge_[a-z_]+/g));
  t.ok(used.size >= 4, `the rules use ${used.size} zedge metrics`);
  for (const name of used) t.match(exposed, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
  await seeder.close();
});
