/**
 * Virtual servers: one routing context each (links, addresses, routing tables and policy rules,
 * neighbor caches, sockets, counters). The engine owns the demux indexes; a VS holds its state.
 */
import { Counters } from './counters';
import type { NeighborCache } from './neighbor';
import { RouteTable, RuleSet, TABLE_MAIN } from './routing';
import { AddrMap, addrEq, Ip6, IpAddr, prefixMatch } from '../protocols/ip/addr';

/**
 * An address's state (RFC 4862): an IPv6 address is `tentative` until Duplicate Address Detection
 * passes (it is neither used as a source nor answered for meanwhile), `duplicate` when DAD found
 * another holder (kept, reported, never used); IPv4 addresses are `preferred` at once.
 */
export type AddressState = 'preferred' | 'tentative' | 'duplicate';

export interface Address {
  addr: IpAddr;
  prefixLen: number;
  /** Subnet broadcast address (IPv4 /30 and shorter; else 0). */
  broadcast: number;
  state: AddressState;
  /** Made by the stack (the link-local address of a link), not configured. */
  auto?: boolean;
}

/**
 * A link of a VS. It carries its own counters (it is a Counters): the packet path then touches one
 * object per tenant instead of two, which matters when thousands of tenants take turns.
 */
export class Link extends Counters {
  readonly addrs: Address[] = [];
  /** This link's counters (the link itself). */
  get counters(): Counters {
    return this;
  }
  /** IPv4 identification counter for datagrams sent on this link. */
  ipId = 1;
  /** The MAC as two numbers (first 2 bytes, last 4), for comparisons without touching the array. */
  readonly macHi: number;
  readonly macLo: number;
  neigh!: NeighborCache;
  /** Scratch for a multicast MAC computed on the output path. */
  readonly scratchMac = new Uint8Array(6);
  constructor(
    readonly vs: VirtualServer,
    public index: number,
    readonly name: string,
    /** Engine device index. */
    readonly dev: number,
    readonly devName: string,
    /** 802.1Q id, or -1 for untagged. */
    readonly vlan: number,
    readonly mac: Uint8Array,
    public mtu: number,
  ) {
    super();
    this.macHi = (mac[0]! << 8) | mac[1]!;
    this.macLo = ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0;
  }

  /** Demux key of (device, VLAN). */
  get key(): number {
    return linkKey(this.dev, this.vlan);
  }

  /** Ethernet header length on this link (14, or 18 with a tag). */
  get ethLen(): number {
    return this.vlan >= 0 ? 18 : 14;
  }

  /** First usable IPv4 address (preferred source), 0 if none. */
  get primary(): number {
    for (const a of this.addrs) if (typeof a.addr === 'number') return a.addr;
    return 0;
  }

  /** Usable (not tentative or duplicate) addresses of the link. */
  usable(): Address[] {
    return this.addrs.filter((a) => a.state === 'preferred');
  }
}

/** A load balancer's source prefix (`decap.from`): encapsulated traffic is taken from it only. */
export interface DecapSource {
  addr: IpAddr;
  prefixLen: number;
}

/**
 * The VIPs of a VS and where it takes encapsulated traffic for them from (direct server return
 * behind an L4 load balancer). A VIP is an address the VS serves but never answers ARP or NDP for:
 * it lives on the load balancer's side, which sends the VS its traffic in IPIP (RFC 2003) or an
 * IPv6 tunnel (RFC 2473); replies leave from the VIP straight to the client, routed.
 */
export class VipState {
  /** IPv4 VIPs as int32 (the key the receive path has). */
  readonly v4 = new Set<number>();
  /** IPv6 VIPs, probed from the frame's bytes; the value is the stored address (no allocation per packet). */
  readonly v6 = new AddrMap<Ip6>();
  /** Every VIP, in the order added (`show`, `show config`). */
  readonly list: IpAddr[] = [];
  /** The load balancers' source prefixes (none: nothing encapsulated is taken). */
  from: DecapSource[] = [];
  /** Bytes the load balancer's encapsulation adds, as configured; undefined: the default (see `overhead`). */
  configuredOverhead: number | undefined = undefined;

  has(a: IpAddr): boolean {
    return typeof a === 'number' ? this.v4.has(a | 0) : this.v6.get(a) !== undefined;
  }

  /** Whether an encapsulated packet from outer source `src` may be taken. A short list, per VS. */
  allows(src: IpAddr): boolean {
    const f = this.from;
    for (let i = 0; i < f.length; i++) {
      const s = f[i]!;
      if (typeof s.addr === typeof src && prefixMatch(s.addr, src, s.prefixLen)) return true;
    }
    return false;
  }

