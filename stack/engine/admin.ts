/**
 * Virtual server administration: links, addresses (both families), routes and rules. Every entry
 * point checks its input with the one validator (stack/control/validate.ts) first, then updates the demux
 * index, the VS's tables and the driver's ownership (XDP maps).
 */
import { macToString } from '../../driver/types';
import { macEquals } from '../../protocols/ethernet';
import { addrEq, addrToString, Ip6, IpAddr as IpAddrValue, isLinkLocal6, linkLocalFromMac, maskAddr, parseCidr, prefixMatch } from '../../protocols/ip/addr';
import { NeighborCache } from '../neighbor';
import { maskOf, Route, TABLE_MAIN } from '../routing';
import { checkAddress, checkDecap, MAX_LINK_ADDRESSES, checkLink, checkRoute, checkRule, checkVip, defined, enforce, parseAddrText, parseRoute, parseRuleFrom } from '../control/validate';
import { Address, Link, VipState, VirtualServer } from '../vs';

import type { Device } from './device';
import type { LinkGroup } from '../link/demux';
import type { Arp } from '../link/arp';
import type { Ndp } from '../link/ndp';
import type { NeighborHost, NeighborParams } from '../neighbor';
import type { TimerWheel } from '../timers';
import type { EngineState } from '../control/validate';

/** The limited broadcast 255.255.255.255 (RFC 919): owned on a VLAN with the link's IPv4 addresses. */
const LIMITED_BROADCAST = 0xffffffff;

/** What VS administration needs from the engine (which is also the neighbor caches' host). */
export interface AdminHost extends NeighborHost {
  readonly devices: readonly Device[];
  readonly state: EngineState;
  readonly wheel: TimerWheel;
  readonly neighParams: NeighborParams;
  readonly arp: Arp;
  readonly ndp: Ndp;
  device(name: string): Device;
  groupOf(link: Link, create?: boolean): LinkGroup | null;
  /** Forgets the (now empty) demux group of `link`'s (device, VLAN). */
  dropGroup(link: Link): void;
}

export interface LinkSpec {
  name?: string;
  device: string;
  vlan?: number;
  mac?: Uint8Array;
  mtu?: number;
}

export interface RouteSpec {
  /** 'a.b.c.d/n', 'x::/n', or 'default' (IPv4 unless `via` is IPv6). */
  dst: string;
  via?: string;
  /** Link name; needed for a connected route without gateway when several links exist, and for a link-local gateway. */
  link?: string;
  /** The gateway is on `link` although no address of the link covers it (Linux's `onlink`). */
  onlink?: boolean;
  src?: string;
  metric?: number;
  table?: number;
}

export interface RuleSpec {
  priority: number;
  from?: string;
  fwmark?: number;
  table: number;
}

export function addLink(eng: AdminHost, vs: VirtualServer, spec: LinkSpec): Link {
  // The validator's rules (name, VLAN, MAC, MTU; a (device, VLAN, MAC) used by another link).
  const asConfig: Record<string, unknown> = { device: spec.device };
  if (spec.name !== undefined) asConfig.name = spec.name;
  if (spec.vlan !== undefined) asConfig.vlan = spec.vlan;
  if (spec.mac !== undefined) asConfig.mac = macToString(spec.mac);
  if (spec.mtu !== undefined) asConfig.mtu = spec.mtu;
  enforce(`virtual server '${vs.name}': link`, (c) => checkLink(c, asConfig, '', eng.state, vs.name, vs.links.length));
  const dev = eng.device(spec.device);
  const vlan = spec.vlan ?? -1;
  const name = spec.name ?? (vlan >= 0 ? `${dev.name}.${vlan}` : dev.name);
  const mac = spec.mac ? Uint8Array.from(spec.mac) : Uint8Array.from(dev.mac);
  const mtu = spec.mtu ?? dev.mtu;
  const link = new Link(vs, vs.links.length, name, dev.index, dev.name, vlan, mac, mtu);
  link.neigh = new NeighborCache(eng.wheel, eng, link, { ...eng.neighParams, maxEntries: vs.maxNeighbors });
  const grp = eng.groupOf(link, true)!;
  grp.links.push(link);
  grp.first = grp.links[0]!;
  vs.links.push(link);
  dev.ownMac?.(mac, vlan, true);
  return link;
}

