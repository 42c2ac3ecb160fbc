// The swarm benchmark's chart: per mode, the fraction of hosts done against seconds since the start
// (a completion-time CDF, as steps), with the physical limit S/B and the goal as vertical lines.
// Plain SVG: a chart library would be most of the benchmark's dependencies for two polylines.

export interface Series {
  label: string;
  color: string;
  /** Seconds at which each host finished. */
  seconds: number[];
}

export interface Marker {
  label: string;
  seconds: number;
  dashed?: boolean;
}

const WIDTH = 760;
const HEIGHT = 420;
const MARGIN = { left: 60, right: 20, top: 30, bottom: 50 };

export function cdfChart(title: string, series: Series[], markers: Marker[]): string {
  const longest = Math.max(1, ...series.flatMap((entry) => entry.seconds), ...markers.map((m) => m.seconds));
  const xMax = niceCeiling(longest * 1.05);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (seconds: number) => MARGIN.left + (seconds / xMax) * plotWidth;
  const y = (fraction: number) => MARGIN.top + (1 - fraction) * plotHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">${xmlText(title)}</text>`,
  ];
  for (let tick = 0; tick <= 5; tick++) {
    const seconds = (xMax * tick) / 5;
    const fraction = tick / 5;
    parts.push(
      `<line x1="${x(seconds)}" y1="${y(0)}" x2="${x(seconds)}" y2="${y(1)}" stroke="#eee"/>`,
      `<text x="${x(seconds)}" y="${y(0) + 16}" text-anchor="middle">${round(seconds)}</text>`,
      `<line x1="${x(0)}" y1="${y(fraction)}" x2="${x(xMax)}" y2="${y(fraction)}" stroke="#eee"/>`,
      `<text x="${x(0) - 6}" y="${y(fraction) + 4}" text-anchor="end">${Math.round(fraction * 100)}%</text>`,
    );
  }
  parts.push(
    `<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 12}" text-anchor="middle">seconds since the deploy started</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">hosts done</text>`,
    `<rect x="${x(0)}" y="${y(1)}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
  );
  for (const marker of markers) {
    parts.push(
      `<line x1="${x(marker.seconds)}" y1="${y(0)}" x2="${x(marker.seconds)}" y2="${y(1)}" stroke="#555"${marker.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      `<text x="${x(marker.seconds) + 4}" y="${y(1) + 14}" fill="#555">${xmlText(marker.label)}</text>`,
    );
  }
  for (const [index, entry] of series.entries()) {
    const sorted = [...entry.seconds].sort((a, b) => a - b);
    const points = [`${x(0)},${y(0)}`];
    for (const [rank, seconds] of sorted.entries()) {
      points.push(
        `${x(seconds)},${y(rank / sorted.length)}`,
        `${x(seconds)},${y((rank + 1) / sorted.length)}`,
      );
    }
    parts.push(
      `<polyline points="${points.join(' ')}" fill="none" stroke="${entry.color}" stroke-width="2"/>`,
      // The legend sits bottom right, clear of the markers' labels at the top.
      `<rect x="${x(xMax) - 190}" y="${y(0) - 48 + index * 18}" width="12" height="12" fill="${entry.color}"/>`,
      `<text x="${x(xMax) - 172}" y="${y(0) - 38 + index * 18}">${xmlText(entry.label)}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function niceCeiling(value: number): number {
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
