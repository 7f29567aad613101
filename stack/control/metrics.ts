/**
 * Prometheus metrics of a stack (text exposition format 0.0.4, through prom-client) and the HTTP
 * endpoint that serves them on the host's own network (node:http on the kernel's TCP, never the
 * stack's): `GET /metrics`.
 *
 * Nothing is counted twice and nothing on the packet path: a scrape reads one snapshot of
 * `show counters`, `show limits` and `show vips` (a stack of shards merges its shards' answers, as
 * `xdpstack show` does) and every metric's collect() reads its values from that snapshot, so the
 * exposition equals `show counters` taken at the same moment.
 *
 * Names follow the Prometheus conventions: `xdpstack_` prefix, the level in the name (device_,
 * vs_, link_), units in the name, `_total` for counters; labels `device`, `vs`, `link`, `reason`,
 * `scope`, `limit`, `state`, `shard`. The process's own metrics (process_*, nodejs_*) come from
 * prom-client's default collectors.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { LimitRow } from '../limits';
import { parseListen } from './validate';

type Row = Record<string, unknown>;

/** What one scrape reads: `show counters`, `show limits` and `show vips` of the whole stack. */
export interface MetricsSnapshot {
  counters: { devices: Row[]; vs: Row[]; links: Row[]; pool?: Row[]; shards?: Row[] };
  limits: LimitRow[];
  /** The virtual servers with VIPs or load balancers (`show vips`). */
  vips?: Row[];
}

type Put = (labels: Record<string, string>, value: number) => void;

interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: readonly string[];
  fill(s: MetricsSnapshot, put: Put): void;
  /** Exposed only once a snapshot has it (a figure older stacks' rows may lack). */
  present?(s: MetricsSnapshot): boolean;
}

/**
 * TCP counters per virtual server (`show counters`: each VS row's `tcp` object, Linux's MIB names):
 * field, and what it counts. The metric is xdpstack_tcp_<field in snake case>_total{vs}; it is
 * exposed once a stack's rows have the field. Adding a counter is one line here.
 */
export const TCP_COUNTERS: readonly (readonly [field: string, help: string])[] = [
  ['activeOpens', 'Connections opened by connect() (Tcp ActiveOpens)'],
  ['passiveOpens', 'Connections opened from a listener (Tcp PassiveOpens)'],
  ['attemptFails', 'Connection attempts that failed (Tcp AttemptFails)'],
  ['estabResets', 'Established connections reset (Tcp EstabResets)'],
  ['outRsts', 'Segments sent with RST (Tcp OutRsts)'],
  ['inRsts', 'RSTs received that ended a connection'],
  ['retransSegs', 'Segments retransmitted (Tcp RetransSegs)'],
  ['timeouts', 'Retransmission timeouts (TcpExt TCPTimeouts)'],
  ['syncookiesSent', 'SYN cookies sent (TcpExt SyncookiesSent)'],
  ['syncookiesRecv', 'Valid SYN cookies received (TcpExt SyncookiesRecv)'],
  ['syncookiesFailed', 'SYN cookies that failed validation (TcpExt SyncookiesFailed)'],
  ['ofoQueue', 'Out-of-order segments queued (TcpExt TCPOFOQueue)'],
];

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A count of `show` data as a number (absent or not a finite number: null). */
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Drops by reason, from the `{ total, reasons }` of `show counters`. */
export function dropEntries(d: unknown): [string, number][] {
  // Drops have one shape in every view (stack/counters.ts dropsView): { total, reasons: { reason: n } }.
  const reasons = typeof d === 'object' && d !== null ? (d as { reasons?: unknown }).reasons : undefined;
  if (typeof reasons !== 'object' || reasons === null) return [];
  return Object.entries(reasons as Row).flatMap(([k, v]) => (num(v) !== null ? [[k, v as number] as [string, number]] : []));
}

const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
/** The shard label of a row of a stack of shards (none for a single stack). */
const shardOf = (r: Row): Record<string, string> => (r.shard !== undefined ? { shard: str(r.shard) } : {});

/** rx/tx packet and byte counters of one level (device, vs, link). */
function trafficDefs(level: string, what: string, rows: (s: MetricsSnapshot) => Row[], labels: (r: Row) => Record<string, string>, labelNames: string[]): MetricDef[] {
  const one = (field: string, metric: string, help: string): MetricDef => ({
    name: `xdpstack_${level}_${metric}_total`, help: `${help} ${what}`, type: 'counter', labels: labelNames,
    fill: (s, put) => { for (const r of rows(s)) { const v = num(r[field]); if (v !== null) put(labels(r), v); } },
  });
  return [
    one('rxPackets', 'rx_packets', 'Frames received by'),
    one('rxBytes', 'rx_bytes', 'Bytes received by'),
    one('txPackets', 'tx_packets', 'Frames sent by'),
    one('txBytes', 'tx_bytes', 'Bytes sent by'),
  ];
}

