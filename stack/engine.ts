/**
 * The sans-IO engine: fed with bursts of received frames and the current time, it produces frames
 * to send (per device output bursts) and a next deadline. No clock, socket or native call here.
 *
 * A burst is processed layer by layer (vector style): every frame's Ethernet header first, then the
 * ARP frames, then the IPv4 frames, then ICMP and UDP, with per-frame metadata in preallocated
 * struct-of-arrays. Demux to a virtual server is by hash on (device, VLAN, address): the cost of a
 * packet does not depend on how many virtual servers exist.
 */
import { Burst, macToString } from '../driver/types';
import { FramePool, FrameState, OWNER_ENGINE } from '../umem/pool';
import { Drop } from '../protocols/drop';
import { EthFrame, ETH_P_ARP, ETH_P_IPV4, isMulticast, macEquals, writeEth } from '../protocols/ethernet';
import { ArpPacket, ARP_LEN, ARP_REPLY, ARP_REQUEST, writeArp } from '../protocols/arp';
import { Ipv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, parseCidr4, parseIpv4, ipv4ToString, writeIpv4, IP_DF, IP_MF } from '../protocols/ipv4';
import {
  IcmpPacket, ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST, ICMP_FRAG_NEEDED, ICMP_PARAM_PROBLEM, ICMP_PORT_UNREACH, ICMP_PROTO_UNREACH,
  ICMP_TIME_EXCEEDED, writeIcmpError,
} from '../protocols/icmp';
import { UdpHeader, UDP_HLEN } from '../protocols/udp';
import { checksumAdjust, fold, pseudoSum4, rd16, sum16, wr16 } from '../protocols/checksum';
import { Ipv4Reassembler } from '../protocols/reassembly';
import { Counters } from './counters';
import { DEFAULT_NEIGHBOR_PARAMS, Neighbor, NeighborCache, NeighborHost, NeighborParams, NState, PendingFrame } from './neighbor';
import { maskOf, Route, TABLE_MAIN } from './routing';
import { TimerWheel } from './timers';
import { sockError, UdpHost, UdpSocket } from './udp';
import { checkVsLimits, Limits, resolveLimits, VsLimits } from './limits';
import { addrKey, Link, linkKey, VirtualServer } from './vs';
import { TcpEngine, TcpLayer } from './tcp';
import { checkAddress, checkLink, checkRoute, checkRule, defined, EngineState, enforce, ValidationError, vsNameProblem } from './validate';
import type { IpAddr } from '../protocols/ip/addr';
import type { TcpOptions } from '../protocols/tcp/types';
import { randomBytes } from 'node:crypto';

export interface DeviceSpec {
  name: string;
  pool: FramePool;
  mac: Uint8Array;
  mtu: number;
  /** Called when the stack starts/stops owning a MAC on a VLAN (-1 = untagged): fills XDP maps. */
  ownMac?(mac: Uint8Array, vlan: number, add: boolean): void;
  /** Called when the stack starts/stops owning a unicast address (either family) on a VLAN (-1 = untagged). */
  own?(addr: IpAddr, vlan: number, add: boolean): void;
}

/**
 * int32 address → link. A (device, VLAN) usually has one or two addresses: they are kept in a small
 * array scanned in place (no hash table to miss in the cache when thousands of tenants take turns);
 * past 8 entries a Map takes over, so the cost stays flat for large address sets too.
 */
class AddrMap {
  private keys: number[] = [];
  private vals: Link[] = [];
  private map: Map<number, Link> | null = null;
  /** The first entry, kept in the object itself (the common case: one address per VLAN). */
  private k0 = 0;
  private v0: Link | undefined = undefined;

  get(k: number): Link | undefined {
    if (this.v0 !== undefined && this.k0 === k) return this.v0;
    if (this.map) return this.map.get(k);
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] === k) return this.vals[i];
    return undefined;
  }

  has(k: number): boolean {
    return this.get(k) !== undefined;
  }

  set(k: number, v: Link): void {
    if (this.map) { this.map.set(k, v); return; }
    const i = this.keys.indexOf(k);
    if (i >= 0) this.vals[i] = v;
    else {
      this.keys.push(k);
      this.vals.push(v);
      if (this.keys.length > 8) {
        this.map = new Map();
        for (let j = 0; j < this.keys.length; j++) this.map.set(this.keys[j]!, this.vals[j]!);
        this.keys = [];
        this.vals = [];
      }
    }
    this.syncFirst();
  }

  delete(k: number): void {
    if (this.map) { this.map.delete(k); return; }
    const i = this.keys.indexOf(k);
    if (i >= 0) { this.keys.splice(i, 1); this.vals.splice(i, 1); }
    this.syncFirst();
  }

  private syncFirst(): void {
    const has = !this.map && this.keys.length > 0;
    this.k0 = has ? this.keys[0]! : 0;
    this.v0 = has ? this.vals[0] : undefined;
  }
}

/**
 * The links sharing one (device, VLAN), with their addresses. Keys are addresses as int32, which V8
 * keeps as small integers: the lookup costs the same for 1 or 4096 virtual servers.
 */
class LinkGroup extends AddrMap {
  readonly links: Link[] = [];
  /** links[0], kept in the object itself (usually the only one). */
  first: Link | null = null;
  /** Unicast addresses → link: the group itself (one object less to reach per packet). */
  get addrs(): AddrMap {
    return this;
  }
  /** Subnet broadcast addresses → link. */
  readonly bcast = new AddrMap();
}

export interface Device extends DeviceSpec {
  index: number;
  /** Frames waiting to be handed to the driver. */
  out: Burst;
  /** A Buffer over the whole frame pool, for copies without per-packet views. */
  buf: Buffer;
  counters: Counters;
}

export interface EngineOptions {
  /** ICMP error messages per second per VS, and burst. */
  icmpRate?: number;
  icmpBurst?: number;
  /** Initial capacity of each device's output queue, in frames, and the most it may grow to. */
  outCapacity?: number;
  outMax?: number;
  neighbor?: Partial<NeighborParams>;
  reassembly?: { maxDatagrams?: number; maxBytes?: number; timeoutUs?: number };
  /** Path MTU entries expire after this (µs). Default 10 minutes (RFC 1191). */
  pmtuExpiryUs?: number;
  /** Start of virtual or real time (µs). */
  now?: number;
  /** 16-byte secret for TCP ISNs and SYN cookies (random by default; fixed for reproducible replays). */
  secret?: Uint8Array;
  /** Defaults for every TCP connection. */
  tcp?: Partial<TcpOptions>;
  /** Most connections kept in TIME_WAIT (all VSes); beyond it the oldest are forgotten early. */
  tcpMaxTimeWait?: number;
  /**
   * Work done by one step at most, carried over to the next step beyond it: timer callbacks run by
   * `advance()` and connections whose socket events `flushEvents()` delivers. However many
   * connections expire or close together, each step stays short, so the receive path and the
   * fill ring are served between them. Defaults 256 and 512.
   */
  stepTimers?: number;
  stepEvents?: number;
  /** Called when frames were queued outside `input()` (socket sends, timers): the runtime should flush. */
  onOutput?: () => void;
  /**
   * Reports an exception thrown by the stack's own code while it handled input, timers or events
   * (every one is counted as an `internal-error` drop; each distinct one is reported once).
   * Default: process.emitWarning.
   */
  log?: (message: string) => void;
  /**
   * An exception thrown by application code in a socket callback ('data', 'connection', 'message',
   * a write callback...). Default: rethrown from process.nextTick, so it is an uncaught exception
   * as in Node (where it escapes an I/O callback): 'uncaughtException', or the process exits.
   */
  onCallbackError?: (err: unknown) => void;
  /**
   * Limits on the tables peers can grow (limits.ts; defaults there). They take precedence over
   * `tcpMaxTimeWait`, `reassembly.maxDatagrams/maxBytes` and `neighbor.maxEntries`.
   */
  limits?: Partial<Limits>;
}

/**
 * Smallest path MTU learned from ICMP (Linux net.ipv4.route.min_pmtu): a next-hop MTU below it
 * (68, 8, 0 from an old router, or a forgery) is taken as this, so no path ever gets segments too
 * small to carry data efficiently.
 */
export const PMTU_MIN = 552;
/** Distinct internal errors reported (beyond it they are only counted). */
const INTERNAL_ERRORS_LOGGED = 16;

export interface LinkSpec {
  name?: string;
  device: string;
  vlan?: number;
  mac?: Uint8Array;
  mtu?: number;
}

export interface RouteSpec {
  /** 'a.b.c.d/n' or 'default'. */
  dst: string;
  via?: string;
  /** Link name; needed for a connected route without gateway when several links exist. */
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

const BROADCAST = 0xffffffff;
const BCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);
const ETH_MIN = 60;
/** Connections noted per neighbor entry whose segments fell out of its full queue while resolving. */
const NEIGH_NOTES_MAX = 64;

/**
 * Writes the Ethernet header of a frame leaving `link` (source MAC and VLAN tag from the link,
 * the MAC taken from its two numbers: no extra object touched per packet). Returns its length.
 */
function linkEth(b: Uint8Array, off: number, dst: Uint8Array, dstOff: number, link: Link, etherType: number): number {
  const d0 = dst[dstOff]!, d1 = dst[dstOff + 1]!, d2 = dst[dstOff + 2]!, d3 = dst[dstOff + 3]!, d4 = dst[dstOff + 4]!, d5 = dst[dstOff + 5]!;
  b[off] = d0; b[off + 1] = d1; b[off + 2] = d2; b[off + 3] = d3; b[off + 4] = d4; b[off + 5] = d5;
  const hi = link.macHi;
  const lo = link.macLo;
  b[off + 6] = hi >>> 8; b[off + 7] = hi & 0xff;
  b[off + 8] = lo >>> 24; b[off + 9] = (lo >>> 16) & 0xff; b[off + 10] = (lo >>> 8) & 0xff; b[off + 11] = lo & 0xff;
  const vlan = link.vlan;
  if (vlan < 0) {
    b[off + 12] = etherType >>> 8; b[off + 13] = etherType & 0xff;
    return 14;
  }
  b[off + 12] = 0x81; b[off + 13] = 0x00;
  b[off + 14] = (vlan >>> 8) & 0x0f; b[off + 15] = vlan & 0xff;
  b[off + 16] = etherType >>> 8; b[off + 17] = etherType & 0xff;
  return 18;
}

