/**
 * Routing tables and policy rules of a virtual server.
 *
 * A RouteTable does longest-prefix match with one hash map per prefix length in use: a lookup
 * costs at most (number of distinct prefix lengths) map probes, whatever the number of routes.
 * Rules (`ip rule` style) choose a table by source prefix and/or socket mark, in priority order.
 * Addresses are IPv4 u32 values here; the IPv6 issue adds a 128-bit twin with the same shape.
 */
import { ipv4ToString } from '../protocols/ipv4';

export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;

export type RouteScope = 'link' | 'global' | 'host';

export interface Route {
  dst: number;
  prefixLen: number;
  /** Next hop; 0 for a connected (on-link) route. */
  gateway: number;
  /** Index of the link (in its VS) the route leaves through. */
  link: number;
  /** Preferred source address (0 = choose from the link). */
  src: number;
  metric: number;
  /** 'connected' routes come from addresses; 'static' from config or the control socket. */
  proto: 'connected' | 'static';
}

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export class RouteTable {
  /** byLen[l] maps a masked destination to its routes (ordered by metric). */
  private readonly byLen: (Map<number, Route[]> | undefined)[] = new Array(33);
  /** Prefix lengths in use, longest first. */
  private lens: number[] = [];
  private count = 0;

  constructor(readonly id: number) {}

  get size(): number {
    return this.count;
  }

  add(r: Route): void {
    if (r.prefixLen < 0 || r.prefixLen > 32) throw new RangeError(`bad prefix length ${r.prefixLen}`);
    r.dst = (r.dst & maskOf(r.prefixLen)) >>> 0;
    let m = this.byLen[r.prefixLen];
    if (!m) {
      m = new Map();
      this.byLen[r.prefixLen] = m;
      this.lens.push(r.prefixLen);
      this.lens.sort((a, b) => b - a);
    }
    const list = m.get(r.dst) ?? [];
    if (list.some((x) => x.gateway === r.gateway && x.link === r.link && x.metric === r.metric)) {
      throw new Error(`route ${ipv4ToString(r.dst)}/${r.prefixLen} via ${ipv4ToString(r.gateway)} already exists`);
    }
    list.push(r);
    list.sort((a, b) => a.metric - b.metric);
    m.set(r.dst, list);
    this.count++;
  }

  /** Removes routes matching dst/prefixLen (and gateway/link when given). Returns how many. */
  remove(dst: number, prefixLen: number, match?: (r: Route) => boolean): number {
    const m = this.byLen[prefixLen];
    if (!m) return 0;
    const key = (dst & maskOf(prefixLen)) >>> 0;
    const list = m.get(key);
    if (!list) return 0;
    const keep = match ? list.filter((r) => !match(r)) : [];
    const removed = list.length - keep.length;
    if (keep.length) m.set(key, keep);
    else m.delete(key);
    if (m.size === 0) {
      this.byLen[prefixLen] = undefined;
      this.lens = this.lens.filter((l) => l !== prefixLen);
    }
    this.count -= removed;
    return removed;
  }

  /** Longest-prefix match; null when no route. */
  lookup(addr: number): Route | null {
    const lens = this.lens;
    for (let i = 0; i < lens.length; i++) {
      const l = lens[i]!;
      const list = this.byLen[l]!.get((addr & maskOf(l)) >>> 0);
      if (list) return list[0]!;
    }
    return null;
  }

  routes(): Route[] {
    const out: Route[] = [];
    for (const l of this.lens) for (const list of this.byLen[l]!.values()) out.push(...list);
    return out;
  }
}

export interface Rule {
  priority: number;
  /** Source prefix (from), or prefixLen 0 for any. */
  src: number;
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
    r.src = (r.src & maskOf(r.srcLen)) >>> 0;
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

  /** Tables to consult in order for a packet from `src` with socket mark `mark`. */
  select(src: number, mark: number, tables: Map<number, RouteTable>, dst: number): Route | null {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.srcLen && ((src & maskOf(r.srcLen)) >>> 0) !== r.src) continue;
      if (r.mark !== undefined && r.mark !== mark) continue;
      const t = tables.get(r.table);
      if (!t) continue;
      const route = t.lookup(dst);
      if (route) return route;
    }
    return null;
  }
}