export function removeLink(eng: AdminHost, vs: VirtualServer, linkName: string): void {
  const link = vs.link(linkName);
  if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
  // Configured addresses first; the link-local address goes with the last IPv6 one.
  for (const a of [...link.addrs].filter((x) => !x.auto)) removeAddress(eng, vs, link.name, `${addrToString(a.addr)}/${a.prefixLen}`);
  for (const a of [...link.addrs]) dropAddress(eng, link, a);
  for (const t of vs.tables.values()) for (const r of t.routes()) if (r.link === link.index) t.remove(r.dst, r.prefixLen, (x) => x === r);
  link.neigh.flush();
  vs.own.add(link.counters); // the VS keeps what its removed link counted
  const g = eng.groupOf(link)!;
  g.links.splice(g.links.indexOf(link), 1);
  const list = g.links;
  g.first = list.length ? list[0]! : null;
  if (!list.length) eng.dropGroup(link);
  const dev = eng.devices[link.dev]!;
  if (!list.some((l) => macEquals(l.mac, 0, link.mac, 0))) dev.ownMac?.(link.mac, link.vlan, false);
  // Renumber the remaining links and the routes that refer to them.
  const removed = vs.links.indexOf(link);
  vs.links.splice(removed, 1);
  for (let i = removed; i < vs.links.length; i++) vs.links[i]!.index = i;
  for (const t of vs.tables.values()) for (const r of t.routes()) if (r.link > removed) r.link--;
}

export function addAddress(eng: AdminHost, vs: VirtualServer, linkName: string, cidr: string): void {
  const link = vs.link(linkName);
  if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
  enforce(`virtual server '${vs.name}': address`, (c) => {
    const n = link.addrs.reduce((k, a) => (a.auto ? k : k + 1), 0);
    if (n >= MAX_LINK_ADDRESSES) c.fail('', `link '${linkName}' has ${n} addresses, the most one may have`);
    else checkAddress(c, cidr, '', eng.state, eng.state.link(link));
  });
  const { addr, prefixLen } = parseCidr(cidr);
  if (link.addrs.some((a) => addrEq(a.addr, addr))) throw new Error(`virtual server '${vs.name}' already has address ${addrToString(addr)} on '${linkName}'`);
  if (typeof addr === 'number') return addAddress4(eng, vs, link, addr, prefixLen);
  // IPv6: the link's link-local address comes with its first IPv6 address (RFC 4291 2.1: every
  // interface has one), unless a link-local address is configured explicitly.
  if (!isLinkLocal6(addr) && !link.addrs.some((a) => typeof a.addr !== 'number' && isLinkLocal6(a.addr))) {
    addAddress6(eng, vs, link, linkLocalFromMac(link.mac), 64, true);
  }
  // A configured link-local address replaces the one made from the MAC.
  if (isLinkLocal6(addr)) for (const a of link.addrs.filter((x) => x.auto)) dropAddress(eng, link, a);
  addAddress6(eng, vs, link, addr, prefixLen, false);
}

function addAddress4(eng: AdminHost, vs: VirtualServer, link: Link, addr: number, prefixLen: number): void {
  const g = eng.groupOf(link)!;
  const mask = maskOf(prefixLen);
  const broadcast = prefixLen <= 30 ? ((addr & mask) | ~mask) >>> 0 : 0;
  // A secondary address in a subnet the link already has shares its connected route (as Linux).
  const main = vs.table(TABLE_MAIN, true)!;
  const net = (addr & mask) >>> 0;
  const sameNet = link.addrs.some((a) => typeof a.addr === 'number' && a.prefixLen === prefixLen && prefixMatch(a.addr, addr, prefixLen));
  if (!sameNet) main.add({ dst: net, prefixLen, gateway: 0, link: link.index, src: addr, metric: 0, proto: 'connected' });
  link.addrs.push({ addr, prefixLen, broadcast, state: 'preferred' });
  g.addrs.set(addr | 0, link);
  if (broadcast && !g.bcast.has(broadcast | 0)) g.bcast.set(broadcast | 0, link);
  const dev = eng.devices[link.dev]!;
  dev.own?.(addr, link.vlan, true);
  // Broadcasts to the subnet and to 255.255.255.255 are for the stack's sockets bound to 0.0.0.0
  // (the XDP program redirects IPv4 to the Ethernet broadcast for owned destinations). The driver
  // counts owners: each address holds them once.
  if (broadcast) dev.own?.(broadcast, link.vlan, true);
  dev.own?.(LIMITED_BROADCAST, link.vlan, true);
  eng.arp.announce(link, addr);
}

