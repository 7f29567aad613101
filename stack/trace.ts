/**
 * Traces: every driver of a stack is wrapped in a tap (`TapDriver`), so a running stack can mirror
 * the frames of some links into a pcap — a file, or a stream the control socket passes to its
 * client (`xdpstack trace --out -`) — filtered like a small tcpdump expression (`TraceFilter`:
 * VLAN, host, port, protocol, all combined with AND). With no trace active, a tap costs one length
 * test per burst.
 *
 * Time of a frame in a capture (µs since the epoch, on the monotonic clock the whole process shares,
 * so the shards of a stack agree):
 *   - received: when the stack took the frame from the device — the time of the burst it came in
 *     (the driver's receive stamp: a memory link's delivery time, AF_XDP's ring read);
 *   - sent: when the frame was handed to the device's transmit ring (the clock read at that call in
 *     real time; the step's time under virtual time).
 * Frames that would share a microsecond (a burst read at one instant; a request and the reply sent
 * in the same step) are spread 1 µs apart: times in a capture strictly increase, in the order the
 * stack saw the frames, so a request always precedes its reply.
 */
import type { Burst, Driver, DriverStats } from '../driver/types';
import type { PcapWriter } from '../driver/pcap';
import { IpAddr, parseAddr } from '../protocols/ip/addr';

// ---------------------------------------------------------------------------------------------
// Filter

export const TRACE_PROTOS = ['tcp', 'udp', 'icmp', 'icmp6', 'arp', 'ipv4', 'ipv6'] as const;
export type TraceProto = (typeof TRACE_PROTOS)[number];

/** A trace filter as the CLI and the control socket give it (every field optional; all ANDed). */
export interface TraceFilterSpec {
  /** Frames carrying an 802.1Q or 802.1ad tag with this VLAN id (outer or inner tag). */
  vlan?: number;
  /**
   * IPv4 or IPv6 address: the packet's source or destination; for ARP the sender or target
   * protocol address; for NDP (Neighbor Solicitation/Advertisement) also the target address. In a
   * tunnel (IPIP, IPv6-in-IPv6 and the mixed kinds, one level) the outer or the inner packet's, as
   * tshark's `ip.addr` / `ipv6.addr` match any IP header of the frame.
   */
  host?: string;
  /** TCP or UDP source or destination port (first fragments and whole datagrams only; a tunnel's inner packet's). */
  port?: number;
  /** tcp, udp (IPv4 or IPv6), icmp (IPv4), icmp6 (of the innermost packet, through a tunnel), arp, ipv4, ipv6 (the ethertype). */
  proto?: string;
}

/** A filter refused: the message says which field and why. */
export class TraceFilterError extends Error {
  constructor(message: string) { super(message); this.name = 'TraceFilterError'; }
}

const ETH_IPV4 = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IPV6 = 0x86dd;
const ETH_8021Q = 0x8100;
const ETH_8021AD = 0x88a8;

const P_ANY = 0, P_TCP = 1, P_UDP = 2, P_ICMP = 3, P_ICMP6 = 4, P_ARP = 5, P_IPV4 = 6, P_IPV6 = 7;
const PROTO_CODE: Record<TraceProto, number> = { tcp: P_TCP, udp: P_UDP, icmp: P_ICMP, icmp6: P_ICMP6, arp: P_ARP, ipv4: P_IPV4, ipv6: P_IPV6 };

/**
 * What a trace needs of a frame, found once per frame without allocating: the VLAN tags, the
 * network protocol, the addresses' offsets and the transport protocol and ports. IPv6 extension
 * headers (hop-by-hop, routing, destination options, fragment) are skipped by their lengths. A
 * tunneled packet (IPv4 protocol 4 / IPv6 next header 41) is looked into one level: its inner
 * header's offset is kept, and the transport fields are the inner packet's.
 */
export class FrameView {
  /** First and second VLAN tag ids (-1: none). */
  tag1 = -1;
  tag2 = -1;
  /** The VLAN a link of the stack would take the frame on: -1 untagged, the id of a single 802.1Q tag, -2 other tagging. */
  linkVlan = -1;
  etherType = 0;
  /** Offset of the network header, and the frame's end. */
  l3 = 0;
  end = 0;
  /** 4 or 6 for an IP packet whose addresses are in the frame, else 0. */
  ipVersion = 0;
  /**
   * A tunnel (IPv4 protocol 4 / IPv6 next header 41, IPIP and IPv6-in-IPv6 of a load balancer, RFC
   * 2003 / RFC 2473): the inner packet's offset and version (4 or 6), one level deep; 0 without.
   */
  innerL3 = -1;
  innerVersion = 0;
  /** Transport protocol number of the innermost packet (IPv4 protocol, IPv6 last next header), -1 when unknown. */
  l4Proto = -1;
  /** The IP version of the packet that carries `l4Proto` (the inner one in a tunnel). */
  l4Version = 0;
  /** Offset of the transport header when it is in the frame (not a non-first fragment), else -1. */
  l4 = -1;

