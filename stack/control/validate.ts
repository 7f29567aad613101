/**
 * The one validator of virtual-server settings: names, links, VLAN/MAC conflicts, addresses,
 * routes and policy rules. The same rules serve
 *   - config files (stack/control/config.ts: against the state the file builds, every problem at once),
 *   - the control socket and the library API (stack/control/control.ts, stack/stack.ts), and the engine's
 *     entry points (stack/engine/engine.ts: createVs, addLink, addAddress, addRoute, addRule), checked
 *     against the running state (a VLAN + MAC already used by another VS, an address taken...).
 *
 * Shape rules (types, unknown keys) are checked by `Checker`; the semantic rules take parsed values
 * and a `ValidationState` answering questions about what exists. A problem is reported as
 * (field path, message); at run time the first one becomes a `ValidationError`.
 *
 * Both families are accepted wherever an address is: a text with a colon is IPv6 (RFC 4291 2.2),
 * anything else IPv4. Addresses of the running state are `IpAddr` values (IPv4 a number, IPv6 an
 * `Ip6`) and are compared with `addrEq`, never `===`.
 *
 * IPv6 link-local addresses (fe80::/10, RFC 4291 2.5.6): every link gets one automatically
 * (fe80::/64 from its MAC, RFC 4862 5.3), so configuring one on a link replaces the automatic
 * one, as `ip addr add fe80::1/64 dev X` with `addrgenmode none` does on Linux. A link-local
 * address means nothing without its link, so it is accepted as an address of a link only; a route
 * through a link-local gateway must name its link (`link`, or the scoped form `fe80::1%LINK`), as
 * Linux needs `dev` for such a next hop.
 */
import { isBadSource4, parseCidr4 } from '../../protocols/ipv4';
import {
  addrEq, addrToString, ANY6, familyOf, IpAddr, isBadSource6, isIp6, isLinkLocal6, isUnspecified, maskAddr, parseAddr, parseCidr,
  prefixMatch, splitZone,
} from '../../protocols/ip/addr';
import { macToString } from '../../driver/types';
import { closest } from './suggest';
import type { Link, VirtualServer } from '../vs';

export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const NAME_HINT = 'letters, digits, _ . -; at most 64';
export const DEV_NAME_RE = /^[A-Za-z0-9_.:-]{1,15}$/;
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
export const LINK_KEYS = ['name', 'device', 'vlan', 'mac', 'mtu', 'addresses'] as const;
export const ROUTE_KEYS = ['dst', 'via', 'link', 'onlink', 'table', 'metric', 'src'] as const;
export const RULE_KEYS = ['priority', 'from', 'fwmark', 'table'] as const;
export const DECAP_KEYS = ['from', 'overhead'] as const;
/** Most bytes a load balancer's encapsulation may be said to add (an IPv6 header with extension headers). */
export const DECAP_OVERHEAD_MAX = 512;
/** The main table's rule that every VS has (as Linux's `32766: from all lookup main`). */
export const DEFAULT_RULE_PRIORITY = 32766;

/** A runtime change refused by the validator (the message names the field and the reason). */
export class ValidationError extends Error {
  constructor(message: string, readonly path = '') {
    super(message);
    this.name = 'ValidationError';
  }
}

export type Obj = Record<string, unknown>;
export type Fail = (path: string, message: string) => void;

