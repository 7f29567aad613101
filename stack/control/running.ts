/**
 * The running configuration (`xdpstack show config`, control request `show` kind `config`): the
 * virtual servers as they are now (links, addresses, static routes, policy rules and limits after
 * every runtime change), in the shape of a config file's, so that `xdpstack run` accepts it back and
 * builds the same state. Everything else (devices, engine, limits, services, control and any other
 * section) is the config as it was given; services of a virtual server destroyed since are left out,
 * as the stack closed them.
 *
 * What a config cannot say is not reproduced: counters, neighbor entries, connections and sockets
 * opened by applications, and the absence of the built-in main-table rule (32766) once deleted.
 */
import { macToString } from '../../driver/types';
import { addrToString, isIp6, isLinkLocal6, isUnspecified, prefixMatch } from '../../protocols/ip/addr';
import { TABLE_MAIN } from '../routing';
import type { Rule } from '../routing';
import type { VsLimits } from '../limits';
import type { Link, VirtualServer } from '../vs';
import type { LinkConfig, RouteConfig, RuleConfig, VsConfig } from './config';
import { DEFAULT_RULE_PRIORITY } from './validate';

/** What the builder needs of a device: its MAC and MTU (the defaults of its links). */
export interface DeviceFacts { name: string; mac: Uint8Array; mtu: number }

function linkConfig(l: Link, dev: DeviceFacts | undefined): LinkConfig {
  const defaultName = l.vlan >= 0 ? `${l.devName}.${l.vlan}` : l.devName;
  const out: LinkConfig = l.name !== defaultName ? { name: l.name, device: l.devName } : { device: l.devName };
  if (l.vlan >= 0) out.vlan = l.vlan;
  if (!dev || macToString(l.mac) !== macToString(dev.mac)) out.mac = macToString(l.mac);
  if (!dev || l.mtu !== dev.mtu) out.mtu = l.mtu;
  // The link-local address the stack made itself comes back by itself; a configured one replaces it.
  const addrs = l.addrs.filter((a) => !a.auto).map((a) => `${addrToString(a.addr)}/${a.prefixLen}`);
  if (addrs.length) out.addresses = addrs;
  return out;
}

function isDefaultRule(r: Rule): boolean {
  return r.priority === DEFAULT_RULE_PRIORITY && r.srcLen === 0 && !isIp6(r.src) && r.mark === undefined && r.table === TABLE_MAIN;
}

function ruleConfig(r: Rule): RuleConfig {
  const out: RuleConfig = { priority: r.priority } as RuleConfig;
  // 'all' (length 0 of the number 0) matches both families; `::/0` only IPv6 sources.
  if (r.srcLen || isIp6(r.src)) out.from = `${addrToString(r.src)}/${r.srcLen}`;
  if (r.mark !== undefined) out.fwmark = r.mark;
  out.table = r.table;
  return out;
}

/** The static routes of a VS, every table (lowest id first), in each table's order. */
function routeConfigs(v: VirtualServer): RouteConfig[] {
  const out: RouteConfig[] = [];
  for (const t of [...v.tables.values()].sort((a, b) => a.id - b.id)) {
    for (const r of t.routes()) {
      if (r.proto !== 'static') continue; // connected routes come with their addresses
      const link = v.links[r.link];
      // 'default' alone is IPv4 (as in `ip route`): an IPv6 default route is written ::/0.
      const dst = r.prefixLen === 0 && !isIp6(r.dst) ? 'default' : `${addrToString(r.dst)}/${r.prefixLen}`;
      const rc: RouteConfig = { dst };
      const gw = isUnspecified(r.gateway) ? null : r.gateway;
      if (gw !== null) rc.via = addrToString(gw);
      if (link) rc.link = link.name;
      // A gateway no configured address of its link covers was added 'onlink' (a link-local one
      // is on its link by definition, RFC 4291 2.5.6).
      if (gw !== null && link && !(isIp6(gw) && isLinkLocal6(gw)) &&
        !link.addrs.some((a) => !a.auto && prefixMatch(a.addr, gw, a.prefixLen))) rc.onlink = true;
      if (t.id !== TABLE_MAIN) rc.table = t.id;
      if (r.metric) rc.metric = r.metric;
      if (!isUnspecified(r.src)) rc.src = addrToString(r.src);
      out.push(rc);
    }
  }
  return out;
}

/** One virtual server as a config file's entry; `limits` are its own limits as they were given. */
export function vsConfig(v: VirtualServer, devices: readonly DeviceFacts[], limits?: VsLimits): VsConfig {
  const out: VsConfig = { name: v.name, links: v.links.map((l) => linkConfig(l, devices[l.dev])) };
  const routes = routeConfigs(v);
  if (routes.length) out.routes = routes;
  // The built-in main-table rule is every VS's: written once only when given again.
  const rules: RuleConfig[] = [];
  let defaultSeen = false;
  for (const r of v.rules.list()) {
    if (!defaultSeen && isDefaultRule(r)) { defaultSeen = true; continue; }
    rules.push(ruleConfig(r));
  }
  if (rules.length) out.rules = rules;
  if (limits && Object.keys(limits).length) out.limits = { ...limits };
  const vips = v.vips;
  if (vips) {
    if (vips.list.length) out.vips = vips.list.map(addrToString);
    if (vips.from.length || vips.configuredOverhead !== undefined) {
      out.decap = { from: vips.from.map((f) => `${addrToString(f.addr)}/${f.prefixLen}`) };
      if (vips.configuredOverhead !== undefined) out.decap.overhead = vips.configuredOverhead;
    }
  }
  return out;
}
