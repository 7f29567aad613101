/**
 * Frame pool over a UMEM-like region (the native AF_XDP UMEM, or a plain ArrayBuffer for the
 * memory link and pcap drivers).
 *
 * Every frame is, at any moment, in exactly one of these states:
 *  - Free    : in the pool's free stack, owned by nobody;
 *  - Kernel  : handed to the kernel (fill ring, RX ring, or a driver's in-flight queue);
 *  - Tx      : queued for transmission, waiting for its completion;
 *  - Held    : owned by exactly one holder (an owner id, e.g. a socket or the engine).
 *
 * Invariant checked by `check()`: free + kernel + tx + held == total. Double free, freeing a frame
 * that is in a ring, and transitions from the wrong state throw `FrameAccountingError`: those are
 * programming errors, never caused by wire input.
 *
 * No allocation on alloc/free: the free list is a Uint32Array stack.
 */

export const enum FrameState {
  Free = 0,
  Kernel = 1,
  Tx = 2,
  Held = 3,
}

export const STATE_NAMES = ['free', 'kernel', 'tx', 'held'] as const;

export class FrameAccountingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameAccountingError';
  }
}

export interface FramePoolOptions {
  /** Size of one frame (chunk) in bytes: 2048 or 4096. */
  frameSize: number;
  /** Number of frames. */
  frameCount: number;
  /** Bytes reserved at the start of every frame so headers can be prepended. Default 256. */
  headroom?: number;
  /** Backing memory (e.g. the native UMEM). Allocated when absent. */
  buffer?: ArrayBuffer;
}

export interface FrameCounts {
  free: number;
  kernel: number;
  tx: number;
  held: number;
  total: number;
}

/** Owner id 0 means "no owner"; 1 is the default owner (the engine). */
export const OWNER_NONE = 0;
export const OWNER_ENGINE = 1;

export class FramePool {
  readonly buffer: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly frameSize: number;
  readonly frameCount: number;
  readonly headroom: number;

  private readonly freeStack: Uint32Array;
  private freeTop: number;
  private readonly state: Uint8Array;
  private readonly owner: Uint16Array;
  /** Per frame: times it was freed (wraps). */
  private readonly uses: Uint32Array;
  private readonly stateCount = new Int32Array(4);

  constructor(opts: FramePoolOptions) {
    const { frameSize, frameCount } = opts;
    if (frameSize !== 2048 && frameSize !== 4096) {
      throw new RangeError(`frameSize must be 2048 or 4096, got ${frameSize}`);
    }
    if (!Number.isInteger(frameCount) || frameCount < 1 || frameCount > 1 << 24) {
      throw new RangeError(`frameCount must be an integer in 1..${1 << 24}, got ${frameCount}`);
    }
    const headroom = opts.headroom ?? 256;
    if (headroom < 0 || headroom >= frameSize - 64) throw new RangeError(`bad headroom ${headroom}`);
    const len = frameSize * frameCount;
    if (opts.buffer && opts.buffer.byteLength < len) {
      throw new RangeError(`buffer of ${opts.buffer.byteLength} bytes is smaller than ${frameCount} x ${frameSize}`);
    }
    this.buffer = opts.buffer ?? new ArrayBuffer(len);
    this.bytes = new Uint8Array(this.buffer, 0, len);
    this.view = new DataView(this.buffer, 0, len);
    this.frameSize = frameSize;
    this.frameCount = frameCount;
    this.headroom = headroom;
    this.freeStack = new Uint32Array(frameCount);
    this.state = new Uint8Array(frameCount);
    this.owner = new Uint16Array(frameCount);
    this.uses = new Uint32Array(frameCount);
    // Lowest frame indices on top of the stack: deterministic allocation order.
    for (let i = 0; i < frameCount; i++) this.freeStack[i] = frameCount - 1 - i;
    this.freeTop = frameCount;
    this.stateCount[FrameState.Free] = frameCount;
  }

  /** Byte offset of frame `f` in the region. */
  addr(f: number): number {
    return f * this.frameSize;
  }

  /** Frame index of a byte address inside the region (any address within the frame). */
  frameOf(addr: number): number {
    return (addr / this.frameSize) >>> 0;
  }

  /** Byte offset where packet data starts when a frame is filled from scratch. */
  dataStart(f: number): number {
    return f * this.frameSize + this.headroom;
  }

  get freeCount(): number {
    return this.freeTop;
  }

  /** Takes a free frame for `owner` (state Held). Returns -1 when the pool is empty. */
  alloc(owner = OWNER_ENGINE): number {
    if (this.freeTop === 0) return -1;
    const f = this.freeStack[--this.freeTop]!;
    this.state[f] = FrameState.Held;
    this.owner[f] = owner;
    this.stateCount[FrameState.Free]--;
    this.stateCount[FrameState.Held]++;
    return f;
  }

