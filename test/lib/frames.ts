/** Frame builders and decoders for tests (built with the project's own emitters). */
import { Burst } from '../../driver/types';
import { FramePool } from '../../umem/pool';
import { EthFrame, ETH_P_ARP, ETH_P_IPV4, writeEth } from '../../protocols/ethernet';
import { ArpPacket, writeArp, ARP_LEN } from '../../protocols/arp';
import { Ipv4Header, IPPROTO_ICMP, IPPROTO_UDP, parseIpv4, writeIpv4 } from '../../protocols/ipv4';
import { IcmpPacket } from '../../protocols/icmp';
import { UdpHeader, writeUdp } from '../../protocols/udp';
import { fold, sum16 } from '../../protocols/checksum';
import { parseMac } from '../../driver/types';
import { Engine } from '../../stack/engine';
import type { VirtualServer } from '../../stack/vs';

export const BCAST = parseMac('ff:ff:ff:ff:ff:ff');
export const ZERO = new Uint8Array(6);
export const ip = parseIpv4;

/** Copies raw bytes into a fresh pool frame and appends it to `burst`. */
export function push(pool: FramePool, burst: Burst, bytes: Uint8Array): number {
  const f = pool.alloc();
  if (f < 0) throw new Error('test pool exhausted');
  const off = pool.dataStart(f);
  pool.bytes.set(bytes, off);
  burst.push(f, off, bytes.length);
  return f;
}

function frame(len: number): Uint8Array {
  return new Uint8Array(len);
}

export function arpFrame(op: number, vlan: number, ethDst: Uint8Array, sha: Uint8Array, spa: string, tha: Uint8Array, tpa: string): Uint8Array {
  const b = frame(64);
  const hl = writeEth(b, 0, ethDst, 0, sha, 0, ETH_P_ARP, vlan);
  writeArp(b, hl, op, sha, 0, ip(spa), tha, 0, ip(tpa));
  return b.subarray(0, Math.max(60, hl + ARP_LEN));
}

export function icmpEchoFrame(vlan: number, dstMac: Uint8Array, srcMac: Uint8Array, src: string, dst: string, id: number, seq: number, data: Uint8Array): Uint8Array {
  const hl = vlan >= 0 ? 18 : 14;
  const b = frame(hl + 20 + 8 + data.length);
  writeEth(b, 0, dstMac, 0, srcMac, 0, ETH_P_IPV4, vlan);
  const o = hl + 20;
  b[o] = 8; b[o + 1] = 0; b[o + 4] = id >> 8; b[o + 5] = id & 0xff; b[o + 6] = seq >> 8; b[o + 7] = seq & 0xff;
  b.set(data, o + 8);
  const c = fold(sum16(b, o, 8 + data.length));
  b[o + 2] = c >> 8; b[o + 3] = c & 0xff;
  writeIpv4(b, hl, ip(src), ip(dst), IPPROTO_ICMP, 8 + data.length, 64, 1, 0, 0);
  return b;
}

export function udpFrame(vlan: number, dstMac: Uint8Array, srcMac: Uint8Array, src: string, sport: number, dst: string, dport: number, data: Uint8Array): Uint8Array {
  const hl = vlan >= 0 ? 18 : 14;
  const b = frame(hl + 20 + 8 + data.length);
  writeEth(b, 0, dstMac, 0, srcMac, 0, ETH_P_IPV4, vlan);
  b.set(data, hl + 28);
  writeUdp(b, hl + 20, sport, dport, data.length, ip(src), ip(dst));
  writeIpv4(b, hl, ip(src), ip(dst), IPPROTO_UDP, 8 + data.length, 64, 7, 0, 0);
  return b;
}

/** Splits an IPv4 frame's payload into fragments of `chunk` bytes (multiple of 8). */
export function fragmentFrame(full: Uint8Array, vlan: number, chunk: number, id: number): Uint8Array[] {
  const hl = vlan >= 0 ? 18 : 14;
  const h = new Ipv4Header();
  if (h.parse(full, hl, full.length - hl)) throw new Error('bad frame to fragment');
  const payload = full.subarray(hl + 20, hl + 20 + h.payloadLen);
  const out: Uint8Array[] = [];
  for (let pos = 0; pos < payload.length; pos += chunk) {
    const n = Math.min(chunk, payload.length - pos);
    const b = frame(hl + 20 + n);
    b.set(full.subarray(0, hl), 0);
    b.set(payload.subarray(pos, pos + n), hl + 20);
    const more = pos + n < payload.length;
    writeIpv4(b, hl, h.src, h.dst, h.proto, n, 64, id, (more ? 0x2000 : 0) | (pos >> 3), 0);
    out.push(b);
  }
  return out;
}