function addAddress6(eng: AdminHost, vs: VirtualServer, link: Link, addr: Ip6, prefixLen: number, auto: boolean): void {
  const g = eng.groupOf(link)!;
  // The connected route of the prefix (not for link-local: those need their link named anyway).
  const main = vs.table(TABLE_MAIN, true)!;
  const sameNet = link.addrs.some((a) => typeof a.addr !== 'number' && a.prefixLen === prefixLen && prefixMatch(a.addr, addr, prefixLen));
  if (!isLinkLocal6(addr) && !sameNet && prefixLen < 128) {
    main.add({ dst: maskAddr(addr, prefixLen), prefixLen, gateway: 0, link: link.index, src: addr, metric: 256, proto: 'connected' });
  }
  const a: Address = { addr, prefixLen, broadcast: 0, state: 'tentative' };
  if (auto) a.auto = true;
  link.addrs.push(a);
  g.tentative6.set(addr, link);
  eng.devices[link.dev]!.own?.(addr, link.vlan, true);
  eng.ndp.addressAdded(link, a);
}

export function removeAddress(eng: AdminHost, vs: VirtualServer, linkName: string, cidr: string): void {
  const link = vs.link(linkName);
  if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
  const { addr, prefixLen } = parseCidr(cidr);
  const a = link.addrs.find((x) => addrEq(x.addr, addr) && x.prefixLen === prefixLen);
  if (!a) throw new Error(`virtual server '${vs.name}' has no address ${cidr} on '${linkName}'`);
  dropAddress(eng, link, a);
  // The link-local address made for the IPv6 addresses goes with the last of them.
  if (typeof addr !== 'number' && !a.auto && !link.addrs.some((x) => typeof x.addr !== 'number' && !x.auto)) {
    for (const x of link.addrs.filter((y) => y.auto)) dropAddress(eng, link, x);
  }
}

/** Takes address `a` off `link`: demux index, connected route, ownership, NDP state. */
function dropAddress(eng: AdminHost, link: Link, a: Address): void {
  const vs = link.vs;
  const i = link.addrs.indexOf(a);
  if (i < 0) return;
  link.addrs.splice(i, 1);
  const g = eng.groupOf(link)!;
  const addr = a.addr;
  const prefixLen = a.prefixLen;
  const main = vs.table(TABLE_MAIN);
  const other = link.addrs.find((x) => typeof x.addr === typeof addr && x.prefixLen === prefixLen && prefixMatch(x.addr, addr, prefixLen));
  const net = maskAddr(addr, prefixLen);
  if (other) {
    // A secondary address of the subnet remains: the connected route now prefers it as source.
    const r = main?.routes().find((x) => x.proto === 'connected' && x.link === link.index && addrEq(x.dst, net) && x.prefixLen === prefixLen);
    if (r && addrEq(r.src, addr)) r.src = other.addr;
  } else {
    main?.remove(net, prefixLen, (r) => r.proto === 'connected' && r.link === link.index);
  }
  // Static routes whose source was this address go with it, as Linux flushes the routes whose
  // preferred source is a deleted address (fib_sync_down_addr): the VS can no longer send from it.
  if (!vs.links.some((l) => l.addrs.some((x) => addrEq(x.addr, addr)))) {
    for (const t of vs.tables.values()) {
      for (const r of t.routes()) if (r.proto === 'static' && addrEq(r.src, addr)) t.remove(r.dst, r.prefixLen, (x) => x === r);
    }
  }
  if (typeof addr === 'number') {
    g.addrs.delete(addr | 0);
    if (a.broadcast && g.bcast.get(a.broadcast | 0) === link && !link.addrs.some((x) => x.broadcast === a.broadcast)) g.bcast.delete(a.broadcast | 0);
    const dev = eng.devices[link.dev]!;
    if (a.broadcast) dev.own?.(a.broadcast, link.vlan, false);
    dev.own?.(LIMITED_BROADCAST, link.vlan, false);
  } else {
    if (g.addrs6.get(addr) === link) g.deleteAddr6(addr);
    if (g.tentative6.get(addr) === link) g.tentative6.delete(addr);
    eng.ndp.addressRemoved(link, a);
  }
  eng.devices[link.dev]!.own?.(addr, link.vlan, false);
}

