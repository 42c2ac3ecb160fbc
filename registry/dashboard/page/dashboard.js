// The operators' dashboard: renders the registry's snapshots (server-sent events from
// ../api/v1/dashboard/events) into plain tables, bars and one SVG line chart. No framework, no build.

const SOURCES = ['peers', 'edge', 'center'];
const SVG = 'http://www.w3.org/2000/svg';

/** An element with attributes (`class`, `data-*`, ...) and children (nodes or text). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(value) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit++;
  }
  const shown = unit === 0 || Number.isInteger(amount) ? amount : amount.toFixed(amount < 10 ? 2 : 1);
  return `${shown} ${units[unit]}`;
}

function percent(fraction) {
  return `${Math.floor(fraction * 100)}%`;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : '';
}

/** A bar filled to `fraction` (0..1); widths are set through the DOM, the page allows no inline styles. */
function bar(fraction, wide = false) {
  const fill = el('span');
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return el('span', { class: wide ? 'bar wide' : 'bar', role: 'presentation' }, fill);
}

/** A bar split by source (peers, edge, center) in proportion to their bytes. */
function sourcesBar(bySource) {
  const total = SOURCES.reduce((sum, source) => sum + bySource[source], 0);
  const node = el('span', { class: 'bar sources', role: 'presentation' });
  for (const source of SOURCES) {
    const part = el('span', { class: source });
    part.style.width = `${total === 0 ? 0 : (bySource[source] / total) * 100}%`;
    node.append(part);
  }
  return node;
}

function sourcesText(bySource) {
  return SOURCES.map((source) => bytes(bySource[source])).join(' / ');
}

/** A bar of how much of a cache is used, with the figures beside it. */
function usageCell(used, capacity) {
  return cell([
    bar(capacity === 0 ? 0 : used / capacity),
    el('span', { class: 'bar-label' }, `${bytes(used)} of ${bytes(capacity)}`),
  ]);
}

/** Whether a tracker or seeder answered, and if not, why. */
function reachabilityCell(service) {
  return service.reachable
    ? cell('up', { class: 'state-reachable' })
    : cell(`unreachable: ${service.error}`, { class: 'state-unreachable' });
}

function cell(value, attributes = {}) {
  return el('td', attributes, value);
}

function numberCell(value) {
  return el('td', { class: 'number' }, value);
}

/** Fills a table's body with `rows`, or with one row saying `emptyText` across every column. */
function fillBody(table, rows, emptyText) {
  const columns = table.tHead.rows[0].cells.length;
  table.tBodies[0].replaceChildren(
    ...(rows.length > 0 ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: columns }, emptyText))]),
  );
}

function renderHosts(hosts) {
  document.getElementById('hosts-summary').textContent =
    `${hosts.total} hosts: ${hosts.online} online, ${hosts.offline} offline, in ${hosts.zones.length} zones`;
  fillBody(
    document.getElementById('zones'),
    hosts.zones.map((zone) =>
      el(
        'tr',
        { 'data-zone': zone.zone },
        cell(zone.zone),
        numberCell(zone.online),
        numberCell(zone.offline),
        usageCell(zone.cacheUsedBytes, zone.cacheCapacityBytes),
      ),
    ),
    'no hosts have registered',
  );
  fillBody(
    document.querySelector('#host-list table'),
    hosts.list.map((host) =>
      el(
        'tr',
        { 'data-host': host.hostId },
        cell(host.hostId),
        cell(host.zone),
        cell(host.state, { class: `state-${host.state}` }),
        cell(`${bytes(host.cacheUsedBytes)} of ${bytes(host.cacheCapacityBytes)}`),
        cell(time(host.lastHeartbeatAt)),
      ),
    ),
    'no hosts have registered',
  );
}