/** A decoded output frame, for assertions. */
export interface Decoded {
  vlan: number;
  dst: string;
  src: string;
  etherType: number;
  arp?: { op: number; sha: string; spa: number; tha: string; tpa: number };
  ipv4?: { src: number; dst: number; proto: number; id: number; mf: boolean; fragOff: number; payloadLen: number; ttl: number };
  icmp?: { type: number; code: number; id: number; seq: number; data: Uint8Array; innerOff: number };
  udp?: { srcPort: number; dstPort: number; data: Uint8Array };
  raw: Uint8Array;
}

const hex = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

export function decode(b: Uint8Array, off: number, len: number): Decoded {
  const raw = b.slice(off, off + len);
  const e = new EthFrame();
  if (e.parse(raw, 0, len)) throw new Error('output frame has a bad Ethernet header');
  const d: Decoded = { vlan: e.vlan, dst: hex(raw, 0), src: hex(raw, 6), etherType: e.etherType, raw };
  if (e.etherType === ETH_P_ARP) {
    const a = new ArpPacket();
    if (a.parse(raw, e.l3Off, e.l3Len)) throw new Error('output ARP is malformed');
    d.arp = { op: a.op, sha: hex(raw, a.shaOff), spa: a.spa, tha: hex(raw, a.thaOff), tpa: a.tpa };
  } else if (e.etherType === ETH_P_IPV4) {
    const h = new Ipv4Header();
    const r = h.parse(raw, e.l3Off, e.l3Len);
    if (r) throw new Error(`output IPv4 is malformed (${r})`);
    d.ipv4 = { src: h.src, dst: h.dst, proto: h.proto, id: h.id, mf: h.mf, fragOff: h.fragOff, payloadLen: h.payloadLen, ttl: h.ttl };
    if (!h.mf && !h.fragOff) {
      if (h.proto === IPPROTO_ICMP) {
        const c = new IcmpPacket();
        if (c.parse(raw, h.payloadOff, h.payloadLen)) throw new Error('output ICMP is malformed');
        d.icmp = { type: c.type, code: c.code, id: c.id, seq: c.seq, data: raw.slice(h.payloadOff + 8, h.payloadOff + h.payloadLen), innerOff: c.innerOff };
      } else if (h.proto === IPPROTO_UDP) {
        const u = new UdpHeader();
        if (u.parse(raw, h.payloadOff, h.payloadLen, h.src, h.dst)) throw new Error('output UDP is malformed (checksum?)');
        d.udp = { srcPort: u.srcPort, dstPort: u.dstPort, data: raw.slice(u.payloadOff, u.payloadOff + u.payloadLen) };
      }
    }
  }
  return d;
}

/** Takes every queued output frame of a device: decodes and frees them. */
export function drain(pool: FramePool, out: Burst): Decoded[] {
  const r: Decoded[] = [];
  for (let i = 0; i < out.n; i++) {
    r.push(decode(pool.bytes, out.off[i]!, out.len[i]!));
    pool.free(out.frame[i]!);
  }
  out.n = 0;
  return r;
}

/**
 * One engine with device eth0 (MAC 02:00:00:00:00:01) and one VS 't' on VLAN 10 (MAC
 * 02:00:00:00:01:01) with `addresses` on link eth0.10; the gratuitous ARPs are drained.
 */
export function oneVs(frameCount: number, addresses: string[]): { pool: FramePool; e: Engine; vs: VirtualServer; vsMac: Uint8Array } {
  const pool = new FramePool({ frameSize: 2048, frameCount });
  const e = new Engine();
  e.addDevice({ name: 'eth0', pool, mac: parseMac('02:00:00:00:00:01'), mtu: 1500 });
  const vs = e.createVs('t');
  const vsMac = parseMac('02:00:00:00:01:01');
  e.addLink(vs, { device: 'eth0', vlan: 10, mac: vsMac });
  for (const a of addresses) e.addAddress(vs, 'eth0.10', a);
  drain(pool, e.devices[0]!.out);
  return { pool, e, vs, vsMac };
}
