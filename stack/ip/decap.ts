/**
 * Decapsulation for the VIPs of a VS (direct server return behind an L4 load balancer): IPv4 in
 * IPv4 (IPIP, RFC 2003: protocol 4), IPv6 in IPv6 (RFC 2473: next header 41) and the mixed IPv6 in
 * IPv4 (protocol 41) and IPv4 in IPv6 (next header 4).
 *
 * An encapsulated packet is taken when its outer destination is an address of a link of the VS
 * (the IP stage found it: the outer destination selects the VS, so two VSes may serve the same VIP)
 * and its outer source is one of the VS's load balancers (`decap.from`). The inner packet then goes
 * through the family's input as if it had arrived on that link, with one difference: its
 * destination must be a VIP of that VS (a decapsulated packet is never to an interface address, so
 * a load balancer cannot reach what it does not front), and it may not be encapsulated again.
 * Anything else is a counted drop, never an answer: an open relay would let anyone who can send a
 * packet to the VS inject one from any source.
 *
 * The outer header is left where it is in the frame (the inner packet is parsed in place: no copy),
 * and nothing about it is kept: replies leave from the VIP, routed (stack/ip/output.ts path()).
 */
import { Drop } from '../../protocols/drop';
import type { IpAddr } from '../../protocols/ip/addr';
import type { RxMeta } from '../engine/meta';
import type { Link } from '../vs';

/** IPv4 protocol / IPv6 next header of an encapsulated IPv4 packet (RFC 2003) and IPv6 packet (RFC 2473). */
export const IPPROTO_IPIP = 4;
export const IPPROTO_IPV6 = 41;

/** Whether an IP protocol number is an encapsulation this stack takes off. */
export function isEncapsulation(proto: number): boolean {
  return proto === IPPROTO_IPIP || proto === IPPROTO_IPV6;
}

/** What decapsulation needs: the two families' input stages. */
export interface DecapHost {
  readonly ip4: { input(m: RxMeta, j: number): number };
  readonly ip6: { input(m: RxMeta, j: number): number };
}

export class Decap {
  constructor(private readonly eng: DecapHost) {}

  /**
   * Frame `j` is to an address of `link` and carries protocol `proto` (4 or 41) in
   * `b[off..off+len)`, from outer source `src` (family `outer`), a whole packet (outer fragments
   * are reassembled first and come back whole: Engine.rejoin). The VS of `link` has VIPs or load balancers (the caller checked: a VS without any
   * treats these protocols as unknown, as a host without tunnels does). Returns the inner
   * packet's upper-layer protocol for the next stage, or 0 when the frame was consumed.
   */
  input(m: RxMeta, j: number, link: Link, src: IpAddr, outer: 4 | 6, proto: number, off: number, len: number): number {
    const vips = link.vs.vips!;
    if (!vips.allows(src)) {
      m.drop(j, Drop.DecapSourceRefused);
      return 0;
    }
    const v = proto === IPPROTO_IPIP ? 4 : 6;
    if (len < (v === 4 ? 20 : 40) || (m.b[off]! >>> 4) !== v) {
      m.drop(j, Drop.DecapBadInner);
      return 0;
    }
    m.decap[j] = outer;
    m.l3Off[j] = off;
    m.l3Len[j] = len;
    return v === 4 ? this.eng.ip4.input(m, j) : this.eng.ip6.input(m, j);
  }
}
