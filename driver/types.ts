/**
 * The one interface every driver implements (AF_XDP, pcap, memory link, middlewares).
 *
 * Frames live in a FramePool. A driver hands received frames to its caller in a Burst (state
 * Held, owner = engine) and takes ownership of the frames it is given to transmit. Time is
 * always passed in (`now`, microseconds), never read inside: the same engine runs over real
 * time (AF_XDP) and virtual time (pcap replay, memory link).
 */
import type { FramePool } from '../umem/pool';
import type { IpAddr } from '../protocols/ip/addr';

export const BURST_MAX = 64;

/** Log levels, most severe first (stack/control/log.ts formats and filters the lines). */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
/**
 * Where drivers and the engine report notices: one call per event, never per packet. The level
 * defaults to 'warn' (a configuration fallback, a lost device); a recovery says 'info'.
 */
export type LogFn = (msg: string, level?: LogLevel) => void;

/** A vector of frames: struct-of-arrays, allocated once and reused for every burst. */
export class Burst {
  n = 0;
  capacity: number;
  /** Frame index in the pool. */
  frame: Uint32Array;
  /** Absolute byte offset of the packet's first byte in pool.bytes. */
  off: Uint32Array;
  /** Packet length in bytes. */
  len: Uint32Array;
  /** Receive timestamp in microseconds (pcap and memory link set it; AF_XDP sets `now`). */
  ts: Float64Array;

  constructor(capacity = BURST_MAX) {
    this.capacity = capacity;
    this.frame = new Uint32Array(capacity);
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.ts = new Float64Array(capacity);
  }

  get full(): boolean {
    return this.n >= this.capacity;
  }

  push(frame: number, off: number, len: number, ts = 0): void {
    const i = this.n++;
    this.frame[i] = frame;
    this.off[i] = off;
    this.len[i] = len;
    this.ts[i] = ts;
  }

  /** Drops the first k entries (e.g. those a driver accepted), keeping the rest in order. */
  shift(k: number): void {
    if (k <= 0) return;
    if (k >= this.n) { this.n = 0; return; }
    this.frame.copyWithin(0, k, this.n);
    this.off.copyWithin(0, k, this.n);
    this.len.copyWithin(0, k, this.n);
    this.ts.copyWithin(0, k, this.n);
    this.n -= k;
  }

  clear(): void {
    this.n = 0;
  }

  /** Doubles the capacity (keeping the entries): for queues that may absorb a spike. */
  grow(): void {
    const c = this.capacity * 2;
    const f = new Uint32Array(c); f.set(this.frame); this.frame = f;
    const o = new Uint32Array(c); o.set(this.off); this.off = o;
    const l = new Uint32Array(c); l.set(this.len); this.len = l;
    const t = new Float64Array(c); t.set(this.ts); this.ts = t;
    this.capacity = c;
  }
}

export interface DriverStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames the driver could not take or lost, by reason. */
  drops: Record<string, number>;
  /** Driver-specific extras (XDP statistics, ring levels, impairment counts...). */
  [k: string]: unknown;
}

export interface Driver {
  readonly kind: string;
  /** Device or endpoint name. */
  readonly name: string;
  readonly pool: FramePool;
  /** The device's MAC address (6 bytes). */
  readonly mac: Uint8Array;
  /** Largest L2 payload (IP packet) the device carries. */
  readonly mtu: number;
  /**
   * Appends up to `out.capacity - out.n` received frames to `out`; they become Held by the caller,
   * who must free or transmit each of them. Returns the number appended.
   */
  rx(out: Burst, now: number): number;
  /**
   * Takes the first k frames of `b` (k = return value) for transmission; the driver now owns
   * them (sent, or dropped and counted) and returns them to the pool when done. Frames beyond k
   * stay Held by the caller (ring full: retry later or free them).
   */
  tx(b: Burst, now: number): number;
  /** Housekeeping each loop iteration: reap TX completions, refill the fill ring, kick TX. */
  service(now: number): void;
  /** Earliest time (µs) at which rx() will have something new without outside input; Infinity if none. */
  nextDeadline(): number;
  /**
   * Event-driven wait: calls `cb` when frames may be ready (AF_XDP: fd readable). Real-time
   * drivers only; returns false when unsupported.
   */
  onReadable?(cb: () => void): boolean;
  /**
   * Drivers that filter in the kernel (AF_XDP: the XDP program's maps): the stack starts (add) or
   * stops owning a MAC / a unicast address of either family on a VLAN (0 = untagged). Frames
   * for what it does not own stay with the host.
   */
  ownMac?(mac: Uint8Array, vlan: number, add: boolean): void;
  own?(addr: IpAddr, vlan: number, add: boolean): void;
  stats(): DriverStats;
  close(): void;
}

export function newStats(): DriverStats {
  return { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, drops: {} };
}

export function countDrop(s: DriverStats, reason: string, n = 1): void {
  s.drops[reason] = (s.drops[reason] ?? 0) + n;
}

/** Formats a MAC address as aa:bb:cc:dd:ee:ff. */
export function macToString(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[off + i]!.toString(16).padStart(2, '0');
  return s;
}

/** Parses aa:bb:cc:dd:ee:ff (or with '-') into 6 bytes; throws RangeError with the bad text. */
export function parseMac(s: string): Uint8Array {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s.trim());
  if (!m) throw new RangeError(`not a MAC address: '${s}'`);
  return Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
}