export function join(p: string, k: string | number): string {
  if (typeof k === 'number') return `${p}[${k}]`;
  return p ? `${p}.${k}` : k;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Shape checks of JSON values; every problem is collected with its field path. */
export class Checker {
  readonly problems: { path: string; message: string }[] = [];

  fail(p: string, message: string): void {
    this.problems.push({ path: p || '(top level)', message });
  }

  isObject(v: unknown, p: string): v is Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.fail(p, `must be an object, got ${describe(v)}`);
      return false;
    }
    return true;
  }

  keys(o: Obj, p: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (allowed.includes(k)) continue;
      // A typo of an allowed key (`adresses`, `vlna`) is named, after the list.
      const near = closest(k, allowed);
      this.fail(join(p, k), `unknown key '${k}' (allowed: ${allowed.join(', ')})${near !== undefined ? `: did you mean '${near}'?` : ''}`);
    }
  }

  array(o: Obj, k: string, p: string, required: boolean): unknown[] | null {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), 'is required (an array)');
      return null;
    }
    if (!Array.isArray(v)) {
      this.fail(join(p, k), `must be an array, got ${describe(v)}`);
      return null;
    }
    // A sparse array (library API) would pass forEach with its holes unchecked.
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) {
        this.fail(join(join(p, k), i), 'is missing (a hole in the array)');
        return null;
      }
    }
    return v;
  }

  string(o: Obj, k: string, p: string, required: boolean, re?: RegExp, hint?: string): string | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), 'is required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.fail(join(p, k), `must be a string, got ${describe(v)}`);
      return undefined;
    }
    if (re && !re.test(v)) {
      this.fail(join(p, k), `${JSON.stringify(v)} is not valid${hint ? ` (${hint})` : ''}`);
      return undefined;
    }
    return v;
  }

  int(o: Obj, k: string, p: string, required: boolean, min: number, max: number): number | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), `is required (an integer ${min}..${max})`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.fail(join(p, k), `must be an integer, got ${describe(v)}`);
      return undefined;
    }
    if (v < min || v > max) {
      this.fail(join(p, k), `must be ${min}..${max}, got ${v}`);
      return undefined;
    }
    return v;
  }

  oneOf<T extends string | number>(o: Obj, k: string, p: string, required: boolean, values: readonly T[]): T | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), `is required (one of ${values.map((x) => JSON.stringify(x)).join(', ')})`);
      return undefined;
    }
    if (!values.includes(v as T)) {
      this.fail(join(p, k), `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(v)}`);
      return undefined;
    }
    return v as T;
  }

  bool(o: Obj, k: string, p: string): boolean | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.fail(join(p, k), `must be true or false, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  /** An address of either family (IPv6 when the text holds a colon); no zone. */
  addr(o: Obj, k: string, p: string, required: boolean): IpAddr | undefined {
    const s = this.string(o, k, p, required);
    if (s === undefined) return undefined;
    try {
      return parseAddrText(s);
    } catch (e) {
      this.fail(join(p, k), (e as Error).message);
      return undefined;
    }
  }

  /** Throws the first problem as a ValidationError (run-time changes: one clear line). */
  throwFirst(what: string): void {
    const p = this.problems[0];
    if (!p) return;
    throw new ValidationError(p.path && p.path !== '(top level)' ? `${what}: ${p.path}: ${p.message}` : `${what}: ${p.message}`, p.path);
  }
}

const ZONE_HINT = (s: string, zone: string) =>
  `not an address: ${JSON.stringify(s)} (a zone such as %${zone} belongs to a gateway only, e.g. "via": "fe80::1%${zone}"; an address names its link with 'link')`;

/** Parses an address of either family without a zone. Throws RangeError with a clear message. */
export function parseAddrText(s: string): IpAddr {
  if (typeof s === 'string' && s.includes('%')) throw new RangeError(ZONE_HINT(s, splitZone(s).zone || 'LINK'));
  return parseAddr(s);
}

/**
 * Parses "address/prefix-length" of either family (the address kept as given). IPv4 keeps its
 * messages ("not an IPv4 CIDR: ..."); IPv6 says "not an IPv6 CIDR". Throws RangeError.
 */
export function parseCidrText(s: string): { addr: IpAddr; prefixLen: number } {
  if (typeof s !== 'string' || !s.includes(':')) return parseCidr4(s);
  if (s.includes('%')) {
    const zone = /%([^/]*)/.exec(s)?.[1] || 'LINK';
    throw new RangeError(ZONE_HINT(s, zone));
  }
  try {
    const r = parseCidr(s);
    return { addr: r.addr, prefixLen: r.prefixLen };
  } catch (e) {
    throw new RangeError((e as Error).message.replace(/^not a CIDR/, 'not an IPv6 CIDR'));
  }
}

export function cidr(c: Checker, s: unknown, p: string): { addr: IpAddr; prefixLen: number } | undefined {
  if (typeof s !== 'string') {
    c.fail(p, `must be a string like "10.0.0.1/24" or "fd00::1/64", got ${describe(s)}`);
    return undefined;
  }
  try {
    return parseCidrText(s);
  } catch (e) {
    c.fail(p, (e as Error).message);
    return undefined;
  }
}

/** 'IPv4' or 'IPv6'. */
export function familyName(a: IpAddr): string {
  return familyOf(a).name;
}

// ---------------------------------------------------------------------------------------------
// What the rules ask about the state they check against

export interface AddrFacts { addr: IpAddr; prefixLen: number; /** Where it was declared (config files). */ where?: string }

export interface LinkFacts {
  vs: string;
  name: string;
  device: string;
  /** 802.1Q id, -1 untagged. */
  vlan: number;
  /** Lower-case MAC, or `device:NAME` when it is the device's and the device's is not known. */
  mac: string;
  addrs: AddrFacts[];
  /** The link's MTU when known (its own, else its device's). */
  mtu?: number;
}

export interface ValidationState {
  /** A known device: its MTU and MAC when known (an AF_XDP device in a file: not yet). */
  device(name: string): { mtu?: number; mac?: string } | undefined;
  deviceNames(): string[];
  /** Who already uses (device, VLAN, MAC), as text for the message; undefined when free. */
  macUser(device: string, vlan: number, mac: string): string | undefined;
  /**
   * Who already has `addr` on (device, VLAN); undefined when free. (device, VLAN) is one link's
   * segment, so it is also the scope in which a link-local address must be unique.
   */
  addressUser(device: string, vlan: number, addr: IpAddr): string | undefined;
  /** The links of a VS (empty for a VS not yet created). */
  links(vs: string): LinkFacts[];
  /** Whether the VS has a link of this name (when absent: asked of links()). */
  hasLinkNamed?(vs: string, name: string): boolean;
  /** Whether the VS has a policy rule with this priority (its built-in main-table rule aside). */
  hasRulePriority(vs: string, priority: number): boolean;
  /** The VIPs of a VS (none for a VS not yet created; absent: none anywhere). */
  vips?(vs: string): IpAddr[];
}

const where = (device: string, vlan: number) => `device ${device}${vlan >= 0 ? ` VLAN ${vlan}` : ' (untagged)'}`;

// ---------------------------------------------------------------------------------------------
// Rules

/** A virtual server's name. */
export function vsNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return `must be a string, got ${describe(name)}`;
  return NAME_RE.test(name) ? null : `${JSON.stringify(name)} is not valid (${NAME_HINT})`;
}

/**
 * Whether `addr` can be a host's own unicast address: IPv4 not 0/8 and not what `isBadSource4`
 * refuses as a source on the wire (RFC 1122 3.2.1.3: loopback 127/8, multicast, 240/4); IPv6 not
 * the unspecified address :: (RFC 4291 2.5.2) and not what `isBadSource6` refuses (loopback ::1,
 * multicast ff00::/8, IPv4-mapped ::ffff:0:0/96: RFC 4291 2.5.3, 2.7, 2.5.5.2). One rule for
 * config files, the control socket, the library API and the engine's entry points.
 */
export function isUsableUnicast(addr: IpAddr): boolean {
  if (typeof addr === 'number') return (addr >>> 24) !== 0 && !isBadSource4(addr);
  return !isUnspecified(addr) && !isBadSource6(addr);
}

/**
 * An interface address: a unicast host address (above) with a prefix length of 1..32 (IPv4) or
 * 1..128 (IPv6): a /0 would make the whole address space on-link.
 */
export function interfaceAddressProblem(addr: IpAddr, prefixLen: number, text: string): string | null {
  if (typeof addr === 'number') {
    if (!isUsableUnicast(addr)) return `${text} is not a usable unicast address (not 0/8, 127/8, multicast or 240/4)`;
    if (prefixLen < 1 || prefixLen > 32) return `${text}: prefix length must be 1..32`;
    return null;
  }
  if (!isUsableUnicast(addr)) return `${text} is not a usable unicast address (not ::, ::1, multicast ff00::/8 or IPv4-mapped ::ffff:0:0/96)`;
  if (prefixLen < 1 || prefixLen > 128) return `${text}: prefix length must be 1..128`;
  return null;
}

export interface LinkInput {
  name?: unknown;
  device?: unknown;
  vlan?: unknown;
  mac?: unknown;
  mtu?: unknown;
  addresses?: unknown;
}

/**
 * Checks one link object of virtual server `vs` (shape and rules) against `state`; `index` names
 * it when it has no name. Returns the link's facts (with the addresses that passed) for the checks
 * that refer to it, or undefined when it is not an object. Problems go to `c` under path `p`.
 */
export function checkLink(c: Checker, l: unknown, p: string, state: ValidationState, vs: string, index: number,
  siblings?: LinkFacts[]): LinkFacts | undefined {
  if (!c.isObject(l, p)) return undefined;
  c.keys(l, p, LINK_KEYS);
  const device = c.string(l, 'device', p, true);
  const dev = device !== undefined ? state.device(device) : undefined;
  if (device !== undefined && !dev) {
    c.fail(join(p, 'device'), `no device '${device}' (known: ${state.deviceNames().join(', ') || 'none'})`);
  }
  const vlan = c.int(l, 'vlan', p, false, 1, 4094) ?? -1;
  let mac = c.string(l, 'mac', p, false, MAC_RE, 'like 02:00:00:00:00:01');
  if (mac && (parseInt(mac.slice(0, 2), 16) & 1)) { c.fail(join(p, 'mac'), `${mac} is a multicast address`); mac = undefined; }
  const mtu = c.int(l, 'mtu', p, false, 68, dev?.mtu ?? 9000) ?? dev?.mtu;
  const lname = c.string(l, 'name', p, false, NAME_RE, 'letters, digits, _ . -') ??
    (device ? (vlan >= 0 ? `${device}.${vlan}` : device) : `#${index}`);
  // (The running state answers by name: building every link's facts for each new link made
  // adding N links in one request take N² MAC formattings, seconds of a stopped data path.)
  const dup = siblings ? siblings.some((x) => x.name === lname)
    : state.hasLinkNamed ? state.hasLinkNamed(vs, lname) : state.links(vs).some((x) => x.name === lname);
  if (dup) c.fail(p, `duplicate link name '${lname}' in virtual server '${vs}' (give links distinct 'name's)`);
  const effMac = (mac ?? dev?.mac ?? `device:${device}`).toLowerCase();
  const facts: LinkFacts = { vs, name: lname, device: device ?? '', vlan, mac: effMac, addrs: [], mtu };
  if (device && dev) {
    // Frames are demultiplexed by (device, VLAN, destination MAC): two links there would share them.
    const prev = state.macUser(device, vlan, effMac);
    if (prev) c.fail(p, `${where(device, vlan)} with the same MAC is already used by ${prev}: give one of them its own 'mac'`);
  }
  const addrs = c.array(l, 'addresses', p, false);
  if (addrs && addrs.length > MAX_LINK_ADDRESSES) {
    c.fail(join(p, 'addresses'), `at most ${MAX_LINK_ADDRESSES} addresses per link, got ${addrs.length}`);
    return facts;
  }
  addrs?.forEach((a, k) => {
    const ap = join(join(p, 'addresses'), k);
    const r = checkAddress(c, a, ap, state, facts);
    if (r) facts.addrs.push({ ...r, where: ap });
  });
  return facts;
}

