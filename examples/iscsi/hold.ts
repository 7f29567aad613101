/**
 * How many received chunks iSCSI connections may keep pinned (Data-Out views waiting for the
 * backend), sans-IO so tests can drive it.
 *
 * Over TCP a chunk is a received frame of the device's UMEM pool, and an unreleased chunk stays
 * unread in the TCP receive window. Holding is therefore backpressure twice over, and both can
 * deadlock a write whose data has not all arrived: (1) the pool is shared by every connection of
 * the stack and half of it sits in the kernel's fill ring, so a few large writes held frame by
 * frame could leave no frame to receive the rest; (2) a connection whose held bytes fill its
 * receive buffer advertises a zero window, and the initiator cannot send the bytes that would let
 * the command run and release them. So a hold is refused (`null`: the reader copies instead) when
 * the service holds `maxHeldChunks` chunks, or the connection would hold more than
 * `maxHeldBytesPerConnection` bytes; the latter must stay below the connection's TCP receive
 * buffer so the window never closes on held data alone.
 */
import type { Hold } from './pdu';

export interface HoldLimits {
  /** Chunks (frames) pinned at once by all connections of one service; default 512. */
  maxHeldChunks?: number;
  /** Bytes pinned at once by one connection (below its TCP receive buffer); default 128 KiB. */
  maxHeldBytesPerConnection?: number;
}

/**
 * The default service-wide limit. The device's frame pool size (4096 frames by default for afxdp,
 * half of them in the fill ring) is not visible through the services API, so this is a fixed
 * eighth of that default: 512 frames, ~740 KB of 1448-byte segments.
 */
export const DEFAULT_MAX_HELD_CHUNKS = 512;
/** Half of the stack's default TCP receive buffer (256 KiB, protocols/tcp/options.ts). */
export const DEFAULT_MAX_HELD_BYTES_PER_CONNECTION = 128 * 1024;

/** The service-wide count of pinned chunks. */
export class HoldBudget {
  readonly maxChunks: number;
  readonly maxConnBytes: number;
  /** Chunks pinned now (beyond the input call that delivered them), the most at once, holds refused. */
  held = 0;
  peak = 0;
  refused = 0;

  constructor(l: HoldLimits = {}) {
    this.maxChunks = Math.max(0, Math.floor(l.maxHeldChunks ?? DEFAULT_MAX_HELD_CHUNKS));
    this.maxConnBytes = Math.max(0, Math.floor(l.maxHeldBytesPerConnection ?? DEFAULT_MAX_HELD_BYTES_PER_CONNECTION));
  }

  /** The holds of one connection. */
  connection(): ConnHolds { return new ConnHolds(this); }
}

/** One connection's pinned chunks. */
export class ConnHolds {
  heldChunks = 0;
  heldBytes = 0;

  constructor(private readonly budget: HoldBudget) {}

  /**
   * One received chunk of `length` bytes: `hold` to pass to IscsiConnection.input, `end` to call
   * once input has returned. `free` (the chunk's own release) runs once, when input has ended and
   * no pin is left. A chunk counts once however many views of it are pinned.
   */
  chunk(length: number, free: () => void): { hold: Hold; end: () => void } {
    const b = this.budget;
    let pins = 0;
    let reading = true;
    let freed = false;
    const maybeFree = () => { if (!reading && pins === 0 && !freed) { freed = true; free(); } };
    const hold: Hold = () => {
      if (!reading) return null; // pins are taken while the chunk is being read, never later
      if (pins === 0) {
        if (b.held >= b.maxChunks || this.heldBytes + length > b.maxConnBytes) { b.refused++; return null; }
        b.held++;
        if (b.held > b.peak) b.peak = b.held;
        this.heldChunks++;
        this.heldBytes += length;
      }
      pins++;
      let once = false;
      return () => {
        if (once) return;
        once = true;
        if (--pins === 0) {
          b.held--;
          this.heldChunks--;
          this.heldBytes -= length;
          maybeFree();
        }
      };
    };
    return { hold, end: () => { reading = false; maybeFree(); } };
  }

  /** A chunk kept unread (the connection's output is backed up): one frame of the service's budget; false when it is spent. */
  park(): boolean {
    const b = this.budget;
    if (b.held >= b.maxChunks) { b.refused++; return false; }
    b.held++;
    if (b.held > b.peak) b.peak = b.held;
    this.heldChunks++;
    return true;
  }

  /** A parked chunk was read or dropped. */
  unpark(): void {
    this.budget.held--;
    this.heldChunks--;
  }
}
