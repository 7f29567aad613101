/**
 * One address type for both IP families.
 *
 * An IPv4 address is a plain number (the u32 in host order): it costs nothing to pass, compare or
 * use as a Map key, which keeps the IPv4 hot path as it was. An IPv6 address is an immutable `Ip6`
 * of four u32 words with its hash computed once: comparing two is four number compares, looking one
 * up in an `AddrMap` never allocates, and both also work straight from frame bytes at an offset
 * (`hash6At`, `eq6At`, `AddrMap.get6At`) so the receive path finds its tables without building a
 * value first. Family-specific facts (header length, minimum MTU, pseudo-header, prefix match,
 * text form) sit behind the small `IpFamily` interface (`V4`, `V6`, `familyOf`).
 */

/** An IPv6 address: four big-endian u32 words (`w0` holds bytes 0..3). */
export class Ip6 {
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  /** A 31-bit hash of the four words (as `hash6At` computes from bytes). */
  readonly hash: number;
  private text: string | undefined;

  constructor(w0: number, w1: number, w2: number, w3: number) {
    this.w0 = w0 >>> 0;
    this.w1 = w1 >>> 0;
    this.w2 = w2 >>> 0;
    this.w3 = w3 >>> 0;
    this.hash = hash6(this.w0, this.w1, this.w2, this.w3);
  }

  /** The canonical text form (RFC 5952), computed once. */
  toString(): string {
    return (this.text ??= ip6ToString(this));
  }

  /** The 16 bytes. */
  bytes(): Uint8Array {
    const b = new Uint8Array(16);
    write6(b, 0, this);
    return b;
  }
}

/** An address of either family: IPv4 as a u32 number, IPv6 as an `Ip6`. */
export type IpAddr = number | Ip6;

export const enum Fam {
  V4 = 4,
  V6 = 6,
}

/** `::` */
export const ANY6 = new Ip6(0, 0, 0, 0);
/** `ff02::1`, all nodes on the link. */
export const ALL_NODES6 = new Ip6(0xff020000, 0, 0, 1);
/** `ff02::2`, all routers on the link. */
export const ALL_ROUTERS6 = new Ip6(0xff020000, 0, 0, 2);
/** `ff02::16`, all MLDv2-capable routers (RFC 3810 section 5.2.14). */
export const ALL_MLDV2_ROUTERS6 = new Ip6(0xff020000, 0, 0, 0x16);

export function isIp6(a: IpAddr): a is Ip6 {
  return typeof a !== 'number';
}

/** Mixes four words into 31 bits (a multiply-xorshift; the same from a value or from bytes). */
export function hash6(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ w1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ w2, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16) ^ w3, 0x165667b1);
  h ^= h >>> 15;
  return h & 0x7fffffff;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The hash of the IPv6 address at `b[off..off+16)`, without building a value. */
export function hash6At(b: Uint8Array, off: number): number {
  return hash6(rd32(b, off), rd32(b, off + 4), rd32(b, off + 8), rd32(b, off + 12));
}

/** Whether `a` equals the IPv6 address at `b[off..off+16)`. */
export function eq6At(a: Ip6, b: Uint8Array, off: number): boolean {
  return a.w3 === rd32(b, off + 12) && a.w0 === rd32(b, off) && a.w1 === rd32(b, off + 4) && a.w2 === rd32(b, off + 8);
}