/**
 * Most addresses one link may have (both families; its automatic IPv6 link-local one not
 * counted), and most VIPs one VS may have. Checks and the address list of a link grow with their count (a
 * request adding tens of thousands held the data path for minutes); a real link has a few.
 */
export const MAX_LINK_ADDRESSES = 1024;
export const MAX_VIPS = 4096;

/** Checks an address (CIDR text) for `link`: usable, and not already used on its (device, VLAN). */
export function checkAddress(c: Checker, a: unknown, p: string, state: ValidationState, link: LinkFacts): AddrFacts | undefined {
  const r = cidr(c, a, p);
  if (!r) return undefined;
  const bad = interfaceAddressProblem(r.addr, r.prefixLen, String(a));
  if (bad) { c.fail(p, bad); return undefined; }
  // RFC 8200 section 5: IPv6 needs links of 1280 bytes or more (IPv4: 68, the link's own minimum).
  const fam = familyOf(r.addr);
  if (link.mtu !== undefined && link.mtu < fam.minMtu) {
    c.fail(p, `${String(a)}: ${fam.name} needs a link MTU of at least ${fam.minMtu}${isIp6(r.addr) ? ' (RFC 8200 section 5)' : ''}, link '${link.name}' has ${link.mtu}`);
    return undefined;
  }
  const prev = (link.device ? state.addressUser(link.device, link.vlan, r.addr) : undefined) ??
    (link.addrs.some((x) => addrEq(x.addr, r.addr)) ? `link '${link.name}' itself` : undefined);
  if (prev) { c.fail(p, `${addrToString(r.addr)} is already used on ${where(link.device, link.vlan)} by ${prev}`); return undefined; }
  if ((state.vips?.(link.vs) ?? []).some((v) => addrEq(v, r.addr))) {
    c.fail(p, `${addrToString(r.addr)} is a VIP of virtual server '${link.vs}' (the load balancer answers ARP/NDP for it); remove the VIP first`);
    return undefined;
  }
  return r;
}

