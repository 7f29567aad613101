/**
 * Shards under virtual time: a LocalShardGroup whose device is a multi-queue memory link, and a
 * peer host (Engine + Runtime) on the other end that plays the kernel peers. The link steers the
 * peer's frames to a queue as RSS or a veth peer would: by a hash of the flow, unless the test pins
 * a flow (by the peer's port) or neighbor traffic to a queue.
 */
import { createMultiQueueLink, Impairments, MultiQueueLink } from '../../driver/memory';
import { Engine } from '../../stack/engine';
import { Runtime } from '../../stack/runtime';
import type { VirtualServer } from '../../stack/vs';
import type { NetContext } from '../../stack/api/net';
import type { StackConfig } from '../../stack/control/config';
import { connect } from '../../stack/api/net';
import { pattern, sha } from './world';
import type { Stack } from '../../stack/stack';
import { LocalShardGroup } from '../../stack/shard/group';
import { Toeplitz } from '../../protocols/rss/toeplitz';
import type { RingSize } from '../../stack/shard/ring';
import type { FlowTableSize } from '../../stack/shard/flows';

export const SECRET = new Uint8Array(16).map((_, i) => i * 29 + 5);

export interface ShardWorld {
  group: LinkedGroup;
  peer: { engine: Engine; runtime: Runtime; vs: VirtualServer; ctx(): NetContext };
  link: MultiQueueLink;
  /** Pins the flows whose peer-side port is `port` to `queue` (null: back to the hash). */
  pin(port: number, queue: number | null): void;
  /** Queue of ARP and NDP frames from the peer (null: by the hash of the sender). */
  neighborQueue: number | null;
  /** Frames the link steered to each queue. */
  perQueue: number[];
  now(): number;
  run(done: () => boolean, maxUs?: number): Promise<boolean>;
}

type LinkedGroup = LocalShardGroup;

