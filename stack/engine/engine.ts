/**
 * The sans-IO engine: fed with bursts of received frames and the current time, it produces frames
 * to send (per device output bursts) and a next deadline. No clock, socket or native call here.
 *
 * A burst is processed layer by layer (vector style), each layer in its own module:
 *
 *   stage 1  Ethernet / VLAN demux to a link ............ here (inputBurst)
 *   stage 2  ARP ........................................ stack/link/arp.ts
 *   stage 3  IPv4, IPv6 (ext headers, reassembly) ....... stack/ip/ipv4.ts, stack/ip/ipv6.ts
 *   stage 4  ICMP, ICMPv6 + NDP, UDP, TCP ............... stack/ip/icmp4.ts, stack/ip/icmp6.ts,
 *                                                         stack/link/ndp.ts, stack/transport/*
 *   output   one IP output path ......................... stack/ip/output.ts
 *   admin    VS, link, address, route, rule changes ..... stack/engine/admin.ts
 *
 * Per-frame metadata lives in preallocated struct-of-arrays (RxMeta) that each stage reads and
 * writes by index. Demux to a virtual server is by hash on (device, VLAN, address): the cost of a
 * packet does not depend on how many virtual servers exist.
 */
import { Decap } from '../ip/decap';
import { Burst } from '../../driver/types';
import type { LogFn } from '../../driver/types';
import { FramePool, FrameState, OWNER_ENGINE } from '../../umem/pool';
import { Drop } from '../../protocols/drop';
import { EthFrame, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, isMulticast } from '../../protocols/ethernet';
import { ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST, ICMP_HOST_UNREACH, ICMP_PORT_UNREACH, ICMP_PROTO_UNREACH } from '../../protocols/icmp';
import { ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_ADDR, ICMP6_ECHO_REQUEST } from '../../protocols/icmpv6';
import { IPPROTO_FRAGMENT, IPPROTO_ICMPV6 } from '../../protocols/ipv6';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4 } from '../../protocols/ipv4';
import { addrEq, addrToString, Ip6, ip6At, IpAddr, isLinkLocal6, write6 } from '../../protocols/ip/addr';
import { hashKey } from '../../protocols/tcp/hash';
import { Ipv4Reassembler } from '../../protocols/reassembly';
import { Counters } from '../counters';
import { DEFAULT_NEIGHBOR_PARAMS, Neighbor, NeighborCache, NeighborHost, NeighborParams, PendingFrame } from '../neighbor';
import type { Route } from '../routing';
import { TimerWheel } from '../timers';
import { SocketOptions, sockError, UdpSocket, UdpSocketInit } from '../api/dgram';
import { checkVsLimits, Limits, resolveLimits, VsLimits } from '../limits';
import { Link, VirtualServer } from '../vs';
import { TcpLayer, TcpEngine } from '../transport/tcp';
import { checkDestination, UdpLayer, udpPorts } from '../transport/udp';
import { EngineState, ValidationError, vsNameProblem } from '../control/validate';
import { LinkGroup, linkEth } from '../link/demux';
import { Arp } from '../link/arp';
import { Ndp, NdpOptions } from '../link/ndp';
import { Ipv4Input } from '../ip/ipv4';
import { Ipv6Input } from '../ip/ipv6';
import { Icmp4 } from '../ip/icmp4';
import { Icmp6 } from '../ip/icmp6';
import { IpOutput, PMTU_MIN } from '../ip/output';
import { EchoLayer } from '../ip/echo';
import * as admin from './admin';
import { CHUNK, RxDatagram, RxMeta } from './meta';
import type { Device, DeviceSpec } from './device';
import type { TcpOptions } from '../../protocols/tcp/types';
import { randomBytes } from 'node:crypto';
import type { Steering } from '../shard/steer';
import { RingKind } from '../shard/ring';
import type { TcpTuple } from '../../protocols/tcp/types';

export type { Device, DeviceSpec } from './device';
export type { LinkSpec, RouteSpec, RuleSpec } from './admin';
export { PMTU_MIN };

export interface EngineOptions {
  /** ICMP error messages per second per VS, and burst. */
  icmpRate?: number;
  icmpBurst?: number;
  /** Initial capacity of each device's output queue, in frames, and the most it may grow to. */
  outCapacity?: number;
  outMax?: number;
  neighbor?: Partial<NeighborParams>;
  /** IPv6 neighbor discovery: Duplicate Address Detection (RFC 4862). */
  ndp?: Partial<NdpOptions>;
  reassembly?: { maxDatagrams?: number; maxBytes?: number; timeoutUs?: number };
  /** Path MTU entries expire after this (µs). Default 10 minutes (RFC 1191, RFC 8201). */
  pmtuExpiryUs?: number;
  /** Start of virtual or real time (µs). */
  now?: number;
  /** 16-byte secret for TCP ISNs, SYN cookies and IPv6 flow labels (random by default; fixed for reproducible replays). */
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
   * (every one is counted as an `internal-error` drop; each distinct one is reported once), and
   * events an operator should know (a duplicate IPv6 address). Default: process.emitWarning.
   */
  log?: LogFn;
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

/** Distinct internal errors reported (beyond it they are only counted). */
const INTERNAL_ERRORS_LOGGED = 16;
/** Connections noted per neighbor entry whose segments fell out of its full queue while resolving. */
const NEIGH_NOTES_MAX = 64;

/** An optional positive integer option, or its default. */
function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`engine option ${name} must be a positive integer, got ${v}`);
  return v;
}