function renderJob(job) {
  const stragglers = new Set(job.stragglers);
  const done = job.progress.hostsByStatus.completed;
  const hostRows = job.hosts.map((host) =>
    el(
      'tr',
      { 'data-host': host.hostId, class: stragglers.has(host.hostId) ? 'straggler' : undefined },
      cell(host.hostId),
      cell(host.zone ?? ''),
      cell(host.status, { class: `status-${host.status} host-status` }),
      cell([
        bar(host.bytesTotal === 0 ? (host.status === 'completed' ? 1 : 0) : host.bytesDone / host.bytesTotal),
        el(
          'span',
          { class: 'bar-label host-progress' },
          host.bytesTotal === 0 ? '' : percent(host.bytesDone / host.bytesTotal),
        ),
      ]),
      cell(`${bytes(host.bytesDone)} of ${bytes(host.bytesTotal)}`),
      cell([
        sourcesBar(host.bytesBySource),
        el('span', { class: 'bar-label' }, sourcesText(host.bytesBySource)),
      ]),
      cell(host.error ?? ''),
    ),
  );
  return el(
    'article',
    { class: 'job', 'data-job': job.id, 'data-image': job.image },
    el(
      'h3',
      {},
      job.image,
      ' ',
      el('span', { class: `status-${job.status} job-status` }, job.status),
      ' ',
      el('button', { type: 'button', class: 'cancel-job', 'data-job': job.id }, 'cancel'),
    ),
    el(
      'p',
      { class: 'meta' },
      `job ${job.id}, started ${time(job.createdAt)}, ${job.layers.length} layers of ${bytes(
        job.layers.reduce((sum, layer) => sum + layer.size, 0),
      )}`,
      job.deadlineAt ? `, ends by ${time(job.deadlineAt)} (timeout)` : '',
    ),
    el(
      'p',
      {},
      bar(job.progress.fraction, true),
      el(
        'span',
        { class: 'bar-label job-progress' },
        `${percent(job.progress.fraction)}, ${done} of ${job.progress.hosts} hosts done`,
        job.progress.hostsByStatus.failed > 0 ? `, ${job.progress.hostsByStatus.failed} failed` : '',
      ),
    ),
    el(
      'p',
      {},
      sourcesBar(job.progress.bytesBySource),
      el('span', { class: 'bar-label' }, `peers / edge / center: ${sourcesText(job.progress.bytesBySource)}`),
    ),
    el(
      'table',
      { class: 'job-layers' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['layer', 'size', 'progress', 'hosts with it'].map((name) => el('th', {}, name)),
        ),
      ),
      el(
        'tbody',
        {},
        job.progress.layers.map((layer) =>
          el(
            'tr',
            { 'data-layer': layer.digest },
            cell(el('code', { title: layer.digest }, `${layer.digest.slice(0, 19)}…`)),
            numberCell(bytes(layer.size)),
            cell([
              bar(layer.fraction),
              el('span', { class: 'bar-label layer-progress' }, percent(layer.fraction)),
            ]),
            cell(`${layer.hostsCompleted} of ${job.progress.hosts}`, { class: 'layer-hosts' }),
          ),
        ),
      ),
    ),
    el(
      'table',
      { class: 'job-hosts' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['host', 'zone', 'status', 'progress', 'bytes', 'peers / edge / center', 'error'].map((name) =>
            el('th', {}, name),
          ),
        ),
      ),
      el('tbody', {}, hostRows),
    ),
  );
}

function renderJobs(jobs, ended) {
  const live = document.getElementById('live-jobs');
  live.replaceChildren(
    ...(jobs.length > 0 ? jobs.map(renderJob) : [el('p', { class: 'empty' }, 'no job is running')]),
  );
  fillBody(
    document.getElementById('ended-jobs'),
    ended.map((job) =>
      el(
        'tr',
        { 'data-job': job.id },
        cell(job.image),
        cell(job.status, { class: `status-${job.status}` }),
        cell(`${job.hostsByStatus.completed} of ${job.hosts} completed`),
        cell(sourcesText(job.bytesBySource)),
        cell(time(job.finishedAt)),
      ),
    ),
    'none yet',
  );
}

/** Bytes per second by source between consecutive samples of the running totals. */
function rates(samples) {
  const points = [];
  for (let index = 1; index < samples.length; index++) {
    const before = samples[index - 1];
    const after = samples[index];
    const seconds = (after.at - before.at) / 1000;
    if (seconds <= 0) continue;
    const point = { at: after.at };
    for (const source of SOURCES) point[source] = Math.max(0, (after[source] - before[source]) / seconds);
    points.push(point);
  }
  return points;
}

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten of B, KiB, MiB or GiB per second. */
function niceCeiling(value) {
  if (value <= 0) return 1024;
  let unit = 1;
  while (value / unit >= 1000 && unit < 1024 ** 3) unit *= 1024;
  const scaled = value / unit;
  const power = 10 ** Math.floor(Math.log10(scaled));
  for (const step of [1, 2, 5]) if (scaled <= step * power) return step * power * unit;
  return 10 * power * unit;
}

function renderChart(series) {
  const samples = series.samples;
  const last = samples[samples.length - 1] ?? { peers: 0, edge: 0, center: 0 };
  const total = SOURCES.reduce((sum, source) => sum + last[source], 0);
  const totals = document.getElementById('bytes-totals');
  totals.replaceChildren(
    el(
      'span',
      { class: 'legend' },
      SOURCES.map((source) =>
        el(
          'span',
          { class: 'legend-item', 'data-source': source },
          el('span', { class: `swatch ${source}` }),
          `${source}: ${bytes(last[source])}${total > 0 ? ` (${percent(last[source] / total)})` : ''}`,
        ),
      ),
    ),
    ` in all jobs; rates sampled every ${series.intervalSeconds} s`,
  );

  const width = 720;
  const height = 220;
  const left = 70;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const points = rates(samples);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': 'bytes per second by source over time',
  });
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const ceiling = niceCeiling(
    Math.max(0, ...points.flatMap((point) => SOURCES.map((source) => point[source]))),
  );
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotHeight * (1 - fraction);
    chart.append(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y, y2: y }));
    chart.append(
      svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end' }, `${bytes(ceiling * fraction)}/s`),
    );
  }
  chart.append(svg('line', { class: 'axis', x1: left, x2: left, y1: top, y2: top + plotHeight }));
  chart.append(
    svg('line', { class: 'axis', x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }),
  );
  if (points.length === 0) {
    chart.append(svg('text', { x: left + 10, y: top + plotHeight / 2 }, 'no samples yet'));
  } else {
    const first = samples[0].at;
    const span = Math.max(1, last.at - first);
    const x = (at) => left + ((at - first) / span) * plotWidth;
    const y = (rate) => top + plotHeight * (1 - rate / ceiling);
    chart.append(
      svg('text', { x: left, y: height - 6 }, time(new Date(first).toISOString())),
      svg(
        'text',
        { x: width - right, y: height - 6, 'text-anchor': 'end' },
        time(new Date(last.at).toISOString()),
      ),
    );
    for (const source of SOURCES) {
      chart.append(
        svg('polyline', {
          class: source,
          'data-source': source,
          points: points.map((point) => `${x(point.at).toFixed(1)},${y(point[source]).toFixed(1)}`).join(' '),
        }),
      );
    }
  }
  document.getElementById('bytes-chart').replaceChildren(chart);
}