/**
 * A VIP of virtual server `vs` (text of one address, either family): a global unicast address the
 * VS serves but never answers ARP or NDP for. Not an address of one of the VS's links (`links`),
 * nor a VIP it has (`taken`). Returns the address, or undefined (problems to `c` under `p`).
 */
export function checkVip(c: Checker, a: unknown, p: string, vs: string, links: readonly LinkFacts[], taken: readonly IpAddr[]): IpAddr | undefined {
  if (taken.length >= MAX_VIPS) { c.fail(p, `virtual server '${vs}' has ${taken.length} VIPs, the most one may have`); return undefined; }
  if (typeof a !== 'string') { c.fail(p, `must be a string address like "198.51.100.10" or "2001:db8::10", got ${describe(a)}`); return undefined; }
  if (a.includes('/')) { c.fail(p, `${JSON.stringify(a)}: a VIP is one address, written without a prefix length`); return undefined; }
  let v: IpAddr;
  try {
    v = parseAddrText(a);
  } catch (e) {
    c.fail(p, (e as Error).message);
    return undefined;
  }
  if (!isUsableUnicast(v)) { c.fail(p, `${a} is not a usable unicast address`); return undefined; }
  // IPv4 169.254/16 (RFC 3927) as IPv6 fe80::/10: never forwarded by a router, so never a VIP.
  if (typeof v === 'number' ? (v >>> 16) === 0xa9fe : isLinkLocal6(v)) {
    c.fail(p, `${a} is link-local: a VIP is reached through a load balancer, so it is global`);
    return undefined;
  }
  if (taken.some((x) => addrEq(x, v))) { c.fail(p, `${addrToString(v)} is already a VIP of virtual server '${vs}'`); return undefined; }
  for (const l of links) {
    if (l.addrs.some((x) => addrEq(x.addr, v))) {
      c.fail(p, `${addrToString(v)} is an address of link '${l.name}' of virtual server '${vs}': a VIP is not an interface address (the load balancer's side answers ARP/NDP for it)`);
      return undefined;
    }
  }
  return v;
}