/** The IPv6 address at `b[off..off+16)` as a value (allocates one small object). */
export function ip6At(b: Uint8Array, off: number): Ip6 {
  return new Ip6(rd32(b, off), rd32(b, off + 4), rd32(b, off + 8), rd32(b, off + 12));
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Writes `a` at `b[off..off+16)` (no allocation: it runs for every IPv6 packet sent). */
export function write6(b: Uint8Array, off: number, a: Ip6): void {
  wr32(b, off, a.w0);
  wr32(b, off + 4, a.w1);
  wr32(b, off + 8, a.w2);
  wr32(b, off + 12, a.w3);
}

/** Address equality across families (an IPv4 number never equals an Ip6, mapped or not). */
export function addrEq(x: IpAddr, y: IpAddr): boolean {
  if (x === y) return true;
  if (typeof x === 'number' || typeof y === 'number') return false;
  return x.w3 === y.w3 && x.w0 === y.w0 && x.w1 === y.w1 && x.w2 === y.w2;
}

/** A 31-bit hash of either family (IPv4: the address folded). */
export function addrHash(a: IpAddr): number {
  return typeof a === 'number' ? (a ^ (a >>> 16)) & 0x7fffffff : a.hash;
}

/** Whether `a` is the unspecified address of its family (0 or ::). */
export function isUnspecified(a: IpAddr): boolean {
  return typeof a === 'number' ? a === 0 : (a.w0 | a.w1 | a.w2 | a.w3) === 0;
}

// ------------------------------------------------------------------ IPv6 classes (RFC 4291)

export function isMulticast6(a: Ip6): boolean {
  return a.w0 >>> 24 === 0xff;
}

/** fe80::/10 */
export function isLinkLocal6(a: Ip6): boolean {
  return a.w0 >>> 22 === 0x3fa;
}

/** ::1 */
export function isLoopback6(a: Ip6): boolean {
  return a.w0 === 0 && a.w1 === 0 && a.w2 === 0 && a.w3 === 1;
}

/** ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2). */
export function isV4Mapped(a: Ip6): boolean {
  return a.w0 === 0 && a.w1 === 0 && a.w2 === 0xffff;
}

/** The IPv4-mapped form of an IPv4 address. */
export function v4Mapped(a: number): Ip6 {
  return new Ip6(0, 0, 0xffff, a);
}

/**
 * Addresses never valid as the source of an IPv6 packet from the wire: multicast (RFC 4291 2.7),
 * loopback, and IPv4-mapped (RFC 4291 2.5.5.2; RFC 6890). `::` is allowed only for DAD probes, so
 * callers decide about it.
 */
export function isBadSource6(a: Ip6): boolean {
  return isMulticast6(a) || isLoopback6(a) || isV4Mapped(a);
}

/** Solicited-node multicast group of `a`: ff02::1:ffXX:XXXX (RFC 4291 section 2.7.1). */
export function solicitedNode(a: Ip6): Ip6 {
  return new Ip6(0xff020000, 0, 1, (0xff000000 | (a.w3 & 0xffffff)) >>> 0);
}

/** Whether `b[off..off+16)` is the solicited-node group of some address with low 24 bits `low24`. */
export function isSolicitedNodeAt(b: Uint8Array, off: number): boolean {
  return rd32(b, off) === 0xff020000 && rd32(b, off + 4) === 0 && rd32(b, off + 8) === 1 && b[off + 12] === 0xff;
}

/** The Ethernet multicast MAC of IPv6 group `a`: 33:33 + its low 32 bits (RFC 2464 section 7). */
export function multicastMac6(a: Ip6, out: Uint8Array = new Uint8Array(6), off = 0): Uint8Array {
  out[off] = 0x33;
  out[off + 1] = 0x33;
  out[off + 2] = a.w3 >>> 24;
  out[off + 3] = (a.w3 >>> 16) & 0xff;
  out[off + 4] = (a.w3 >>> 8) & 0xff;
  out[off + 5] = a.w3 & 0xff;
  return out;
}

/** The modified EUI-64 link-local address of a MAC: fe80::xxxx:xxff:fexx:xxxx (RFC 4291 appendix A). */
export function linkLocalFromMac(mac: Uint8Array): Ip6 {
  const w2 = (((mac[0]! ^ 0x02) << 24) | (mac[1]! << 16) | (mac[2]! << 8) | 0xff) >>> 0;
  const w3 = ((0xfe << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0;
  return new Ip6(0xfe800000, 0, w2, w3);
}

// ------------------------------------------------------------------ text forms

/** Parses a dotted quad; throws RangeError (leading zeros refused: ambiguous between parsers). */
export function parseIp4(s: string): number {
  if (typeof s !== 'string') throw new RangeError(`not an IPv4 address: ${String(s)}`);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  let a = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    if (part.length > 1 && part[0] === '0') throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)} (leading zero)`);
    const v = Number(part);
    if (v > 255) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)} (${part} > 255)`);
    a = a * 256 + v;
  }
  return a;
}

