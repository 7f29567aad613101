/**
 * Recycled byte rings for connections (send rings and reorder buffers), by power-of-two size.
 *
 * Connection churn would otherwise allocate and zero a fresh ring per connection and leave the
 * garbage collector to sweep it. A ring returns here when its connection is done with it; a later
 * connection takes it back. The pool is per thread (module state), so per-core engines share
 * nothing, and its total is bounded.
 */
const NO_BYTES = new Uint8Array(0);

/** Most bytes kept for reuse (per thread). */
export const RING_POOL_MAX_BYTES = 16 << 20;

const free: Uint8Array[][] = [];
let pooledBytes = 0;

function sizeClass(n: number): number {
  return 31 - Math.clz32(n);
}

/** A ring of `size` bytes (a power of two): a recycled one if there is one, else a new one. */
export function takeRing(size: number): Uint8Array {
  const list = free[sizeClass(size)];
  if (list !== undefined && list.length > 0) {
    const r = list.pop()!;
    pooledBytes -= r.length;
    return r;
  }
  return new Uint8Array(size);
}

/** Gives a ring back (its contents are garbage from now on). Returns the empty ring to store instead. */
export function giveRing(r: Uint8Array): Uint8Array {
  const n = r.length;
  if (n === 0 || (n & (n - 1)) !== 0 || pooledBytes + n > RING_POOL_MAX_BYTES) return NO_BYTES;
  const c = sizeClass(n);
  (free[c] ??= []).push(r);
  pooledBytes += n;
  return NO_BYTES;
}

/** Bytes held for reuse (diagnostics, tests). */
export function ringPoolBytes(): number {
  return pooledBytes;
}