function dropDef(name: string, help: string, rows: (s: MetricsSnapshot) => Row[], field: string, labels: (r: Row) => Record<string, string>, labelNames: string[]): MetricDef {
  return {
    name, help, type: 'counter', labels: [...labelNames, 'reason'],
    fill: (s, put) => { for (const r of rows(s)) for (const [reason, n] of dropEntries(r[field])) put({ ...labels(r), reason }, n); },
  };
}

const devLabels = (r: Row) => ({ device: str(r.device) });
const vsLabels = (r: Row) => ({ vs: str(r.vs) });
const linkLabels = (r: Row) => ({ vs: str(r.vs), link: str(r.link) });
/** A limit row's labels; stack-wide limits have no `vs`. */
const limitLabels = (r: LimitRow): Record<string, string> => (r.vs !== null ? { vs: r.vs, scope: r.scope, limit: r.limit } : { scope: r.scope, limit: r.limit });
const POOL_STATES = ['free', 'kernel', 'tx', 'held'] as const;

/** Every metric of a stack (besides the process's own). */
export function metricDefs(stackName: string): MetricDef[] {
  const devices = (s: MetricsSnapshot) => s.counters.devices;
  const vss = (s: MetricsSnapshot) => s.counters.vs;
  const links = (s: MetricsSnapshot) => s.counters.links;
  const pool = (s: MetricsSnapshot) => s.counters.pool ?? [];
  const shards = (s: MetricsSnapshot) => s.counters.shards ?? [];
  const vipRows = (s: MetricsSnapshot) => s.vips ?? [];
  const tcp = (r: Row, f: string): number | null => num(r[f]) ?? num((r.tcp as Row | undefined)?.[f]);
  return [
    { name: 'xdpstack_info', help: 'The stack (value 1), by name', type: 'gauge', labels: ['name'], fill: (_, put) => put({ name: stackName }, 1) },
    ...trafficDefs('device', 'the device (every VLAN and virtual server on it)', devices, devLabels, ['device']),
    dropDef('xdpstack_device_drops_total', 'Frames the stack dropped on the device before a link took them, by reason', devices, 'drops', devLabels, ['device']),
    dropDef('xdpstack_driver_drops_total', 'Frames the driver could not take or lost, by reason', devices, 'driverDrops', devLabels, ['device']),
    {
      name: 'xdpstack_device_up', help: 'Whether the device is there and up (1) or lost (0)', type: 'gauge', labels: ['device'],
      fill: (s, put) => { for (const r of devices(s)) put(devLabels(r), r.state === 'lost' ? 0 : 1); },
    },
    {
      name: 'xdpstack_device_losses_total', help: 'Times the device was lost (disappeared, went down or was replaced)', type: 'counter', labels: ['device'],
      fill: (s, put) => { for (const r of devices(s)) { const v = num(r.losses); if (v !== null) put(devLabels(r), v); } },
    },
    ...trafficDefs('vs', 'the virtual server', vss, vsLabels, ['vs']),
    dropDef('xdpstack_vs_drops_total', 'Packets the virtual server dropped, by reason', vss, 'drops', vsLabels, ['vs']),
    // Direct server return (`show vips`): the refusals are drop reasons of xdpstack_vs_drops_total
    // (decap-source-refused, decap-not-vip, ...).
    {
      name: 'xdpstack_vs_decap_packets_total', help: 'Encapsulated packets from a load balancer decapsulated to a VIP of the virtual server', type: 'counter', labels: ['vs'],
      fill: (s, put) => { for (const r of vipRows(s)) { const v = num(r.decapsulated); if (v !== null) put(vsLabels(r), v); } },
    },
    {
      name: 'xdpstack_vs_vips', help: 'VIPs of the virtual server (addresses served behind a load balancer)', type: 'gauge', labels: ['vs'],
      fill: (s, put) => { for (const r of vipRows(s)) if (Array.isArray(r.vips)) put(vsLabels(r), r.vips.length); },
    },
    ...trafficDefs('link', 'the link (a virtual server on a device and VLAN)', links, linkLabels, ['vs', 'link']),
    dropDef('xdpstack_link_drops_total', 'Packets dropped on the link, by reason', links, 'drops', linkLabels, ['vs', 'link']),
    ...TCP_COUNTERS.map(([field, help]): MetricDef => ({
      name: `xdpstack_tcp_${snake(field)}_total`, help: `${help}, per virtual server`, type: 'counter', labels: ['vs'],
      fill: (s, put) => { for (const r of vss(s)) { const v = tcp(r, field); if (v !== null) put(vsLabels(r), v); } },
      present: (s) => vss(s).some((r) => tcp(r, field) !== null),
    })),
    {
      name: 'xdpstack_tcp_curr_estab', help: 'TCP connections now ESTABLISHED or CLOSE-WAIT (Tcp CurrEstab), per virtual server', type: 'gauge', labels: ['vs'],
      fill: (s, put) => { for (const r of vss(s)) { const v = tcp(r, 'currEstab'); if (v !== null) put(vsLabels(r), v); } },
      present: (s) => vss(s).some((r) => tcp(r, 'currEstab') !== null),
    },
    {
      name: 'xdpstack_tcp_connections', help: 'TCP connections of the virtual server (TIME_WAIT not included)', type: 'gauge', labels: ['vs'],
      fill: (s, put) => { for (const r of s.limits) if (r.scope === 'vs' && r.limit === 'tcpConnections' && r.vs !== null) put({ vs: r.vs }, r.used); },
    },
    {
      name: 'xdpstack_neighbor_entries', help: 'Neighbor (ARP and NDP) entries of the link', type: 'gauge', labels: ['vs', 'link'],
      fill: (s, put) => { for (const r of s.limits) if (r.limit === 'neighbors' && r.vs !== null && r.scope.startsWith('link ')) put({ vs: r.vs, link: r.scope.slice(5) }, r.used); },
    },
    {
      name: 'xdpstack_limit_used', help: 'Use of a limit (config `limits`; unit as the limit: entries or bytes)', type: 'gauge', labels: ['vs', 'scope', 'limit'],
      fill: (s, put) => { for (const r of s.limits) put(limitLabels(r), r.used); },
    },
    {
      name: 'xdpstack_limit_max', help: 'The value of a limit', type: 'gauge', labels: ['vs', 'scope', 'limit'],
      fill: (s, put) => { for (const r of s.limits) put(limitLabels(r), r.max); },
    },
    {
      name: 'xdpstack_limit_reached_total', help: 'Times a limit was reached (a SYN refused, a SYN cookie sent, a frame dropped...)', type: 'counter', labels: ['vs', 'scope', 'limit'],
      fill: (s, put) => { for (const r of s.limits) put(limitLabels(r), r.hits); },
    },
    {
      name: 'xdpstack_pool_frames', help: 'Frames of the device\'s pool (UMEM) by state: free, in the kernel\'s rings, on the TX ring, held by the stack', type: 'gauge',
      labels: ['device', 'state', 'shard'],
      fill: (s, put) => { for (const r of pool(s)) for (const st of POOL_STATES) { const v = num(r[st]); if (v !== null) put({ device: str(r.device), state: st, ...shardOf(r) }, v); } },
    },
    {
      name: 'xdpstack_pool_capacity_frames', help: 'Frames in the device\'s pool (UMEM)', type: 'gauge', labels: ['device', 'shard'],
      fill: (s, put) => { for (const r of pool(s)) { const v = num(r.total); if (v !== null) put({ device: str(r.device), ...shardOf(r) }, v); } },
    },
    {
      name: 'xdpstack_output_queue_frames', help: 'Frames waiting in the stack\'s output queue for the device', type: 'gauge', labels: ['device', 'shard'],
      fill: (s, put) => { for (const r of pool(s)) { const v = num(r.queued); if (v !== null) put({ device: str(r.device), ...shardOf(r) }, v); } },
    },
    {
      name: 'xdpstack_shard_forwarded_frames_total', help: 'Frames a shard handed to the shard owning their flow', type: 'counter', labels: ['shard'],
      fill: (s, put) => { for (const r of shards(s)) { const f = r.forwarded; const v = Array.isArray(f) ? f.reduce((a: number, b) => a + (num(b) ?? 0), 0) : num(f); if (v !== null) put({ shard: str(r.shard) }, v); } },
    },
    {
      name: 'xdpstack_shard_forwarded_in_frames_total', help: 'Frames a shard took from the other shards', type: 'counter', labels: ['shard'],
      fill: (s, put) => { for (const r of shards(s)) { const v = num(r.forwardedIn); if (v !== null) put({ shard: str(r.shard) }, v); } },
    },
    {
      name: 'xdpstack_shard_ring_full_total', help: 'Frames a shard could not hand over because the ring toward the owner was full', type: 'counter', labels: ['shard'],
      fill: (s, put) => { for (const r of shards(s)) { const v = num(r.ringFull); if (v !== null) put({ shard: str(r.shard) }, v); } },
    },
  ];
}

