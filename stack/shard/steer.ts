/**
 * One shard's view of its group: the shared flow table, the rings to and from every other shard,
 * and the doorbells that wake a shard when frames are handed to it. The engine asks it where a
 * frame belongs (stack/engine/engine.ts: steer*); it never decides anything about a frame itself.
 *
 * Memory (`MeshMemory`) is made once for the group (main thread, or a test running every shard in
 * one thread) and each shard builds its Steering over it: shared-nothing on the packet path except
 * these rings and the table, which are written without locks (Atomics only).
 */
import { hashKey } from '../../protocols/tcp/hash';
import { DEFAULT_FLOW_TABLE, FlowTable, FlowTableSize, MAX_SHARDS } from './flows';
import { DEFAULT_RING, FrameRing, RingKind, RingSize } from './ring';

export interface MeshMemory {
  shards: number;
  flowSize: FlowTableSize;
  flows: SharedArrayBuffer | ArrayBuffer;
  ringSize: RingSize;
  /** rings[from][to]: frames handed from shard `from` to shard `to` (null on the diagonal). */
  rings: (SharedArrayBuffer | ArrayBuffer | null)[][];
  /** One word per shard, bumped when frames are handed to it. */
  bells: SharedArrayBuffer | ArrayBuffer;
  /** 16 bytes keying the table's hash (the same in every shard). */
  key: Uint8Array;
}

/**
 * The memory of a group of `shards`. `shared`: SharedArrayBuffers (worker threads); otherwise plain
 * ArrayBuffers, for a group whose shards all run in one thread.
 */
export function allocateMesh(shards: number, key: Uint8Array, opts: { flowSize?: FlowTableSize; ringSize?: RingSize; shared?: boolean } = {}): MeshMemory {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new RangeError(`shards must be 1..${MAX_SHARDS}, got ${shards}`);
  if (key.length < 16) throw new RangeError('the flow table key needs 16 bytes');
  const flowSize = opts.flowSize ?? DEFAULT_FLOW_TABLE;
  const ringSize = opts.ringSize ?? DEFAULT_RING;
  const shared = opts.shared ?? true;
  const mk = (n: number): SharedArrayBuffer | ArrayBuffer => (shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  FlowTable.allocate(flowSize); // checks the sizes
  const rings: (SharedArrayBuffer | ArrayBuffer | null)[][] = [];
  for (let f = 0; f < shards; f++) {
    const row: (SharedArrayBuffer | ArrayBuffer | null)[] = [];
    for (let t = 0; t < shards; t++) row.push(f === t ? null : mk(FrameRing.bytes(ringSize)));
    rings.push(row);
  }
  return { shards, flowSize, flows: mk(FlowTable.bytes(flowSize)), ringSize, rings, bells: mk(4 * shards), key: Uint8Array.from(key.subarray(0, 16)) };
}

/** Counters of one shard's steering (show counters: `shards`). */
export interface SteerCounters {
  /** Frames handed to the shard owning their flow, per destination shard. */
  forwarded: number[];
  /** Frames received from other shards (flows and neighbor answers). */
  forwardedIn: number;
  /** Neighbor answers (ARP replies, Neighbor Advertisements) copied to the other shards. */
  neighborShared: number;
  /** Frames that could not be handed over: the destination's ring was full (counted drops). */
  ringFull: number;
  /**
   * Steps that left received frames in the device's queue because a ring toward another shard had
   * no room for a whole burst (back-pressure: they are read once the owner drained its ring).
   */
  heldBack: number;
}

export class Steering {
  readonly self: number;
  readonly shards: number;
  readonly flows: FlowTable;
  /** Rings to (`out[to]`) and from (`inc[from]`) every other shard. */
  readonly out: (FrameRing | null)[];
  readonly inc: (FrameRing | null)[];
  readonly bells: Int32Array;
  readonly counters: SteerCounters;

  constructor(readonly mem: MeshMemory, self: number) {
    if (!Number.isInteger(self) || self < 0 || self >= mem.shards) throw new RangeError(`shard index must be 0..${mem.shards - 1}, got ${self}`);
    this.self = self;
    this.shards = mem.shards;
    this.flows = new FlowTable(mem.flows, mem.flowSize, self, hashKey(mem.key));
    this.out = mem.rings[self]!.map((b) => (b ? new FrameRing(b, mem.ringSize) : null));
    this.inc = mem.rings.map((row) => (row[self] ? new FrameRing(row[self]!, mem.ringSize) : null));
    this.bells = new Int32Array(mem.bells);
    this.counters = { forwarded: new Array<number>(mem.shards).fill(0), forwardedIn: 0, neighborShared: 0, ringFull: 0, heldBack: 0 };
  }

  /** Hands a frame to shard `to`; false (counted) when its ring is full. */
  send(to: number, dev: number, kind: RingKind, bytes: Uint8Array, off: number, len: number): boolean {
    const r = this.out[to];
    if (!r || !r.push(dev, kind, bytes, off, len)) {
      this.counters.ringFull++;
      return false;
    }
    if (kind !== RingKind.Neighbor) this.counters.forwarded[to]!++;
    Atomics.add(this.bells, to, 1);
    Atomics.notify(this.bells, to);
    return true;
  }

  /** Hands a record longer than a frame (a reassembled datagram) to shard `to`; false (counted) when its ring lacks room. */
  sendLong(to: number, dev: number, kind: RingKind, bytes: Uint8Array, off: number, len: number): boolean {
    const r = this.out[to];
    if (!r || !r.pushLong(dev, kind, bytes, off, len)) {
      this.counters.ringFull++;
      return false;
    }
    this.counters.forwarded[to]!++;
    Atomics.add(this.bells, to, 1);
    Atomics.notify(this.bells, to);
    return true;
  }

  /** Copies a neighbor answer to every other shard. */
  share(dev: number, bytes: Uint8Array, off: number, len: number): void {
    for (let to = 0; to < this.shards; to++) if (to !== this.self && this.send(to, dev, RingKind.Neighbor, bytes, off, len)) this.counters.neighborShared++;
  }

  /** Free slots of the fullest ring toward another shard (what one burst may hand over without a ring-full drop). */
  room(): number {
    let min = Infinity;
    for (const r of this.out) if (r) min = Math.min(min, r.size.slots - r.length);
    return min;
  }

  /** Slots of a ring. */
  get ringSlots(): number {
    return this.mem.ringSize.slots;
  }

  /** Frames waiting in the rings toward this shard. */
  get pending(): number {
    let n = 0;
    for (const r of this.inc) if (r) n += r.length;
    return n;
  }

  /** This shard's doorbell value (wait for it to change: Atomics.waitAsync). */
  bell(): number {
    return Atomics.load(this.bells, this.self);
  }
}