/** A VS's `decap` settings, parsed: the load balancers' source prefixes and the overhead (undefined: the default). */
export interface ParsedDecap {
  from: { addr: IpAddr; prefixLen: number }[];
  overhead?: number;
}

/**
 * A VS's `decap` object: `from`, the source prefixes (CIDR, either family) of the load balancers
 * it takes encapsulated traffic from (an empty list takes none), and `overhead`, the bytes their
 * encapsulation adds (0..512; default: the outer header the SYN came in, 20 or 40).
 */
export function checkDecap(c: Checker, d: unknown, p: string): ParsedDecap | undefined {
  if (!c.isObject(d, p)) return undefined;
  c.keys(d, p, DECAP_KEYS);
  const out: ParsedDecap = { from: [] };
  const from = c.array(d, 'from', p, true);
  let ok = from !== null;
  from?.forEach((x, i) => {
    const fp = join(join(p, 'from'), i);
    const r = cidr(c, x, fp);
    if (!r) { ok = false; return; }
    if (r.prefixLen === 0) { c.fail(fp, `${String(x)} would take tunnels from anyone (an open relay for the VIPs): list the load balancers' prefixes`); ok = false; return; }
    const net = maskAddr(r.addr, r.prefixLen);
    if (!addrEq(net, r.addr)) { c.fail(fp, `${String(x)} has host bits set (did you mean ${addrToString(net)}/${r.prefixLen}?)`); ok = false; return; }
    if (out.from.some((y) => y.prefixLen === r.prefixLen && addrEq(y.addr, net))) { c.fail(fp, `${String(x)} is listed twice`); ok = false; return; }
    out.from.push({ addr: net, prefixLen: r.prefixLen });
  });
  const before = c.problems.length;
  const oh = c.int(d, 'overhead', p, false, 0, DECAP_OVERHEAD_MAX);
  if (c.problems.length !== before) ok = false;
  if (oh !== undefined) out.overhead = oh;
  return ok ? out : undefined;
}

/**
 * The scoped gateway form `fe80::1%LINK` (RFC 4007 section 11) written as its two fields:
 * `{ via: 'fe80::1', link: 'LINK' }`. A spec without a zone, or whose zone and `link` disagree
 * (the validator reports it), is returned as it is.
 */
export function splitScopedVia<T extends { via?: string; link?: string }>(spec: T): T {
  if (typeof spec?.via !== 'string' || !spec.via.includes('%')) return spec;
  const { addr, zone } = splitZone(spec.via);
  if (!zone || (spec.link !== undefined && spec.link !== zone)) return spec;
  return { ...spec, via: addr, link: zone };
}

/**
 * The family of a route: its destination's, for 'default' its gateway's, else its source's, else
 * IPv4 (`default` alone means 0.0.0.0/0, as in `ip route`; write ::/0 for IPv6).
 */
export function routeFamilyOf(dst: IpAddr | 'default', via?: IpAddr, src?: IpAddr): 4 | 6 {
  const a = dst !== 'default' ? dst : via ?? src;
  return a !== undefined && isIp6(a) ? 6 : 4;
}

/** A route's values, parsed once for whoever applies it (the engine) after `checkRoute` passed. */
export interface ParsedRoute {
  /** The destination network (masked), `0` or `::` for a default route. */
  dst: IpAddr;
  prefixLen: number;
  /** The gateway, or 0 for none (a connected route); either family. */
  gateway: IpAddr;
  /** The preferred source, or 0 for none. */
  src: IpAddr;
  /** The link named by `link` or by the gateway's zone. */
  link?: string;
  family: 4 | 6;
}