  parse(b: Uint8Array, off: number, len: number): void {
    this.tag1 = -1;
    this.tag2 = -1;
    this.linkVlan = -1;
    this.etherType = 0;
    this.ipVersion = 0;
    this.innerL3 = -1;
    this.innerVersion = 0;
    this.l4Proto = -1;
    this.l4Version = 0;
    this.l4 = -1;
    const end = off + len;
    this.end = end;
    this.l3 = end;
    if (len < 14) return;
    let p = off + 12;
    let type = (b[p]! << 8) | b[p + 1]!;
    let tags = 0;
    while ((type === ETH_8021Q || type === ETH_8021AD) && tags < 2 && p + 6 <= end) {
      const id = ((b[p + 2]! & 0x0f) << 8) | b[p + 3]!;
      if (tags === 0) this.tag1 = id; else this.tag2 = id;
      if (tags === 0 && type === ETH_8021Q) this.linkVlan = id;
      else this.linkVlan = -2;
      tags++;
      p += 4;
      type = (b[p]! << 8) | b[p + 1]!;
    }
    if (type === ETH_8021Q || type === ETH_8021AD) { this.linkVlan = -2; return; } // a third tag or truncated
    p += 2;
    this.etherType = type;
    this.l3 = p;
    const version = type === ETH_IPV4 ? 4 : type === ETH_IPV6 ? 6 : 0;
    if (version === 0 || !this.ip(b, p, end, version)) return;
    this.ipVersion = version;
    // A tunnel's inner packet (what a VIP receives): the filter sees its addresses, protocol and ports too.
    const inner = this.l4Proto === 4 ? 4 : this.l4Proto === 41 ? 6 : 0;
    const q = this.l4;
    if (inner !== 0 && q >= 0 && this.ip(b, q, end, inner)) {
      this.innerL3 = q;
      this.innerVersion = inner;
    }
  }

  /** Reads the IP header of version `version` at `p`: sets l4Proto, l4Version and l4; false when there is none. */
  private ip(b: Uint8Array, p: number, end: number, version: number): boolean {
    if (version === 4) {
      if (p + 20 > end || (b[p]! >>> 4) !== 4) return false;
      this.l4Proto = b[p + 9]!;
      this.l4Version = 4;
      this.l4 = -1;
      const hl = (b[p]! & 0x0f) * 4;
      const frag = ((b[p + 6]! << 8) | b[p + 7]!) & 0x1fff;
      if (hl >= 20 && frag === 0 && p + hl <= end) this.l4 = p + hl;
      return true;
    }
    if (p + 40 > end || (b[p]! >>> 4) !== 6) return false;
    let nh = b[p + 6]!;
    let q = p + 40;
    let first = true;
    for (let n = 0; n < 8 && (nh === 0 || nh === 43 || nh === 60 || nh === 44); n++) {
      if (q + 8 > end) { nh = -1; break; }
      if (nh === 44) {
        if ((((b[q + 2]! << 8) | b[q + 3]!) & 0xfff8) !== 0) first = false;
        nh = b[q]!;
        q += 8;
      } else {
        nh = b[q]!;
        q += (b[q + 1]! + 1) * 8;
      }
    }
    this.l4Proto = nh;
    this.l4Version = 6;
    this.l4 = nh >= 0 && first && q <= end ? q : -1;
    return true;
  }
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** A compiled trace filter: numbers only, tested against a parsed FrameView (no allocation). */
export class TraceFilter {
  /** -1: any VLAN. */
  readonly vlan: number;
  /** -1: any port. */
  readonly port: number;
  private readonly proto: number;
  /** 0: any host; 4 or 6: the family of `host`. */
  private readonly hostFam: number;
  private readonly h0: number;
  private readonly h1: number;
  private readonly h2: number;
  private readonly h3: number;
  readonly spec: Readonly<TraceFilterSpec>;

