/**
 * The link layer's demux index: per (device, VLAN) the links of every VS on it, with their
 * addresses. A frame finds its link by destination MAC, then its link by destination address (for
 * IPv4 a small array or a Map of numbers, for IPv6 an AddrMap probed straight from the frame's
 * bytes): the cost of a packet does not depend on how many virtual servers exist.
 */
import { AddrMap, Ip6, isLinkLocal6 } from '../../protocols/ip/addr';
import type { Link } from '../vs';

/**
 * u32 address → link. A (device, VLAN) usually has one or two addresses: they are kept in a small
 * array scanned in place (no hash table to miss in the cache when thousands of tenants take turns);
 * past 8 entries a Map takes over, so the cost stays flat for large address sets too.
 */
export class SmallAddrMap {
  private keys: number[] = [];
  private vals: Link[] = [];
  private map: Map<number, Link> | null = null;
  /** The first entry, kept in the object itself (the common case: one address per VLAN). */
  private k0 = 0;
  private v0: Link | undefined = undefined;

  get(k: number): Link | undefined {
    if (this.v0 !== undefined && this.k0 === k) return this.v0;
    if (this.map) return this.map.get(k);
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] === k) return this.vals[i];
    return undefined;
  }

  has(k: number): boolean {
    return this.get(k) !== undefined;
  }

  set(k: number, v: Link): void {
    if (this.map) { this.map.set(k, v); return; }
    const i = this.keys.indexOf(k);
    if (i >= 0) this.vals[i] = v;
    else {
      this.keys.push(k);
      this.vals.push(v);
      if (this.keys.length > 8) {
        this.map = new Map();
        for (let j = 0; j < this.keys.length; j++) this.map.set(this.keys[j]!, this.vals[j]!);
        this.keys = [];
        this.vals = [];
      }
    }
    this.syncFirst();
  }

  delete(k: number): void {
    if (this.map) { this.map.delete(k); return; }
    const i = this.keys.indexOf(k);
    if (i >= 0) { this.keys.splice(i, 1); this.vals.splice(i, 1); }
    this.syncFirst();
  }

  private syncFirst(): void {
    const has = !this.map && this.keys.length > 0;
    this.k0 = has ? this.keys[0]! : 0;
    this.v0 = has ? this.vals[0] : undefined;
  }
}

/**
 * The links sharing one (device, VLAN), with their addresses. IPv4 keys are addresses as int32,
 * which V8 keeps as small integers: the lookup costs the same for 1 or 4096 virtual servers.
 */
export class LinkGroup extends SmallAddrMap {
  readonly links: Link[] = [];
  /** links[0], kept in the object itself (usually the only one). */
  first: Link | null = null;
  /** IPv4 unicast addresses → link: the group itself (one object less to reach per packet). */
  get addrs(): SmallAddrMap {
    return this;
  }
  /** IPv4 subnet broadcast addresses → link. */
  readonly bcast = new SmallAddrMap();
  /** IPv6 unicast addresses in use (preferred) → link. Changed through setAddr6/deleteAddr6 only. */
  readonly addrs6 = new AddrMap<Link>();
  /**
   * The first two of addrs6 (a global address first: what traffic comes to; then the link-local
   * one), their words and links kept in the group itself as IPv4's first address is: while the
   * group has at most two IPv6 addresses, a lookup (destination, or the source's martian check)
   * touches no other object, which matters when thousands of tenants take turns.
   */
  private a0: Ip6 | null = null;
  private a0w0 = 0; private a0w1 = 0; private a0w2 = 0; private a0w3 = 0;
  private l0: Link | null = null;
  private a1: Ip6 | null = null;
  private a1w0 = 0; private a1w1 = 0; private a1w2 = 0; private a1w3 = 0;
  private l1: Link | null = null;
  private n6 = 0;
  /** Our stored value of the address `find6At` found last (nothing allocated per packet). */
  lastKey6: Ip6 | null = null;

