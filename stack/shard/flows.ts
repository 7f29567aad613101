/**
 * Which shard owns a flow: a table in shared memory that every shard of a device group reads and
 * writes without locks.
 *
 * - Flow slots (TCP connections): a slot is chosen by a keyed hash of (VS, local address and port,
 *   remote address and port). Its word is 0 when free, else (owner + 1) << 24 | count: the shard
 *   that owns every flow hashing to the slot, and how many of its flows do. A shard takes a free
 *   slot with compare-and-swap; only the owner changes a word that is not 0 (count up and down, and
 *   back to 0), so two shards can never both own a slot. Two flows sharing a slot simply live in the
 *   same shard: a collision costs at most a forwarded frame, never a misdelivery (a SYN whose slot
 *   a shard without a listener on its port holds waits, dropped, for the peer's retransmission).
 * - Port slots (TCP listeners, UDP sockets): a bit mask of the shards that have something bound to
 *   (VS, protocol, port); each shard sets and clears only its own bit. A frame for a port with no
 *   socket in the shard it reached goes to a shard whose bit is set.
 *
 * The table is plain memory over an (optionally shared) buffer, so one process of several threads
 * and a test running every shard in one thread use the same code.
 */
import { addrHash, IpAddr } from '../../protocols/ip/addr';
import { hash5, HashKey } from '../../protocols/tcp/hash';

/** At most this many shards per stack (the port masks are 32-bit words). */
export const MAX_SHARDS = 32;
const COUNT_MASK = 0xffffff;

export interface FlowTableSize {
  /** Flow slots (a power of two). */
  flowSlots: number;
  /** Port slots (a power of two). */
  portSlots: number;
}

/** The default: 2^20 flow slots (4 MiB) and 2^16 port slots (256 KiB). */
export const DEFAULT_FLOW_TABLE: FlowTableSize = { flowSlots: 1 << 20, portSlots: 1 << 16 };

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export class FlowTable {
  private readonly flows: Int32Array;
  private readonly ports: Int32Array;
  private readonly flowMask: number;
  private readonly portMask: number;
  /** This shard's bindings per port slot (its bit is set while the count is above 0). */
  private readonly portRefs = new Map<number, number>();

  /** Bytes of a table of `size`. */
  static bytes(size: FlowTableSize = DEFAULT_FLOW_TABLE): number {
    return 4 * (size.flowSlots + size.portSlots);
  }

  /** Shared memory for a table, zeroed. */
  static allocate(size: FlowTableSize = DEFAULT_FLOW_TABLE): SharedArrayBuffer {
    if (!isPow2(size.flowSlots) || !isPow2(size.portSlots)) throw new RangeError(`flow table sizes must be powers of two, got ${size.flowSlots} and ${size.portSlots}`);
    return new SharedArrayBuffer(FlowTable.bytes(size));
  }

  constructor(buf: SharedArrayBuffer | ArrayBuffer, size: FlowTableSize, readonly self: number, private readonly key: HashKey) {
    if (!isPow2(size.flowSlots) || !isPow2(size.portSlots)) throw new RangeError(`flow table sizes must be powers of two, got ${size.flowSlots} and ${size.portSlots}`);
    if (buf.byteLength < FlowTable.bytes(size)) throw new RangeError(`flow table buffer of ${buf.byteLength} bytes is too small for ${JSON.stringify(size)}`);
    if (!Number.isInteger(self) || self < 0 || self >= MAX_SHARDS) throw new RangeError(`shard index must be 0..${MAX_SHARDS - 1}, got ${self}`);
    this.flows = new Int32Array(buf, 0, size.flowSlots);
    this.ports = new Int32Array(buf, 4 * size.flowSlots, size.portSlots);
    this.flowMask = size.flowSlots - 1;
    this.portMask = size.portSlots - 1;
  }

  // ------------------------------------------------------------------ flows

  /** The slot of a TCP flow of VS `vs`. */
  flowSlot(vs: number, local: IpAddr, localPort: number, remote: IpAddr, remotePort: number): number {
    return hash5(this.key, vs, addrHash(local), addrHash(remote), (localPort << 16) | remotePort, 6) & this.flowMask;
  }

  /** The shard owning `slot`, or -1 when no shard does. */
  owner(slot: number): number {
    const w = Atomics.load(this.flows, slot);
    return w === 0 ? -1 : ((w >>> 24) & 0xff) - 1;
  }

  /** Takes (or shares, when this shard owns it already) `slot`: -1 on success, else the shard that owns it. */
  claim(slot: number): number {
    const mine = ((this.self + 1) << 24) | 1;
    for (let tries = 0; tries < 4; tries++) {
      const w = Atomics.load(this.flows, slot);
      if (w === 0) {
        if (Atomics.compareExchange(this.flows, slot, 0, mine) === 0) return -1;
        continue; // another shard took it between the load and the swap: look again
      }
      const o = ((w >>> 24) & 0xff) - 1;
      if (o !== this.self) return o;
      if ((w & COUNT_MASK) === COUNT_MASK) return o; // cannot count more: treat as taken
      Atomics.store(this.flows, slot, w + 1); // only the owner writes a word that is not 0
      return -1;
    }
    return this.owner(slot);
  }

  /** Gives back one claim of `slot` (the slot is free again after its last one). */
  release(slot: number): void {
    const w = Atomics.load(this.flows, slot);
    if (w === 0 || ((w >>> 24) & 0xff) - 1 !== this.self) return;
    Atomics.store(this.flows, slot, (w & COUNT_MASK) <= 1 ? 0 : w - 1);
  }

  /** How many flows this shard holds in `slot` (tests, diagnostics). */
  count(slot: number): number {
    const w = Atomics.load(this.flows, slot);
    return w === 0 || ((w >>> 24) & 0xff) - 1 !== this.self ? 0 : w & COUNT_MASK;
  }

  // ------------------------------------------------------------------ ports

  /** The slot of (VS, protocol, port). */
  portSlot(vs: number, proto: number, port: number): number {
    return hash5(this.key, vs, proto, port, 0x706f7274, 0) & this.portMask;
  }

  /** Records that this shard binds one more socket or listener on `slot`. */
  bindPort(slot: number): void {
    const n = this.portRefs.get(slot) ?? 0;
    this.portRefs.set(slot, n + 1);
    if (n === 0) Atomics.or(this.ports, slot, 1 << this.self);
  }

  /** Records that this shard unbinds one socket or listener on `slot`. */
  unbindPort(slot: number): void {
    const n = this.portRefs.get(slot) ?? 0;
    if (n <= 1) {
      this.portRefs.delete(slot);
      if (n === 1) Atomics.and(this.ports, slot, ~(1 << this.self));
    } else {
      this.portRefs.set(slot, n - 1);
    }
  }

  /** The shards (bit mask) with something bound on `slot`. */
  portShards(slot: number): number {
    return Atomics.load(this.ports, slot);
  }

  /** Another shard with something bound on `slot` (the lowest), or -1. */
  otherPortShard(slot: number): number {
    const m = Atomics.load(this.ports, slot) & ~(1 << this.self);
    return m === 0 ? -1 : 31 - Math.clz32(m & -m);
  }
}