/**
 * Parses a route's text fields (`fe80::1%LINK` included) the way `checkRoute` reads them: 'default'
 * is 0.0.0.0/0, or ::/0 when the gateway (else the source) is IPv6. Throws RangeError on bad text;
 * the semantic rules are `checkRoute`'s.
 */
export function parseRoute(spec: { dst: string; via?: string; link?: string; src?: string }): ParsedRoute {
  const s = splitScopedVia(spec);
  const via = s.via !== undefined ? parseAddr(s.via) : undefined;
  const src = s.src !== undefined ? parseAddrText(s.src) : undefined;
  let dst: IpAddr;
  let prefixLen = 0;
  if (s.dst === 'default') dst = routeFamilyOf('default', via, src) === 6 ? ANY6 : 0;
  else ({ addr: dst, prefixLen } = parseCidrText(s.dst));
  return { dst: maskAddr(dst, prefixLen), prefixLen, gateway: via ?? 0, src: src ?? 0, link: s.link, family: routeFamilyOf(dst, via, src) };
}

/** A rule's `from` as (source prefix, length): 'all' or absent is length 0; a plain address is a host. */
export function parseRuleFrom(from: string | undefined): { src: IpAddr; srcLen: number } {
  if (from === undefined || from === 'all') return { src: 0, srcLen: 0 };
  if (from.includes('/')) { const r = parseCidrText(from); return { src: maskAddr(r.addr, r.prefixLen), srcLen: r.prefixLen }; }
  const a = parseAddrText(from);
  return { src: a, srcLen: isIp6(a) ? 128 : 32 };
}

/** Checks a route object of virtual server `vs` (shape and rules) against its links. */
export function checkRoute(c: Checker, r: unknown, p: string, state: ValidationState, vs: string,
  links: LinkFacts[] = state.links(vs)): void {
  if (!c.isObject(r, p)) return;
  c.keys(r, p, ROUTE_KEYS);
  const dst = c.string(r, 'dst', p, true);
  let d: { addr: IpAddr; prefixLen: number } | undefined;
  if (dst !== undefined && dst !== 'default') {
    d = cidr(c, dst, join(p, 'dst'));
    if (d) {
      const net = maskAddr(d.addr, d.prefixLen);
      if (!addrEq(net, d.addr)) c.fail(join(p, 'dst'), `${dst} has host bits set (did you mean ${addrToString(net)}/${d.prefixLen}?)`);
    }
  }
  // The gateway, possibly scoped: "fe80::1%LINK" names its link (RFC 4007 section 11).
  const viaText = c.string(r, 'via', p, false);
  let via: IpAddr | undefined;
  let zone = '';
  if (viaText !== undefined) {
    const z = splitZone(viaText);
    zone = z.zone;
    try {
      via = parseAddr(z.addr);
    } catch (e) {
      c.fail(join(p, 'via'), (e as Error).message);
    }
    if (via !== undefined && !isUsableUnicast(via) && isIp6(via)) {
      c.fail(join(p, 'via'), `gateway ${viaText} is not a unicast address (not ::, ::1, multicast or IPv4-mapped)`);
      via = undefined;
    } else if (via !== undefined && viaText.includes('%') && (!isIp6(via) || !isLinkLocal6(via) || !zone)) {
      c.fail(join(p, 'via'), `${JSON.stringify(viaText)}: a zone (%LINK) is only for a link-local gateway (fe80::/10), e.g. fe80::1%${zone || 'LINK'}`);
      via = undefined;
      zone = '';
    }
  }
  const linkField = c.string(r, 'link', p, false);
  let linkName = linkField;
  if (zone) {
    if (linkName !== undefined && linkName !== zone) c.fail(join(p, 'via'), `${viaText} names link '${zone}' but 'link' is '${linkName}'`);
    linkName ??= zone;
  }
  c.int(r, 'table', p, false, 1, 0xffffffff);
  c.int(r, 'metric', p, false, 0, 0xffffffff);
  const src = c.addr(r, 'src', p, false);
  // One family per route: the destination's (for 'default', the gateway's; see routeFamilyOf).
  const fam = routeFamilyOf(d ? d.addr : 'default', via, src);
  const famOk = (a: IpAddr) => (isIp6(a) ? 6 : 4) === fam;
  // (Against a destination that did not parse there is nothing to compare.)
  const dstOk = d !== undefined || dst === 'default';
  if (dstOk && via !== undefined && !famOk(via)) {
    c.fail(join(p, 'via'), `gateway ${viaText} is ${familyName(via)} but the destination ${dst} is IPv${fam}`);
    via = undefined;
  }
  const srcBad = dstOk && src !== undefined && !famOk(src);
  if (srcBad) c.fail(join(p, 'src'), `${addrToString(src!)} is ${familyName(src!)} but the route is IPv${fam}${dst === 'default' ? ` (write the destination as ${fam === 4 ? '::/0' : '0.0.0.0/0'} for the other family)` : ''}`);
  // 'onlink' (as Linux's `ip route ... onlink`): the gateway is reachable on the named link even
  // though no address of the link covers it (a provider's gateway outside the tenant's prefix).
  const onlink = c.bool(r, 'onlink', p) === true;
  if (onlink && (linkName === undefined || viaText === undefined)) c.fail(join(p, 'onlink'), "'onlink' needs 'via' and 'link'");
  let link: LinkFacts | undefined;
  if (linkName !== undefined) {
    link = links.find((x) => x.name === linkName);
    if (!link) c.fail(join(p, linkField === undefined ? 'via' : 'link'), `virtual server '${vs}' has no link '${linkName}' (links: ${links.map((x) => x.name).join(', ') || 'none'})`);
  }
  const linkLocalVia = via !== undefined && isIp6(via) && isLinkLocal6(via);
  if (linkLocalVia && linkName === undefined) {
    // RFC 4007 section 6: a link-local address is ambiguous without its link (Linux: `dev` needed).
    c.fail(join(p, 'via'), `link-local gateway ${viaText} needs its link: give 'link', or write it as ${viaText}%LINK`);
  } else if (via !== undefined && !onlink && !linkLocalVia) {
    // A link-local gateway is on-link on its link by definition (RFC 4291 2.5.6); others must be
    // covered by an address of the link (or of some link when none is named).
    const gw = via;
    const onLink = (x: LinkFacts) => x.addrs.some((a) => prefixMatch(a.addr, gw, a.prefixLen));
    if (link ? !onLink(link) : !links.some(onLink)) {
      c.fail(join(p, 'via'), `gateway ${addrToString(gw)} is not on a connected network of ${link ? `link '${link.name}'` : `virtual server '${vs}'`}`);
    }
  } else if (viaText === undefined && linkName === undefined && links.length > 1) {
    c.fail(p, `give 'via' or 'link': virtual server '${vs}' has ${links.length} links`);
  } else if (links.length === 0) {
    c.fail(p, `virtual server '${vs}' has no link for this route`);
  }
  if (src !== undefined && !srcBad && !links.some((x) => x.addrs.some((a) => addrEq(a.addr, src)))) {
    c.fail(join(p, 'src'), `${addrToString(src)} is not an address of virtual server '${vs}'`);
  }
}