export function shardConfig(extra: Partial<StackConfig> = {}): StackConfig {
  return {
    name: 'shards',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'eth0', driver: 'memory', mac: '02:00:00:00:00:0a' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', vlan: 10, addresses: ['10.1.1.1/24', 'fd00::1/64'] }] }],
    ...extra,
  } as StackConfig;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The Microsoft default RSS key, and a table alternating the queues (as a NIC's default). */
export const MS_KEY = Uint8Array.from(Buffer.from('6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa', 'hex'));

export function shardWorld(o: { shards?: number; config?: StackConfig; app?: (s: Stack, shard: number) => void; peerAddrs?: string[];
  /** The link hashes IPv4 TCP as an RSS NIC (Toeplitz, MS_KEY, a 128-entry table) and the shards know it. */
  rss?: boolean;
  /** The rings between the shards (default DEFAULT_RING). */
  ringSize?: RingSize;
  /** Loss (and other impairments) on the link, both ways. */
  impair?: Impairments;
  /** The flow table (default DEFAULT_FLOW_TABLE; a tiny one makes flows share slots). */
  flowSize?: FlowTableSize } = {}): ShardWorld {
  const shards = o.shards ?? 2;
  const pins = new Map<number, number>();
  const indir = Array.from({ length: 128 }, (_, i) => i % (o.shards ?? 2));
  const toeplitz = o.rss ? new Toeplitz(MS_KEY) : null;
  const perQueue = new Array<number>(shards).fill(0);
  let now = 0;
  let dirty = false;
  const w: Partial<ShardWorld> & { neighborQueue: number | null } = { neighborQueue: null };
  const steer = (b: Uint8Array, off: number, len: number): number => {
    let q = 0;
    let l3 = off + 14;
    let type = (b[off + 12]! << 8) | b[off + 13]!;
    if (type === 0x8100) { type = (b[off + 16]! << 8) | b[off + 17]!; l3 += 4; }
    if (type === 0x0806) q = w.neighborQueue ?? rd32(b, l3 + 14) % shards;
    else if (type === 0x0800 && len >= l3 - off + 24) {
      const ihl = (b[l3]! & 15) * 4;
      const proto = b[l3 + 9]!;
      const sport = proto === 6 || proto === 17 ? (b[l3 + ihl]! << 8) | b[l3 + ihl + 1]! : 0;
      const dport = proto === 6 || proto === 17 ? (b[l3 + ihl + 2]! << 8) | b[l3 + ihl + 3]! : 0;
      const pinned = pins.get(sport);
      if (pinned !== undefined) q = pinned;
      else if (toeplitz && proto === 6) q = indir[toeplitz.hash4(rd32(b, l3 + 12), rd32(b, l3 + 16), sport, dport) & 127]!;
      else q = (Math.imul(rd32(b, l3 + 12) ^ (sport * 0x9e37) ^ dport, 0x85ebca6b) >>> 7) % shards;
    } else if (type === 0x86dd) {
      const nh = b[l3 + 6]!;
      if (nh === 58 && (b[l3 + 40] === 135 || b[l3 + 40] === 136) && w.neighborQueue !== null) q = w.neighborQueue;
      else {
        const sport = nh === 6 || nh === 17 ? (b[l3 + 40]! << 8) | b[l3 + 41]! : 0;
        const dport = nh === 6 || nh === 17 ? (b[l3 + 42]! << 8) | b[l3 + 43]! : 0;
        q = pins.get(sport) ?? (Math.imul(rd32(b, l3 + 20) ^ (sport * 0x9e37) ^ dport, 0x85ebca6b) >>> 7) % shards;
      }
    }
    perQueue[q]!++;
    return q;
  };
  const link = createMultiQueueLink({ queues: shards, steer, mac: '02:00:00:00:00:0a', peerMac: '02:00:00:00:00:0b', frameCount: 8192, impair: o.impair });
  const group = new LocalShardGroup(o.config ?? shardConfig(), {
    shards, drivers: (i) => ({ eth0: link.queues[i]! }), secret: SECRET, app: o.app, ringSize: o.ringSize, flowSize: o.flowSize,
    ...(o.rss ? { rss: { eth0: { key: MS_KEY, indir, tcp4: 'sdfn' as const, tcp6: 'sdfn' as const } } } : {}),
  });
  const engine = new Engine({ secret: SECRET, ndp: { dadTransmits: 0 }, onOutput: () => { dirty = true; } });
  engine.addDevice({ name: 'eth0', pool: link.peer.pool, mac: link.peer.mac, mtu: link.peer.mtu });
  const runtime = new Runtime(engine, [link.peer], { clock: () => now });
  for (const s of group.stacks) s.engine.clock = () => now;
  const vs = engine.createVs('peer');
  engine.addLink(vs, { device: 'eth0', vlan: 10 });
  for (const a of o.peerAddrs ?? ['10.1.1.2/24', 'fd00::2/64']) engine.addAddress(vs, 'eth0.10', a);
  const turn = () => new Promise<void>((r) => setImmediate(r));
  Object.assign(w, {
    group, link, perQueue,
    peer: { engine, runtime, vs, ctx: () => ({ engine, vs, now: () => now }) },
    pin: (port: number, queue: number | null) => { if (queue === null) pins.delete(port); else pins.set(port, queue); },
    now: () => now,
    async run(done: () => boolean, maxUs = 60_000_000) {
      const end = now + maxUs;
      for (let i = 0; i < 1_000_000; i++) {
        dirty = false;
        const na = group.step(now);
        const nb = runtime.step(now);
        await turn();
        if (done()) return true;
        // Output the shards' applications queued between steps waits in the devices' queues.
        if (group.stacks.some((s) => s.engine.devices.some((d) => d.out.n > 0))) dirty = true;
        if (dirty) continue;
        const next = Math.min(na, nb, group.step(now), runtime.step(now), link.nextDeadline());
        if (dirty) continue;
        if (next === Infinity || next > end) {
          if (end > now) now = end;
          return done();
        }
        now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, end + 1);
      }
      return done();
    },
  });
  return w as ShardWorld;
}

/**
 * A TCP transfer of `size` bytes from the peer to the echo service on port 7, moved to the other
 * queue (as a veth peer's re-rolled hash moves it) once `moveAt` of the echo came back. Returns
 * whether it ended within `maxUs`, whether it was moved and whether the echo was byte-exact.
 */
export async function movedTransfer(w: ShardWorld, size: number, seed: number, maxUs: number, moveAt = 1 / 4): Promise<{ ended: boolean; moved: boolean; exact: boolean }> {
  const data = pattern(size, seed);
  const got: Buffer[] = [];
  let received = 0, moved = false, ended = false, port = 0;
  const c = connect(w.peer.ctx(), 7, '10.1.1.1', () => { port = c.localPort!; c.end(data); });
  c.on('data', (d: Buffer) => {
    got.push(d);
    received += d.length;
    if (!moved && received > size * moveAt) {
      const owner = (w.group.show('vs', { perShard: true }) as { data: Record<string, unknown>[] }[]).findIndex((p) => (p.data[0]!.tcpConnections as number) > 0);
      w.pin(port, 1 - owner);
      moved = true;
    }
  });
  c.on('end', () => { ended = true; });
  const ok = await w.run(() => ended, maxUs);
  return { ended: ok, moved, exact: sha(Buffer.concat(got)) === sha(data) };
}
