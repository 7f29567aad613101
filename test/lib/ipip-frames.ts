/**
 * IPv4-in-IPv4 frames (IPIP, RFC 2003: outer protocol 4) as an L4 load balancer sends them to a
 * server behind it (direct server return): the client's packet to the VIP, whole, after an outer
 * IPv4 header from the load balancer to an address of the server.
 */
import { ETH_P_IPV4, writeEth } from '../../protocols/ethernet';
import { writeIpv4 } from '../../protocols/ipv4';
import { ip, udpFrame } from './frames';

/** IP protocol number of IPv4 encapsulated in IPv4 (RFC 2003 section 3). */
export const IPPROTO_IPIP = 4;
/** IPv4 flags/fragment-offset field with More Fragments set (RFC 791). */
export const IPV4_MF = 0x2000;

export interface Outer {
  vlan: number;
  dstMac: Uint8Array;
  srcMac: Uint8Array;
  /** The load balancer's address (outer source) and the server's (outer destination). */
  src: string;
  dst: string;
  /** Outer flags and fragment offset (default 0: a whole packet). */
  flagsFrag?: number;
}

/** An IPv4 packet (header and payload) inside an outer IPv4 header with protocol 4. */
export function ipipFrame(o: Outer, inner: Uint8Array): Uint8Array {
  const hl = o.vlan >= 0 ? 18 : 14;
  const b = new Uint8Array(hl + 20 + inner.length);
  writeEth(b, 0, o.dstMac, 0, o.srcMac, 0, ETH_P_IPV4, o.vlan);
  b.set(inner, hl + 20);
  writeIpv4(b, hl, ip(o.src), ip(o.dst), IPPROTO_IPIP, inner.length, 64, 1, o.flagsFrag ?? 0, 0);
  return b;
}

/** The client's UDP datagram (IPv4 header onwards) from `src`:`sport` to `dst`:`dport`. */
export function innerUdp(src: string, sport: number, dst: string, dport: number, data: Uint8Array): Uint8Array {
  const zero = new Uint8Array(6);
  return udpFrame(-1, zero, zero, src, sport, dst, dport, data).subarray(14);
}
