/**
 * A bounded single-producer/single-consumer ring of frames in (optionally shared) memory: how one
 * shard hands a frame to another. Each slot holds one frame's bytes with its device index, its
 * kind and its length; the producer publishes a slot by advancing `tail`, the consumer frees it by
 * advancing `head` (both with Atomics, so the bytes written before are visible after).
 *
 * A full ring refuses the frame (the caller counts it as a drop): nothing waits on the packet path.
 */

/** What a handed-over frame is. */
export const enum RingKind {
  /** A frame of a flow the receiving shard owns: it is processed there as if received there. */
  Flow = 0,
  /** A neighbor answer (ARP reply, Neighbor Advertisement) every shard learns from. */
  Neighbor = 1,
  /**
   * A frame a VS sent to its own address (looped back, never on the wire) for a flow or port of
   * the receiving shard: input there as looped back (its source is one of the VS's addresses).
   */
  Loopback = 2,
  /**
   * A reassembled datagram (no frame: longer than one) for a flow or port of the receiving shard,
   * over consecutive slots (pushLong): a header the engine writes, then the datagram.
   */
  Datagram = 3,
}

const HEAD = 0;
const TAIL = 1;
const HEADER_BYTES = 16;
const META_BYTES = 8;

export interface RingSize {
  /** Slots (a power of two). */
  slots: number;
  /** Largest frame in bytes. */
  frameBytes: number;
}

export const DEFAULT_RING: RingSize = { slots: 512, frameBytes: 2048 };

export class FrameRing {
  private readonly ctl: Int32Array;
  private readonly meta: Uint32Array;
  readonly bytes: Uint8Array;
  private readonly mask: number;
  private readonly slotBytes: number;
  readonly frameBytes: number;

  static bytes(size: RingSize = DEFAULT_RING): number {
    return HEADER_BYTES + size.slots * (META_BYTES + slotData(size.frameBytes));
  }

  static allocate(size: RingSize = DEFAULT_RING): SharedArrayBuffer {
    check(size);
    return new SharedArrayBuffer(FrameRing.bytes(size));
  }

  constructor(buf: SharedArrayBuffer | ArrayBuffer, readonly size: RingSize = DEFAULT_RING) {
    check(size);
    if (buf.byteLength < FrameRing.bytes(size)) throw new RangeError(`ring buffer of ${buf.byteLength} bytes is too small for ${JSON.stringify(size)}`);
    this.ctl = new Int32Array(buf, 0, 4);
    this.slotBytes = META_BYTES + slotData(size.frameBytes);
    this.meta = new Uint32Array(buf, HEADER_BYTES, (size.slots * this.slotBytes) / 4);
    this.bytes = new Uint8Array(buf, HEADER_BYTES, size.slots * this.slotBytes);
    this.mask = size.slots - 1;
    this.frameBytes = size.frameBytes;
  }

  /** Frames waiting. */
  get length(): number {
    return (Atomics.load(this.ctl, TAIL) - Atomics.load(this.ctl, HEAD)) | 0;
  }

  /** Producer: copies a frame in. False when the ring is full or the frame too long. */
  push(dev: number, kind: RingKind, src: Uint8Array, off: number, len: number): boolean {
    if (len > this.frameBytes || len <= 0) return false;
    const tail = Atomics.load(this.ctl, TAIL);
    const head = Atomics.load(this.ctl, HEAD);
    if (((tail - head) | 0) >= this.size.slots) return false;
    const at = (tail & this.mask) * this.slotBytes;
    this.meta[at >>> 2] = (dev << 16) | kind;
    this.meta[(at >>> 2) + 1] = len;
    this.bytes.set(src.subarray(off, off + len), at + META_BYTES);
    Atomics.store(this.ctl, TAIL, (tail + 1) | 0);
    return true;
  }

  /** Slots a record of `len` bytes takes (pushLong). */
  span(len: number): number {
    return Math.max(1, Math.ceil(len / this.frameBytes));
  }

  /**
   * Producer: a record that may be longer than a frame, over span(len) consecutive slots,
   * published at once (the consumer sees all of it or none). False when the ring lacks room.
   */
  pushLong(dev: number, kind: RingKind, src: Uint8Array, off: number, len: number): boolean {
    if (len <= 0) return false;
    const k = this.span(len);
    const tail = Atomics.load(this.ctl, TAIL);
    const head = Atomics.load(this.ctl, HEAD);
    if (((tail - head) | 0) + k > this.size.slots) return false;
    for (let i = 0; i < k; i++) {
      const at = ((tail + i) & this.mask) * this.slotBytes;
      this.meta[at >>> 2] = (dev << 16) | kind;
      this.meta[(at >>> 2) + 1] = i === 0 ? len : 0;
      const from = off + i * this.frameBytes;
      this.bytes.set(src.subarray(from, Math.min(off + len, from + this.frameBytes)), at + META_BYTES);
    }
    Atomics.store(this.ctl, TAIL, (tail + k) | 0);
    return true;
  }

  /**
   * Consumer: copies the oldest record (pushed with pushLong; `at` from front()) into `dst`, which
   * must hold frameLen(at) bytes. Then pop(span(len)).
   */
  readLong(at: number, dst: Uint8Array): number {
    const len = this.frameLen(at);
    const head = Atomics.load(this.ctl, HEAD);
    for (let i = 0, k = this.span(len); i < k; i++) {
      const from = ((head + i) & this.mask) * this.slotBytes + META_BYTES;
      dst.set(this.bytes.subarray(from, from + Math.min(this.frameBytes, len - i * this.frameBytes)), i * this.frameBytes);
    }
    return len;
  }

  /**
   * Consumer: the oldest frame, or -1 when the ring is empty. Its bytes are at
   * `bytes[at .. at + frameLen(at))` until `pop()`.
   */
  front(): number {
    const head = Atomics.load(this.ctl, HEAD);
    if (head === Atomics.load(this.ctl, TAIL)) return -1;
    return (head & this.mask) * this.slotBytes + META_BYTES;
  }

  frameDev(at: number): number { return this.meta[(at - META_BYTES) >>> 2]! >>> 16; }
  frameKind(at: number): RingKind { return (this.meta[(at - META_BYTES) >>> 2]! & 0xffff) as RingKind; }
  frameLen(at: number): number { return this.meta[((at - META_BYTES) >>> 2) + 1]!; }

  /** Consumer: frees the oldest frame's slot (`n` slots: a long record's). */
  pop(n = 1): void {
    Atomics.store(this.ctl, HEAD, (Atomics.load(this.ctl, HEAD) + n) | 0);
  }
}

function slotData(frameBytes: number): number {
  return (frameBytes + 7) & ~7;
}

function check(size: RingSize): void {
  if (!Number.isInteger(size.slots) || size.slots < 2 || (size.slots & (size.slots - 1)) !== 0) throw new RangeError(`ring slots must be a power of two ≥ 2, got ${size.slots}`);
  if (!Number.isInteger(size.frameBytes) || size.frameBytes < 64 || size.frameBytes > 65535) throw new RangeError(`ring frame size must be 64..65535 bytes, got ${size.frameBytes}`);
}