/** An optional positive integer option, or its default. */
function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`engine option ${name} must be a positive integer, got ${v}`);
  return v;
}

function ipErr(code: string, msg: string): Error {
  return sockError(code, msg);
}

/**
 * A virtual server has no loopback interface: 127/8, 0/8 and (for TCP) multicast or broadcast
 * destinations are refused with a clear error instead of being routed onto the wire.
 */
function checkDestination(dst: number, datagram: boolean, syscall: string, port: number): void {
  const top = dst >>> 24;
  let why = '';
  if (top === 127) why = 'loopback addresses are not reachable inside a virtual server (it has no loopback interface)';
  else if (top === 0) why = 'not a destination address';
  else if (!datagram && dst >= 0xe0000000) why = 'TCP needs a unicast destination';
  else if (datagram && dst >= 0xe0000000 && dst !== BROADCAST) why = 'multicast is not supported';
  if (why) {
    const a = ipv4ToString(dst);
    throw sockError(top === 0 || top === 127 ? 'EADDRNOTAVAIL' : 'ENETUNREACH', `${syscall} ${a}${port ? `:${port}` : ''}: ${why}`,
      { syscall, address: a, port });
  }
}

export class Engine implements UdpHost, NeighborHost, TcpEngine {
  readonly devices: Device[] = [];
  /** Engine-wide counters for what belongs to no single VS (reassembly timeouts). */
  readonly counters = new Counters();
  readonly vsByName = new Map<string, VirtualServer>();
  readonly vsById = new Map<number, VirtualServer>();
  readonly wheel: TimerWheel;
  readonly reasm: Ipv4Reassembler;
  private nextVsId = 1;
  /** Per device: link groups indexed by VLAN + 1 (0 = untagged). */
  private readonly groups: (LinkGroup | null)[][] = [];
  private readonly readyUdp: UdpSocket[] = [];
  /** Per device: frames a VS sent to its own addresses, received again at the next step. */
  private readonly loop: Burst[] = [];
  private readonly loopSpare: Burst[] = [];
  private loopPending = 0;
  private readonly opts: Required<Omit<EngineOptions, 'neighbor' | 'reassembly' | 'onOutput' | 'now' | 'secret' | 'tcp' | 'tcpMaxTimeWait' |
    'log' | 'onCallbackError' | 'limits'>>;
  readonly tcp: TcpLayer;
  private readonly neighParams: NeighborParams;
  /** The limits in force (defaults with the options applied). */
  readonly limits: Limits;
  private readonly onOutput: (() => void) | undefined;
  private inInput = false;
  /** Inside advance() or flushEvents(): the runtime reads the next deadline after them. */
  private inStep = false;
  now: number;
  /**
   * The clock read by calls from the application, made outside a step (connect, write, close, UDP
   * send...): the runtime sets it (real time: the monotonic clock; virtual time: the virtual clock).
   * By default the engine's own time (the last step's).
   */
  clock: () => number = () => this.now;
  /** Exceptions from the stack's own code, counted (also as `internal-error` drops). */
  internalErrors = 0;
  private readonly internalSeen = new Set<string>();
  /** Where internal errors are reported (see EngineOptions.log). */
  log: (message: string) => void;
  /** Where an exception from application code in a socket callback goes (see EngineOptions). */
  onCallbackError: (err: unknown) => void;
  /** Start of the receive chunk being handled, and whether stage 1 (Ethernet) is running (error recovery). */
  private rxDone = 0;
  private rxStage1 = false;

  // Reusable parse results and per-burst metadata (no allocation per packet).
  private readonly eth = new EthFrame();
  private readonly arp = new ArpPacket();
  private readonly ip = new Ipv4Header();
  private readonly icmp = new IcmpPacket();
  private readonly udp = new UdpHeader();
  private readonly mLink: (Link | null)[] = [];
  private readonly mEthOff = new Uint32Array(256);
  private readonly mSrcMac = new Uint32Array(256);
  private readonly mL3Off = new Uint32Array(256);
  private readonly mL3Len = new Uint32Array(256);
  private readonly mL4Off = new Uint32Array(256);
  private readonly mL4Len = new Uint32Array(256);
  private readonly mSrc = new Uint32Array(256);
  private readonly mDst = new Uint32Array(256);
  private readonly mTos = new Uint8Array(256);
  /** 1 when the frame's IPv4 destination is a broadcast address. */
  private readonly mBcast = new Uint8Array(256);
  private readonly arpIdx = new Uint16Array(256);
  private readonly ipIdx = new Uint16Array(256);
  private readonly icmpIdx = new Uint16Array(256);
  private readonly udpIdx = new Uint16Array(256);
  private readonly tcpIdx = new Uint16Array(256);
  private readonly tcpMac = new Uint8Array(6);
  private readonly scratchMac = new Uint8Array(6);
  private readonly l4Scratch = new Uint8Array(1024);

  constructor(opts: EngineOptions = {}) {
    this.now = opts.now ?? 0;
    this.wheel = new TimerWheel(this.now);
    this.opts = {
      icmpRate: opts.icmpRate ?? 1000,
      icmpBurst: opts.icmpBurst ?? 50,
      outCapacity: opts.outCapacity ?? 1024,
      outMax: opts.outMax ?? 65536,
      pmtuExpiryUs: opts.pmtuExpiryUs ?? 600_000_000,
      stepTimers: positive(opts.stepTimers, 256, 'stepTimers'),
      stepEvents: positive(opts.stepEvents, 512, 'stepEvents'),
    };
    this.limits = resolveLimits({
      tcpTimeWait: opts.tcpMaxTimeWait, reassemblyDatagrams: opts.reassembly?.maxDatagrams,
      reassemblyMemory: opts.reassembly?.maxBytes, neighbors: opts.neighbor?.maxEntries, ...opts.limits,
    });
    this.neighParams = { ...DEFAULT_NEIGHBOR_PARAMS, ...opts.neighbor, maxEntries: this.limits.neighbors };
    this.reasm = new Ipv4Reassembler({ ...opts.reassembly, maxDatagrams: this.limits.reassemblyDatagrams, maxBytes: this.limits.reassemblyMemory });
    this.onOutput = opts.onOutput;
    this.log = opts.log ?? ((m) => process.emitWarning(m, 'XdpstackInternalError'));
    this.onCallbackError = opts.onCallbackError ?? ((err) => process.nextTick(() => { throw err; }));
    this.wheel.onError = (err) => this.internalError(err);
    for (let i = 0; i < 256; i++) this.mLink.push(null);
    this.tcp = new TcpLayer(this, opts.secret ?? randomBytes(16), opts.tcp ?? {}, this.limits.tcpTimeWait, this.limits);
  }

  // ---------------------------------------------------------------- devices

  addDevice(spec: DeviceSpec): Device {
    if (this.devices.some((d) => d.name === spec.name)) throw new Error(`device '${spec.name}' already added`);
    if (this.devices.length >= 255) throw new Error('at most 255 devices per engine');
    const d: Device = {
      ...spec, index: this.devices.length, out: new Burst(this.opts.outCapacity), counters: new Counters(),
      buf: Buffer.from(spec.pool.buffer, 0, spec.pool.bytes.length),
    };
    this.devices.push(d);
    this.loop.push(new Burst(64));
    this.loopSpare.push(new Burst(64));
    this.groups.push(new Array<LinkGroup | null>(4097).fill(null));
    return d;
  }

  device(name: string): Device {
    const d = this.devices.find((x) => x.name === name);
    if (!d) throw new Error(`no device '${name}' (known: ${this.devices.map((x) => x.name).join(', ') || 'none'})`);
    return d;
  }

  // ---------------------------------------------------------------- virtual servers

  /** The running state as the validator (stack/validate.ts) asks it. */
  readonly state: EngineState = new EngineState(this);

  /** The links on (device, VLAN) of every VS (the demux index; empty for an unknown device). */
  linksOn(device: string, vlan: number): readonly Link[] {
    const d = this.devices.find((x) => x.name === device);
    return (d && this.groups[d.index]![vlan + 1]?.links) || [];
  }

  /** A new VS; `limits` are its own (each defaults to the stack's: limits.ts). */
  createVs(name: string, limits: VsLimits = {}): VirtualServer {
    const bad = vsNameProblem(name);
    if (bad) throw new ValidationError(`virtual server name: ${bad}`);
    if (this.vsByName.has(name)) throw new Error(`virtual server '${name}' already exists`);
    checkVsLimits(limits);
    const vs = new VirtualServer(this.nextVsId++, name, this.opts.icmpRate, this.opts.icmpBurst);
    vs.maxTcpConns = limits.tcpConnections ?? this.limits.tcpConnectionsPerVs;
    vs.maxSynQueue = limits.tcpSynQueue ?? this.limits.tcpSynQueue;
    vs.maxNeighbors = limits.neighbors ?? this.limits.neighbors;
    this.vsByName.set(name, vs);
    this.vsById.set(vs.id, vs);
    return vs;
  }

  vs(name: string): VirtualServer {
    const v = this.vsByName.get(name);
    if (!v) throw new Error(`no virtual server '${name}'`);
    return v;
  }

  destroyVs(name: string): void {
    const vs = this.vs(name);
    for (const socks of [...vs.udpPorts.values()]) for (const s of [...socks]) if (!s.closed) s.close();
    this.tcp.destroyVs(vs);
    for (const l of [...vs.links].reverse()) this.removeLink(vs, l.name);
    vs.destroyed = true;
    this.vsByName.delete(name);
    this.vsById.delete(vs.id);
  }

