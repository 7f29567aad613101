/**
 * Regression: with shards, an encapsulated packet whose inner flow belongs to another shard (a
 * socket only that shard has bound, a connection it owns) is handed over whole, outer header and
 * all, and decapsulated again there; both shards counted it as `decapsulated`, so `show vips`
 * (and xdpstack_vs_decap_packets_total), which add the shards up, gave twice the packets the load
 * balancer sent. A packet is counted once, by the shard it came to off the wire, as its receive
 * counters are.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Burst, parseMac } from '../driver/types';
import { shardConfig, shardWorld, ShardWorld } from './lib/shard-world';
import { encap, eth, ipv6, udpPacket } from './lib/decap-frames';
import { writeNa } from '../protocols/ndp';
import { parseIp6 } from '../protocols/ip/addr';
import type { StackConfig } from '../stack/control/config';

type Row = Record<string, unknown>;

const STACK_MAC = parseMac('02:00:00:00:00:0a');
const LB4 = '10.1.1.2', LB6 = 'fd00::2';
const VIP4 = '198.51.100.10', VIP6 = '2001:db8::10';

function config(): StackConfig {
  const c = shardConfig();
  Object.assign(c.virtualServers[0]!, {
    vips: [VIP4, VIP6],
    decap: { from: [`${LB4}/32`, `${LB6}/128`] },
    routes: [{ dst: 'default', via: LB4 }, { dst: '::/0', via: LB6 }],
  });
  return c;
}

/** The peer (as the load balancer) sends `frames` as they are. */
function send(w: ShardWorld, frames: Uint8Array[]): void {
  const peer = w.link.peer;
  const b = new Burst(frames.length);
  for (const f of frames) {
    const x = peer.pool.alloc();
    const off = peer.pool.dataStart(x);
    peer.pool.bytes.set(f, off);
    b.push(x, off, f.length, w.now());
  }
  peer.tx(b, w.now());
}

for (const [type, vip, client, lb, addr] of [['udp4', VIP4, '203.0.113.7', LB4, '10.1.1.1'], ['udp6', VIP6, '2001:db8:c::7', LB6, 'fd00::1']] as const) {
  test(`${type}: packets decapsulated by shard 0 for a socket of shard 1 are counted once each`, async () => {
    const got: number[] = [0, 0];
    const w = shardWorld({
      config: config(),
      app: (s, shard) => {
        if (shard !== 1) return;
        const u = s.vs('a').createSocket(type);
        u.on('message', () => { got[shard]!++; });
        u.bind(5000, vip);
      },
    });
    try {
      w.pin(0, 0); // tunnel packets (no ports in the outer header) come to queue 0: shard 0
      await w.run(() => false, 100_000);
      const N = 6;
      send(w, Array.from({ length: N }, (_, i) => eth(10, STACK_MAC, w.link.peer.mac,
        encap(lb, addr, udpPacket(client, 40000 + i, vip, 5000, new Uint8Array(10).fill(i))))));
      assert.ok(await w.run(() => got[1] === N, 2_000_000), `delivered in shard 1: ${got}`);
      const rows = (w.group.show('counters') as { shards: Row[] }).shards;
      assert.ok((rows[0]!.forwarded as number[])[1]! >= N, 'shard 0 handed them to shard 1');
      const vips = w.group.show('vips') as Row[];
      assert.is(vips[0]!.decapsulated, N, 'show vips: each packet once');
      const per = (w.group.show('vips', { perShard: true }) as { data: Row[] }[]).map((p) => p.data[0]!.decapsulated);
      assert.equal(per, [N, 0], 'counted by the shard it came to off the wire');
    } finally {
      w.group.close();
    }
  });
}

test('a Neighbor Advertisement inside a tunnel is not copied to the other shards: one decap-link-scoped drop, no neighbor shared', async () => {
  const w = shardWorld({ config: config() });
  try {
    w.pin(0, 0);
    await w.run(() => false, 100_000);
    const shared0 = (w.group.show('counters') as { shards: Row[] }).shards.map((r) => r.neighborShared as number);
    // A solicited, override NA for the client's address, as the VS's gateway would send one: hop limit 255.
    const na = new Uint8Array(32);
    const n = writeNa(na, 0, parseIp6('2001:db8:c::7'), 0x60, parseMac('02:00:00:00:0c:01'), parseIp6('2001:db8:c::7'), parseIp6(VIP6));
    const inner = ipv6('2001:db8:c::7', VIP6, 58, na.subarray(0, n));
    inner[7] = 255;
    send(w, [eth(10, STACK_MAC, w.link.peer.mac, encap(LB6, 'fd00::1', inner))]);
    await w.run(() => false, 200_000);
    const vips = w.group.show('vips') as Row[];
    assert.equal((vips[0]!.drops as { reasons: Record<string, number> }).reasons, { 'decap-link-scoped': 1 }, 'dropped once');
    const shared = (w.group.show('counters') as { shards: Row[] }).shards.map((r) => r.neighborShared as number);
    assert.equal(shared, shared0, 'not handed to the other shards as a neighbor answer');
  } finally {
    w.group.close();
  }
});

test.run();