  /**
   * Bytes the encapsulation adds in front of the inner packet, for the MSS offered on a VIP: as
   * configured, else an IPv4 header (20) when every load balancer is IPv4, else an IPv6 one (40).
   * (A connection opened by a segment that came encapsulated takes its outer header's: overheadFor.)
   */
  get overhead(): number {
    if (this.configuredOverhead !== undefined) return this.configuredOverhead;
    return this.from.every((s) => typeof s.addr === 'number') ? 20 : 40;
  }

  /** The overhead of a packet that came in an outer header of family `outer` (4, 6; 0: unknown, the default). */
  overheadFor(outer: number): number {
    if (this.configuredOverhead !== undefined) return this.configuredOverhead;
    return outer === 4 ? 20 : outer === 6 ? 40 : this.overhead;
  }

  add(a: IpAddr): void {
    if (this.has(a)) return;
    if (typeof a === 'number') this.v4.add(a | 0);
    else this.v6.set(a, a);
    this.list.push(a);
  }

  delete(a: IpAddr): boolean {
    const i = this.list.findIndex((x) => addrEq(x, a));
    if (i < 0) return false;
    this.list.splice(i, 1);
    if (typeof a === 'number') this.v4.delete(a | 0);
    else this.v6.delete(a);
    return true;
  }
}

export function linkKey(dev: number, vlan: number): number {
  return dev * 4097 + (vlan + 1);
}

export interface PathMtu {
  mtu: number;
  expires: number;
}

export class VirtualServer {
  readonly links: Link[] = [];
  readonly tables = new Map<number, RouteTable>([[TABLE_MAIN, new RouteTable(TABLE_MAIN)]]);
  readonly rules = new RuleSet();
  /**
   * Counters of events that belong to the VS but to none of its links (no route), plus those of links
   * already removed. The packet path counts per link only; `counters` adds them up when read.
   */
  readonly own = new Counters();
  /** The UDP layer's state of this VS (its sockets by port): kept by the transport, opaque here. */
  udp: object | null = null;
  /** Path MTUs learned by destination (key: `addrKey`). */
  readonly pmtu = new Map<number | string, PathMtu>();
  /** The TCP layer's state of this VS (its demux tables): kept by the transport, opaque here. */
  tcp: object | null = null;
  destroyed = false;
  /** Next ephemeral port to try. */
  ephemeral = 49152;
  /** This VS's limits (its own, else the stack's defaults; see limits.ts). */
  maxTcpConns = Infinity;
  maxSynQueue = Infinity;
  maxNeighbors = Infinity;
  /** VIPs and decapsulation (null until the VS has some: nothing to probe on the common path). */
  vips: VipState | null = null;
  /** ICMP error token bucket. */
  icmpTokens: number;
  icmpStamp = 0;

  constructor(
    /** Never reused within a stack, so a VS recreated under the same name is distinguishable. */
    readonly id: number,
    readonly name: string,
    readonly icmpRate: number,
    readonly icmpBurst: number,
  ) {
    this.icmpTokens = icmpBurst;
  }

  /** Totals of the VS: its own counters plus every link's (computed when read). */
  get counters(): Counters {
    const c = new Counters();
    c.add(this.own);
    for (const l of this.links) c.add(l.counters);
    return c;
  }

  /** Whether `a` is a VIP of this VS. */
  isVip(a: IpAddr): boolean {
    return this.vips !== null && this.vips.has(a);
  }

  /**
   * Whether `a` is an address of this VS a socket may bind to or send from: one of its links'
   * addresses (`preferred` only, unless `any`: an IPv6 one may still be tentative) or a VIP. The
   * one rule for bind, listen, connect and send.
   */
  hasLocal(a: IpAddr, any = false): boolean {
    for (const l of this.links) for (const x of l.addrs) if (addrEq(x.addr, a) && (any || x.state === 'preferred')) return true;
    return this.isVip(a);
  }

  table(id: number, create = false): RouteTable | undefined {
    let t = this.tables.get(id);
    if (!t && create) {
      t = new RouteTable(id);
      this.tables.set(id, t);
    }
    return t;
  }

  link(nameOrIndex: string | number): Link | undefined {
    if (typeof nameOrIndex === 'number') return this.links[nameOrIndex];
    return this.links.find((l) => l.name === nameOrIndex);
  }
}