/** The process's own metrics: one registry per process (they describe the process, not a stack). */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges named like counters (promtool's lint refuses them); the same figures by type remain.
    for (const m of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) processRegistry.removeSingleMetric(m);
  }
  return processRegistry;
}

/** The metrics of one stack: `text()` takes a snapshot and renders the exposition. */
export class StackMetrics {
  private readonly registry: Registry;
  private snap: MetricsSnapshot | null = null;
  /** Metrics exposed once a snapshot has their figures. */
  private pending: { def: MetricDef; metric: Counter | Gauge }[] = [];
  /** Scrapes run one after another (each renders its own snapshot). */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(name: string, private readonly snapshot: () => MetricsSnapshot | Promise<MetricsSnapshot>, opts: { processMetrics?: boolean } = {}) {
    const own = new Registry();
    const current = (): MetricsSnapshot | null => this.snap;
    for (const d of metricDefs(name)) {
      const config = { name: d.name, help: d.help, labelNames: d.labels as string[], registers: [] };
      // Counters are read, not counted here: each scrape sets them to the stack's figures.
      const m = d.type === 'counter'
        ? new Counter({ ...config, collect() { this.reset(); const s = current(); if (s) d.fill(s, (l, v) => { if (v >= 0) this.inc(l, v); }); } })
        : new Gauge({ ...config, collect() { this.reset(); const s = current(); if (s) d.fill(s, (l, v) => this.set(l, v)); } });
      if (d.present) this.pending.push({ def: d, metric: m });
      else own.registerMetric(m);
    }
    this.registry = opts.processMetrics === false ? own : Registry.merge([own, processMetrics()]);
  }

