// A small data centre on one machine for benchmarks: each host a network namespace with a veth pair
// to one bridge, its link shaped with tc in both directions (the namespace's side shapes what it
// sends, the bridge's side what it receives). The benchmark process stays in the root namespace and
// reaches every host through the bridge's own address. Everything made is named with the run's
// prefix and removed by `destroy`, on exit and on SIGINT/SIGTERM; `sweepStale` removes what an
// interrupted run (SIGKILL) left.
import { execFile, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'zb';

export interface NetHost {
  name: string;
  /** The namespace's name (for `ip netns exec`). */
  namespace: string;
  ip: string;
  /** The bridge-side end of the veth pair, in the root namespace: its counters see the host's traffic. */
  rootSide: string;
  mbit: number;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

export class Lab {
  readonly hosts: NetHost[] = [];
  private readonly bridge: string;
  private destroyed = false;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    void this.destroy().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };

  private constructor(
    private readonly id: string,
    /** The first two octets of the lab's /16. */
    private readonly net: string,
  ) {
    this.bridge = `${PREFIX}${id}br`;
  }

  /** A bridge with an address of its own (10.x.0.1/16) for the benchmark process. */
  static async create(): Promise<Lab> {
    const id = Math.random().toString(16).slice(2, 6);
    const lab = new Lab(id, `10.${200 + Math.floor(Math.random() * 50)}`);
    process.once('SIGINT', lab.onSignal);
    process.once('SIGTERM', lab.onSignal);
    process.once('exit', () => lab.destroySync());
    await ip('link', 'add', lab.bridge, 'type', 'bridge');
    await ip('addr', 'add', `${lab.net}.0.1/16`, 'dev', lab.bridge);
    await ip('link', 'set', lab.bridge, 'up');
    return lab;
  }

  /** Namespaces and bridges of earlier runs that did not get to clean up. */
  static async sweepStale(): Promise<void> {
    const { stdout } = await run('ip', ['netns', 'list']);
    for (const line of stdout.split('\n')) {
      const name = line.split(' ')[0];
      if (name?.startsWith(`${PREFIX}-`)) await ip('netns', 'del', name).catch(() => {});
    }
    const links = await run('ip', ['-o', 'link', 'show', 'type', 'bridge']);
    for (const match of links.stdout.matchAll(new RegExp(`\\d+: (${PREFIX}[0-9a-f]{4}br)`, 'g')))
      await ip('link', 'del', match[1]!).catch(() => {});
  }

  /** A host `name` at 10.x.<subnet>.<index>, its link shaped to `mbit` (0: unshaped). */
  async addHost(name: string, subnet: number, index: number, mbit: number): Promise<NetHost> {
    const namespace = `${PREFIX}-${this.id}-${name}`;
    const rootSide = `${PREFIX}${this.id}${this.hosts.length}`;
    const inner = `${rootSide}n`;
    const address = `${this.net}.${subnet}.${index}`;
    await ip('netns', 'add', namespace);
    const host: NetHost = { name, namespace, ip: address, rootSide, mbit };
    this.hosts.push(host);
    await ip('link', 'add', rootSide, 'type', 'veth', 'peer', 'name', inner);
    await ip('link', 'set', inner, 'netns', namespace);
    await ip('link', 'set', rootSide, 'master', this.bridge, 'up');
    const inside = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
    await inside('link', 'set', 'lo', 'up');
    await inside('link', 'set', inner, 'name', 'eth0');
    await inside('addr', 'add', `${address}/16`, 'dev', 'eth0');
    await inside('link', 'set', 'eth0', 'up');
    if (mbit > 0) {
      await shape([], rootSide, mbit);
      await shape(['netns', 'exec', namespace], 'eth0', mbit);
    }
    return host;
  }

  /** The command line to run `command` inside a host's namespace. */
  exec(host: NetHost, command: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', host.namespace, command, ...args]];
  }

  /** Bytes a host sent and received so far (its veth's counters, seen from the bridge). */
  async counters(host: NetHost): Promise<{ sent: number; received: number }> {
    const read = async (counter: string) =>
      Number(await readFile(`/sys/class/net/${host.rootSide}/statistics/${counter}`, 'utf8'));
    // The bridge side receives what the host sends.
    return { sent: await read('rx_bytes'), received: await read('tx_bytes') };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const host of this.hosts) await ip('netns', 'del', host.namespace).catch(() => {});
    await ip('link', 'del', this.bridge).catch(() => {});
  }

  /** The same, synchronously, for the exit handler (no event loop left). */
  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const host of this.hosts)
      try {
        execFileSync('ip', ['netns', 'del', host.namespace]);
      } catch {}
    try {
      execFileSync('ip', ['link', 'del', this.bridge]);
    } catch {}
  }
}

/** A token bucket at `mbit` on a device's egress; a burst of a few milliseconds' worth. */
async function shape(prefix: string[], device: string, mbit: number): Promise<void> {
  const burstBytes = Math.max(32 * 1024, Math.round((mbit * 1e6) / 8 / 250));
  const tc = [
    'qdisc',
    'add',
    'dev',
    device,
    'root',
    'tbf',
    'rate',
    `${mbit}mbit`,
    'burst',
    String(burstBytes),
    'latency',
    '50ms',
  ];
  if (prefix.length) await run('ip', [...prefix, 'tc', ...tc]);
  else await run('tc', tc);
}
