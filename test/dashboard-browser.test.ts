// The operators' dashboard in a real browser (headless Chromium through playwright-core) while a
// distribution job runs: a registry with its tracker and a zone's edge seeder, hosts that register
// and report progress through the REST API as agents would, and the page at /dashboard showing the
// hosts by zone, the job and each host's progress as it changes, the bytes by source, the swarms and
// the seeder's cache, all pushed live by server-sent events (the page is never reloaded).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import t from 'tap';
import { ADMIN } from './support/auth.ts';
import { provisionBackend } from './support/backends.ts';
import { launchChromium } from './support/browser.ts';
import { startCenterWithEdge } from './support/deployment.ts';
import { createDistribution, registerHost, reportProgress } from './support/fleet-api.ts';
import { pushImage } from './support/oci.ts';

const UPDATE_MS = 10_000;

/** Waits until `locator` has an element whose text matches `text`. */
async function shows(locator: Locator, text: RegExp | string): Promise<void> {
  await locator.filter({ hasText: text }).first().waitFor({ state: 'attached', timeout: UPDATE_MS });
}

/** Screenshots for a person to look at, when ZEDGE_SCREENSHOT_DIR names a folder. */
async function screenshot(page: Page, name: string): Promise<void> {
  const dir = process.env.ZEDGE_SCREENSHOT_DIR;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `dashboard-${name}.png`), fullPage: true });
}