  addLink(vs: VirtualServer, spec: LinkSpec): Link {
    // The validator's rules (name, VLAN, MAC, MTU; a (device, VLAN, MAC) used by another link).
    const asConfig: Record<string, unknown> = { device: spec.device };
    if (spec.name !== undefined) asConfig.name = spec.name;
    if (spec.vlan !== undefined) asConfig.vlan = spec.vlan;
    if (spec.mac !== undefined) asConfig.mac = macToString(spec.mac);
    if (spec.mtu !== undefined) asConfig.mtu = spec.mtu;
    enforce(`virtual server '${vs.name}': link`, (c) => checkLink(c, asConfig, '', this.state, vs.name, vs.links.length));
    const dev = this.device(spec.device);
    const vlan = spec.vlan ?? -1;
    const name = spec.name ?? (vlan >= 0 ? `${dev.name}.${vlan}` : dev.name);
    const mac = spec.mac ? Uint8Array.from(spec.mac) : Uint8Array.from(dev.mac);
    const mtu = spec.mtu ?? dev.mtu;
    const link = new Link(vs, vs.links.length, name, dev.index, dev.name, vlan, mac, mtu);
    link.neigh = new NeighborCache(this.wheel, this, link, { ...this.neighParams, maxEntries: vs.maxNeighbors });
    const grp = this.group(link, true)!;
    grp.links.push(link);
    grp.first = grp.links[0]!;
    vs.links.push(link);
    dev.ownMac?.(mac, vlan, true);
    return link;
  }

  removeLink(vs: VirtualServer, linkName: string): void {
    const link = vs.link(linkName);
    if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
    for (const a of [...link.addrs]) this.removeAddress(vs, link.name, `${ipv4ToString(a.addr)}/${a.prefixLen}`);
    for (const t of vs.tables.values()) for (const r of t.routes()) if (r.link === link.index) t.remove(r.dst, r.prefixLen, (x) => x === r);
    link.neigh.flush();
    vs.own.add(link.counters); // the VS keeps what its removed link counted
    const g = this.group(link)!;
    g.links.splice(g.links.indexOf(link), 1);
    const list = g.links;
    g.first = list.length ? list[0]! : null;
    if (!list.length) this.groups[link.dev]![link.vlan + 1] = null;
    const dev = this.devices[link.dev]!;
    if (!list.some((l) => macEquals(l.mac, 0, link.mac, 0))) dev.ownMac?.(link.mac, link.vlan, false);
    // Renumber the remaining links and the routes that refer to them.
    const removed = vs.links.indexOf(link);
    vs.links.splice(removed, 1);
    for (let i = removed; i < vs.links.length; i++) vs.links[i]!.index = i;
    for (const t of vs.tables.values()) for (const r of t.routes()) if (r.link > removed) r.link--;
  }

  addAddress(vs: VirtualServer, linkName: string, cidr: string): void {
    const link = vs.link(linkName);
    if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
    enforce(`virtual server '${vs.name}': address`, (c) => checkAddress(c, cidr, '', this.state, this.state.link(link)));
    const { addr, prefixLen } = parseCidr4(cidr);
    const g = this.group(link)!;
    const mask = maskOf(prefixLen);
    const broadcast = prefixLen <= 30 ? ((addr & mask) | ~mask) >>> 0 : 0;
    // A secondary address in a subnet the link already has shares its connected route (as Linux).
    const main = vs.table(TABLE_MAIN, true)!;
    const net = (addr & mask) >>> 0;
    const sameNet = link.addrs.some((a) => a.prefixLen === prefixLen && ((a.addr & mask) >>> 0) === net);
    if (!sameNet) main.add({ dst: net, prefixLen, gateway: 0, link: link.index, src: addr, metric: 0, proto: 'connected' });
    link.addrs.push({ addr, prefixLen, broadcast });
    g.addrs.set(addr | 0, link);
    if (broadcast && !g.bcast.has(broadcast | 0)) g.bcast.set(broadcast | 0, link);
    this.devices[link.dev]!.own?.(addr, link.vlan, true);
    this.gratuitousArp(link, addr);
  }

  removeAddress(vs: VirtualServer, linkName: string, cidr: string): void {
    const link = vs.link(linkName);
    if (!link) throw new Error(`virtual server '${vs.name}' has no link '${linkName}'`);
    const { addr, prefixLen } = parseCidr4(cidr);
    const i = link.addrs.findIndex((a) => a.addr === addr && a.prefixLen === prefixLen);
    if (i < 0) throw new Error(`virtual server '${vs.name}' has no address ${cidr} on '${linkName}'`);
    const a = link.addrs[i]!;
    link.addrs.splice(i, 1);
    const g = this.group(link)!;
    g.addrs.delete(addr | 0);
    if (a.broadcast && g.bcast.get(a.broadcast | 0) === link && !link.addrs.some((x) => x.broadcast === a.broadcast)) g.bcast.delete(a.broadcast | 0);
    const mask = maskOf(prefixLen);
    const net = (addr & mask) >>> 0;
    const other = link.addrs.find((x) => x.prefixLen === prefixLen && ((x.addr & mask) >>> 0) === net);
    const main = vs.table(TABLE_MAIN);
    if (other) {
      // A secondary address of the subnet remains: the connected route now prefers it as source.
      const r = main?.routes().find((x) => x.proto === 'connected' && x.link === link.index && x.dst === net && x.prefixLen === prefixLen);
      if (r && r.src === addr) r.src = other.addr;
    } else {
      main?.remove(net, prefixLen, (r) => r.proto === 'connected' && r.link === link.index);
    }
    this.devices[link.dev]!.own?.(addr, link.vlan, false);
  }

  addRoute(vs: VirtualServer, spec: RouteSpec): Route {
    enforce(`virtual server '${vs.name}': route ${spec.dst}`, (c) => checkRoute(c, defined({ ...spec }), '', this.state, vs.name));
    let dst = 0;
    let prefixLen = 0;
    if (spec.dst !== 'default') ({ addr: dst, prefixLen } = parseCidr4(spec.dst));
    const gateway = spec.via ? parseIpv4(spec.via) : 0;
    const table = spec.table ?? TABLE_MAIN;
    if (!Number.isInteger(table) || table < 1 || table > 0xffffffff) throw new Error(`bad table id ${spec.table}`);
    let link: Link | undefined;
    if (spec.link) {
      link = vs.link(spec.link);
      if (!link) throw new Error(`virtual server '${vs.name}' has no link '${spec.link}'`);
    } else if (gateway) {
      // The gateway must be on a connected network.
      const r = vs.table(TABLE_MAIN)?.lookup(gateway);
      if (!r || r.gateway) throw new Error(`gateway ${spec.via} is not on a connected network of virtual server '${vs.name}'`);
      link = vs.links[r.link];
    } else if (vs.links.length === 1) {
      link = vs.links[0];
    } else {
      throw new Error(`route ${spec.dst}: give 'via' or 'link'`);
    }
    const route: Route = {
      dst, prefixLen, gateway, link: link!.index, src: spec.src ? parseIpv4(spec.src) : 0, metric: spec.metric ?? 0, proto: 'static',
    };
    vs.table(table, true)!.add(route);
    return route;
  }

  removeRoute(vs: VirtualServer, spec: RouteSpec): number {
    let dst = 0;
    let prefixLen = 0;
    if (spec.dst !== 'default') ({ addr: dst, prefixLen } = parseCidr4(spec.dst));
    const gw = spec.via ? parseIpv4(spec.via) : undefined;
    const n = vs.table(spec.table ?? TABLE_MAIN)?.remove(dst, prefixLen, (r) => r.proto === 'static' && (gw === undefined || r.gateway === gw)) ?? 0;
    if (!n) throw new Error(`virtual server '${vs.name}' has no route ${spec.dst}${spec.via ? ` via ${spec.via}` : ''}`);
    return n;
  }

  addRule(vs: VirtualServer, spec: RuleSpec): void {
    enforce(`virtual server '${vs.name}': rule ${spec.priority}`, (c) => checkRule(c, defined({ ...spec }), '', this.state, vs.name));
    let src = 0;
    let srcLen = 0;
    if (spec.from && spec.from !== 'all') ({ addr: src, prefixLen: srcLen } = parseCidr4(spec.from.includes('/') ? spec.from : `${spec.from}/32`));
    vs.rules.add({ priority: spec.priority, src, srcLen, mark: spec.fwmark, table: spec.table });
  }

  createUdpSocket(vs: VirtualServer | string, opts: { maxQueue?: number } = {}): UdpSocket {
    const v = typeof vs === 'string' ? this.vs(vs) : vs;
    const s = new UdpSocket(this, v.name, opts);
    (s as unknown as { vs: VirtualServer }).vs = v;
    return s;
  }

  // ---------------------------------------------------------------- receive path

  /**
   * Processes a burst of received frames from device `devIdx`. Every frame is consumed: freed,
   * queued for transmission (replies reuse the request's frame), or handed to a neighbor queue.
   */
  input(devIdx: number, burst: Burst, now: number): void {
    const dev = this.devices[devIdx];
    if (!dev) throw new Error(`no device index ${devIdx}`);
    this.now = now;
    this.inInput = true;
    this.rxDone = 0;
    try {
      this.inputBurst(dev, devIdx, burst, now);
    } catch (err) {
      this.burstThrew(dev, burst, err);
    } finally {
      burst.n = 0;
      this.inInput = false;
    }
  }

  /**
   * An exception escaped the per-frame guards (only stage 1, Ethernet demux, runs unguarded; it
   * frees or keeps frames but never allocates or sends): every frame of the burst it has not freed
   * is freed now (Principle 3), the exception counted and reported.
   */
  private burstThrew(dev: Device, burst: Burst, err: unknown): void {
    this.internalError(err, null, dev);
    const pool = dev.pool;
    // Frames of the chunk being handled are still the engine's only if stage 1 was running; later
    // chunks are untouched.
    const from = this.rxStage1 ? this.rxDone : Math.min(burst.n, this.rxDone + 256);
    this.rxStage1 = false;
    for (let i = from; i < burst.n; i++) {
      const f = burst.frame[i]!;
      try {
        if (pool.stateOf(f) === FrameState.Held && pool.ownerOf(f) === OWNER_ENGINE) pool.free(f);
      } catch { /* not a frame of this pool: nothing to free */ }
    }
  }