  /** The link holding the preferred IPv6 address at `b[off..off+16)`; its value is then in `lastKey6`. */
  find6At(b: Uint8Array, off: number): Link | undefined {
    if (this.n6 === 0) return undefined;
    const w3 = rd32(b, off + 12);
    if (this.a0 !== null && this.a0w3 === w3 && this.a0w0 === rd32(b, off) && this.a0w1 === rd32(b, off + 4) && this.a0w2 === rd32(b, off + 8)) {
      this.lastKey6 = this.a0;
      return this.l0!;
    }
    if (this.a1 !== null && this.a1w3 === w3 && this.a1w0 === rd32(b, off) && this.a1w1 === rd32(b, off + 4) && this.a1w2 === rd32(b, off + 8)) {
      this.lastKey6 = this.a1;
      return this.l1!;
    }
    if (this.n6 <= 2) return undefined;
    const l = this.addrs6.get6At(b, off);
    if (l !== undefined) this.lastKey6 = this.addrs6.lastKey6;
    return l;
  }

  setAddr6(a: Ip6, link: Link): void {
    this.addrs6.set(a, link);
    this.inline6();
  }

  deleteAddr6(a: Ip6): void {
    this.addrs6.delete(a);
    this.inline6();
  }

  private inline6(): void {
    const all: [Ip6, Link][] = [];
    for (const [k, v] of this.addrs6) if (typeof k !== 'number') all.push([k, v]);
    all.sort((x, y) => Number(isLinkLocal6(x[0])) - Number(isLinkLocal6(y[0]))); // global ones first
    this.n6 = all.length;
    const [a0, l0] = all[0] ?? [null, null];
    const [a1, l1] = all[1] ?? [null, null];
    this.a0 = a0; this.l0 = l0;
    this.a0w0 = a0 ? a0.w0 : 0; this.a0w1 = a0 ? a0.w1 : 0; this.a0w2 = a0 ? a0.w2 : 0; this.a0w3 = a0 ? a0.w3 : 0;
    this.a1 = a1; this.l1 = l1;
    this.a1w0 = a1 ? a1.w0 : 0; this.a1w1 = a1 ? a1.w1 : 0; this.a1w2 = a1 ? a1.w2 : 0; this.a1w3 = a1 ? a1.w3 : 0;
  }
  /** IPv6 addresses not usable yet or any more (tentative: DAD running; duplicate) → link. */
  readonly tentative6 = new AddrMap<Link>();
}

/** Writes the Ethernet header of a frame leaving `link` (see `linkEth`). */
export function linkEth(b: Uint8Array, off: number, dst: Uint8Array, dstOff: number, link: Link, etherType: number): number {
  const d0 = dst[dstOff]!, d1 = dst[dstOff + 1]!, d2 = dst[dstOff + 2]!, d3 = dst[dstOff + 3]!, d4 = dst[dstOff + 4]!, d5 = dst[dstOff + 5]!;
  b[off] = d0; b[off + 1] = d1; b[off + 2] = d2; b[off + 3] = d3; b[off + 4] = d4; b[off + 5] = d5;
  const hi = link.macHi;
  const lo = link.macLo;
  b[off + 6] = hi >>> 8; b[off + 7] = hi & 0xff;
  b[off + 8] = lo >>> 24; b[off + 9] = (lo >>> 16) & 0xff; b[off + 10] = (lo >>> 8) & 0xff; b[off + 11] = lo & 0xff;
  const vlan = link.vlan;
  if (vlan < 0) {
    b[off + 12] = etherType >>> 8; b[off + 13] = etherType & 0xff;
    return 14;
  }
  b[off + 12] = 0x81; b[off + 13] = 0x00;
  b[off + 14] = (vlan >>> 8) & 0x0f; b[off + 15] = vlan & 0xff;
  b[off + 16] = etherType >>> 8; b[off + 17] = etherType & 0xff;
  return 18;
}

export const BCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ZERO_MAC = new Uint8Array(6);

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