export class Engine implements NeighborHost, TcpEngine {
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
  readonly tcp: TcpLayer;
  readonly udp: UdpLayer;
  readonly out: IpOutput;
  readonly arp: Arp;
  readonly ndp: Ndp;
  readonly ip4: Ipv4Input;
  readonly ip6: Ipv6Input;
  /** Encapsulated packets for the VIPs of a VS (stack/ip/decap.ts). */
  readonly decap: Decap;
  /** TcpEngine: the outer family of the TCP segment being handled when it came encapsulated, else 0. */
  rxDecapOuter = 0;
  /**
   * Per device: outer packets of a tunnel reassembled from their fragments (RFC 2003 section 5.1,
   * RFC 2473 section 7: the decapsulator reassembles as any receiver), rebuilt as whole frames and
   * input again once the burst is done, where decap.ts takes them as any other (rejoin).
   */
  private readonly rejoined: (Burst | null)[] = [];
  /** Set while those frames are input: they were counted received as fragments already. */
  private rejoining = false;
  readonly icmp4: Icmp4;
  readonly icmp6: Icmp6;
  /** ICMP echo sockets (ping from a VS). */
  readonly echo: EchoLayer;
  readonly neighParams: NeighborParams;
  /** The limits in force (defaults with the options applied). */
  readonly limits: Limits;
  readonly icmpRate: number;
  readonly icmpBurst: number;
  readonly outMax: number;
  readonly pmtuExpiryUs: number;
  private readonly outCapacity: number;
  private readonly stepTimers: number;
  private readonly stepEvents: number;
  private readonly onOutput: (() => void) | undefined;
  private inInput = false;
  /** Inside advance() or flushEvents(): the runtime reads the next deadline after them. */
  private inStep = false;
  /** Set while looped-back frames (sent by a VS to its own addresses) go through input. */
  inLoopback = false;
  now: number;
  /**
   * The clock read by calls from the application, made outside a step (connect, write, close, UDP
   * send...): the runtime sets it (real time: the monotonic clock; virtual time: the virtual clock).
   * By default the engine's own time (the last step's).
   */
  clock: () => number = () => this.now;
  /**
   * Add to the engine's time for µs since the epoch: set by the runtime in real time (ICMP
   * Timestamp Replies give milliseconds since midnight UT); null under virtual time.
   */
  epochOffsetUs: number | null = null;
  /** Exceptions from the stack's own code, counted (also as `internal-error` drops). */
  internalErrors = 0;
  private readonly internalSeen = new Set<string>();
  /** Where internal errors are reported (see EngineOptions.log). */
  log: LogFn;
  /** Where an exception from application code in a socket callback goes (see EngineOptions). */
  onCallbackError: (err: unknown) => void;
  /** Start of the receive chunk being handled, and whether stage 1 (Ethernet) is running (error recovery). */
  private rxDone = 0;
  private rxStage1 = false;

  /**
   * Shards (stack/shard): where flows live and the rings to the other shards; null with one shard,
   * then none of the steering below costs anything. Frames handed over by another shard are input
   * with `forwardedIn` set: they are processed here whatever the tables say (never handed on again).
   */
  steer: Steering | null = null;
  forwardedIn = false;
  /** The frame (chunk index) a stage-4 handler is running for; -1 for a reassembled datagram. */
  private rxJ = -1;
  /** The reassembled datagram being delivered (set by IP input around its upper layer), else null. */
  rxDatagram: RxDatagram | null = null;

  /**
   * Whether what is being received was handed over by another shard (so it stays here): a frame
   * input with `forwardedIn`, but not a datagram reassembled here from fragments some of which
   * were handed over (the datagram itself goes to its owner once).
   */
  private get handedOver(): boolean {
    if (this.datagramIn) return true;
    return this.rxJ < 0 && this.rxDatagram !== null ? false : this.forwardedIn;
  }
  /** Set while a datagram another shard handed over whole is delivered: it is never handed on. */
  private datagramIn = false;
  /** Shards: a reassembled datagram as handed over (header + datagram); made on first use. */
  private dgBuf: Uint8Array | null = null;

  // Reusable parse results and per-burst metadata (no allocation per packet).
  private readonly eth = new EthFrame();
  private readonly meta = new RxMeta();
  private readonly arpIdx = new Uint16Array(CHUNK);
  private readonly ip4Idx = new Uint16Array(CHUNK);
  private readonly ip6Idx = new Uint16Array(CHUNK);
  private readonly icmpIdx = new Uint16Array(CHUNK);
  private readonly icmp6Idx = new Uint16Array(CHUNK);
  private readonly udpIdx = new Uint16Array(CHUNK);
  private readonly tcpIdx = new Uint16Array(CHUNK);
  private readonly tcpMac = new Uint8Array(6);
  /** Frames queued for stage 4 by the IP stages, per upper layer. */
  private nIcmp = 0;
  private nIcmp6 = 0;
  private nUdp = 0;
  private nTcp = 0;

  constructor(opts: EngineOptions = {}) {
    this.now = opts.now ?? 0;
    this.wheel = new TimerWheel(this.now);
    this.icmpRate = opts.icmpRate ?? 1000;
    this.icmpBurst = opts.icmpBurst ?? 50;
    this.outCapacity = opts.outCapacity ?? 1024;
    this.outMax = opts.outMax ?? 65536;
    this.pmtuExpiryUs = opts.pmtuExpiryUs ?? 600_000_000;
    this.stepTimers = positive(opts.stepTimers, 256, 'stepTimers');
    this.stepEvents = positive(opts.stepEvents, 512, 'stepEvents');
    this.limits = resolveLimits({
      tcpTimeWait: opts.tcpMaxTimeWait, reassemblyDatagrams: opts.reassembly?.maxDatagrams,
      reassemblyMemory: opts.reassembly?.maxBytes, neighbors: opts.neighbor?.maxEntries, ...opts.limits,
    });
    this.neighParams = { ...DEFAULT_NEIGHBOR_PARAMS, ...opts.neighbor, maxEntries: this.limits.neighbors };
    const reasmOpts = { ...opts.reassembly, maxDatagrams: this.limits.reassemblyDatagrams, maxBytes: this.limits.reassemblyMemory };
    this.reasm = new Ipv4Reassembler(reasmOpts);
    this.onOutput = opts.onOutput;
    this.log = opts.log ?? ((m) => process.emitWarning(m, 'XdpstackInternalError'));
    this.onCallbackError = opts.onCallbackError ?? ((err) => process.nextTick(() => { throw err; }));
    this.wheel.onError = (err) => this.internalError(err);
    const secret = opts.secret ?? randomBytes(16);
    this.tcp = new TcpLayer(this, secret, opts.tcp ?? {}, this.limits.tcpTimeWait, this.limits);
    this.udp = new UdpLayer(this);
    this.out = new IpOutput(this, hashKey(secret));
    this.arp = new Arp(this);
    this.ndp = new Ndp(this, opts.ndp ?? {});
    this.ip4 = new Ipv4Input(this);
    this.ip6 = new Ipv6Input(this, reasmOpts);
    this.decap = new Decap(this);
    this.icmp4 = new Icmp4(this);
    // RFC 1122 3.3.2: a datagram that times out after its fragment zero came is answered with
    // Time Exceeded code 1.
    this.reasm.onTimeout = (first, vsId) => this.icmp4.reassemblyTimeout(first, vsId, this.now);
    this.icmp6 = new Icmp6(this);
    this.echo = new EchoLayer(this, (secret[0]! << 8) | secret[1]!);
  }

  // ---------------------------------------------------------------- devices

  addDevice(spec: DeviceSpec): Device {
    if (this.devices.some((d) => d.name === spec.name)) throw new Error(`device '${spec.name}' already added`);
    if (this.devices.length >= 255) throw new Error('at most 255 devices per engine');
    const d: Device = {
      ...spec, index: this.devices.length, out: new Burst(this.outCapacity), counters: new Counters(),
      buf: Buffer.from(spec.pool.buffer, 0, spec.pool.bytes.length),
    };
    this.devices.push(d);
    this.out.addDevice();
    this.groups.push(new Array<LinkGroup | null>(4097).fill(null));
    return d;
  }