  private constructor(spec: TraceFilterSpec, vlan: number, port: number, proto: number, host: IpAddr | null) {
    this.spec = spec;
    this.vlan = vlan;
    this.port = port;
    this.proto = proto;
    if (host === null) { this.hostFam = 0; this.h0 = this.h1 = this.h2 = this.h3 = 0; }
    else if (typeof host === 'number') { this.hostFam = 4; this.h0 = host >>> 0; this.h1 = this.h2 = this.h3 = 0; }
    else { this.hostFam = 6; this.h0 = host.w0; this.h1 = host.w1; this.h2 = host.w2; this.h3 = host.w3; }
  }

  /** Checks and compiles a filter; TraceFilterError names the bad field. */
  static parse(spec: TraceFilterSpec = {}): TraceFilter {
    if (typeof spec !== 'object' || spec === null) throw new TraceFilterError('a trace filter is an object');
    const clean: TraceFilterSpec = {};
    let vlan = -1;
    if (spec.vlan !== undefined && spec.vlan !== null) {
      if (typeof spec.vlan !== 'number' || !Number.isInteger(spec.vlan) || spec.vlan < 0 || spec.vlan > 4094) {
        throw new TraceFilterError(`vlan must be a VLAN id 0..4094, got ${JSON.stringify(spec.vlan)}`);
      }
      vlan = clean.vlan = spec.vlan;
    }
    let port = -1;
    if (spec.port !== undefined && spec.port !== null) {
      if (typeof spec.port !== 'number' || !Number.isInteger(spec.port) || spec.port < 0 || spec.port > 65535) {
        throw new TraceFilterError(`port must be a TCP/UDP port 0..65535, got ${JSON.stringify(spec.port)}`);
      }
      port = clean.port = spec.port;
    }
    let proto = P_ANY;
    if (spec.proto !== undefined && spec.proto !== null) {
      const p = typeof spec.proto === 'string' ? spec.proto.toLowerCase() : spec.proto;
      if (typeof p !== 'string' || !(TRACE_PROTOS as readonly string[]).includes(p)) {
        throw new TraceFilterError(`proto must be one of ${TRACE_PROTOS.join(', ')}, got ${JSON.stringify(spec.proto)}`);
      }
      proto = PROTO_CODE[p as TraceProto];
      clean.proto = p;
      if (port >= 0 && proto !== P_TCP && proto !== P_UDP && proto !== P_IPV4 && proto !== P_IPV6) {
        throw new TraceFilterError(`port ${port} with proto ${p}: ports belong to tcp and udp only (nothing would match)`);
      }
    }
    let host: IpAddr | null = null;
    if (spec.host !== undefined && spec.host !== null) {
      if (typeof spec.host !== 'string') throw new TraceFilterError(`host must be an IPv4 or IPv6 address, got ${JSON.stringify(spec.host)}`);
      try {
        host = parseAddr(spec.host.trim());
      } catch {
        throw new TraceFilterError(`host must be an IPv4 or IPv6 address (like 10.1.1.2 or fd00::2), got '${spec.host}'`);
      }
      clean.host = spec.host.trim();
      const v6 = typeof host !== 'number';
      if ((proto === P_ICMP || proto === P_ARP || proto === P_IPV4) && v6) throw new TraceFilterError(`host ${clean.host} is IPv6 but proto ${clean.proto} is IPv4 only (nothing would match)`);
      if ((proto === P_ICMP6 || proto === P_IPV6) && !v6) throw new TraceFilterError(`host ${clean.host} is IPv4 but proto ${clean.proto} is IPv6 only (nothing would match)`);
    }
    return new TraceFilter(clean, vlan, port, proto, host);
  }

  /** Whether the filter takes every frame. */
  get any(): boolean {
    return this.vlan < 0 && this.port < 0 && this.proto === P_ANY && this.hostFam === 0;
  }

  /** tcpdump-like text of the filter ('' for none). */
  toString(): string {
    const s = this.spec;
    const parts: string[] = [];
    if (s.vlan !== undefined) parts.push(`vlan ${s.vlan}`);
    if (s.host !== undefined) parts.push(`host ${s.host}`);
    if (s.port !== undefined) parts.push(`port ${s.port}`);
    if (s.proto !== undefined) parts.push(s.proto);
    return parts.join(' and ');
  }