/**
 * Checks a policy rule object of virtual server `vs`; `taken` (priorities already used by rules of
 * the same source) is consulted and updated when given, else the state is asked.
 */
export function checkRule(c: Checker, r: unknown, p: string, state: ValidationState, vs: string, taken?: Set<number>): void {
  if (!c.isObject(r, p)) return;
  c.keys(r, p, RULE_KEYS);
  const prio = c.int(r, 'priority', p, true, 0, 32767);
  if (prio !== undefined) {
    if (taken ? taken.has(prio) : state.hasRulePriority(vs, prio)) c.fail(join(p, 'priority'), `duplicate rule priority ${prio}`);
    taken?.add(prio);
  }
  // A source prefix of either family (a plain address: the host itself), or 'all'.
  const from = c.string(r, 'from', p, false);
  if (from !== undefined && from !== 'all') {
    if (from.includes('/')) cidr(c, from, join(p, 'from'));
    else c.addr(r, 'from', p, false);
  }
  c.int(r, 'fwmark', p, false, 0, 0xffffffff);
  c.int(r, 'table', p, true, 1, 0xffffffff);
}

/** Runs one check against `state` and throws its first problem (run-time changes). */
export function enforce(what: string, check: (c: Checker) => void): void {
  const c = new Checker();
  check(c);
  c.throwFirst(what);
}