  /**
   * A handler threw while it had received frame `f` (generation `gen`; `outMark` = the device's
   * output queue length before the handler ran): the frame is freed unless the handler consumed it
   * before throwing (freed it, queued it as a reply, or handed it to a zero-copy reader).
   */
  private rxThrew(dev: Device, f: number, gen: number, outMark: number, link: Link | null, err: unknown): void {
    this.internalError(err, link, dev);
    const pool = dev.pool;
    try {
      if (pool.generation(f) !== gen) return; // freed (and maybe already reused by someone else)
      if (pool.stateOf(f) !== FrameState.Held || pool.ownerOf(f) !== OWNER_ENGINE) return;
      const out = dev.out;
      for (let i = outMark; i < out.n; i++) if (out.frame[i] === f) return; // queued as a reply
      pool.free(f);
    } catch (e2) {
      this.internalError(e2, link, dev);
    }
  }

  /**
   * An exception from the stack's own code (a bug, never the input's fault: malformed input is a
   * counted drop). Counted as an `internal-error` drop on `link` (else `dev`, else the engine) and
   * reported once per distinct error (by message and throw site), so a packet that keeps triggering
   * it cannot flood the log.
   */
  internalError(err: unknown, link: Link | null = null, dev: Device | null = null): void {
    this.internalErrors++;
    if (link) this.dropOn(link, Drop.InternalError);
    else if (dev) dev.counters.drop(Drop.InternalError);
    else this.counters.drop(Drop.InternalError);
    try {
      const e = err instanceof Error ? err : null;
      const text = e ? `${e.name}: ${e.message}` : String(err);
      const site = e?.stack?.split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
      const key = `${e ? e.name : typeof err} ${site}`;
      if (this.internalSeen.has(key) || this.internalSeen.size >= INTERNAL_ERRORS_LOGGED) return;
      this.internalSeen.add(key);
      this.log(`xdpstack internal error (counted as 'internal-error' drops; reported once): ${e?.stack ?? text}`);
    } catch { /* reporting must not throw */ }
  }

  /** An exception from application code in a socket callback (see EngineOptions.onCallbackError). */
  callbackError(err: unknown): void {
    try {
      this.onCallbackError(err);
    } catch (e2) {
      this.internalError(e2);
    }
  }