  get contentType(): string { return this.registry.contentType; }

  /** The exposition text of the stack's figures now. */
  text(): Promise<string> {
    const run = async (): Promise<string> => {
      const snap = await this.snapshot();
      if (this.pending.length) {
        this.pending = this.pending.filter((p) => {
          if (!p.def.present!(snap)) return true;
          this.registry.registerMetric(p.metric);
          return false;
        });
      }
      this.snap = snap;
      try {
        // One family at a time, each in its own turn of the event loop: a single-threaded stack's
        // packet path runs between them instead of waiting for the whole exposition.
        const parts: string[] = [];
        for (const m of this.registry.getMetricsAsArray()) {
          parts.push(await this.registry.getSingleMetricAsString(m.name));
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        return `${parts.join('\n\n')}\n`;
      } finally {
        this.snap = null;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

/** Why listening failed, in words an operator can act on. */
function listenError(listen: string, e: NodeJS.ErrnoException): Error {
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is in use (another program or stack listens there)',
    EADDRNOTAVAIL: 'no interface of this host has that address',
    EACCES: 'permission denied',
    EAFNOSUPPORT: 'this host does not support that address family',
  };
  return Object.assign(new Error(`metrics: cannot listen on ${listen}: ${(e.code && why[e.code]) ?? e.message}${e.code ? ` (${e.code})` : ''}`), { code: e.code });
}

/** The HTTP endpoint: `GET /metrics` (HEAD too); anything else is 404 or 405. */
export class MetricsEndpoint {
  private closing: Promise<void> | null = null;

  private constructor(private readonly server: http.Server, readonly host: string, readonly port: number) {}

  /** The scrape URL, e.g. http://127.0.0.1:9464/metrics. */
  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}/metrics`;
  }

  /** Listens on `listen` ("127.0.0.1:9464", "[::1]:9464"); rejects with a clear Error (address in use...). */
  static async listen(metrics: StackMetrics, listen: string): Promise<MetricsEndpoint> {
    let addr: { host: string; port: number };
    try {
      addr = parseListen(listen);
    } catch (e) {
      throw new RangeError(`metrics: listen ${(e as Error).message}`);
    }
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const plain = { 'content-type': 'text/plain; charset=utf-8' };
      if (path !== '/metrics') { res.writeHead(404, plain).end('not found: the metrics are at /metrics\n'); return; }
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { ...plain, allow: 'GET, HEAD' }).end('method not allowed: GET /metrics\n'); return; }
      metrics.text().then(
        (body) => { res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : body); },
        (e: Error) => { res.writeHead(503, plain).end(`metrics unavailable: ${e.message}\n`); },
      );
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    // Scrapers are few: a flood of connections must not grow without bound.
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: NodeJS.ErrnoException) => reject(listenError(listen, e));
      server.once('error', fail);
      server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => { server.off('error', fail); resolve(); });
    });
    const a = server.address() as AddressInfo;
    return new MetricsEndpoint(server, addr.host, a.port);
  }

  /** Stops listening and ends open connections. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
    }
    return this.closing;
  }
}
