/**
 * Virtual servers: one routing context each (links, addresses, routing tables and policy rules,
 * neighbor caches, sockets, counters). The engine owns the demux indexes; a VS holds its state.
 */
import { Counters } from './counters';
import type { NeighborCache } from './neighbor';
import { RouteTable, RuleSet, TABLE_MAIN } from './routing';
import type { IpAddr } from '../protocols/ip/addr';

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