t.test('the dashboard shows the fleet and a running job live', async (t) => {
  const resources = await provisionBackend(t, 'embedded');
  const { registry } = await startCenterWithEdge(t, resources, {
    zone: 'zone-a',
    registry: { ZEDGE_DASHBOARD_SAMPLE_SECONDS: '1' },
  });
  const image = await pushImage(registry, 'ops/desktop', 'v1', [400_000, 600_000]);
  await registerHost(registry.url, 'host-a1', 'zone-a');
  await registerHost(registry.url, 'host-a2', 'zone-a');
  await registerHost(registry.url, 'host-b1', 'zone-b');

  // Closed before the registry (teardowns run last first): a browser's open sockets would hold it.
  const browser = await launchChromium(t);
  // The operator signs in as the browser asks (the dashboard's Basic challenge).
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 },
    httpCredentials: { username: ADMIN.username, password: ADMIN.password },
  });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });

  const response = await page.goto(`${registry.url}/dashboard`);
  t.equal(response?.status(), 200);
  t.equal(new URL(page.url()).pathname, '/dashboard/', 'redirected to the page');
  t.equal(await page.title(), 'zedge-p2p dashboard');
  await shows(page.locator('#connection'), /^live, updated/);
  t.pass('the page is live');

  // Hosts by zone and state.
  await shows(page.locator('#hosts-summary'), '3 hosts: 3 online, 0 offline, in 2 zones');
  const zoneA = page.locator('#zones tr[data-zone="zone-a"] td');
  t.same(await zoneA.allTextContents().then((cells) => cells.slice(0, 3)), ['zone-a', '2', '0']);
  await page.locator('#host-list summary').click();
  t.same(
    await page.locator('#host-list tbody tr td:first-child').allTextContents(),
    ['host-a1', 'host-a2', 'host-b1'],
    'every host, by zone',
  );
  t.equal(await page.locator('#host-list tr[data-host="host-b1"] td.state-online').textContent(), 'online');
  await shows(page.locator('#live-jobs'), 'no job is running');

  // The seeder and the tracker are up.
  await shows(page.locator('#seeders tr[data-zone="zone-a"]'), 'up');
  await shows(page.locator('#trackers tbody tr'), 'up');

  // A job starts: it appears with its hosts, pending.
  const job = await createDistribution(registry.url, { image: 'ops/desktop:v1', zones: ['zone-a'] });
  const card = page.locator(`#live-jobs article[data-job="${job.id}"]`);
  await card.waitFor({ timeout: UPDATE_MS });
  t.match(await card.locator('h3').textContent(), /ops\/desktop:v1\s+pending/);
  t.same(await card.locator('.job-hosts tbody tr td:first-child').allTextContents(), ['host-a1', 'host-a2']);
  const hostRow = (hostId: string) => card.locator(`tr[data-host="${hostId}"]`);
  t.equal(await hostRow('host-a1').locator('.host-status').textContent(), 'pending');
  await screenshot(page, '1-pending');

  // Progress reports move the bars, without a reload.
  const total = job.layers.reduce((sum, layer) => sum + layer.size, 0);
  // host-a1 has the config blob, the first layer and part of the second.
  type Layer = (typeof job.layers)[number];
  const [config, first, layer] = job.layers as [Layer, Layer, Layer];
  const half = Math.ceil(total / 2) - config.size - first.size;
  t.ok(half > 0 && half < layer.size, 'half the image is the config, the first layer and part of the second');
  await reportProgress(registry.url, job.id, 'host-a1', {
    status: 'running',
    bytesDone: Math.ceil(total / 2),
    bytesBySource: { peers: Math.floor(total / 4), edge: Math.floor(total / 4) },
    layers: [
      { digest: config.digest, status: 'completed', bytesDone: config.size },
      { digest: first.digest, status: 'completed', bytesDone: first.size },
      { digest: layer.digest, status: 'running', bytesDone: half },
    ],
  });
  await shows(hostRow('host-a1').locator('.host-progress'), '50%');
  // Each layer's progress over both hosts.
  const layerRow = (digest: string) => card.locator(`.job-layers tr[data-layer="${digest}"]`);
  await shows(layerRow(config.digest).locator('.layer-hosts'), '1 of 2');
  t.equal(await layerRow(config.digest).locator('.layer-progress').textContent(), '50%');
  t.equal(await layerRow(layer.digest).locator('.layer-hosts').textContent(), '0 of 2');
  t.equal(await card.locator('.job-layers tbody tr').count(), job.layers.length, 'a row per layer');
  await shows(hostRow('host-a1').locator('.host-status'), 'running');
  await shows(card.locator('h3'), 'running');
  await shows(card.locator('.job-progress'), /^25%, 0 of 2 hosts done/);
  t.pass('host-a1 at 50%, the job at 25%');

  await reportProgress(registry.url, job.id, 'host-a1', {
    status: 'completed',
    bytesDone: total,
    bytesBySource: { peers: total - 1000, edge: 1000 },
  });
  await reportProgress(registry.url, job.id, 'host-a2', {
    status: 'running',
    bytesDone: Math.ceil(total / 4),
    bytesBySource: { edge: Math.floor(total / 8), center: Math.floor(total / 8) },
  });
  await shows(hostRow('host-a1').locator('.host-progress'), '100%');
  await shows(hostRow('host-a2').locator('.host-progress'), '25%');
  await shows(card.locator('.job-progress'), /^62%, 1 of 2 hosts done/);
  t.pass('host-a1 completed, host-a2 at 25%');
  // The chart draws a line per source once two samples were taken.
  const lines = page.locator('#bytes-chart polyline');
  await lines.nth(2).waitFor({ state: 'attached', timeout: UPDATE_MS });
  t.same(await lines.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-source'))), [
    'peers',
    'edge',
    'center',
  ]);
  for (const source of ['peers', 'edge', 'center'])
    t.match(await page.locator(`#bytes-chart polyline.${source}`).getAttribute('points'), /^[\d.]+,[\d.]+/);
  t.pass('the chart has a line for peers, edge and center');
  await screenshot(page, '2-running');

  await reportProgress(registry.url, job.id, 'host-a2', {
    status: 'completed',
    bytesDone: total,
    bytesBySource: { edge: total - 2000, center: 2000 },
  });
  const ended = page.locator(`#ended-jobs tr[data-job="${job.id}"]`);
  await ended.waitFor({ timeout: UPDATE_MS });
  t.same((await ended.locator('td').allTextContents()).slice(0, 3), [
    'ops/desktop:v1',
    'completed',
    '2 of 2 completed',
  ]);
  await shows(page.locator('#live-jobs'), 'no job is running');
  // The totals by source include both hosts' bytes.
  const legend = page.locator('#bytes-totals [data-source="center"]');
  await shows(legend, /^center: 1\.95 KiB/);

  // The edge seeder was asked to warm the job's layers; its cache and the swarms show them.
  await shows(
    page.locator('#seeders tr[data-zone="zone-a"] td.number').first(),
    String(image.layers.length + 1),
  );
  for (const layer of image.layers) {
    await shows(page.locator('#swarm-layers tbody tr'), `${layer.digest.slice(0, 19)}…`);
  }
  t.pass("the seeder's cache and the layers' swarms");
  await screenshot(page, '3-completed');

  // An operator cancels a job from its card (after saying yes to the browser's question).
  const timed = await createDistribution(registry.url, {
    image: 'ops/desktop:v1',
    hosts: ['host-b1'],
    timeoutSeconds: 3600,
  });
  const timedCard = page.locator(`#live-jobs article[data-job="${timed.id}"]`);
  await timedCard.waitFor({ timeout: UPDATE_MS });
  t.match(await timedCard.locator('.meta').textContent(), /ends by .* \(timeout\)$/, 'its deadline');
  const asked: string[] = [];
  page.once('dialog', (dialog) => {
    asked.push(dialog.message());
    void dialog.accept();
  });
  await timedCard.locator('button.cancel-job').click();
  const cancelledRow = page.locator(`#ended-jobs tr[data-job="${timed.id}"]`);
  await cancelledRow.waitFor({ timeout: UPDATE_MS });
  t.match(asked, [/Cancel the deploy of ops\/desktop:v1\?/], 'the browser asked first');
  t.equal(await cancelledRow.locator('td').nth(1).textContent(), 'cancelled');

  t.same(problems, [], 'no script errors, no refused resources');
  await browser.close();
});