  device(name: string): Device {
    const d = this.devices.find((x) => x.name === name);
    if (!d) throw new Error(`no device '${name}' (known: ${this.devices.map((x) => x.name).join(', ') || 'none'})`);
    return d;
  }

  // ---------------------------------------------------------------- virtual servers

  /** The running state as the validator (stack/control/validate.ts) asks it. */
  readonly state: EngineState = new EngineState(this);

  /** The links on (device, VLAN) of every VS (the demux index; empty for an unknown device). */
  linksOn(device: string, vlan: number): readonly Link[] {
    const d = this.devices.find((x) => x.name === device);
    return (d && this.groups[d.index]![vlan + 1]?.links) || [];
  }

  /** The demux group of `link`'s (device, VLAN); made when `create`. */
  groupOf(link: Link, create = false): LinkGroup | null {
    const groups = this.groups[link.dev]!;
    let g = groups[link.vlan + 1]!;
    if (!g && create) {
      g = new LinkGroup();
      groups[link.vlan + 1] = g;
    }
    return g;
  }

  /** Forgets the (now empty) demux group of `link`'s (device, VLAN). */
  dropGroup(link: Link): void {
    this.groups[link.dev]![link.vlan + 1] = null;
  }

  /** A new VS; `limits` are its own (each defaults to the stack's: limits.ts). */
  createVs(name: string, limits: VsLimits = {}, id?: number): VirtualServer {
    const bad = vsNameProblem(name);
    if (bad) throw new ValidationError(`virtual server name: ${bad}`);
    if (this.vsByName.has(name)) throw new Error(`virtual server '${name}' already exists`);
    checkVsLimits(limits);
    // Shards: the control plane issues the identity, the same in every shard (never reused).
    if (id !== undefined && (!Number.isInteger(id) || id < 1 || this.vsById.has(id))) throw new Error(`virtual server id ${id} is not free`);
    if (id !== undefined && id >= this.nextVsId) this.nextVsId = id + 1;
    const vs = new VirtualServer(id ?? this.nextVsId++, name, this.icmpRate, this.icmpBurst);
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
    for (const socks of [...udpPorts(vs).values()]) for (const s of [...socks]) if (!s.closed) s.close();
    this.tcp.destroyVs(vs);
    this.echo.destroyVs(vs);
    for (const l of [...vs.links].reverse()) this.removeLink(vs, l.name);
    vs.destroyed = true;
    this.vsByName.delete(name);
    this.vsById.delete(vs.id);
  }

  addLink(vs: VirtualServer, spec: admin.LinkSpec): Link { return admin.addLink(this, vs, spec); }
  removeLink(vs: VirtualServer, linkName: string): void { admin.removeLink(this, vs, linkName); }
  /** Adds an address of either family ('10.0.0.1/24', 'fd00::1/64'); an IPv6 one is tentative until DAD passes. */
  addAddress(vs: VirtualServer, linkName: string, cidr: string): void { admin.addAddress(this, vs, linkName, cidr); }
  removeAddress(vs: VirtualServer, linkName: string, cidr: string): void { admin.removeAddress(this, vs, linkName, cidr); }
  addRoute(vs: VirtualServer, spec: admin.RouteSpec): Route { return admin.addRoute(this, vs, spec); }
  removeRoute(vs: VirtualServer, spec: admin.RouteSpec): number { return admin.removeRoute(vs, spec); }
  addRule(vs: VirtualServer, spec: admin.RuleSpec): void { admin.addRule(this, vs, spec); }
  /** VIPs and decapsulation (stack/ip/decap.ts). */
  addVip(vs: VirtualServer, addr: string): IpAddr { return admin.addVip(this, vs, addr); }
  removeVip(vs: VirtualServer, addr: string): void { admin.removeVip(vs, addr); }
  setDecap(vs: VirtualServer, spec: { from: string[]; overhead?: number }): void { admin.setDecap(vs, spec); }

  /** A UDP socket of `vs`, as dgram.createSocket(type | options) (every option checked as Node's). */
  newUdpSocket(vs: VirtualServer, init: UdpSocketInit): UdpSocket {
    const s = new UdpSocket(this.udp, vs.name, init);
    (s as unknown as { vs: VirtualServer }).vs = vs;
    return s;
  }

  /** A UDP socket of `vs` (Node's createSocket options; `type` defaults to 'udp4'). */
  createUdpSocket(vs: VirtualServer | string, opts: Partial<SocketOptions> & { maxQueue?: number } = {}): UdpSocket {
    return this.newUdpSocket(typeof vs === 'string' ? this.vs(vs) : vs, { ...opts, type: opts.type ?? 'udp4' });
  }