export function addRoute(eng: AdminHost, vs: VirtualServer, spec: RouteSpec): Route {
  enforce(`virtual server '${vs.name}': route ${spec.dst}`, (c) => checkRoute(c, defined({ ...spec }), '', eng.state, vs.name));
  // Read as the validator reads it (a scoped gateway, fe80::1%link, names its link).
  const { dst, prefixLen, gateway, src, link: linkName } = parseRoute(spec);
  const viaText = gateway !== 0 ? addrToString(gateway) : '';
  const table = spec.table ?? TABLE_MAIN;
  if (!Number.isInteger(table) || table < 1 || table > 0xffffffff) throw new Error(`bad table id ${spec.table}`);
  let link: Link | undefined;
  if (linkName) {
    link = vs.link(linkName);
    if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
  } else if (gateway !== 0) {
    if (typeof gateway !== 'number' && isLinkLocal6(gateway)) throw new Error(`route ${spec.dst}: a link-local gateway ${viaText} needs its 'link'`);
    // The gateway must be on a connected network.
    const r = vs.table(TABLE_MAIN)?.lookup(gateway);
    if (!r || r.gateway !== 0) throw new Error(`gateway ${viaText} is not on a connected network of virtual server '${vs.name}'`);
    link = vs.links[r.link];
  } else if (vs.links.length === 1) {
    link = vs.links[0];
  } else {
    throw new Error(`route ${spec.dst}: give 'via' or 'link'`);
  }
  const route: Route = {
    dst, prefixLen, gateway, link: link!.index, src, metric: spec.metric ?? 0, proto: 'static',
  };
  vs.table(table, true)!.add(route);
  return route;
}

export function removeRoute(vs: VirtualServer, spec: RouteSpec): number {
  const { dst, prefixLen, gateway } = parseRoute(spec);
  const n = vs.table(spec.table ?? TABLE_MAIN)?.remove(dst, prefixLen, (r) => r.proto === 'static' && (spec.via === undefined || addrEq(r.gateway, gateway))) ?? 0;
  if (!n) throw new Error(`virtual server '${vs.name}' has no route ${spec.dst}${spec.via ? ` via ${spec.via}` : ''}`);
  return n;
}

export function addRule(eng: AdminHost, vs: VirtualServer, spec: RuleSpec): void {
  enforce(`virtual server '${vs.name}': rule ${spec.priority}`, (c) => checkRule(c, defined({ ...spec }), '', eng.state, vs.name));
  const { src, srcLen } = parseRuleFrom(spec.from);
  vs.rules.add({ priority: spec.priority, src, srcLen, mark: spec.fwmark, table: spec.table });
}

// ---------------------------------------------------------------------------------------------
// VIPs and decapsulation (stack/ip/decap.ts): state only; a VIP is never owned in the XDP maps
// (no ARP/NDP for it), its traffic comes to the VS's link addresses, encapsulated.

/** Adds a VIP (one address, either family) to `vs`. Returns it. */
export function addVip(eng: AdminHost, vs: VirtualServer, text: string): IpAddrValue {
  let v: IpAddrValue | undefined;
  enforce(`virtual server '${vs.name}': VIP`, (c) => { v = checkVip(c, text, '', vs.name, vs.links.map((l) => eng.state.link(l)), vs.vips?.list ?? []); });
  (vs.vips ??= new VipState()).add(v!);
  return v!;
}

/** Removes a VIP of `vs` (its connections stay, as sockets do when Linux removes an address). */
export function removeVip(vs: VirtualServer, text: string): void {
  let v: IpAddrValue;
  try {
    v = parseAddrText(text);
  } catch (e) {
    throw new Error(`virtual server '${vs.name}': VIP: ${(e as Error).message}`);
  }
  if (!vs.vips?.delete(v)) throw new Error(`virtual server '${vs.name}' has no VIP ${addrToString(v)}`);
  settleVips(vs);
}

/** Sets where `vs` takes encapsulated traffic from (`from`: the load balancers' CIDRs; empty: nowhere) and the overhead. */
export function setDecap(vs: VirtualServer, spec: { from: string[]; overhead?: number }): void {
  let d: ReturnType<typeof checkDecap>;
  enforce(`virtual server '${vs.name}': decap`, (c) => { d = checkDecap(c, defined({ ...spec }), ''); });
  const st = (vs.vips ??= new VipState());
  st.from = d!.from;
  st.configuredOverhead = d!.overhead;
  settleVips(vs);
}

/** A VS with neither VIPs nor load balancers has no state: protocols 4 and 41 are unknown to it again. */
function settleVips(vs: VirtualServer): void {
  const st = vs.vips;
  if (st && st.list.length === 0 && st.from.length === 0 && st.configuredOverhead === undefined) vs.vips = null;
}
