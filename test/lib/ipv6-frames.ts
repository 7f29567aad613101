/** IPv6 test packets: a header with raw extension headers, option headers, Routing and Fragment headers; a pcap reader. */
import { readFileSync } from 'node:fs';
import { writeIpv6, writeFragHdr, IPV6_HLEN, IPPROTO_ROUTING, IPPROTO_FRAGMENT } from '../../protocols/ipv6';
import { Ip6, parseIp6 } from '../../protocols/ip/addr';

export const A = parseIp6('fd00::2');
export const B = parseIp6('fd00::1');

export interface Ext { type: number; body: Uint8Array }

/** A packet: IPv6 header (next header = first of `exts`' types or `nh`), then the raw extension headers, then `payload`. */
export function packet(exts: Ext[], nh: number, payload: Uint8Array, dst: Ip6 = B, src: Ip6 = A): Uint8Array {
  const extLen = exts.reduce((a, e) => a + e.body.length, 0);
  const b = new Uint8Array(IPV6_HLEN + extLen + payload.length);
  writeIpv6(b, 0, src, dst, exts.length ? exts[0].type : nh, extLen + payload.length, 64);
  let p = IPV6_HLEN;
  for (let i = 0; i < exts.length; i++) {
    b.set(exts[i].body, p);
    b[p] = i + 1 < exts.length ? exts[i + 1].type : nh;
    p += exts[i].body.length;
  }
  b.set(payload, p);
  return b;
}

/** An options header (Hop-by-Hop or Destination Options) holding `opts`, padded with PadN to a multiple of 8. */
export function optsHdr(type: number, opts: number[]): Ext {
  let n = 2 + opts.length;
  const pad = (8 - (n % 8)) % 8;
  const bytes = [0, 0, ...opts];
  if (pad === 1) bytes.push(0);
  else if (pad > 1) bytes.push(1, pad - 2, ...new Array(pad - 2).fill(0));
  n = bytes.length;
  const body = Uint8Array.from(bytes);
  body[1] = n / 8 - 1;
  return { type, body };
}

export function routing(type: number, segLeft: number): Ext {
  const body = new Uint8Array(24); // one address
  body[1] = 2;
  body[2] = type;
  body[3] = segLeft;
  return { type: IPPROTO_ROUTING, body };
}

export function frag(offset: number, more: boolean, id: number): Ext {
  const body = new Uint8Array(8);
  writeFragHdr(body, 0, 0, offset, more, id);
  return { type: IPPROTO_FRAGMENT, body };
}

/** The frames of a classic pcap file. */
export function readPcap(file: string): Uint8Array[] {
  const f = new Uint8Array(readFileSync(file));
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const le = dv.getUint32(0, true) === 0xa1b2c3d4 || dv.getUint32(0, true) === 0xa1b23c4d;
  const out: Uint8Array[] = [];
  for (let p = 24; p + 16 <= f.length;) {
    const incl = dv.getUint32(p + 8, le);
    p += 16;
    out.push(f.subarray(p, Math.min(p + incl, f.length)));
    p += incl;
  }
  return out;
}