  /** Takes a free frame directly into state `s` (e.g. Kernel for the fill ring). -1 if empty. */
  allocTo(s: FrameState): number {
    if (this.freeTop === 0) return -1;
    const f = this.freeStack[--this.freeTop]!;
    this.state[f] = s;
    this.owner[f] = OWNER_NONE;
    this.stateCount[FrameState.Free]--;
    this.stateCount[s]++;
    return f;
  }

  /** Returns a frame to the pool. It must not be free already (double free) nor in a ring. */
  free(f: number): void {
    this.checkIndex(f);
    const s = this.state[f]!;
    if (s === FrameState.Free) throw new FrameAccountingError(`double free of frame ${f}`);
    this.stateCount[s]--;
    this.stateCount[FrameState.Free]++;
    this.state[f] = FrameState.Free;
    this.owner[f] = OWNER_NONE;
    this.uses[f]++;
    this.freeStack[this.freeTop++] = f;
  }

  /** Moves frame `f` from state `from` to state `to`; throws when it is not in `from`. */
  move(f: number, from: FrameState, to: FrameState, owner = to === FrameState.Held ? OWNER_ENGINE : OWNER_NONE): void {
    this.checkIndex(f);
    const s = this.state[f]!;
    if (s !== from) {
      throw new FrameAccountingError(`frame ${f} is ${STATE_NAMES[s]}, expected ${STATE_NAMES[from]} (to ${STATE_NAMES[to]})`);
    }
    this.stateCount[from]--;
    this.stateCount[to]++;
    this.state[f] = to;
    this.owner[f] = owner;
  }

  /** Hands a held frame to another owner. */
  transfer(f: number, from: number, to: number): void {
    this.checkIndex(f);
    if (this.state[f] !== FrameState.Held || this.owner[f] !== from) {
      throw new FrameAccountingError(`frame ${f} is not held by owner ${from}`);
    }
    this.owner[f] = to;
  }

  /**
   * How many times frame `f` has been freed (modulo 2^32). Equal values before and after some code
   * ran mean the frame was not freed meanwhile: it is still the same use (error recovery asks this
   * to tell a frame still waiting to be handled from one freed and already reused).
   */
  generation(f: number): number {
    return this.uses[f]!;
  }

  stateOf(f: number): FrameState {
    this.checkIndex(f);
    return this.state[f]! as FrameState;
  }

  ownerOf(f: number): number {
    this.checkIndex(f);
    return this.owner[f]!;
  }

  /** Number of frames currently held by `owner`. O(frameCount): for tests and diagnostics. */
  heldBy(owner: number): number {
    let n = 0;
    for (let i = 0; i < this.frameCount; i++) if (this.state[i] === FrameState.Held && this.owner[i] === owner) n++;
    return n;
  }

  counts(): FrameCounts {
    return {
      free: this.stateCount[FrameState.Free]!,
      kernel: this.stateCount[FrameState.Kernel]!,
      tx: this.stateCount[FrameState.Tx]!,
      held: this.stateCount[FrameState.Held]!,
      total: this.frameCount,
    };
  }

  /**
   * Full consistency check: recounts every frame's state, verifies the free stack holds exactly the
   * free frames once each, and that free + kernel + tx + held == total. Throws on any mismatch.
   */
  check(): FrameCounts {
    const recount = [0, 0, 0, 0];
    for (let i = 0; i < this.frameCount; i++) recount[this.state[i]!]!++;
    const seen = new Uint8Array(this.frameCount);
    for (let i = 0; i < this.freeTop; i++) {
      const f = this.freeStack[i]!;
      if (seen[f]) throw new FrameAccountingError(`frame ${f} appears twice in the free stack`);
      seen[f] = 1;
      if (this.state[f] !== FrameState.Free) throw new FrameAccountingError(`frame ${f} in free stack but ${STATE_NAMES[this.state[f]!]}`);
    }
    for (let s = 0; s < 4; s++) {
      if (recount[s] !== this.stateCount[s]) {
        throw new FrameAccountingError(`${STATE_NAMES[s]} count ${this.stateCount[s]} but ${recount[s]} frames are ${STATE_NAMES[s]}`);
      }
    }
    if (recount[FrameState.Free] !== this.freeTop) throw new FrameAccountingError(`free stack has ${this.freeTop}, state says ${recount[0]}`);
    const c = this.counts();
    if (c.free + c.kernel + c.tx + c.held !== c.total) throw new FrameAccountingError(`frames do not add up: ${JSON.stringify(c)}`);
    return c;
  }

  private checkIndex(f: number): void {
    if (!(f >= 0 && f < this.frameCount && (f | 0) === f)) throw new FrameAccountingError(`no frame ${f} (pool of ${this.frameCount})`);
  }
}
