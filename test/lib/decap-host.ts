/**
 * One engine with a VS serving VIPs behind a load balancer, fed frames directly (no runtime): for
 * regression tests of decapsulation. VS 't' on VLAN 10 of eth0: 10.1.1.1/24 and fd00:1::1/64,
 * VIPs 198.51.100.10 and 2001:db8::10, load balancers 10.1.1.100 and fd00:1::100; default routes
 * through 10.1.1.254 and fd00:1::fe unless `routes` is false. With `second`: a second link on VLAN
 * 20 (10.2.2.1/24, fd00:2::1/64, MAC VS2_MAC); `routes: 'vlan20'` routes everything through
 * 10.2.2.254 and fd00:2::fe there. `mtu`: the MTU of the link on VLAN 10 (the load balancer's).
 */
import { Burst, parseMac } from '../../driver/types';
import { FramePool } from '../../umem/pool';
import { Engine } from '../../stack/engine';
import type { VirtualServer } from '../../stack/vs';
import { decodeWire, echoRequest, encap, eth, LB_MAC, udpPacket, Wire } from './decap-frames';
import { ipPacket } from './encap-frames';
import { IPPROTO_TCP } from '../../protocols/ipv4';

export const VS_MAC = parseMac('02:00:00:00:01:01');
export const VS2_MAC = parseMac('02:00:00:00:02:01');
export const ADDR4 = '10.1.1.1', ADDR6 = 'fd00:1::1';
export const LB4 = '10.1.1.100', LB6 = 'fd00:1::100';
export const VIP4 = '198.51.100.10', VIP6 = '2001:db8::10';
export const CL4 = '203.0.113.7', CL6 = '2001:db8:c::7';

export interface DecapHost {
  pool: FramePool;
  e: Engine;
  vs: VirtualServer;
  /** What the engine logged (internal errors are reported there). */
  logs: string[];
  /** Puts the frames in as received on eth0 (one burst); returns what was transmitted, decoded. */
  input(frames: Uint8Array[]): Wire[];
  /** Drop counts of the VS by reason. */
  drops(): Record<string, number>;
}

export function decapHost(o: { routes?: boolean | 'vlan20'; second?: boolean; mtu?: number } = {}): DecapHost {
  const pool = new FramePool({ frameSize: 2048, frameCount: 256 });
  const logs: string[] = [];
  const e = new Engine({ ndp: { dadTransmits: 0 }, log: (m) => { logs.push(m); } });
  e.addDevice({ name: 'eth0', pool, mac: parseMac('02:00:00:00:00:01'), mtu: 1500 });
  const vs = e.createVs('t');
  e.addLink(vs, { device: 'eth0', vlan: 10, mac: VS_MAC, mtu: o.mtu });
  e.addAddress(vs, 'eth0.10', `${ADDR4}/24`);
  e.addAddress(vs, 'eth0.10', `${ADDR6}/64`);
  if (o.second) {
    e.addLink(vs, { device: 'eth0', vlan: 20, mac: VS2_MAC });
    e.addAddress(vs, 'eth0.20', '10.2.2.1/24');
    e.addAddress(vs, 'eth0.20', 'fd00:2::1/64');
  }
  if (o.routes === 'vlan20') {
    e.addRoute(vs, { dst: 'default', via: '10.2.2.254' });
    e.addRoute(vs, { dst: '::/0', via: 'fd00:2::fe' });
  } else if (o.routes !== false) {
    e.addRoute(vs, { dst: 'default', via: '10.1.1.254' });
    e.addRoute(vs, { dst: '::/0', via: 'fd00:1::fe' });
  }
  e.addVip(vs, VIP4);
  e.addVip(vs, VIP6);
  e.setDecap(vs, { from: [`${LB4}/32`, `${LB6}/128`] });
  const f = feeder(e, pool);
  return {
    pool, e, vs, logs,
    input(frames) {
      f.put(frames);
      return f.drain();
    },
    drops: () => vs.counters.toJSON().drops.reasons,
  };
}

/** `inner` (an IP packet) as the load balancer sends it to the VS: in the outer header of the inner's family. */
export function fromLb(inner: Uint8Array): Uint8Array {
  const v6 = (inner[0]! >>> 4) === 6;
  return eth(10, VS_MAC, LB_MAC, encap(v6 ? LB6 : LB4, v6 ? ADDR6 : ADDR4, inner));
}

/**
 * Feeds engine `e` (device 0, frames from `pool`) by hand: `put` gives it frames as one burst
 * received on device 0, a millisecond after the last, and delivers the events; `drain` returns
 * (decoded) what it transmitted since and frees those frames.
 */
export function feeder(e: Engine, pool: FramePool): { put(frames: Uint8Array[]): void; drain(): Wire[] } {
  let now = 1000;
  const out = e.devices[0]!.out;
  const drain = (): Wire[] => {
    const r: Wire[] = [];
    for (let i = 0; i < out.n; i++) {
      r.push(decodeWire(pool.bytes.slice(out.off[i]!, out.off[i]! + out.len[i]!)));
      pool.free(out.frame[i]!);
    }
    out.n = 0;
    return r;
  };
  drain();
  return {
    put(frames) {
      const burst = new Burst(frames.length);
      for (const f of frames) {
        const x = pool.alloc();
        const off = pool.dataStart(x);
        pool.bytes.set(f, off);
        burst.push(x, off, f.length);
      }
      now += 1000;
      e.input(0, burst, now);
      e.flushEvents();
    },
    drain,
  };
}

/**
 * Four packets from `src` to `dst` that a host answers (with a listener on port 80): an echo
 * request, a UDP datagram to a closed port (port unreachable), a SYN to 80 (SYN-ACK) and a SYN to
 * 81 (RST).
 */
export function answered(src: string, dst: string): Uint8Array[] {
  return [
    echoRequest(src, dst, 1, 1, new Uint8Array(16)),
    udpPacket(src, 40000, dst, 9, new Uint8Array(8)),
    ipPacket({ src, dst, proto: IPPROTO_TCP, sport: 40001, dport: 80 }),
    ipPacket({ src, dst, proto: IPPROTO_TCP, sport: 40002, dport: 81 }),
  ];
}