export function ip4ToString(a: number): string {
  return `${(a >>> 24) & 0xff}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/**
 * Parses an IPv6 address in any RFC 4291 section 2.2 form (`::`, an embedded dotted quad). A zone
 * (`%link`) is not part of the address: callers split it off first (see `splitZone`). Throws RangeError.
 */
export function parseIp6(s: string): Ip6 {
  if (typeof s !== 'string') throw new RangeError(`not an IPv6 address: ${String(s)}`);
  const bad = (why: string): RangeError => new RangeError(`not an IPv6 address: ${JSON.stringify(s)}${why ? ` (${why})` : ''}`);
  if (s.length < 2 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) throw bad('');
  const groups: number[] = [];
  let text = s;
  let tail: number | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.') >= 0) {
    if (lastColon < 0) throw bad('');
    try {
      tail = parseIp4(text.slice(lastColon + 1));
    } catch {
      throw bad('bad embedded IPv4 address');
    }
    text = text.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::"; "::ffff:1.2.3.4" leaves "::ffff:", whose single trailing colon goes.
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const want = tail === null ? 8 : 6;
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) throw bad('more than one "::"');
  const parseGroups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').map((g) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad(g === '' ? 'empty group' : `bad group "${g}"`);
      return parseInt(g, 16);
    });
  };
  if (dbl >= 0) {
    const head = parseGroups(text.slice(0, dbl));
    const rest = parseGroups(text.slice(dbl + 2));
    if (head.length + rest.length > want - 1) throw bad('too many groups');
    groups.push(...head);
    for (let i = head.length + rest.length; i < want; i++) groups.push(0);
    groups.push(...rest);
  } else {
    groups.push(...parseGroups(text));
    if (groups.length !== want) throw bad(groups.length < want ? 'too few groups' : 'too many groups');
  }
  if (tail !== null) groups.push(tail >>> 16, tail & 0xffff);
  return new Ip6(
    ((groups[0]! << 16) | groups[1]!) >>> 0,
    ((groups[2]! << 16) | groups[3]!) >>> 0,
    ((groups[4]! << 16) | groups[5]!) >>> 0,
    ((groups[6]! << 16) | groups[7]!) >>> 0,
  );
}

/** The RFC 5952 text form: lowercase, longest run of ≥ 2 zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
export function ip6ToString(a: Ip6): string {
  if (isV4Mapped(a)) return `::ffff:${ip4ToString(a.w3)}`;
  const g = [a.w0 >>> 16, a.w0 & 0xffff, a.w1 >>> 16, a.w1 & 0xffff, a.w2 >>> 16, a.w2 & 0xffff, a.w3 >>> 16, a.w3 & 0xffff];
  let best = -1;
  let bestLen = 1; // RFC 5952 4.2.2: a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (x: number[]): string => x.map((v) => v.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Parses an address of either family (IPv6 when it holds a colon). Throws RangeError. */
export function parseAddr(s: string): IpAddr {
  if (typeof s !== 'string') throw new RangeError(`not an IP address: ${String(s)}`);
  return s.includes(':') ? parseIp6(s) : parseIp4(s);
}

/** The text form of an address of either family. */
export function addrToString(a: IpAddr): string {
  return typeof a === 'number' ? ip4ToString(a) : a.toString();
}

/** Splits "fe80::1%eth0" into the address text and the zone ('' when none). */
export function splitZone(s: string): { addr: string; zone: string } {
  const i = s.indexOf('%');
  return i < 0 ? { addr: s, zone: '' } : { addr: s.slice(0, i), zone: s.slice(i + 1) };
}

export interface Cidr {
  addr: IpAddr;
  prefixLen: number;
  family: IpFamily;
}

/** Parses "address/prefix-length" of either family (the address kept as given). Throws RangeError. */
export function parseCidr(s: string): Cidr {
  if (typeof s !== 'string') throw new RangeError(`not a CIDR: ${String(s)}`);
  const slash = s.indexOf('/');
  const v6 = s.includes(':');
  const example = v6 ? 'fd00::1/64' : '10.0.0.1/24';
  if (slash < 0) throw new RangeError(`not a CIDR: ${JSON.stringify(s)} (expected address/prefix-length, e.g. ${example})`);
  const fam = v6 ? V6 : V4;
  const addr = fam.parse(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > fam.bits) {
    throw new RangeError(`not a CIDR: ${JSON.stringify(s)} (prefix length must be 0..${fam.bits})`);
  }
  return { addr, prefixLen: Number(p), family: fam };
}

// ------------------------------------------------------------------ prefixes

function mask32(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
}

/** `a` with all bits past `prefixLen` cleared. */
export function maskAddr(a: IpAddr, prefixLen: number): IpAddr {
  if (typeof a === 'number') return (a & mask32(prefixLen)) >>> 0;
  if (prefixLen >= 128) return a;
  return new Ip6(a.w0 & mask32(prefixLen), a.w1 & mask32(prefixLen - 32), a.w2 & mask32(prefixLen - 64), a.w3 & mask32(prefixLen - 96));
}

/** Whether `a` and `b` (same family) agree on their first `prefixLen` bits. */
export function prefixMatch(a: IpAddr, b: IpAddr, prefixLen: number): boolean {
  if (typeof a === 'number' || typeof b === 'number') {
    if (typeof a !== 'number' || typeof b !== 'number') return false;
    return ((a ^ b) & mask32(prefixLen)) === 0;
  }
  return ((a.w0 ^ b.w0) & mask32(prefixLen)) === 0 && ((a.w1 ^ b.w1) & mask32(prefixLen - 32)) === 0
    && ((a.w2 ^ b.w2) & mask32(prefixLen - 64)) === 0 && ((a.w3 ^ b.w3) & mask32(prefixLen - 96)) === 0;
}

// ------------------------------------------------------------------ the family interface

/** What differs between IPv4 and IPv6, in one place. */
export interface IpFamily {
  readonly fam: Fam;
  /** 'IPv4' or 'IPv6', as Node's `family` fields. */
  readonly name: 'IPv4' | 'IPv6';
  /** Address length in bits. */
  readonly bits: number;
  /** Fixed header length (IPv4 without options, IPv6 without extension headers). */
  readonly hdrLen: number;
  /** Smallest MTU a link of this family may have (RFC 791: 68; RFC 8200 section 5: 1280). */
  readonly minMtu: number;
  /** The unspecified address. */
  readonly any: IpAddr;
  /** Running sum of the pseudo-header (RFC 9293 3.1 / RFC 8200 8.1): addresses, protocol, length. */
  pseudoSum(src: IpAddr, dst: IpAddr, proto: number, len: number): number;
  parse(s: string): IpAddr;
  format(a: IpAddr): string;
}

function words16(a: Ip6): number {
  return (a.w0 >>> 16) + (a.w0 & 0xffff) + (a.w1 >>> 16) + (a.w1 & 0xffff)
    + (a.w2 >>> 16) + (a.w2 & 0xffff) + (a.w3 >>> 16) + (a.w3 & 0xffff);
}

/** Running sum of the IPv6 pseudo-header (RFC 8200 section 8.1). */
export function pseudoSum6(src: Ip6, dst: Ip6, proto: number, len: number): number {
  return words16(src) + words16(dst) + (len >>> 16) + (len & 0xffff) + proto;
}

export const V4: IpFamily = {
  fam: Fam.V4,
  name: 'IPv4',
  bits: 32,
  hdrLen: 20,
  minMtu: 68,
  any: 0,
  pseudoSum: (src, dst, proto, len) => {
    const s = src as number, d = dst as number;
    return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + proto + len;
  },
  parse: parseIp4,
  format: (a) => ip4ToString(a as number),
};

export const V6: IpFamily = {
  fam: Fam.V6,
  name: 'IPv6',
  bits: 128,
  hdrLen: 40,
  minMtu: 1280,
  any: ANY6,
  pseudoSum: (src, dst, proto, len) => pseudoSum6(src as Ip6, dst as Ip6, proto, len),
  parse: parseIp6,
  format: (a) => (a as Ip6).toString(),
};

export function familyOf(a: IpAddr): IpFamily {
  return typeof a === 'number' ? V4 : V6;
}

/** Pseudo-header sum for either family. */
export function pseudoSum(src: IpAddr, dst: IpAddr, proto: number, len: number): number {
  if (typeof src === 'number') {
    const d = dst as number;
    return (src >>> 16) + (src & 0xffff) + (d >>> 16) + (d & 0xffff) + proto + len;
  }
  return pseudoSum6(src, dst as Ip6, proto, len);
}

// ------------------------------------------------------------------ a map keyed by addresses

/** One IPv6 entry: the key's words inline (a lookup compares them without loading the key). */
interface Bucket<V> {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  key: Ip6;
  value: V;
  next: Bucket<V> | null;
}

/** IPv6 keys an AddrMap scans in an array instead of hashing (see small6). */
const SMALL6 = 4;

/**
 * A map keyed by addresses of either family. IPv4 keys go to a Map of numbers; IPv6 keys are
 * chained under their hash, so a lookup (also straight from frame bytes: `get6At`) allocates nothing.
 */
export class AddrMap<V> {
  private readonly m4 = new Map<number, V>();
  private readonly m6 = new Map<number, Bucket<V>>();
  private n6 = 0;
  /**
   * While the map holds at most SMALL6 IPv6 keys (a link group's address and its link-local one):
   * the entries in an array, scanned without hashing (null beyond that).
   */
  private small6: Bucket<V>[] | null = [];
  /** The first two entries of small6 (two loads fewer on a lookup: the common case, an address and its link-local one). */
  private s0: Bucket<V> | null = null;
  private s1: Bucket<V> | null = null;
  /** The key of the entry the last `get6At` found (the stored value: callers reuse it instead of reading one from the bytes). */
  lastKey6: Ip6 | null = null;

  get size(): number {
    return this.m4.size + this.n6;
  }

  get(a: IpAddr): V | undefined {
    if (typeof a === 'number') return this.m4.get(a);
    for (let e: Bucket<V> | null | undefined = this.m6.get(a.hash); e; e = e.next) {
      if (e.w3 === a.w3 && e.w0 === a.w0 && e.w1 === a.w1 && e.w2 === a.w2) return e.value;
    }
    return undefined;
  }

  /** The value for the IPv6 address at `b[off..off+16)`; its stored key is then in `lastKey6`. */
  get6At(b: Uint8Array, off: number): V | undefined {
    if (this.n6 === 0) return undefined;
    const w0 = rd32(b, off), w1 = rd32(b, off + 4), w2 = rd32(b, off + 8), w3 = rd32(b, off + 12);
    const small = this.small6;
    if (small !== null) {
      let e = this.s0;
      if (e !== null && e.w3 === w3 && e.w0 === w0 && e.w1 === w1 && e.w2 === w2) {
        this.lastKey6 = e.key;
        return e.value;
      }
      e = this.s1;
      if (e !== null && e.w3 === w3 && e.w0 === w0 && e.w1 === w1 && e.w2 === w2) {
        this.lastKey6 = e.key;
        return e.value;
      }
      for (let i = 2; i < small.length; i++) {
        const e = small[i]!;
        if (e.w3 === w3 && e.w0 === w0 && e.w1 === w1 && e.w2 === w2) {
          this.lastKey6 = e.key;
          return e.value;
        }
      }
      return undefined;
    }
    for (let e: Bucket<V> | null | undefined = this.m6.get(hash6(w0, w1, w2, w3)); e; e = e.next) {
      if (e.w3 === w3 && e.w0 === w0 && e.w1 === w1 && e.w2 === w2) {
        this.lastKey6 = e.key;
        return e.value;
      }
    }
    return undefined;
  }

  has(a: IpAddr): boolean {
    return this.get(a) !== undefined;
  }

  set(a: IpAddr, v: V): this {
    if (typeof a === 'number') {
      this.m4.set(a, v);
      return this;
    }
    for (let e: Bucket<V> | null | undefined = this.m6.get(a.hash); e; e = e.next) {
      if (addrEq(e.key, a)) {
        e.value = v;
        return this;
      }
    }
    this.m6.set(a.hash, { w0: a.w0, w1: a.w1, w2: a.w2, w3: a.w3, key: a, value: v, next: this.m6.get(a.hash) ?? null });
    this.n6++;
    this.resmall();
    return this;
  }

  delete(a: IpAddr): boolean {
    if (typeof a === 'number') return this.m4.delete(a);
    let prev: Bucket<V> | null = null;
    for (let e: Bucket<V> | null | undefined = this.m6.get(a.hash); e; prev = e, e = e.next) {
      if (!addrEq(e.key, a)) continue;
      if (prev) prev.next = e.next;
      else if (e.next) this.m6.set(a.hash, e.next);
      else this.m6.delete(a.hash);
      this.n6--;
      this.resmall();
      return true;
    }
    return false;
  }

  clear(): void {
    this.m4.clear();
    this.m6.clear();
    this.n6 = 0;
    this.small6 = [];
    this.s0 = this.s1 = null;
    this.lastKey6 = null;
  }

  private resmall(): void {
    if (this.n6 > SMALL6) {
      this.small6 = null;
      this.s0 = this.s1 = null;
      return;
    }
    const s: Bucket<V>[] = [];
    for (const head of this.m6.values()) for (let e: Bucket<V> | null = head; e; e = e.next) s.push(e);
    this.small6 = s;
    this.s0 = s[0] ?? null;
    this.s1 = s[1] ?? null;
  }

  *entries(): IterableIterator<[IpAddr, V]> {
    yield* this.m4.entries();
    for (const head of this.m6.values()) for (let e: Bucket<V> | null = head; e; e = e.next) yield [e.key, e.value];
  }

  *keys(): IterableIterator<IpAddr> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[IpAddr, V]> {
    return this.entries();
  }

  forEach(fn: (v: V, k: IpAddr) => void): void {
    for (const [k, v] of this.entries()) fn(v, k);
  }
}

/**
 * A primitive key for a JS Map (insertion-ordered, e.g. for LRU): the number for IPv4, the text
 * form (made once per Ip6 value) for IPv6.
 */
export function addrKey(a: IpAddr): number | string {
  return typeof a === 'number' ? a : a.toString();
}

/** A hash of `a`'s first `prefixLen` bits (no allocation; equal prefixes hash equal). */
export function prefixHash(a: IpAddr, prefixLen: number): number {
  if (typeof a === 'number') return (a & mask32(prefixLen)) >>> 0;
  return hash6(a.w0 & mask32(prefixLen), a.w1 & mask32(prefixLen - 32), a.w2 & mask32(prefixLen - 64), a.w3 & mask32(prefixLen - 96));
}

/**
 * Whether two local bindings of one port (a socket's or listener's address, and whether it is
 * IPv6-only) overlap, so that the second is EADDRINUSE, as Linux decides: the same address; 0.0.0.0
 * and any IPv4 address; :: and any IPv6 address, and any IPv4 one unless it is IPv6-only.
 */
export function localOverlap(a: IpAddr, aV6Only: boolean, b: IpAddr, bV6Only: boolean): boolean {
  const any6 = (x: IpAddr) => typeof x !== 'number' && (x.w0 | x.w1 | x.w2 | x.w3) === 0;
  if (any6(a) && any6(b)) return true;
  if (any6(a)) return typeof b !== 'number' || !aV6Only;
  if (any6(b)) return typeof a !== 'number' || !bV6Only;
  if (a === 0) return typeof b === 'number';
  if (b === 0) return typeof a === 'number';
  return addrEq(a, b);
}