function renderSwarms(swarms) {
  fillBody(
    document.getElementById('trackers'),
    swarms.trackers.map((tracker) =>
      el(
        'tr',
        {},
        cell(tracker.url),
        reachabilityCell(tracker),
        numberCell(tracker.swarms),
        numberCell(tracker.seeders),
        numberCell(tracker.leechers),
        numberCell(tracker.announcesPerSecond.toFixed(1)),
      ),
    ),
    'no tracker stats configured (ZEDGE_TRACKER_STATS)',
  );
  fillBody(
    document.getElementById('swarm-layers'),
    swarms.layers.map((swarm) =>
      el(
        'tr',
        { 'data-infohash': swarm.infoHash },
        cell(
          el(
            'code',
            { title: swarm.infoHash },
            swarm.digest ? `${swarm.digest.slice(0, 19)}…` : swarm.infoHash,
          ),
        ),
        numberCell(swarm.seeders),
        numberCell(swarm.leechers),
        numberCell(swarm.completed),
      ),
    ),
    'no swarms',
  );
  document.getElementById('swarms-more').textContent =
    swarms.totalLayers > swarms.layers.length
      ? `the ${swarms.layers.length} busiest of ${swarms.totalLayers} swarms`
      : '';
}

function renderSeeders(seeders) {
  fillBody(
    document.querySelector('#seeders table'),
    seeders.map((seeder) =>
      el(
        'tr',
        { 'data-zone': seeder.zone },
        cell(seeder.zone),
        cell(seeder.url),
        reachabilityCell(seeder),
        usageCell(seeder.usedBytes, seeder.capacityBytes),
        numberCell(seeder.layers),
        numberCell(seeder.fetching),
        cell(`${bytes(seeder.bytesServed.http)} / ${bytes(seeder.bytesServed.bittorrent)}`),
      ),
    ),
    'no edge seeders configured (ZEDGE_SEEDERS)',
  );
}

function render(snapshot) {
  renderHosts(snapshot.hosts);
  renderJobs(snapshot.jobs, snapshot.endedJobs);
  renderChart(snapshot.bytesBySource);
  renderSwarms(snapshot.swarms);
  renderSeeders(snapshot.seeders);
}

function connectionState(state, text) {
  const node = document.getElementById('connection');
  node.className = `connection ${state}`;
  node.textContent = text;
}

// Cancelling a job from its card (cards are drawn anew with every snapshot: one listener for all).
document.getElementById('live-jobs').addEventListener('click', async (event) => {
  const button = event.target.closest('button.cancel-job');
  if (!button) return;
  const image = button.closest('article.job').dataset.image;
  if (!window.confirm(`Cancel the deploy of ${image}? Its hosts stop downloading it.`)) return;
  button.disabled = true;
  const answer = await fetch(`../api/v1/distributions/${button.dataset.job}`, { method: 'DELETE' }).catch(
    (error) => ({ ok: false, status: 0, json: async () => ({ detail: error.message }) }),
  );
  if (!answer.ok) {
    const problem = await answer.json().catch(() => ({}));
    window.alert(`The deploy of ${image} was not cancelled: ${problem.detail ?? `HTTP ${answer.status}`}`);
    button.disabled = false;
  }
});

const events = new EventSource('../api/v1/dashboard/events');
events.addEventListener('snapshot', (message) => {
  const snapshot = JSON.parse(message.data);
  render(snapshot);
  connectionState('live', `live, updated ${time(snapshot.at)}`);
  document.body.dataset.updatedAt = snapshot.at;
});
events.addEventListener('failure', (message) => {
  connectionState('lost', `the registry could not gather the dashboard: ${JSON.parse(message.data).detail}`);
});
events.addEventListener('error', () => {
  // EventSource reconnects by itself (the server asks for 2 s).
  connectionState('lost', 'connection lost, reconnecting…');
});