  /** The VS a UDP socket belongs to. */
  vsOf(sock: UdpSocket): VirtualServer {
    return (sock as unknown as { vs: VirtualServer }).vs;
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
    }
    try {
      const q = this.rejoined[devIdx];
      if (q && q.n) this.inputRejoined(dev, devIdx, q, now);
    } finally {
      this.inInput = false;
    }
  }

  /**
   * Queues an outer packet reassembled from fragments whose payload is a tunnel (protocol 4 or 41
   * to a VS with VIPs or load balancers), rebuilt as a whole frame received on `link` from
   * `peerMac`: IPv4 (`v6` false) from `src` to `dst` with `proto`, `tos` and payload `data`, or
   * IPv6 whose whole packet (header included) is `data`. It is input at the end of the burst. A
   * packet longer than a frame holds is counted (decap-fragmented); with no free frame, no-frame.
   */
  rejoin(link: Link, v6: boolean, src: IpAddr, dst: IpAddr, proto: number, tos: number, data: Uint8Array, peerMac: Uint8Array): void {
    const dev = this.devices[link.dev]!;
    const pool = dev.pool;
    const q = (this.rejoined[link.dev] ??= new Burst(64));
    if (q.n >= q.capacity) return link.drop(Drop.NoFrame);
    const f = pool.alloc();
    if (f < 0) return link.drop(Drop.NoFrame);
    const b = pool.bytes;
    const off = pool.dataStart(f);
    const ethLen = link.vlan < 0 ? 14 : 18;
    const len = ethLen + (v6 ? 0 : 20) + data.length;
    if (off + len > (f + 1) * pool.frameSize) {
      pool.free(f);
      return link.drop(Drop.DecapFragmented);
    }
    linkEth(b, off, peerMac, 0, link, v6 ? ETH_P_IPV6 : ETH_P_IPV4);
    // As received: to the link's MAC from the peer's.
    for (let i = 0; i < 6; i++) { const x = b[off + i]!; b[off + i] = b[off + 6 + i]!; b[off + 6 + i] = x; }
    if (!v6) writeIpv4(b, off + ethLen, src as number, dst as number, proto, data.length, 64, 0, 0, tos);
    b.set(data, off + len - data.length);
    q.push(f, off, len, this.now);
  }

  /** Inputs the frames rejoin() queued for device `devIdx` (stage 1 on: as any burst, with its own recovery). */
  private inputRejoined(dev: Device, devIdx: number, q: Burst, now: number): void {
    // Processed as frames off the wire here (the flow they carry may belong to another shard),
    // whoever handed the fragments over; not counted as received again.
    const fwd = this.forwardedIn;
    this.forwardedIn = false;
    this.rejoining = true;
    this.rxDone = 0;
    try {
      this.inputBurst(dev, devIdx, q, now);
    } catch (err) {
      this.burstThrew(dev, q, err);
    } finally {
      q.n = 0;
      this.forwardedIn = fwd;
      this.rejoining = false;
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
    const from = this.rxStage1 ? this.rxDone : Math.min(burst.n, this.rxDone + CHUNK);
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
    if (link) link.drop(Drop.InternalError);
    else if (dev) dev.counters.drop(Drop.InternalError);
    else this.counters.drop(Drop.InternalError);
    try {
      const e = err instanceof Error ? err : null;
      const text = e ? `${e.name}: ${e.message}` : String(err);
      const site = e?.stack?.split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
      const key = `${e ? e.name : typeof err} ${site}`;
      if (this.internalSeen.has(key) || this.internalSeen.size >= INTERNAL_ERRORS_LOGGED) return;
      this.internalSeen.add(key);
      this.log(`xdpstack internal error (counted as 'internal-error' drops; reported once): ${e?.stack ?? text}`, 'error');
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
    const m = this.meta;
    m.dev = dev;
    m.pool = dev.pool;
    m.b = dev.pool.bytes;
    m.burst = burst;
    m.now = now;
    const b = m.b;
    const pool = dev.pool;
    // Shards: a frame handed over by another shard was counted there, where it came off the
    // wire; counting it again would make the group's sums exceed what the device received.
    const count = this.forwardedIn || this.rejoining ? 0 : 1;
    let done = 0;
    while (done < burst.n) {
      const n = Math.min(burst.n - done, CHUNK);
      let nArp = 0;
      let nIp4 = 0;
      let nIp6 = 0;
      m.base = done;
      this.rxDone = done;
      this.rxStage1 = true;
      // Stage 1: Ethernet / VLAN demux.
      for (let j = 0; j < n; j++) {
        const i = done + j;
        const f = burst.frame[i]!;
        const off = burst.off[i]!;
        const len = burst.len[i]!;
        dev.counters.rxPackets += count;
        dev.counters.rxBytes += count * len;
        m.link[j] = null;
        m.decap[j] = 0;
        const eth = this.eth;
        const d = eth.parse(b, off, len);
        if (d !== Drop.None && d !== Drop.EthUnknownType) {
          dev.counters.drop(d);
          pool.free(f);
          continue;
        }
        // VLAN id 0 is a priority tag, not a VLAN (IEEE 802.1Q 9.6): the frame is the untagged
        // link's (Linux receives it on the device itself; the XDP program keys both as 0).
        const grp = this.groups[devIdx]![eth.vlan > 0 ? eth.vlan + 1 : 0];
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
        link.rxPackets += count;
        link.rxBytes += count * len;
        if (d !== Drop.None) {
          link.drop(d);
          pool.free(f);
          continue;
        }
        m.link[j] = link;
        m.ethOff[j] = off;
        m.srcMac[j] = eth.srcOff;
        m.l3Off[j] = eth.l3Off;
        m.l3Len[j] = eth.l3Len;
        const et = eth.etherType;
        if (et === ETH_P_IPV4) this.ip4Idx[nIp4++] = j;
        else if (et === ETH_P_IPV6) this.ip6Idx[nIp6++] = j;
        else if (et === ETH_P_ARP) this.arpIdx[nArp++] = j;
        else {
          link.drop(Drop.EthUnknownType);
          pool.free(f);
        }
      }
      this.rxStage1 = false;
      // Stages 2 to 4 guard each frame: a handler that throws costs that frame only (rxThrew).
      // Stage 2: ARP.
      // Shards: neighbor answers are copied to the other shards first (the stage frees frames).
      if (this.steer !== null && !this.forwardedIn) this.shareNeighbor(m, this.arpIdx, nArp, -1);
      this.stage(m, this.arp, this.arpIdx, nArp);
      // Stage 3: IPv4, IPv6; each sorts its frames by upper layer for stage 4.
      this.nIcmp = this.nIcmp6 = this.nUdp = this.nTcp = 0;
      this.stage(m, this.ip4, this.ip4Idx, nIp4);
      this.stage(m, this.ip6, this.ip6Idx, nIp6);
      // Stage 4: ICMP, ICMPv6 (with NDP), UDP, TCP.
      if (this.steer !== null && !this.forwardedIn) this.shareNeighbor(m, this.icmp6Idx, this.nIcmp6, 136);
      this.stage(m, this.icmp4, this.icmpIdx, this.nIcmp, true);
      this.stage(m, this.icmp6, this.icmp6Idx, this.nIcmp6, true);
      this.stage(m, this.udp, this.udpIdx, this.nUdp, true);
      const nTcp = this.nTcp;
      if (nTcp) this.tcp.beginBurst();
      for (let k = 0; k < nTcp; k++) {
        const j = this.tcpIdx[k]!;
        const so = m.srcMac[j]!;
        const mac = this.tcpMac;
        for (let x = 0; x < 6; x++) mac[x] = b[so + x]!;
        const f = m.frame(j);
        if (m.bcast[j]) {
          // No TCP to broadcast or multicast addresses.
          m.drop(j, m.dst6[j] ? Drop.Ipv6NotOurAddress : Drop.Ipv4NotOurAddress);
          continue;
        }
        // A zero-copy reader may keep the frame (it releases it later).
        const gen = pool.generation(f), mark = dev.out.n;
        let kept: boolean;
        this.rxJ = j;
        this.rxDecapOuter = m.decap[j]!;
        try {
          kept = this.tcp.input(m.link[j]!, b, m.l4Off[j]!, m.l4Len[j]!, m.srcAddr(j), m.dstAddr(j), mac, now, pool, f);
        } catch (err) {
          this.rxThrew(dev, f, gen, mark, m.link[j]!, err);
          continue;
        }
        if (!kept) pool.free(f);
      }
      this.rxJ = -1;
      this.rxDecapOuter = 0;
      done += n;
    }
  }

  /**
   * Runs one stage's `input(m, j)` on the frames `idx[0..n)` of the chunk, each guarded: a
   * handler that throws costs that frame only (rxThrew). A stage returning an upper-layer protocol
   * (IPv4, IPv6) queues the frame for that protocol's stage.
   */
  private stage(m: RxMeta, st: { input(m: RxMeta, j: number): number | void }, idx: Uint16Array, n: number, upper = false): void {
    const dev = m.dev;
    const pool = m.pool;
    for (let k = 0; k < n; k++) {
      const j = idx[k]!;
      const f = m.frame(j), gen = pool.generation(f), mark = dev.out.n;
      let proto: number | void = 0;
      // An upper-layer stage handles the frame itself; the IP stages may hand a reassembled
      // datagram up, which is no frame (rxJ -1).
      this.rxJ = upper ? j : -1;
      try {
        proto = st.input(m, j);
      } catch (err) {
        this.rxThrew(dev, f, gen, mark, m.link[j]!, err);
        continue;
      }
      if (!proto) continue;
      if (proto === IPPROTO_UDP) this.udpIdx[this.nUdp++] = j;
      else if (proto === IPPROTO_TCP) this.tcpIdx[this.nTcp++] = j;
      else if (proto === IPPROTO_ICMP && m.dst6[j] === null) this.icmpIdx[this.nIcmp++] = j;
      else if (proto === IPPROTO_ICMPV6) this.icmp6Idx[this.nIcmp6++] = j;
    }
  }

  /** Counts a drop for `reason` on `link` (TcpEngine). */
  // ---------------------------------------------------------------- shards (steering)

  /**
   * Hands frame `j` of the chunk being received to shard `to` (a copy: the caller frees the
   * frame). A full ring is a counted drop. Returns true either way: the frame was dealt with.
   */
  private forwardFrame(m: RxMeta, j: number, to: number): true {
    const s = this.steer!;
    const i = m.base + j;
    const off = m.burst.off[i]!;
    // A looped-back frame stays one in its owner (else its source, our own address, is a martian there).
    if (!s.send(to, m.dev.index, this.inLoopback ? RingKind.Loopback : RingKind.Flow, m.b, off, m.burst.len[i]!)) {
      const l = m.link[j];
      if (l) l.drop(Drop.ShardRingFull);
      else m.dev.counters.drop(Drop.ShardRingFull);
    }
    return true;
  }

  /** The frame a stage-4 handler runs for goes to shard `to` (a reassembled datagram: whole, as a long record). */
  private forwardRx(to: number): true {
    if (this.rxJ < 0) {
      const dg = this.rxDatagram;
      if (dg !== null) return this.forwardDatagram(dg, to);
      const l = this.meta.link[0];
      if (l) l.drop(Drop.ShardNotForwardable);
      else this.counters.drop(Drop.ShardNotForwardable);
      return true;
    }
    return this.forwardFrame(this.meta, this.rxJ, to);
  }

  /**
   * Hands reassembled datagram `dg` to shard `to`, whole: a header (VS id, link index, device,
   * VLAN, family, protocol, TOS, peer MAC, addresses) then the datagram, over as many ring slots as
   * it takes. A ring without room for all of it is a counted drop.
   */
  private forwardDatagram(dg: RxDatagram, to: number): true {
    const n = DG_HEADER + dg.data.length;
    if (n > DG_MAX) { dg.link.drop(Drop.ShardNotForwardable); return true; }
    const b = (this.dgBuf ??= new Uint8Array(DG_MAX));
    const l = dg.link;
    wr32(b, 0, l.vs.id);
    b[4] = l.index >>> 8; b[5] = l.index & 0xff;
    b[6] = dg.v6 ? 6 : 4;
    b[7] = dg.proto;
    b[8] = dg.tos;
    b.set(dg.mac, 9);
    b[15] = 0;
    if (dg.v6) { write6(b, 16, dg.src as Ip6); write6(b, 32, dg.dst as Ip6); }
    else { wr32(b, 16, dg.src as number); wr32(b, 32, dg.dst as number); }
    b.set(dg.data, DG_HEADER);
    if (!this.steer!.sendLong(to, l.dev, RingKind.Datagram, b, 0, n)) l.drop(Drop.ShardRingFull);
    return true;
  }

  /** A reassembled datagram another shard handed over (forwardDatagram): delivered to its upper layer here. */
  private inputDatagram(dev: number, b: Uint8Array, len: number, now: number): void {
    const vs = this.vsById.get(rd32(b, 0));
    const link = vs?.links[(b[4]! << 8) | b[5]!];
    // The VS or its link went meanwhile (a change this shard applied first).
    if (!link || link.dev !== dev) { this.counters.drop(Drop.ShardNotForwardable); return; }
    const mac = Uint8Array.from(b.subarray(9, 15));
    const data = b.subarray(DG_HEADER, len);
    this.now = now;
    this.inInput = true;
    this.forwardedIn = true;
    this.datagramIn = true;
    try {
      if (b[6] === 6) this.ip6.deliver(link, ip6At(b, 16), ip6At(b, 32), data, mac, now);
      else this.ip4.deliver(link, rd32(b, 16), rd32(b, 32), b[7]!, b[8]!, data, mac, now);
    } catch (err) {
      this.internalError(err, link);
    } finally {
      this.inInput = false;
      this.forwardedIn = false;
      this.datagramIn = false;
    }
  }

  /** Copies the neighbor answers among frames idx[0..n) (ARP replies; ICMPv6 `type` 136) to the other shards. */
  private shareNeighbor(m: RxMeta, idx: Uint16Array, n: number, type: number): void {
    const b = m.b;
    for (let k = 0; k < n; k++) {
      const j = idx[k]!;
      // (Not from inside a tunnel: never a neighbor answer, dropped as decap-link-scoped.)
      if (m.decap[j] !== 0) continue;
      // ARP: operation 2 (reply) at byte 6 of the ARP header; ICMPv6: the type byte.
      const answer = type < 0 ? b[m.l3Off[j]! + 7] === 2 && b[m.l3Off[j]! + 6] === 0 : b[m.l4Off[j]!] === type;
      if (!answer) continue;
      const i = m.base + j;
      this.steer!.share(m.dev.index, b, m.burst.off[i]!, m.burst.len[i]!);
    }
  }

  /**
   * An Echo Reply to `vs` for identifier `ident` (ICMP, ICMPv6): to its echo socket here, else,
   * with shards, to the shard whose share the identifier is (the one that sent the request).
   * Drop.None when it was dealt with (the caller frees the frame).
   */
  echoReply(vs: VirtualServer, ident: number, from: IpAddr, seq: number, bytes: number, ttl: number, now: number): Drop {
    if (this.echo.deliver(vs, ident, from, seq, bytes, ttl, now)) return Drop.None;
    const s = this.steer;
    if (s !== null && !this.handedOver) {
      const to = ident % s.shards;
      if (to !== s.self) { this.forwardRx(to); return Drop.None; }
    }
    return Drop.IcmpEchoNoSocket;
  }

  /**
   * An ICMP or ICMPv6 error about an Echo Request of `vs` with identifier `ident`: to its echo
   * socket here, else, with shards, to the shard that sent the request (as echoReply). Nothing
   * waits for it: IcmpNoFlow (the quoted request is no live state of ours).
   */
  echoError(vs: VirtualServer, ident: number, from: IpAddr, seq: number, type: number, code: number, info: number, now: number): Drop {
    if (this.echo.deliverError(vs, ident, from, seq, type, code, info, now)) return Drop.None;
    const s = this.steer;
    if (s !== null && !this.handedOver) {
      const to = ident % s.shards;
      if (to !== s.self) { this.forwardRx(to); return Drop.None; }
    }
    return Drop.IcmpNoFlow;
  }

  /** TcpEngine: a segment matching no connection here goes to the shard owning its flow (or listening on its port). */
  steerTcp(vs: VirtualServer, local: IpAddr, localPort: number, remote: IpAddr, remotePort: number, listening: boolean): boolean {
    const s = this.steer;
    if (s === null || this.handedOver || !this.inInput) return false;
    const ft = s.flows;
    let o = ft.owner(ft.flowSlot(vs.id, local, localPort, remote, remotePort));
    if (o < 0 && !listening) o = ft.otherPortShard(ft.portSlot(vs.id, IPPROTO_TCP, localPort));
    if (o < 0 || o === s.self) return false;
    return this.forwardRx(o);
  }

  /** TcpEngine: takes the flow of a new connection (see TcpEngine.claimTcp). */
  claimTcp(vs: VirtualServer, t: TcpTuple): number {
    const s = this.steer;
    if (s === null) return -1;
    const slot = s.flows.flowSlot(vs.id, t.localAddr, t.localPort, t.remoteAddr, t.remotePort);
    const o = s.flows.claim(slot);
    if (o < 0) return slot;
    // Another shard owns the slot: the segment being received (a SYN, a cookie's ACK) is its.
    if (this.inInput && !this.handedOver) this.forwardRx(o);
    else if (this.inInput && this.rxJ >= 0) this.meta.link[this.rxJ]?.drop(Drop.ShardFlowTaken);
    return -2;
  }

  listenedElsewhere(vs: VirtualServer, port: number): boolean {
    const s = this.steer;
    return s !== null && s.flows.otherPortShard(s.flows.portSlot(vs.id, IPPROTO_TCP, port)) >= 0;
  }

  releaseTcp(slot: number): void {
    this.steer?.flows.release(slot);
  }

  listenPort(vs: VirtualServer, port: number, add: boolean): void {
    const s = this.steer;
    if (s === null) return;
    const slot = s.flows.portSlot(vs.id, IPPROTO_TCP, port);
    if (add) s.flows.bindPort(slot);
    else s.flows.unbindPort(slot);
  }

  /**
   * TcpEngine: the first local port to try for an active open. With shards over a device whose
   * RSS is known, `portForQueue` (set by the shard) gives one whose return traffic comes to this
   * shard's queue.
   */
  tcpPortFor(vs: VirtualServer, t: TcpTuple, dflt: number): number {
    return this.portForQueue?.(vs, t, dflt) ?? dflt;
  }

  portForQueue: ((vs: VirtualServer, t: TcpTuple, dflt: number) => number) | null = null;

  /** UdpLayerHost: a datagram for a port without a socket here goes to another shard with one. */
  steerPort(vs: VirtualServer, proto: number, port: number): boolean {
    const s = this.steer;
    if (s === null || this.handedOver || (this.rxJ < 0 && this.rxDatagram === null)) return false;
    const o = s.flows.otherPortShard(s.flows.portSlot(vs.id, proto, port));
    if (o < 0) return false;
    return this.forwardRx(o);
  }

  /**
   * UdpLayerHost: an ephemeral port this shard may take: one of its share of the range (so two
   * shards never both pick it) that no other shard has bound either.
   */
  ephemeralFree(vs: VirtualServer, proto: number, port: number): boolean {
    const s = this.steer;
    if (s === null) return true;
    return port % s.shards === s.self && s.flows.otherPortShard(s.flows.portSlot(vs.id, proto, port)) < 0;
  }

  /**
   * The fragments of one datagram are reassembled by one shard, chosen by their (source,
   * destination, identification, protocol): true when frame `j` was handed to it.
   */
  steerFragment(m: RxMeta, j: number, a: number, b: number): boolean {
    const s = this.steer;
    if (s === null || this.forwardedIn) return false;
    const h = Math.imul((a ^ Math.imul(b, 0x9e3779b1)) >>> 0, 0x85ebca6b) >>> 0;
    // Unsigned before the modulo: a negative hash would name no shard (-1) and lose the datagram.
    const to = ((h ^ (h >>> 15)) >>> 0) % s.shards;
    if (to === s.self) return false;
    return this.forwardFrame(m, j, to);
  }

  /**
   * Input of frames other shards handed to this one (flows it owns, neighbor answers): each is
   * copied into a frame of its device's pool and input as if received, with `forwardedIn` set.
   * Frames stay in their ring while the pool has none free. Returns how many were taken.
   */
  inputForwarded(burst: Burst, now: number): number {
    const s = this.steer;
    if (s === null) return 0;
    let taken = 0;
    // Consecutive frames of one device and kind go through input() as one burst.
    let cur = -1;
    let curLoop = false;
    burst.n = 0;
    for (const r of s.inc) {
      if (r === null) continue;
      for (let at = r.front(); at >= 0; at = r.front()) {
        const d = r.frameDev(at);
        const dev = this.devices[d];
        const len = r.frameLen(at);
        if (r.frameKind(at) === RingKind.Datagram) {
          // A reassembled datagram: no frame of the pool needed (after the frames before it).
          if (burst.n) this.inputHandedOver(cur, curLoop, burst, now);
          const b = (this.dgBuf ??= new Uint8Array(DG_MAX));
          if (len > DG_MAX) { r.pop(r.span(len)); this.counters.drop(Drop.ShardNotForwardable); continue; }
          r.readLong(at, b);
          r.pop(r.span(len));
          s.counters.forwardedIn++;
          taken++;
          this.inputDatagram(d, b, len, now);
          continue;
        }
        const loop = r.frameKind(at) === RingKind.Loopback;
        if (!dev) { r.pop(); this.counters.drop(Drop.ShardRingFull); continue; }
        if (burst.n && (d !== cur || loop !== curLoop || burst.full)) this.inputHandedOver(cur, curLoop, burst, now);
        const f = dev.pool.alloc();
        if (f < 0) break;
        const off = dev.pool.dataStart(f);
        if (off + len > (f + 1) * dev.pool.frameSize) { dev.pool.free(f); r.pop(); dev.counters.drop(Drop.ShardRingFull); continue; }
        dev.pool.bytes.set(r.bytes.subarray(at, at + len), off);
        r.pop();
        burst.push(f, off, len, now);
        cur = d;
        curLoop = loop;
        s.counters.forwardedIn++;
        taken++;
      }
    }
    if (burst.n) this.inputHandedOver(cur, curLoop, burst, now);
    return taken;
  }

  /** Inputs a burst of frames handed over by other shards (input() empties it). */
  private inputHandedOver(dev: number, loop: boolean, burst: Burst, now: number): void {
    this.forwardedIn = true;
    this.inLoopback = loop;
    try {
      this.input(dev, burst, now);
    } finally {
      this.forwardedIn = false;
      this.inLoopback = false;
    }
  }

  dropOn(link: Link, reason: Drop): void {
    link.drop(reason); // the VS's counters are the sum of its links' (and its own)
  }

  /**
   * Frame `j` (a UDP datagram, or a packet of an unknown protocol) had no taker: ICMP "port
   * unreachable" (`port`) or "protocol unreachable" in the frame's family. The caller drops it.
   */
  unreachable(m: RxMeta, j: number, port: boolean): void {
    if (m.dst6[j]) this.icmp6.unreachable(m, j, port);
    else this.icmp4.errorFor(m, j, ICMP_DEST_UNREACH, port ? ICMP_PORT_UNREACH : ICMP_PROTO_UNREACH, 0);
  }

  // ---------------------------------------------------------------- output (the one IP output path)

  /** Routes and sends one datagram of either family (see IpOutput.emit). */
  emit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, proto: number, tos: number,
    hdr: Uint8Array, hdrLen: number, data: Uint8Array, dOff: number, dLen: number, df: boolean, mark: number): void {
    this.out.emit(vs, viaLink, viaMac, src, dst, proto, tos, hdr, hdrLen, data, dOff, dLen, df, mark);
  }

  /** TcpEngine: builds one TCP segment in a frame and sends it (see IpOutput.tcpEmit). */
  tcpEmit(vs: VirtualServer, viaLink: Link | null, viaMac: Uint8Array | null, src: IpAddr, dst: IpAddr, l4Max: number,
    build: (b: Uint8Array, l4Off: number) => number, mark: number): boolean {
    return this.out.tcpEmit(vs, viaLink, viaMac, src, dst, l4Max, build, mark);
  }

  mtuTo(vs: VirtualServer, dst: IpAddr, src: IpAddr = 0, mark = 0): number {
    return this.out.mtuTo(vs, dst, src, mark);
  }

  pmtuUpdate(vs: VirtualServer, dst: IpAddr, mtu: number, src: IpAddr = 0, mark = 0): number {
    return this.out.pmtuUpdate(vs, dst, mtu, src, mark);
  }

  /** Chooses the source address and an ephemeral port for an active open from `vs` (`zone`: the link of a scoped address). */
  tcpSource(vs: VirtualServer, dst: IpAddr, localAddr: IpAddr, localPort: number, mark: number, zone = ''): { addr: IpAddr; port: number; via: Link | null } {
    checkDestination(dst, false, 'connect', 0);
    let addr = localAddr;
    let via: Link | null = null;
    if (addr !== 0 && typeof addr !== typeof dst) {
      throw sockError('EINVAL', `connect EINVAL: local address ${addrToString(addr)} and destination ${addrToString(dst)} are of different families`);
    }
    if (zone || (typeof dst !== 'number' && isLinkLocal6(dst))) {
      // A link-local destination needs its link (fe80::2%link), as with any socket API.
      via = zone ? vs.link(zone) ?? null : null;
      if (!via) {
        throw sockError('EINVAL', `connect EINVAL ${addrToString(dst)}${zone ? `%${zone}` : ''}: ${zone ? `virtual server '${vs.name}' has no link '${zone}'` : 'a link-local address needs its link (%link)'}`);
      }
      if (addr === 0) addr = this.out.sourceFor(via, dst);
      if (addr === 0) throw sockError('EADDRNOTAVAIL', `connect EADDRNOTAVAIL: link '${via.name}' of virtual server '${vs.name}' has no usable IPv6 address`);
    } else if (addr === 0) {
      const r = vs.rules.select(0, mark, vs.tables, dst);
      if (!r) throw sockError('ENETUNREACH', `connect ENETUNREACH ${addrToString(dst)} (no route in virtual server '${vs.name}')`);
      const link = vs.links[r.link]!;
      addr = this.out.routeSource(vs, link, r.src, r.gateway !== 0 ? r.gateway : dst, dst);
      if (addr === 0) throw sockError('EADDRNOTAVAIL', `connect EADDRNOTAVAIL: virtual server '${vs.name}' has no ${typeof dst === 'number' ? 'IPv4' : 'IPv6'} address on '${link.name}'`);
    } else if (!vs.hasLocal(addr)) {
      throw sockError('EADDRNOTAVAIL', `bind EADDRNOTAVAIL ${addrToString(addr)}`);
    }
    if (localPort) return { addr, port: localPort, via };
    const p = this.tcp.ephemeralPort(vs);
    if (p < 0) throw sockError('EADDRNOTAVAIL', `connect EADDRNOTAVAIL: no ephemeral port left in virtual server '${vs.name}'`);
    return { addr, port: p, via };
  }

  /** UdpHost: sends one datagram from a socket (see UdpLayer.udpSend). */
  udpSend(sock: UdpSocket, data: Uint8Array, port: number, addr: IpAddr, zone = ''): void {
    this.udp.udpSend(sock, data, port, addr, zone);
  }

  /** A frame was queued for a device. */
  outputQueued(): void {
    if (!this.inInput) this.onOutput?.();
  }

  /** A frame was looped back: another step must run to receive it (also from inside input()). */
  loopQueued(): void {
    this.onOutput?.();
  }

  // ---------------------------------------------------------------- NeighborHost (ARP for IPv4, NDP for IPv6)

  /** NeighborHost: ARP request or Neighbor Solicitation for `ip` on the cache's link. */
  solicit(cache: NeighborCache, ip: IpAddr, mac: Uint8Array | null, _now: number): void {
    const link = cache.linkRef as Link;
    if (typeof ip === 'number') this.arp.request(link, this.out.sourceFor(link, ip) as number, ip, mac);
    else this.ndp.solicit(link, ip, mac);
  }

  /** NeighborHost: a queued frame's neighbor resolved. */
  release(cache: NeighborCache, p: PendingFrame, mac: Uint8Array, _now: number): void {
    const link = cache.linkRef as Link;
    const pool = this.devices[p.dev]!.pool;
    pool.bytes.set(mac, p.off);
    this.out.enqueue(link, pool, p.frame, p.off, p.len);
  }

  /** NeighborHost: a queued frame is dropped. */
  discard(cache: NeighborCache, p: PendingFrame, unreachable: boolean, n?: Neighbor): void {
    const link = cache.linkRef as Link;
    const pool = this.devices[p.dev]!.pool;
    const t = tcpTupleOf(pool, p.off + link.ethLen, p.len - link.ethLen);
    if (t) {
      if (unreachable) this.tcp.hostUnreachable(link.vs, t[0], t[1] as number, t[2], t[3] as number, link);
      else if (n && (n.notes?.length ?? 0) < NEIGH_NOTES_MAX * 4) (n.notes ??= []).push(t[0], t[1], t[2], t[3]);
    } else if (unreachable) {
      // A ping's request whose next hop never answered: its ping hears "Destination Host
      // Unreachable" from our own address, as a kernel's ping socket does (RFC 1122 2.3.2.1).
      const e = echoRequestOf(pool, p.off + link.ethLen, p.len - link.ethLen);
      if (e) this.echo.deliverError(link.vs, e[1], e[0], e[2], e[3] ? ICMP6_DST_UNREACH : ICMP_DEST_UNREACH, e[3] ? ICMP6_DST_UNREACH_ADDR : ICMP_HOST_UNREACH, 0, this.now);
    }
    const v6 = pool.bytes[p.off + link.ethLen]! >>> 4 === 6;
    pool.free(p.frame);
    link.drop(unreachable ? Drop.NeighborUnreachable : v6 ? Drop.NdpQueueFull : Drop.ArpQueueFull);
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
    const link = cache.linkRef as Link;
    for (let i = 0; i + 3 < t.length; i += 4) this.tcp.hostUnreachable(link.vs, t[i]!, t[i + 1] as number, t[i + 2]!, t[i + 3] as number, link);
  }

  /** NeighborHost: a frame for a new neighbor is dropped because the link's table is full. */
  discardTableFull(cache: NeighborCache, p: PendingFrame): void {
    const link = cache.linkRef as Link;
    this.devices[p.dev]!.pool.free(p.frame);
    link.drop(Drop.NeighborTableFull);
  }

  // ---------------------------------------------------------------- events

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
        this.tcp.flushEvents(this.stepEvents);
      } catch (err) {
        this.internalError(err); // the TCP layer reports application exceptions itself
      }
      const ready = this.udp.ready;
      while (ready.length) {
        const q = ready.splice(0);
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

  /** Feeds the frames looped back since the last call to the receive path. */
  private inputLoopback(): void {
    const o = this.out;
    if (!o.loopPending) return;
    o.loopPending = 0;
    for (let d = 0; d < o.loop.length; d++) {
      const q = o.loop[d]!;
      if (!q.n) continue;
      // What this input sends to the VS itself goes into the other queue, for the next round.
      o.loop[d] = o.loopSpare[d]!;
      o.loopSpare[d] = q;
      this.inLoopback = true;
      try {
        this.input(d, q, this.now);
      } finally {
        this.inLoopback = false;
      }
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
      this.wheel.advance(now, this.stepTimers);
    } finally {
      this.inStep = false;
    }
    const expired = this.reasm.expire(now);
    if (expired) this.counters.drop(Drop.Ipv4ReassemblyTimeout, expired);
    this.ip6.expire(now);
    return this.nextDeadline();
  }

  nextDeadline(): number {
    if (this.out.loopPending) return this.now; // looped-back frames wait for the next step
    // Socket events carried over from a step that reached its budget are due at once.
    if (this.tcp.eventsPending) return this.now;
    return Math.min(this.wheel.nextDeadline(), this.reasm.nextDeadline(), this.ip6.nextDeadline());
  }
}