  /** Whether the frame `v` (parsed from `b`) passes. */
  test(v: FrameView, b: Uint8Array): boolean {
    if (this.vlan >= 0 && v.tag1 !== this.vlan && v.tag2 !== this.vlan) return false;
    const et = v.etherType;
    switch (this.proto) {
      case P_ANY: break;
      case P_TCP: if (v.ipVersion === 0 || v.l4Proto !== 6) return false; break;
      case P_UDP: if (v.ipVersion === 0 || v.l4Proto !== 17) return false; break;
      case P_ICMP: if (v.l4Version !== 4 || v.l4Proto !== 1) return false; break;
      case P_ICMP6: if (v.l4Version !== 6 || v.l4Proto !== 58) return false; break;
      case P_ARP: if (et !== ETH_ARP) return false; break;
      case P_IPV4: if (et !== ETH_IPV4) return false; break;
      case P_IPV6: if (et !== ETH_IPV6) return false; break;
    }
    if (this.port >= 0) {
      const l4 = v.l4;
      if (l4 < 0 || (v.l4Proto !== 6 && v.l4Proto !== 17) || l4 + 4 > v.end) return false;
      const sp = (b[l4]! << 8) | b[l4 + 1]!;
      const dp = (b[l4 + 2]! << 8) | b[l4 + 3]!;
      if (sp !== this.port && dp !== this.port) return false;
    }
    if (this.hostFam !== 0 && !this.hostIn(v, b)) return false;
    return true;
  }

  private hostIn(v: FrameView, b: Uint8Array): boolean {
    const l3 = v.l3;
    // A tunnel: the outer addresses (the load balancer's, ours) or the inner ones (client, VIP).
    const i3 = v.innerL3;
    if (this.hostFam === 4) {
      const h = this.h0;
      if (v.innerVersion === 4 && (rd32(b, i3 + 12) === h || rd32(b, i3 + 16) === h)) return true;
      if (v.ipVersion === 4) return rd32(b, l3 + 12) === h || rd32(b, l3 + 16) === h;
      // ARP for IPv4 over Ethernet (RFC 826): sender protocol address at 14, target at 24.
      if (v.etherType === ETH_ARP && l3 + 28 <= v.end && b[l3 + 4] === 6 && b[l3 + 5] === 4) {
        return rd32(b, l3 + 14) === h || rd32(b, l3 + 24) === h;
      }
      return false;
    }
    if (v.innerVersion === 6 && (this.eq6(b, i3 + 8) || this.eq6(b, i3 + 24))) return true;
    if (v.ipVersion !== 6) return false;
    if (this.eq6(b, l3 + 8) || this.eq6(b, l3 + 24)) return true;
    // NDP (RFC 4861 4.3, 4.4): a solicitation goes to a multicast group, so the address it resolves
    // is only in its Target Address field (ICMPv6 header + 4 reserved bytes).
    const l4 = v.l4;
    if (v.l4Proto === 58 && l4 >= 0 && l4 + 24 <= v.end && (b[l4] === 135 || b[l4] === 136)) return this.eq6(b, l4 + 8);
    return false;
  }

  private eq6(b: Uint8Array, o: number): boolean {
    return rd32(b, o + 12) === this.h3 && rd32(b, o) === this.h0 && rd32(b, o + 4) === this.h1 && rd32(b, o + 8) === this.h2;
  }
}

// ---------------------------------------------------------------------------------------------
// Trace

/** What a trace did, for its stop message. */
export interface TraceCounts {
  /** Frames of the trace's devices/links (its VS, or every device) it looked at. */
  seen: number;
  /** Of those, frames that passed the filter. */
  matched: number;
  /** Frames written to the capture. */
  captured: number;
  /** Matching frames not written: the reader of a streamed capture did not keep up. */
  dropped: number;
}

/** Where a streamed capture goes: its bytes in order, and whether the reader is too far behind. */
export interface TraceSink {
  write(chunk: Uint8Array): void;
  /** True while the reader is too far behind: frames are then dropped (counted), never buffered without bound. */
  full(): boolean;
}

/** One active trace: which (device, VLAN) pairs it mirrors, its filter, and where to. */
export class Trace {
  /** Frames written (the capture's length). */
  frames = 0;
  seen = 0;
  matched = 0;
  dropped = 0;
  done = false;
  /** The last time written (µs since the epoch): the next one is later. */
  private last = 0;
  private readonly view = new FrameView();
  private readonly listeners: ((frames: number, counts: TraceCounts) => void)[] = [];

