/**
 * Virtual servers: one routing context each (links, addresses, routing tables and policy rules,
 * neighbor caches, sockets, counters). The engine owns the demux indexes; a VS holds its state.
 */
import { Counters } from './counters';
import type { NeighborCache } from './neighbor';
import { RouteTable, RuleSet, TABLE_MAIN } from './routing';
import type { UdpSocket } from './udp';
import type { TcpEntry, TcpListener } from './tcp';

export interface Address {
  addr: number;
  prefixLen: number;
  /** Subnet broadcast address (for /31 and /32: none, 0). */
  broadcast: number;
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

  /** First address (preferred source), 0 if none. */
  get primary(): number {
    return this.addrs.length ? this.addrs[0]!.addr : 0;
  }
}

export function linkKey(dev: number, vlan: number): number {
  return dev * 4097 + (vlan + 1);
}

/** Key of (device, VLAN, IPv4 address): exact in a double (dev < 2^8). */
export function addrKey(dev: number, vlan: number, addr: number): number {
  return linkKey(dev, vlan) * 4294967296 + addr;
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
  /** UDP sockets by local port; a port may have several sockets bound to different addresses. */
  readonly udpPorts = new Map<number, UdpSocket[]>();
  readonly pmtu = new Map<number, PathMtu>();
  /** TCP connections by (remote address, remote port), chained on collisions. */
  readonly tcpConns = new Map<number, TcpEntry>();
  /** TCP listeners by local port. */
  readonly tcpListeners = new Map<number, TcpListener[]>();
  /** Local ports used by active opens (count of connections). */
  readonly tcpLocalPorts = new Map<number, number>();
  /** Next ephemeral TCP port to try. */
  tcpEphemeral = 32768;
  destroyed = false;
  /** Next ephemeral port to try. */
  ephemeral = 49152;
  /** This VS's limits (its own, else the stack's defaults; see limits.ts). */
  maxTcpConns = Infinity;
  maxSynQueue = Infinity;
  maxNeighbors = Infinity;
  /** TCP connections not in TIME_WAIT (counted against maxTcpConns). */
  tcpActive = 0;
  /** Connections refused because maxTcpConns was reached (SYNs dropped, connect() failed). */
  tcpConnLimitHits = 0;
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