/** Drops undefined fields (library callers pass `{ vlan: undefined }` for "none"). */
export function defined<T extends object>(o: T): T {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

// ---------------------------------------------------------------------------------------------
// The running state, as the rules ask it (control socket, library API, engine entry points)

/** What the engine's running state answers; lookups go through its (device, VLAN) index. */
export interface RunningEngine {
  readonly devices: readonly { name: string; mac: Uint8Array; mtu: number }[];
  readonly vsByName: ReadonlyMap<string, VirtualServer>;
  /** The links on (device, VLAN), every VS. */
  linksOn(device: string, vlan: number): readonly Link[];
}

function linkFacts(l: Link): LinkFacts {
  return { vs: l.vs.name, name: l.name, device: l.devName, vlan: l.vlan, mac: macToString(l.mac), mtu: l.mtu, addrs: l.addrs.filter((a) => !a.auto).map((a) => ({ addr: a.addr, prefixLen: a.prefixLen })) };
}

export class EngineState implements ValidationState {
  /** Devices are only ever added: their facts are kept (no string building per check). */
  private readonly devs = new Map<string, { mtu: number; mac: string }>();
  constructor(private readonly e: RunningEngine) {}
  device(name: string) {
    let f = this.devs.get(name);
    if (!f) {
      const d = this.e.devices.find((x) => x.name === name);
      if (!d) return undefined;
      f = { mtu: d.mtu, mac: macToString(d.mac) };
      this.devs.set(name, f);
    }
    return f;
  }
  deviceNames() { return this.e.devices.map((d) => d.name); }
  macUser(device: string, vlan: number, mac: string) {
    const l = this.e.linksOn(device, vlan).find((x) => macToString(x.mac) === mac);
    return l ? `link '${l.name}' of virtual server '${l.vs.name}'` : undefined;
  }
  addressUser(device: string, vlan: number, addr: IpAddr) {
    const l = this.e.linksOn(device, vlan).find((x) => x.addrs.some((a) => addrEq(a.addr, addr)));
    return l ? `virtual server '${l.vs.name}'` : undefined;
  }
  links(vs: string) { return (this.e.vsByName.get(vs)?.links ?? []).map(linkFacts); }
  hasLinkNamed(vs: string, name: string) { return this.e.vsByName.get(vs)?.links.some((l) => l.name === name) ?? false; }
  hasRulePriority(vs: string, priority: number) {
    const v = this.e.vsByName.get(vs);
    if (!v) return false;
    let n = 0;
    for (const r of v.rules.list()) if (r.priority === priority) n++;
    // The built-in main-table rule may be given again explicitly (as a config file may).
    return priority === DEFAULT_RULE_PRIORITY ? n > 1 : n > 0;
  }
  vips(vs: string) { return [...(this.e.vsByName.get(vs)?.vips?.list ?? [])]; }
  /** The facts of one existing link. */
  link(l: Link): LinkFacts { return linkFacts(l); }
}

// ---------------------------------------------------------------------------------------------
// Addresses the host's own (kernel) servers listen on: the metrics endpoint

export const METRICS_KEYS = ['listen'] as const;
const LISTEN_HINT = 'like "127.0.0.1:9464" or "[::1]:9464"';

/**
 * "a.b.c.d:PORT" or "[IPv6]:PORT" (RFC 3986 3.2.2 brackets) parsed into a host and port for
 * node:http; port 0 asks the kernel for any free port. Throws a RangeError saying what is wrong.
 */
export function parseListen(s: unknown): { host: string; port: number } {
  if (typeof s !== 'string') throw new RangeError(`must be a string ADDRESS:PORT (${LISTEN_HINT}), got ${describe(s)}`);
  if (!s.startsWith('[') && s.split(':').length > 2) {
    throw new RangeError(`${JSON.stringify(s)}: an IPv6 address is written in brackets before its port (${LISTEN_HINT})`);
  }
  const m = /^\[([^\]]*)\]:(.*)$/.exec(s) ?? /^([^:[\]]*):(.*)$/.exec(s);
  if (!m) throw new RangeError(`${JSON.stringify(s)} has no port (${LISTEN_HINT})`);
  const host = m[1]!;
  const portText = m[2]!;
  if (host.includes('%')) throw new RangeError(`${JSON.stringify(s)}: a zone (%${splitZone(host).zone}) is not accepted; listen on a global or loopback address`);
  try {
    const a = parseAddrText(host);
    if (isIp6(a) !== s.startsWith('[')) throw new RangeError(`${JSON.stringify(s)}: an IPv6 address is written in brackets, an IPv4 address without (${LISTEN_HINT})`);
  } catch (e) {
    if (e instanceof RangeError && e.message.startsWith(JSON.stringify(s))) throw e;
    throw new RangeError(`${JSON.stringify(s)}: ${host === '' ? 'no address' : `${JSON.stringify(host)} is not an IPv4 or IPv6 address`} (${LISTEN_HINT})`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new RangeError(`${JSON.stringify(s)}: the port must be 0..65535 (0: any free port), got ${JSON.stringify(portText)}`);
  }
  return { host, port: Number(portText) };
}

/** The `metrics` section of a config: `{ "listen": "ADDRESS:PORT" }`. */
export function checkMetrics(c: Checker, m: unknown, p: string): void {
  if (!c.isObject(m, p)) return;
  c.keys(m, p, METRICS_KEYS);
  if (m.listen === undefined) { c.fail(join(p, 'listen'), `is required (${LISTEN_HINT})`); return; }
  try {
    parseListen(m.listen);
  } catch (e) {
    c.fail(join(p, 'listen'), (e as Error).message);
  }
}