  private inputBurst(dev: Device, devIdx: number, burst: Burst, now: number): void {
    const b = dev.pool.bytes;
    const pool = dev.pool;
    let done = 0;
    while (done < burst.n) {
      const n = Math.min(burst.n - done, 256);
      let nArp = 0;
      let nIp = 0;
      this.rxDone = done;
      this.rxStage1 = true;
      // Stage 1: Ethernet / VLAN demux.
      for (let j = 0; j < n; j++) {
        const i = done + j;
        const f = burst.frame[i]!;
        const off = burst.off[i]!;
        const len = burst.len[i]!;
        dev.counters.rxPackets++;
        dev.counters.rxBytes += len;
        this.mLink[j] = null;
        const eth = this.eth;
        const d = eth.parse(b, off, len);
        if (d !== Drop.None && d !== Drop.EthUnknownType) {
          dev.counters.drop(d);
          pool.free(f);
          continue;
        }
        const grp = this.groups[devIdx]![eth.vlan + 1];
        if (!grp || eth.outerVlan >= 0) {
          dev.counters.drop(Drop.VlanNoLink);
          pool.free(f);
          continue;
        }
        let link: Link | null = null;
        if (isMulticast(b, eth.dstOff)) link = grp.first;
        else {
          const o = eth.dstOff;
          const hi = (b[o]! << 8) | b[o + 1]!;
          const lo = ((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0;
          const f0 = grp.first!;
          if (f0.macLo === lo && f0.macHi === hi) link = f0;
          else {
            const links = grp.links;
            for (let k = 1; k < links.length; k++) {
              const l = links[k]!;
              if (l.macLo === lo && l.macHi === hi) { link = l; break; }
            }
          }
        }
        if (!link) {
          dev.counters.drop(Drop.NotForUs);
          pool.free(f);
          continue;
        }
        link.rxPackets++;
        link.rxBytes += len;
        if (d !== Drop.None) {
          this.dropOn(link, d);
          pool.free(f);
          continue;
        }
        this.mLink[j] = link;
        this.mEthOff[j] = off;
        this.mSrcMac[j] = eth.srcOff;
        this.mL3Off[j] = eth.l3Off;
        this.mL3Len[j] = eth.l3Len;
        if (eth.etherType === ETH_P_IPV4) this.ipIdx[nIp++] = j;
        else if (eth.etherType === ETH_P_ARP) this.arpIdx[nArp++] = j;
        else {
          this.dropOn(link, Drop.EthUnknownType);
          pool.free(f);
        }
      }
      this.rxStage1 = false;
      // Stages 2 to 4 guard each frame: a handler that throws costs that frame only (rxThrew).
      // Stage 2: ARP.
      for (let k = 0; k < nArp; k++) {
        const j = this.arpIdx[k]!;
        const f = burst.frame[done + j]!, gen = pool.generation(f), mark = dev.out.n;
        try {
          this.arpInput(dev, burst, done, j, now);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, this.mLink[j]!, err);
        }
      }
      // Stage 3: IPv4.
      let nIcmp = 0;
      let nUdp = 0;
      let nTcp = 0;
      for (let k = 0; k < nIp; k++) {
        const j = this.ipIdx[k]!;
        const f = burst.frame[done + j]!, gen = pool.generation(f), mark = dev.out.n;
        let proto = 0;
        try {
          proto = this.ipInput(dev, burst, done, j, now);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, this.mLink[j]!, err);
        }
        if (proto === IPPROTO_ICMP) this.icmpIdx[nIcmp++] = j;
        else if (proto === IPPROTO_UDP) this.udpIdx[nUdp++] = j;
        else if (proto === IPPROTO_TCP) this.tcpIdx[nTcp++] = j;
      }
      // Stage 4: ICMP, then UDP.
      for (let k = 0; k < nIcmp; k++) {
        const j = this.icmpIdx[k]!;
        const f = burst.frame[done + j]!, gen = pool.generation(f), mark = dev.out.n;
        try {
          this.icmpInput(this.mLink[j]!, b, this.mL4Off[j]!, this.mL4Len[j]!, this.mSrc[j]!, this.mDst[j]!, this.mTos[j]!,
            this.mSrcMac[j]!, f, this.mL3Off[j]!, this.mBcast[j]!, now);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, this.mLink[j]!, err);
        }
      }
      for (let k = 0; k < nUdp; k++) {
        const j = this.udpIdx[k]!;
        const f = burst.frame[done + j]!, gen = pool.generation(f), mark = dev.out.n;
        try {
          this.udpInput(this.mLink[j]!, b, this.mL4Off[j]!, this.mL4Len[j]!, this.mSrc[j]!, this.mDst[j]!,
            this.mSrcMac[j]!, f, this.mL3Off[j]!, this.mBcast[j]!, now);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, this.mLink[j]!, err);
        }
      }
      if (nTcp) this.tcp.beginBurst();
      for (let k = 0; k < nTcp; k++) {
        const j = this.tcpIdx[k]!;
        const so = this.mSrcMac[j]!;
        const m = this.tcpMac;
        for (let x = 0; x < 6; x++) m[x] = b[so + x]!;
        const f = burst.frame[done + j]!;
        if (this.mBcast[j]) {
          this.dropOn(this.mLink[j]!, Drop.Ipv4NotOurAddress); // no TCP to broadcast addresses
          pool.free(f);
          continue;
        }
        // A zero-copy reader may keep the frame (it releases it later).
        const gen = pool.generation(f), mark = dev.out.n;
        let kept: boolean;
        try {
          kept = this.tcp.input(this.mLink[j]!, b, this.mL4Off[j]!, this.mL4Len[j]!, this.mSrc[j]!, this.mDst[j]!, m, now, pool, f);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, this.mLink[j]!, err);
          continue;
        }
        if (!kept) pool.free(f);
      }
      done += n;
    }
  }

  dropOn(link: Link, reason: Drop): void {
    link.drop(reason); // the VS's counters are the sum of its links' (and its own)
  }

  private arpInput(dev: Device, burst: Burst, base: number, j: number, now: number): void {
    const link0 = this.mLink[j]!;
    const b = dev.pool.bytes;
    const f = burst.frame[base + j]!;
    const arp = this.arp;
    const d = arp.parse(b, this.mL3Off[j]!, this.mL3Len[j]!);
    if (d !== Drop.None) {
      this.dropOn(link0, d);
      dev.pool.free(f);
      return;
    }
    const grp = this.groups[dev.index]![link0.vlan + 1]!;
    const target = grp.addrs.get(arp.tpa | 0);
    if (!target) {
      // RFC 826 merge: refresh an entry we already have, but do not create one.
      if (arp.spa) link0.neigh.learn(arp.spa, b, arp.shaOff, false, false, now);
      this.dropOn(link0, Drop.ArpNotOurAddress);
      dev.pool.free(f);
      return;
    }
    const link = target!;
    // Never learn our own address (address conflict) nor 0.0.0.0 (a probe). A new entry is made
    // only for a sender in a connected prefix of the link (RFC 826 learning is about the hosts of
    // that network; off-subnet senders would only fill the table): others may refresh an entry
    // the stack made itself (an on-link gateway it is resolving) but never create one.
    const learnable = arp.spa !== 0 && !grp.addrs.has(arp.spa | 0);
    if (learnable) {
      link.neigh.learn(arp.spa, b, arp.shaOff, arp.op === ARP_REPLY, this.onLinkSubnet(link, arp.spa), now);
    }
    if (arp.op !== ARP_REQUEST) {
      // A reply that taught nothing (sender 0.0.0.0, or our own address: RFC 5227 2.4 conflict) is counted.
      if (!learnable) this.dropOn(link, Drop.ArpBadSender);
      dev.pool.free(f);
      return;
    }
    // Reply in place, to the requester's hardware address, through the link it arrived on.
    const sm = this.scratchMac;
    for (let i = 0; i < 6; i++) sm[i] = b[arp.shaOff + i]!;
    const spa = arp.spa;
    const tpa = arp.tpa;
    const off = this.mEthOff[j]!;
    const hl = linkEth(b, off, sm, 0, link, ETH_P_ARP);
    writeArp(b, off + hl, ARP_REPLY, link.mac, 0, tpa, sm, 0, spa);
    this.enqueue(link, dev.pool, f, off, hl + ARP_LEN);
  }

  /** Returns the L4 protocol for the next stage, or 0 when the frame was consumed here. */
  private ipInput(dev: Device, burst: Burst, base: number, j: number, now: number): number {
    const link0 = this.mLink[j]!;
    const b = dev.pool.bytes;
    const f = burst.frame[base + j]!;
    const ip = this.ip;
    const d = ip.parse(b, this.mL3Off[j]!, this.mL3Len[j]!);
    if (d !== Drop.None) {
      this.dropOn(link0, d);
      dev.pool.free(f);
      return 0;
    }
    if (ip.src === 0 || ip.src >= 0xe0000000 || (ip.src >>> 24) === 127) {
      this.dropOn(link0, Drop.Ipv4BadSource);
      dev.pool.free(f);
      return 0;
    }
    const grp = this.groups[dev.index]![link0.vlan + 1]!;
    let link = grp.addrs.get(ip.dst | 0);
    let bcast = 0;
    if (!link) {
      link = grp.bcast.get(ip.dst | 0);
      bcast = 1;
      if (!link && ip.dst === BROADCAST) link = link0;
      if (!link) {
        this.dropOn(link0, Drop.Ipv4NotOurAddress);
        dev.pool.free(f);
        return 0;
      }
    }
    // A datagram from the wire that claims one of our own addresses as its source is spoofed or
    // looped (Linux: a martian source); answering it would talk to ourselves. Only the VS's own
    // loopback carries such datagrams.
    if (!this.inLoopback && grp.addrs.has(ip.src | 0)) {
      this.dropOn(link0, Drop.Ipv4BadSource);
      dev.pool.free(f);
      return 0;
    }
    if (ip.mf || ip.fragOff) {
      const src = ip.src, dst = ip.dst, proto = ip.proto, tos = ip.tos;
      const rd = this.reasm.push(link.vs.id, ip, b, now);
      const srcMacOff = this.mSrcMac[j]!;
      for (let i = 0; i < 6; i++) this.scratchMac[i] = b[srcMacOff + i]!;
      dev.pool.free(f);
      if (rd !== Drop.None) {
        this.dropOn(link, rd);
        return 0;
      }
      if (this.reasm.done) this.datagramInput(link, src, dst, proto, tos, this.reasm.datagram, now);
      return 0;
    }
    this.mLink[j] = link;
    this.mBcast[j] = bcast;
    this.mSrc[j] = ip.src;
    this.mDst[j] = ip.dst;
    this.mTos[j] = ip.tos;
    this.mL4Off[j] = ip.payloadOff;
    this.mL4Len[j] = ip.payloadLen;
    if (ip.proto === IPPROTO_ICMP || ip.proto === IPPROTO_UDP || ip.proto === IPPROTO_TCP) return ip.proto;
    // Unknown protocol: protocol unreachable (not for broadcasts), then drop.
    if (!bcast) {
      this.icmpErrorTo(link, ICMP_DEST_UNREACH, ICMP_PROTO_UNREACH, 0, b, this.mL3Off[j]!, ip.hdrLen + ip.payloadLen, ip.dst, ip.src, b, this.mSrcMac[j]!, now);
    }
    this.dropOn(link, Drop.Ipv4UnknownProtocol);
    dev.pool.free(f);
    return 0;
  }

  private group(link: Link, create = false): LinkGroup | null {
    const groups = this.groups[link.dev]!;
    let g = groups[link.vlan + 1]!;
    if (!g && create) {
      g = new LinkGroup();
      groups[link.vlan + 1] = g;
    }
    return g;
  }

  private isBroadcast(link: Link, dst: number): boolean {
    if (dst === BROADCAST) return true;
    for (const a of link.addrs) if (a.broadcast === dst) return true;
    return false;
  }

  private icmpInput(link: Link, b: Uint8Array, off: number, len: number, src: number, dst: number, tos: number,
    srcMacOff: number, f: number, ipOff: number, bcast: number, now: number): void {
    const pool = this.devices[link.dev]!.pool;
    const icmp = this.icmp;
    const d = icmp.parse(b, off, len);
    if (d !== Drop.None) {
      this.dropOn(link, d);
      pool.free(f);
      return;
    }
    if (icmp.type === ICMP_ECHO_REQUEST) {
      if (bcast) {
        this.dropOn(link, Drop.Ipv4NotOurAddress);
        pool.free(f);
        return;
      }
      // Echo reply in place: type 8 → 0 with an incremental checksum update (RFC 1624).
      b[off] = 0;
      wr16(b, off + 2, checksumAdjust(rd16(b, off + 2), 0x0800, 0x0000));
      for (let i = 0; i < 6; i++) this.scratchMac[i] = b[srcMacOff + i]!;
      const ipStart = off - 20;
      writeIpv4(b, ipStart, dst, src, IPPROTO_ICMP, len, 64, this.nextIpId(link), 0, tos);
      const ethStart = ipStart - link.ethLen;
      linkEth(b, ethStart, this.scratchMac, 0, link, ETH_P_IPV4);
      if (20 + len > link.mtu) {
        // Cannot happen for an unfragmented request that fit the link; be safe.
        this.dropOn(link, Drop.Ipv4BadTotalLength);
        pool.free(f);
        return;
      }
      this.enqueue(link, pool, f, ethStart, link.ethLen + 20 + len);
      return;
    }
    if (icmp.type === ICMP_DEST_UNREACH || icmp.type === ICMP_TIME_EXCEEDED || icmp.type === ICMP_PARAM_PROBLEM) {
      const r = this.icmpErrorInput(link, b, dst);
      if (r !== Drop.None) this.dropOn(link, r);
      pool.free(f);
      return;
    }
    // Echo replies (no ping sockets yet) and other ICMP types are counted and dropped.
    this.dropOn(link, Drop.IcmpUnknownType);
    pool.free(f);
  }

  /**
   * An ICMP error (parsed in this.icmp: it quotes an IPv4 header and 8 bytes) that came to our
   * address `dst`. It is believed only when it quotes live state (RFC 5927 section 4, as Linux's
   * tcp_v4_err and __udp4_lib_err): a datagram we sent from `dst`, of a TCP connection that exists
   * with a sequence number in SND.UNA..SND.NXT, or of a UDP socket bound to its source port (and
   * connected to its destination, when connected). Anything else is a counted drop and changes
   * nothing: a forged "fragmentation needed" cannot lower the path MTU toward a host, nor a forged
   * "port unreachable" end a connection.
   */
  private icmpErrorInput(link: Link, b: Uint8Array, dst: number): Drop {
    const icmp = this.icmp;
    const q = icmp.innerOff;
    const p = icmp.innerL4Off;
    const qsrc = icmp.innerSrc;
    const qdst = icmp.innerDst;
    // Ours was sent from the address the error came to, and a non-first fragment has no ports.
    if (qsrc !== dst || (((b[q + 6]! << 8) | b[q + 7]!) & 0x1fff) !== 0) return Drop.IcmpNoFlow;
    const sport = (b[p]! << 8) | b[p + 1]!;
    const dport = (b[p + 2]! << 8) | b[p + 3]!;
    const fragNeeded = icmp.type === ICMP_DEST_UNREACH && icmp.code === ICMP_FRAG_NEEDED;
    if (icmp.innerProto === IPPROTO_TCP) {
      const seq = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
      return this.tcp.icmpError(link.vs, qsrc, sport, qdst, dport, seq, icmp.type, icmp.code, icmp.nextHopMtu);
    }
    if (icmp.innerProto === IPPROTO_UDP) {
      const sock = this.findUdp(link.vs, sport, qsrc, qdst, dport);
      if (!sock) return Drop.IcmpNoFlow;
      if (fragNeeded) this.pmtuUpdate(link.vs, qdst, icmp.nextHopMtu, qsrc, sock.mark);
      // Other errors are not reported to UDP sockets (Node's dgram does not either).
      return Drop.None;
    }
    return Drop.IcmpNoFlow; // no ping or raw sockets: nothing of ours to quote
  }

  /**
   * ICMP "fragmentation needed" with next-hop MTU `mtu` for the path from `vs` to `dst` (its sender
   * already validated against a live flow). As RFC 1191 section 3 and Linux: an MTU below PMTU_MIN
   * (0 from an old router, 68, 8...) is taken as PMTU_MIN; one not below the current path MTU
   * changes nothing (PMTU only decreases until the entry expires). Returns the path MTU now in use.
   */
  pmtuUpdate(vs: VirtualServer, dst: number, mtu: number, src = 0, mark = 0): number {
    const cur = this.mtuTo(vs, dst, src, mark);
    if (mtu < PMTU_MIN) mtu = PMTU_MIN;
    if (mtu < cur) {
      vs.pmtu.set(dst, { mtu, expires: this.now + this.opts.pmtuExpiryUs });
      return mtu;
    }
    return cur;
  }

  private udpInput(link: Link, b: Uint8Array, off: number, len: number, src: number, dst: number,
    srcMacOff: number, f: number, ipOff: number, bcast: number, now: number): void {
    const pool = this.devices[link.dev]!.pool;
    const udp = this.udp;
    const d = udp.parse(b, off, len, src, dst);
    if (d !== Drop.None) {
      this.dropOn(link, d);
      pool.free(f);
      return;
    }
    const sock = this.findUdp(link.vs, udp.dstPort, dst, src, udp.srcPort);
    if (!sock) {
      if (!bcast) {
        this.icmpErrorTo(link, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, b, ipOff, off - ipOff + len, dst, src, b, srcMacOff, now);
      }
      this.dropOn(link, Drop.UdpNoSocket);
      pool.free(f);
      return;
    }
    const data = Buffer.allocUnsafe(udp.payloadLen);
    this.devices[link.dev]!.buf.copy(data, 0, udp.payloadOff, udp.payloadOff + udp.payloadLen);
    if (!sock.enqueue(data, src, udp.srcPort)) this.dropOn(link, Drop.UdpSocketQueueFull);
    else sock.heardFrom(src, udp.srcPort, link, b, srcMacOff, bcast ? 0 : dst);
    pool.free(f);
  }

  /** A reassembled datagram (payload of the IP packet in `dg`). */
  private datagramInput(link: Link, src: number, dst: number, proto: number, tos: number, dg: Uint8Array, now: number): void {
    const peerMac = Uint8Array.from(this.scratchMac);
    if (proto === IPPROTO_UDP) {
      const udp = this.udp;
      const d = udp.parse(dg, 0, dg.length, src, dst);
      if (d !== Drop.None) return this.dropOn(link, d);
      const sock = this.findUdp(link.vs, udp.dstPort, dst, src, udp.srcPort);
      if (!sock) return this.dropOn(link, Drop.UdpNoSocket);
      if (!sock.enqueue(Buffer.from(dg.subarray(udp.payloadOff, udp.payloadOff + udp.payloadLen)), src, udp.srcPort)) {
        this.dropOn(link, Drop.UdpSocketQueueFull);
      } else sock.heardFrom(src, udp.srcPort, link, peerMac, 0, this.isBroadcast(link, dst) ? 0 : dst);
      return;
    }
    if (proto === IPPROTO_ICMP) {
      const icmp = this.icmp;
      const d = icmp.parse(dg, 0, dg.length);
      if (d !== Drop.None) return this.dropOn(link, d);
      if (icmp.type !== ICMP_ECHO_REQUEST || this.isBroadcast(link, dst)) return this.dropOn(link, Drop.IcmpUnknownType);
      // Large echo: reply with the same data, fragmented for the path.
      const hdr = this.l4Scratch;
      hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 0;
      hdr[4] = dg[4]!; hdr[5] = dg[5]!; hdr[6] = dg[6]!; hdr[7] = dg[7]!;
      const c = fold(sum16(dg, 8, dg.length - 8, sum16(hdr, 0, 8)));
      hdr[2] = c >>> 8; hdr[3] = c & 0xff;
      this.emit(link.vs, link, peerMac, dst, src, IPPROTO_ICMP, tos, hdr, 8, dg, 8, dg.length - 8, false, 0);
      return;
    }
    if (proto === IPPROTO_TCP) {
      if (this.isBroadcast(link, dst)) return this.dropOn(link, Drop.Ipv4NotOurAddress); // no TCP to broadcast addresses
      // The reassembled segment is no UMEM frame (no pool): TCP copies what it keeps, since the
      // reassembler reuses its buffer.
      this.tcp.input(link, dg, 0, dg.length, src, dst, peerMac, now, null, -1);
      return;
    }
    this.dropOn(link, Drop.Ipv4UnknownProtocol);
  }

  /** The socket for a datagram to dst:port from src:sport (a connected socket only hears its peer). */
  private findUdp(vs: VirtualServer, port: number, dst: number, src = 0, sport = 0): UdpSocket | null {
    const list = vs.udpPorts.get(port);
    if (!list) return null;
    let any: UdpSocket | null = null;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      const peer = s.connected;
      if (peer && (peer.addr !== src || peer.port !== sport)) continue;
      if (s.localAddr === dst) return s;
      if (s.localAddr === 0) any = s;
    }
    return any;
  }

  // ---------------------------------------------------------------- transmit path

  /** IPv4 identification: a counter per link (per source address in practice). */
  private nextIpId(link: Link): number {
    const id = link.ipId;
    link.ipId = (id + 1) & 0xffff;
    return id;
  }

  /** Queues a finished frame on its device; frees and counts it when the queue is full. */
  private enqueue(link: Link, pool: FramePool, f: number, off: number, len: number): void {
    if (len < ETH_MIN) {
      pool.bytes.fill(0, off + len, off + ETH_MIN);
      len = ETH_MIN;
    }
    const dev = this.devices[link.dev]!;
    if (dev.out.full) {
      // A spike (thousands of sockets sending between two steps) grows the queue up to a bound;
      // beyond it the frame is dropped and counted.
      if (dev.out.capacity < this.opts.outMax) dev.out.grow();
      else {
        this.dropOn(link, Drop.TxRingFull);
        pool.free(f);
        return;
      }
    }
    dev.out.push(f, off, len, this.now);
    link.txPackets++;
    link.txBytes += len;
    dev.counters.txPackets++;
    dev.counters.txBytes += len;
    if (!this.inInput) this.onOutput?.();
  }

  /** Sends an ICMP error quoting `orig[ipOff..]`, to the sender's MAC through `link`, rate-limited. */
  private icmpErrorTo(link: Link, type: number, code: number, mtu: number, orig: Uint8Array, ipOff: number, ipLen: number,
    from: number, to: number, macBuf: Uint8Array, macOff: number, now: number): void {
    const vs = link.vs;
    // Token bucket refill.
    const elapsed = now - vs.icmpStamp;
    if (elapsed > 0) {
      vs.icmpTokens = Math.min(vs.icmpBurst, vs.icmpTokens + (elapsed * vs.icmpRate) / 1e6);
      vs.icmpStamp = now;
    }
    if (vs.icmpTokens < 1) {
      link.drop(Drop.IcmpRateLimited);
      return;
    }
    vs.icmpTokens -= 1;
    const pool = this.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) return this.dropOn(link, Drop.NoFrame);
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    const icmpOff = start + ethLen + 20;
    const ilen = writeIcmpError(pool.bytes, icmpOff, type, code, mtu, orig, ipOff, ipLen);
    writeIpv4(pool.bytes, start + ethLen, from, to, IPPROTO_ICMP, ilen, 64, this.nextIpId(link), 0, 0xc0);
    linkEth(pool.bytes, start, macBuf, macOff, link, ETH_P_IPV4);
    this.enqueue(link, pool, f, start, ethLen + 20 + ilen);
  }

  private gratuitousArp(link: Link, addr: number): void {
    const pool = this.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) return this.dropOn(link, Drop.NoFrame);
    const start = pool.dataStart(f);
    const hl = linkEth(pool.bytes, start, BCAST_MAC, 0, link, ETH_P_ARP);
    writeArp(pool.bytes, start + hl, ARP_REQUEST, link.mac, 0, addr, ZERO_MAC, 0, addr);
    this.enqueue(link, pool, f, start, hl + ARP_LEN);
  }

  /** NeighborHost: ARP request for `ip` on the cache's link. */
  solicit(cache: NeighborCache, ip: number, mac: Uint8Array | null, _now: number): void {
    const link = cache.linkRef as Link;
    const pool = this.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) return this.dropOn(link, Drop.NoFrame);
    const start = pool.dataStart(f);
    const src = this.sourceFor(link, ip);
    const hl = linkEth(pool.bytes, start, mac ?? BCAST_MAC, 0, link, ETH_P_ARP);
    writeArp(pool.bytes, start + hl, ARP_REQUEST, link.mac, 0, src, ZERO_MAC, 0, ip);
    this.enqueue(link, pool, f, start, hl + ARP_LEN);
  }

  /** NeighborHost: a queued frame's neighbor resolved. */
  release(cache: NeighborCache, p: PendingFrame, mac: Uint8Array, _now: number): void {
    const link = cache.linkRef as Link;
    const pool = this.devices[p.dev]!.pool;
    pool.bytes.set(mac, p.off);
    this.enqueue(link, pool, p.frame, p.off, p.len);
  }

  /** NeighborHost: a queued frame is dropped. */
  discard(cache: NeighborCache, p: PendingFrame, unreachable: boolean, n?: Neighbor): void {
    const link = cache.linkRef as Link;
    const pool = this.devices[p.dev]!.pool;
    const t = this.tcpTupleOf(pool.bytes, p.off + link.ethLen, p.len - link.ethLen);
    if (t) {
      if (unreachable) this.tcp.hostUnreachable(link.vs, t[0], t[1], t[2], t[3]);
      else if (n && (n.notes?.length ?? 0) < NEIGH_NOTES_MAX * 4) (n.notes ??= []).push(t[0], t[1], t[2], t[3]);
    }
    pool.free(p.frame);
    this.dropOn(link, unreachable ? Drop.NeighborUnreachable : Drop.ArpQueueFull);
  }

  /**
   * NeighborHost: address resolution failed. The connections whose segments were waiting for it
   * (queued, or dropped from the full queue meanwhile) get the error, as a kernel reports a failed
   * neighbor (EHOSTUNREACH) instead of retransmitting into the void until the connect times out.
   * Datagrams are only counted (in `discard`).
   */
  failed(cache: NeighborCache, n: Neighbor): void {
    const t = n.notes;
    if (!t) return;
    const vs = (cache.linkRef as Link).vs;
    for (let i = 0; i + 3 < t.length; i += 4) this.tcp.hostUnreachable(vs, t[i]!, t[i + 1]!, t[i + 2]!, t[i + 3]!);
  }

  /** The TCP 4-tuple (src, sport, dst, dport) of a frame the stack built (IPv4 at `b[off..off+len)`), or null. */
  private tcpTupleOf(b: Uint8Array, off: number, len: number): [number, number, number, number] | null {
    if (len < 20 || b[off + 9] !== IPPROTO_TCP) return null;
    const ihl = (b[off]! & 0x0f) * 4;
    if ((rd16(b, off + 6) & 0x1fff) !== 0 || len < ihl + 4) return null;
    const src = ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
    const dst = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    return [src, rd16(b, off + ihl), dst, rd16(b, off + ihl + 2)];
  }

  /**
   * Traffic reflection: a reply leaves through the link its request came in on, to the MAC it came
   * from (a peer behind a router is answered through that router, with no route or ARP needed),
   * unless the peer is a neighbor on that link whose MAC is known: then the neighbor cache, which
   * keeps checking that it is reachable, gives the MAC. Returns the MAC to use, or null for the cache.
   */
  private reflectTo(link: Link, dst: number, viaMac: Uint8Array | null): Uint8Array | null {
    if (!viaMac) return null;
    const n = link.neigh.peek(dst);
    return n !== undefined && n.state !== NState.Incomplete ? null : viaMac;
  }

  /**
   * The link of `vs` that has address `addr`, if any: traffic to it stays inside the VS. One probe
   * of the address index per link of the VS (never a scan of its addresses).
   */
  private ownLink(vs: VirtualServer, addr: number): Link | null {
    const links = vs.links;
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      const owner = this.groups[l.dev]![l.vlan + 1]?.addrs.get(addr | 0);
      if (owner !== undefined && owner.vs === vs) return owner;
    }
    return null;
  }

  /**
   * Queues a frame the VS sent to itself: it comes back as received on `link` at the next step
   * (`flushEvents`), through the whole receive path, as a kernel's loopback does.
   */
  private loopback(link: Link, pool: FramePool, f: number, off: number, len: number): void {
    const q = this.loop[link.dev]!;
    if (q.full) {
      if (q.capacity < this.opts.outMax) q.grow();
      else {
        this.dropOn(link, Drop.TxRingFull);
        pool.free(f);
        return;
      }
    }
    q.push(f, off, len, this.now);
    this.loopPending++;
    this.onOutput?.(); // also from inside input(): another step must run to receive it
  }

  /** Set while looped-back frames (sent by a VS to its own address) go through input. */
  private inLoopback = false;

  /** Feeds the frames looped back since the last call to the receive path. */
  private inputLoopback(): void {
    if (!this.loopPending) return;
    this.loopPending = 0;
    for (let d = 0; d < this.loop.length; d++) {
      const q = this.loop[d]!;
      if (!q.n) continue;
      // What this input sends to the VS itself goes into the other queue, for the next round.
      this.loop[d] = this.loopSpare[d]!;
      this.loopSpare[d] = q;
      this.inLoopback = true;
      try {
        this.input(d, q, this.now);
      } finally {
        this.inLoopback = false;
      }
    }
  }

  /** Whether `addr` lies in a prefix of one of `link`'s addresses (a connected subnet). */
  private onLinkSubnet(link: Link, addr: number): boolean {
    for (const a of link.addrs) {
      if (((a.addr ^ addr) & maskOf(a.prefixLen)) === 0) return true;
    }
    return false;
  }

  /** NeighborHost: a frame for a new neighbor is dropped because the link's table is full. */
  discardTableFull(cache: NeighborCache, p: PendingFrame): void {
    const link = cache.linkRef as Link;
    this.devices[p.dev]!.pool.free(p.frame);
    this.dropOn(link, Drop.NeighborTableFull);
  }

  /** Source address on `link` best matching destination `dst`. */
  private sourceFor(link: Link, dst: number): number {
    for (const a of link.addrs) {
      const m = maskOf(a.prefixLen);
      if (((a.addr ^ dst) & m) === 0) return a.addr;
    }
    return link.primary;
  }

  /**
   * Routes and sends one IPv4 datagram whose L4 part is `hdr[0..hdrLen)` followed by
   * `data[dOff..dOff+dLen)` (checksums already final). Fragments when it exceeds the path MTU
   * (unless `df`, then throws EMSGSIZE). `viaLink`+`viaMac` send a reply back the way the request
   * came (traffic reflection); otherwise the VS's rules and tables choose.
   */
  emit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: number, dst: number, proto: number, tos: number,
    hdr: Uint8Array, hdrLen: number, data: Uint8Array, dOff: number, dLen: number, df: boolean, mark: number): void {
    let link: Link;
    let nextHop = dst;
    let mac: Uint8Array | null = viaMac;
    if (viaLink) {
      link = viaLink;
      mac = this.reflectTo(link, dst, viaMac);
    } else {
      const r = vs.rules.select(src, mark, vs.tables, dst);
      if (!r) {
        vs.own.drop(Drop.Ipv4NoRoute);
        throw ipErr('ENETUNREACH', `no route to ${ipv4ToString(dst)} in virtual server '${vs.name}'`);
      }
      link = vs.links[r.link]!;
      if (r.gateway) nextHop = r.gateway;
      if (!src) src = r.src || this.sourceFor(link, nextHop);
      if (dst === BROADCAST || this.isBroadcast(link, dst)) mac = BCAST_MAC;
    }
    if (!src) throw ipErr('EADDRNOTAVAIL', `virtual server '${vs.name}' has no address on link '${link.name}'`);
    const pool = this.devices[link.dev]!.pool;
    let mtu = link.mtu;
    const pm = vs.pmtu.get(dst);
    if (pm) {
      if (pm.expires <= this.now) vs.pmtu.delete(dst);
      else if (pm.mtu < mtu) mtu = pm.mtu;
    }
    const total = hdrLen + dLen;
    const ethLen = link.ethLen;
    const room = pool.frameSize - pool.headroom - ethLen - 20;
    const id = this.nextIpId(link);
    if (20 + total <= mtu && total <= room) {
      this.emitFragment(vs, link, mac, nextHop, src, dst, proto, tos, id, df ? IP_DF : 0, hdr, hdrLen, data, dOff, dLen, 0, total);
      return;
    }
    if (df) throw ipErr('EMSGSIZE', `message of ${total} bytes exceeds the path MTU ${mtu} to ${ipv4ToString(dst)}`);
    if (total > 65535 - 20) throw ipErr('EMSGSIZE', `message of ${total} bytes is larger than an IPv4 datagram`);
    const chunk = Math.floor(Math.min(mtu - 20, room) / 8) * 8;
    for (let pos = 0; pos < total; pos += chunk) {
      const n = Math.min(chunk, total - pos);
      const more = pos + n < total;
      this.emitFragment(vs, link, mac, nextHop, src, dst, proto, tos, id, (more ? IP_MF : 0) | (pos >>> 3), hdr, hdrLen, data, dOff, dLen, pos, n);
    }
  }

  /** Builds one frame holding bytes [pos, pos+n) of the L4 datagram hdr‖data and sends it. */
  private emitFragment(vs: VirtualServer, link: Link, mac: Uint8Array | null, nextHop: number, src: number, dst: number,
    proto: number, tos: number, id: number, flagsFrag: number, hdr: Uint8Array, hdrLen: number, data: Uint8Array, dOff: number,
    dLen: number, pos: number, n: number): void {
    const pool = this.devices[link.dev]!.pool;
    const f = pool.alloc();
    if (f < 0) {
      this.dropOn(link, Drop.NoFrame);
      throw ipErr('ENOBUFS', 'no free frame to send');
    }
    const b = pool.bytes;
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    let w = start + ethLen + 20;
    // Copy the part of the header, then the part of the data, that fall in [pos, pos+n).
    if (pos < hdrLen) {
      const h = Math.min(hdrLen - pos, n);
      for (let i = 0; i < h; i++) b[w + i] = hdr[pos + i]!; // a few header bytes: no view needed
      w += h;
    }
    const dFrom = Math.max(0, pos - hdrLen);
    const dTo = Math.min(dLen, pos + n - hdrLen);
    const dn = dTo - dFrom;
    try {
      if (dn > 64) b.set(data.subarray(dOff + dFrom, dOff + dTo), w);
      else for (let i = 0; i < dn; i++) b[w + i] = data[dOff + dFrom + i]!; // small payloads: a loop beats a view
    } catch (err) {
      pool.free(f); // the frame was not handed on: it must not leak with the exception
      throw err;
    }
    writeIpv4(b, start + ethLen, src, dst, proto, n, 64, id, flagsFrag, tos);
    linkEth(b, start, mac ?? ZERO_MAC, 0, link, ETH_P_IPV4);
    const len = ethLen + 20 + n;
    if (mac) {
      this.enqueue(link, pool, f, start, len);
      return;
    }
    const m = link.neigh.resolve(nextHop, { dev: link.dev, frame: f, off: start, len }, this.now);
    if (m) {
      b.set(m, start);
      this.enqueue(link, pool, f, start, len);
    }
  }

  /**
   * Path MTU toward `dst` from `vs`: the MTU of the link the route takes (for source `src` and
   * firewall mark `mark`, as output routes them), lowered by PMTU discovery.
   */
  mtuTo(vs: VirtualServer, dst: number, src = 0, mark = 0): number {
    const r = vs.rules.select(src, mark, vs.tables, dst);
    let mtu = r ? vs.links[r.link]!.mtu : 1500;
    const pm = vs.pmtu.get(dst);
    if (pm && pm.expires > this.now && pm.mtu < mtu) mtu = pm.mtu;
    return mtu;
  }

  /** TcpEngine: builds one TCP segment in a frame (DF set, never fragmented) and sends it. */
  tcpEmit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: number, dst: number, l4Max: number,
    build: (b: Uint8Array, l4Off: number) => number, mark: number): boolean {
    let link: Link;
    let nextHop = dst;
    let mac: Uint8Array | null = viaMac;
    // To an address of the VS itself: looped back inside the VS (the same test as UDP's local
    // delivery), never onto the wire.
    const own = this.ownLink(vs, dst);
    if (own) {
      link = own;
      mac = own.mac;
    } else if (viaLink && vs.links[viaLink.index] === viaLink) {
      link = viaLink;
      mac = this.reflectTo(link, dst, viaMac);
    } else {
      mac = null;
      const r = vs.rules.select(src, mark, vs.tables, dst);
      if (!r) {
        vs.own.drop(Drop.Ipv4NoRoute);
        return false;
      }
      link = vs.links[r.link]!;
      if (r.gateway) nextHop = r.gateway;
    }
    const pool = this.devices[link.dev]!.pool;
    if (link.ethLen + 20 + l4Max > pool.frameSize - pool.headroom) {
      this.dropOn(link, Drop.Ipv4BadTotalLength);
      return false;
    }
    const f = pool.alloc();
    if (f < 0) {
      this.dropOn(link, Drop.NoFrame);
      return false;
    }
    const b = pool.bytes;
    const start = pool.dataStart(f);
    const ethLen = link.ethLen;
    let l4len: number;
    try {
      l4len = build(b, start + ethLen + 20);
    } catch (err) {
      pool.free(f); // the frame was not handed on: it must not leak with the exception
      throw err;
    }
    if (20 + l4len > link.mtu) {
      // The connection's MSS is larger than this link allows: never send an oversized frame.
      this.dropOn(link, Drop.TxTooBig);
      pool.free(f);
      return false;
    }
    writeIpv4(b, start + ethLen, src, dst, IPPROTO_TCP, l4len, 64, this.nextIpId(link), IP_DF, 0);
    linkEth(b, start, mac ?? ZERO_MAC, 0, link, ETH_P_IPV4);
    const len = ethLen + 20 + l4len;
    if (own) {
      this.loopback(link, pool, f, start, len);
      return true;
    }
    if (mac) {
      this.enqueue(link, pool, f, start, len);
      return true;
    }
    const m = link.neigh.resolve(nextHop, { dev: link.dev, frame: f, off: start, len }, this.now);
    if (m) {
      b.set(m, start);
      this.enqueue(link, pool, f, start, len);
    }
    return true;
  }

  /** Chooses the source address and an ephemeral port for an active open from `vs`. */
  tcpSource(vs: VirtualServer, dst: number, localAddr: number, localPort: number, mark: number): { addr: number; port: number } {
    checkDestination(dst, false, 'connect', 0);
    let addr = localAddr;
    if (!addr) {
      const r = vs.rules.select(0, mark, vs.tables, dst);
      if (!r) throw sockError('ENETUNREACH', `connect ENETUNREACH ${ipv4ToString(dst)} (no route in virtual server '${vs.name}')`);
      const link = vs.links[r.link]!;
      addr = r.src || this.sourceFor(link, r.gateway || dst);
      if (!addr) throw sockError('EADDRNOTAVAIL', `connect EADDRNOTAVAIL: virtual server '${vs.name}' has no address on '${link.name}'`);
    } else if (!vs.links.some((l) => l.addrs.some((a) => a.addr === addr))) {
      throw sockError('EADDRNOTAVAIL', `bind EADDRNOTAVAIL ${ipv4ToString(addr)}`);
    }
    if (localPort) return { addr, port: localPort };
    for (let tries = 0; tries < 28232; tries++) {
      const p = vs.tcpEphemeral;
      vs.tcpEphemeral = p >= 60999 ? 32768 : p + 1;
      if (!this.tcp.portInUse(vs, p)) return { addr, port: p };
    }
    throw sockError('EADDRNOTAVAIL', `connect EADDRNOTAVAIL: no ephemeral port left in virtual server '${vs.name}'`);
  }

  // ---------------------------------------------------------------- UDP host

  udpBind(sock: UdpSocket, port: number, addr: number): number {
    const vs = (sock as unknown as { vs: VirtualServer }).vs;
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    if (addr && !vs.links.some((l) => l.addrs.some((a) => a.addr === addr))) {
      throw sockError('EADDRNOTAVAIL', `bind EADDRNOTAVAIL ${ipv4ToString(addr)}:${port}`, { syscall: 'bind', address: ipv4ToString(addr), port });
    }
    if (port === 0) {
      for (let tries = 0; tries < 16384; tries++) {
        const p = vs.ephemeral;
        vs.ephemeral = p >= 65535 ? 49152 : p + 1;
        if (!this.udpConflict(vs, p, addr)) { port = p; break; }
      }
      if (port === 0) throw sockError('EADDRINUSE', 'bind EADDRINUSE: no ephemeral port left', { syscall: 'bind' });
    } else if (this.udpConflict(vs, port, addr)) {
      throw sockError('EADDRINUSE', `bind EADDRINUSE ${ipv4ToString(addr)}:${port}`, { syscall: 'bind', address: ipv4ToString(addr), port, errno: -98 });
    }
    const list = vs.udpPorts.get(port) ?? [];
    list.push(sock);
    vs.udpPorts.set(port, list);
    return port;
  }

  private udpConflict(vs: VirtualServer, port: number, addr: number): boolean {
    const list = vs.udpPorts.get(port);
    if (!list) return false;
    return list.some((s) => s.localAddr === 0 || addr === 0 || s.localAddr === addr);
  }

  udpUnbind(sock: UdpSocket): void {
    const vs = (sock as unknown as { vs: VirtualServer }).vs;
    const list = vs.udpPorts.get(sock.localPort);
    if (!list) return;
    const rest = list.filter((s) => s !== sock);
    if (rest.length) vs.udpPorts.set(sock.localPort, rest);
    else vs.udpPorts.delete(sock.localPort);
  }

  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: number): void {
    this.time(); // an application call: the neighbor cache's timers start from the current time
    const vs = (sock as unknown as { vs: VirtualServer }).vs;
    if (vs.destroyed) throw sockError('ERR_SOCKET_DGRAM_NOT_RUNNING', `virtual server '${vs.name}' was destroyed`);
    checkDestination(addr, true, 'send', port);
    if (data.length > 65507) throw sockError('EMSGSIZE', `send EMSGSIZE: ${data.length} bytes`, { syscall: 'send' });
    let src = sock.localAddr;
    // Local delivery inside the VS (to one of its own addresses).
    const l = this.ownLink(vs, addr);
    if (l) {
      const dst = this.findUdp(vs, port, addr, src || addr, sock.localPort);
      if (dst && !dst.enqueue(Buffer.from(data), src || addr, sock.localPort)) this.dropOn(l, Drop.UdpSocketQueueFull);
      if (!dst) this.dropOn(l, Drop.UdpNoSocket);
      return;
    }
    // A reply to a peer heard from lately goes back the way its datagram came (traffic reflection):
    // through that link, to that MAC, from the address it was sent to.
    const rp = sock.returnPaths?.get(addr * 65536 + port);
    let via: Link | null = null;
    if (rp && vs.links[rp.link.index] === rp.link) {
      via = rp.link;
      if (!src) src = rp.local || this.sourceFor(via, addr);
    } else if (!src) {
      const r = vs.rules.select(0, sock.mark, vs.tables, addr);
      if (!r) throw sockError('ENETUNREACH', `send ENETUNREACH ${ipv4ToString(addr)}:${port}`, { syscall: 'send', address: ipv4ToString(addr), port });
      const link = vs.links[r.link]!;
      src = r.src || this.sourceFor(link, r.gateway || addr);
    }
    const hdr = this.l4Scratch;
    const len = UDP_HLEN + data.length;
    const sp = sock.localPort;
    hdr[0] = sp >>> 8; hdr[1] = sp & 0xff; hdr[2] = port >>> 8; hdr[3] = port & 0xff;
    hdr[4] = len >>> 8; hdr[5] = len & 0xff; hdr[6] = 0; hdr[7] = 0;
    let c = fold(sum16(data, 0, data.length, sum16(hdr, 0, 8, pseudoSum4(src, addr, IPPROTO_UDP, len))));
    if (c === 0) c = 0xffff;
    hdr[6] = c >>> 8; hdr[7] = c & 0xff;
    this.emit(vs, via, via ? rp!.mac : null, src, addr, IPPROTO_UDP, 0, hdr, 8, data, 0, data.length, false, sock.mark);
  }

  udpReady(sock: UdpSocket): void {
    this.readyUdp.push(sock);
  }

  /**
   * Emits socket events queued during input (call after each burst). Application code runs here:
   * an exception from a callback goes to callbackError() (by default rethrown asynchronously, an
   * uncaught exception as in Node) after the stack has finished its own work, so no frame leaks,
   * no event of another socket is lost and the stack's state stays whole. Events are delivered
   * to at most `stepEvents` connections; the others keep theirs for the next step
   * (`nextDeadline()` is then now).
   */
  flushEvents(): void {
    this.inStep = true;
    try {
      this.inputLoopback();
      try {
        this.tcp.flushEvents(this.opts.stepEvents);
      } catch (err) {
        this.internalError(err); // the TCP layer reports application exceptions itself
      }
      while (this.readyUdp.length) {
        const q = this.readyUdp.splice(0);
        for (const s of q) {
          try {
            s.flush();
          } catch (err) {
            this.callbackError(err); // a 'message' listener threw (the socket kept what it had not delivered)
          }
        }
      }
      // ACKs held back during the burst leave now, unless the applications' answers, sent from
      // their event handlers just above, already carried them.
      this.tcp.endBurst(this.now);
    } finally {
      this.inStep = false;
    }
  }

  /**
   * A timer was armed. From an application call between steps (a write into a zero window arms
   * the persist timer, setKeepAlive the keepalive timer, without sending anything), the runtime
   * is told, as for output: a runtime asleep until the next frame would otherwise never run it.
   */
  timerArmed(): void {
    if (!this.inInput && !this.inStep) this.onOutput?.();
  }

  // ---------------------------------------------------------------- time

  /**
   * The current time for a call from the application: the engine's time first moves up to the
   * clock (and to `at`, the caller's own reading), never back. After an idle spell the last step's
   * time may be seconds old: a SYN stamped with it had its retransmission timer already expired.
   */
  time(at = -Infinity): number {
    const t = Math.max(this.clock(), at);
    if (t > this.now) this.now = t;
    return this.now;
  }

  /**
   * Runs timers due at `now`, at most `stepTimers` of them (the rest stay due: the next deadline is
   * then ≤ now); returns the next deadline (µs, Infinity if none).
   */
  advance(now: number): number {
    this.now = now;
    this.inStep = true;
    try {
      this.wheel.advance(now, this.opts.stepTimers);
    } finally {
      this.inStep = false;
    }
    const expired = this.reasm.expire(now);
    if (expired) this.counters.drop(Drop.Ipv4ReassemblyTimeout, expired);
    return this.nextDeadline();
  }

  nextDeadline(): number {
    if (this.loopPending) return this.now; // looped-back frames wait for the next step
    // Socket events carried over from a step that reached its budget are due at once.
    if (this.tcp.eventsPending) return this.now;
    return Math.min(this.wheel.nextDeadline(), this.reasm.nextDeadline());
  }
}
