/**
 * Rows of `xdpstack show` (stack.show(), the control socket, the CLI's tables and JSON) for the
 * tables that hold addresses: links, addresses, routes, rules and neighbors. Every address goes
 * through `addrToString`, so a row is the same for an IPv4 number and an IPv6 `Ip6` value; the
 * engine's "none" (0 for a gateway or a preferred source, of either family) shows as null.
 *
 * The builders take the few fields they print (structural types), not the engine's classes.
 */
import { addrToString, IpAddr, isIp6, isUnspecified } from '../protocols/ip/addr';
import { macToString } from '../driver/types';
import { NSTATE_NAMES } from './neighbor';
import type { Neighbor } from './neighbor';
import type { Route, Rule } from './routing';
import type { Address, AddressState } from './vs';

/** RFC 4862 section 5.4: an address is tentative until DAD passes; a duplicate is not used. */
export type AddrState = AddressState;

/** What the rows print of an address (absent state: preferred). */
export type AddrLike = Pick<Address, 'addr' | 'prefixLen'> & Partial<Pick<Address, 'broadcast' | 'state'>>;
/** What the rows print of a route, rule and neighbor: the engine's own types. */
export type RouteLike = Route;
export type RuleLike = Rule;
export type NeighborLike = Pick<Neighbor, 'ip' | 'state' | 'mac'> & { queue: { length: number } };

/** An address as text, or null for "none" (undefined, null, 0, ::). */
export function addrOrNull(a: IpAddr | null | undefined): string | null {
  if (a === undefined || a === null || isUnspecified(a)) return null;
  return addrToString(a);
}

/** "address/prefix-length" of either family. */
export function cidrText(a: IpAddr, prefixLen: number): string {
  return `${addrToString(a)}/${prefixLen}`;
}

/**
 * "address:port", "[v6address]:port" (RFC 3986 3.2.2), '*' for the unspecified address; a `zone`
 * (the link of a link-local address) as "[fe80::1%link]:port" (RFC 4007 11).
 */
export function hostPort(a: IpAddr | null | undefined, port: number, zone?: string): string {
  const t = addrOrNull(a);
  return `${t === null ? '*' : t.includes(':') ? `[${t}${zone ? `%${zone}` : ''}]` : t}:${port}`;
}

/** A route's destination: 'default' for a /0 of either family (as `ip route` and `ip -6 route`). */
export function routeDstText(dst: IpAddr, prefixLen: number): string {
  return prefixLen === 0 ? 'default' : cidrText(dst, prefixLen);
}

/** The neighbor state as Linux names it (`ip neigh`); ARP and NDP entries share the states. */
export function neighborStateName(state: number): string {
  return (NSTATE_NAMES as readonly string[])[state] ?? String(state);
}

/** A link's addresses as "a/len" texts. */
export function linkAddressTexts(addrs: readonly AddrLike[]): string[] {
  return addrs.map((a) => cidrText(a.addr, a.prefixLen));
}

export function addressRow(vs: string, link: string, a: AddrLike) {
  return {
    vs, link, address: cidrText(a.addr, a.prefixLen), broadcast: addrOrNull(a.broadcast),
    state: a.state ?? 'preferred',
  };
}

export function routeRow(vs: string, table: number, r: RouteLike, linkName: string | null) {
  return {
    vs, table, dst: routeDstText(r.dst, r.prefixLen), via: addrOrNull(r.gateway), link: linkName,
    src: addrOrNull(r.src), metric: r.metric, proto: r.proto,
  };
}

export function ruleRow(vs: string, r: RuleLike) {
  // 'all' matches both families; `from ::/0` (an IPv6 value of length 0) only IPv6 sources.
  return { vs, priority: r.priority, from: r.srcLen || isIp6(r.src) ? cidrText(r.src, r.srcLen) : 'all', fwmark: r.mark ?? null, table: r.table };
}

export function neighborRow(vs: string, link: string, n: NeighborLike) {
  const state = neighborStateName(n.state);
  // No link-layer address while resolving (or once resolution failed), as `ip neigh` prints none.
  const known = state !== 'INCOMPLETE' && state !== 'FAILED';
  return { vs, link, address: addrToString(n.ip), mac: known ? macToString(n.mac) : null, state, queued: n.queue.length };
}