/** Shards: the header of a reassembled datagram handed over (forwardDatagram), and the largest record. */
const DG_HEADER = 48;
const DG_MAX = DG_HEADER + 40 + 65535; // an IPv6 packet: its header and the largest payload

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * An Echo Request the stack built (an IP packet at `pool.bytes[off..off+len)`, either family, not
 * a later fragment): [source, identifier, sequence number, IPv6], or null.
 */
function echoRequestOf(pool: FramePool, off: number, len: number): [IpAddr, number, number, boolean] | null {
  const b = pool.bytes;
  if (len < 28) return null;
  const v = b[off]! >>> 4;
  if (v === 4) {
    const ihl = (b[off]! & 0x0f) * 4;
    if (b[off + 9] !== IPPROTO_ICMP || (((b[off + 6]! << 8) | b[off + 7]!) & 0x1fff) !== 0 || len < ihl + 8) return null;
    const p = off + ihl;
    if (b[p] !== ICMP_ECHO_REQUEST) return null;
    return [rd32(b, off + 12), (b[p + 4]! << 8) | b[p + 5]!, (b[p + 6]! << 8) | b[p + 7]!, false];
  }
  if (v !== 6 || len < 48) return null;
  let p = off + 40;
  let nh = b[off + 6]!;
  if (nh === IPPROTO_FRAGMENT) {
    // The first fragment of a large request (offset 0) still holds the ICMPv6 header.
    if ((((b[p + 2]! << 8) | b[p + 3]!) & 0xfff8) !== 0 || len < 56) return null;
    nh = b[p]!;
    p += 8;
  }
  if (nh !== IPPROTO_ICMPV6 || b[p] !== ICMP6_ECHO_REQUEST) return null;
  return [ip6At(b, off + 8), (b[p + 4]! << 8) | b[p + 5]!, (b[p + 6]! << 8) | b[p + 7]!, true];
}

/**
 * The TCP 4-tuple (src, sport, dst, dport) of a frame the stack built (an IP packet at
 * `pool.bytes[off..off+len)`, either family), or null.
 */
function tcpTupleOf(pool: FramePool, off: number, len: number): [IpAddr, number, IpAddr, number] | null {
  const b = pool.bytes;
  if (len < 20) return null;
  const v = b[off]! >>> 4;
  if (v === 4) {
    if (b[off + 9] !== IPPROTO_TCP) return null;
    const ihl = (b[off]! & 0x0f) * 4;
    if ((((b[off + 6]! << 8) | b[off + 7]!) & 0x1fff) !== 0 || len < ihl + 4) return null;
    const src = ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
    const dst = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    const p = off + ihl;
    return [src, (b[p]! << 8) | b[p + 1]!, dst, (b[p + 2]! << 8) | b[p + 3]!];
  }
  if (v === 6 && len >= 44 && b[off + 6] === IPPROTO_TCP) {
    const p = off + 40;
    return [ip6At(b, off + 8), (b[p]! << 8) | b[p + 1]!, ip6At(b, off + 24), (b[p + 2]! << 8) | b[p + 3]!];
  }
  return null;
}