  constructor(
    readonly writer: PcapWriter,
    /** Per device index: VLAN ids to mirror (-1 = untagged), or null for all frames. */
    readonly match: Map<number, Set<number> | null>,
    readonly limit: number,
    readonly filter: TraceFilter,
    private readonly detach: (t: Trace) => void,
    /** A streamed capture's reader is behind: drop instead of buffering. */
    private readonly full: (() => boolean) | null = null,
  ) {}

  /** @internal `ts`: the frame's time, µs since the epoch (see the file's comment). */
  record(dev: number, bytes: Uint8Array, off: number, len: number, ts: number): void {
    if (this.done) return;
    const m = this.match.get(dev);
    if (m === undefined) return;
    const v = this.view;
    v.parse(bytes, off, len);
    if (m !== null && !m.has(v.linkVlan)) return;
    this.seen++;
    if (!this.filter.test(v, bytes)) return;
    this.matched++;
    if (this.full !== null && this.full()) { this.dropped++; return; }
    const t = ts > this.last ? ts : this.last + 1;
    this.last = t;
    this.writer.write(bytes, off, len, t);
    this.frames++;
    if (this.frames >= this.limit) this.stop();
  }

  /**
   * Frames recorded from now on are stamped after `ts` (µs since the epoch): a shard promising the
   * merger of a streamed capture that nothing earlier will follow.
   */
  floor(ts: number): void {
    if (ts > this.last) this.last = ts;
  }

  counts(): TraceCounts {
    return { seen: this.seen, matched: this.matched, captured: this.frames, dropped: this.dropped };
  }

  onDone(cb: (frames: number, counts: TraceCounts) => void): void {
    if (this.done) cb(this.frames, this.counts());
    else this.listeners.push(cb);
  }

  /** Stops mirroring and closes the writer (a file is closed; a stream gets its last bytes). */
  stop(): void {
    if (this.done) return;
    this.done = true;
    this.detach(this);
    this.writer.close();
    const c = this.counts();
    for (const l of this.listeners) l(this.frames, c);
  }
}

/** A transparent driver wrapper feeding the active traces. */
export class TapDriver implements Driver {
  readonly kind: string;
  traces: Trace[] = [];
  /**
   * Real time with a driver that cannot signal readiness (memory): poll it every `pollUs`
   * even when the engine's next timer is far away. 0 = off (virtual time, AF_XDP).
   */
  pollUs = 0;
  /** Real time: the clock (µs, the runtime's) read when a burst is handed to the driver; null under virtual time. */
  clock: (() => number) | null = null;
  /** Added to the runtime's µs to make µs since the epoch. */
  epochOffset = 0;
  private lastNow = 0;

  constructor(readonly inner: Driver, readonly dev: number) {
    this.kind = inner.kind;
    if (inner.onReadable) this.onReadable = (cb) => inner.onReadable!(cb);
  }

  get name(): string { return this.inner.name; }
  get pool() { return this.inner.pool; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }
  onReadable?: (cb: () => void) => boolean;

  rx(out: Burst, now: number): number {
    const start = out.n;
    const n = this.inner.rx(out, now);
    if (n > 0 && this.traces.length) {
      const ts = this.traces;
      const bytes = this.inner.pool.bytes;
      const off = this.epochOffset;
      for (const t of ts) {
        for (let i = start; i < start + n; i++) {
          // The burst's receive stamp (a memory link's delivery time), else the time it was read.
          const r = out.ts[i]!;
          t.record(this.dev, bytes, out.off[i]!, out.len[i]!, (r > 0 && r <= now ? r : now) + off);
        }
      }
    }
    return n;
  }

  tx(b: Burst, now: number): number {
    if (!this.traces.length) return this.inner.tx(b, now);
    const k = this.inner.tx(b, now);
    const at = (this.clock !== null ? Math.max(this.clock(), now) : now) + this.epochOffset;
    // The caller's burst is left as it is and accepted frames are not reused before the next
    // allocation: the first k entries still describe intact bytes.
    const bytes = this.inner.pool.bytes;
    const ts = this.traces;
    for (const t of ts) for (let i = 0; i < k; i++) t.record(this.dev, bytes, b.off[i]!, b.len[i]!, at);
    return k;
  }

  service(now: number): void {
    this.lastNow = now;
    this.inner.service(now);
  }

  nextDeadline(): number {
    const d = this.inner.nextDeadline();
    return this.pollUs ? Math.min(d, this.lastNow + this.pollUs) : d;
  }
  stats(): DriverStats { return this.inner.stats(); }
  close(): void { this.inner.close(); }
}
