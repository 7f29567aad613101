/**
 * Routing tables and policy rules of a virtual server, for both IP families.
 *
 * A RouteTable does longest-prefix match with one hash map per (family, prefix length) in use: a
 * lookup costs at most (number of distinct prefix lengths of that family) map probes, whatever the
 * number of routes, and never allocates (IPv6 prefixes are found by `prefixHash`, then checked).
 * Rules (`ip rule` style) choose a table by source prefix and/or socket mark, in priority order.
 */
import { addrEq, addrToString, familyOf, IpAddr, maskAddr, prefixHash, prefixMatch } from '../protocols/ip/addr';

export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;

export type RouteScope = 'link' | 'global' | 'host';

export interface Route {
  /** Destination prefix (masked), of either family. */
  dst: IpAddr;
  prefixLen: number;
  /** Next hop; 0 (either family) for a connected (on-link) route. */
  gateway: IpAddr;
  /** Index of the link (in its VS) the route leaves through. */
  link: number;
  /** Preferred source address (0 = choose from the link). */
  src: IpAddr;
  metric: number;
  /** 'connected' routes come from addresses; 'static' from config or the control socket. */
  proto: 'connected' | 'static';
}

/** IPv4 netmask of a prefix length. */
export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** Routes of one family, by prefix length. */
class FamilyRoutes {
  /** byLen[l] maps the hash of a masked destination to its routes (ordered by metric; for IPv6 the list may mix prefixes that collide). */
  readonly byLen: (Map<number, Route[]> | undefined)[];
  /** Prefix lengths in use, longest first. */
  lens: number[] = [];
  constructor(bits: number) {
    this.byLen = new Array(bits + 1);
  }
}

export class RouteTable {
  private readonly v4 = new FamilyRoutes(32);
  private readonly v6 = new FamilyRoutes(128);
  private count = 0;

  constructor(readonly id: number) {}

  get size(): number {
    return this.count;
  }

  add(r: Route): void {
    const fam = familyOf(r.dst);
    if (!Number.isInteger(r.prefixLen) || r.prefixLen < 0 || r.prefixLen > fam.bits) throw new RangeError(`bad prefix length ${r.prefixLen}`);
    if (r.gateway !== 0 && familyOf(r.gateway) !== fam) throw new RangeError(`route ${addrToString(r.dst)}/${r.prefixLen}: gateway of another family`);
    r.dst = maskAddr(r.dst, r.prefixLen);
    const f = typeof r.dst === 'number' ? this.v4 : this.v6;
    let m = f.byLen[r.prefixLen];
    if (!m) {
      m = new Map();
      f.byLen[r.prefixLen] = m;
      f.lens.push(r.prefixLen);
      f.lens.sort((a, b) => b - a);
    }
    const k = prefixHash(r.dst, r.prefixLen);
    const list = m.get(k) ?? [];
    if (list.some((x) => addrEq(x.dst, r.dst) && addrEq(x.gateway, r.gateway) && x.link === r.link && x.metric === r.metric)) {
      throw new Error(`route ${addrToString(r.dst)}/${r.prefixLen} via ${addrToString(r.gateway)} already exists`);
    }
    list.push(r);
    list.sort((a, b) => a.metric - b.metric);
    m.set(k, list);
    this.count++;
  }

  /** Removes routes matching dst/prefixLen (and `match` when given). Returns how many. */
  remove(dst: IpAddr, prefixLen: number, match?: (r: Route) => boolean): number {
    const f = typeof dst === 'number' ? this.v4 : this.v6;
    const m = f.byLen[prefixLen];
    if (!m) return 0;
    const k = prefixHash(dst, prefixLen);
    const list = m.get(k);
    if (!list) return 0;
    const keep = list.filter((r) => !prefixMatch(r.dst, dst, prefixLen) || (match ? !match(r) : false));
    const removed = list.length - keep.length;
    if (keep.length) m.set(k, keep);
    else m.delete(k);
    if (m.size === 0) {
      f.byLen[prefixLen] = undefined;
      f.lens = f.lens.filter((l) => l !== prefixLen);
    }
    this.count -= removed;
    return removed;
  }

  /** Longest-prefix match in the family of `addr`; null when no route. */
  lookup(addr: IpAddr): Route | null {
    if (typeof addr === 'number') {
      const f = this.v4;
      const lens = f.lens;
      for (let i = 0; i < lens.length; i++) {
        const l = lens[i]!;
        const list = f.byLen[l]!.get((addr & maskOf(l)) >>> 0);
        if (list) return list[0]!;
      }
      return null;
    }
    const f = this.v6;
    const lens = f.lens;
    for (let i = 0; i < lens.length; i++) {
      const l = lens[i]!;
      const list = f.byLen[l]!.get(prefixHash(addr, l));
      if (!list) continue;
      for (let j = 0; j < list.length; j++) if (prefixMatch(list[j]!.dst, addr, l)) return list[j]!;
    }
    return null;
  }

  routes(): Route[] {
    const out: Route[] = [];
    for (const f of [this.v4, this.v6]) for (const l of f.lens) for (const list of f.byLen[l]!.values()) out.push(...list);
    return out;
  }
}

export interface Rule {
  priority: number;
  /** Source prefix (from), or prefixLen 0 for any source of either family. */
  src: IpAddr;
  srcLen: number;
  /** Socket mark to match (fwmark), or undefined for any. */
  mark?: number;
  table: number;
}

/** Ordered policy rules; the default set is "lookup main" (priority 32766). */
export class RuleSet {
  private rules: Rule[] = [{ priority: 32766, src: 0, srcLen: 0, table: TABLE_MAIN }];

  add(r: Rule): void {
    if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 32767) throw new RangeError(`rule priority must be 0..32767, got ${r.priority}`);
    r.src = maskAddr(r.src, r.srcLen);
    this.rules.push(r);
    this.rules.sort((a, b) => a.priority - b.priority);
  }

  remove(priority: number): number {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.priority !== priority);
    return before - this.rules.length;
  }

  list(): readonly Rule[] {
    return this.rules;
  }

  /**
   * The route for a packet to `dst` from `src` (0 when not chosen yet) with socket mark `mark`: the
   * tables of the matching rules, in order. A rule with a source prefix matches sources of its
   * family only (an unchosen source matches no prefix, as in Linux).
   */
  select(src: IpAddr, mark: number, tables: Map<number, RouteTable>, dst: IpAddr): Route | null {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      // `from ::/0` (length 0, an IPv6 value) matches IPv6 sources only; `all` (0, the number 0) any.
      if ((r.srcLen || typeof r.src !== 'number') && !prefixMatch(src, r.src, r.srcLen)) continue;
      if (r.mark !== undefined && r.mark !== mark) continue;
      const t = tables.get(r.table);
      if (!t) continue;
      const route = t.lookup(dst);
      if (route) return route;
    }
    return null;
  }
}
