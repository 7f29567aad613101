/**
 * Deterministic block contents for the iSCSI lab tests: the bytes of block `lba` under `seed` are
 * a function of (seed, lba) only, so a range written in any order, by any session, can be checked
 * or hashed without keeping a copy; and random extents that tile a range exactly once.
 */
import { createHash } from 'node:crypto';
import { prng } from './prng';
export { prng };

/** xorshift32 state for one block (never 0). */
function blockState(seed: number, lba: number): number {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ (lba >>> 0);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ Math.floor(lba / 2 ** 32);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) || 1;
}

/** Fills `buf` (whole blocks) with the pattern of the blocks from `lba` on. */
export function fillPattern(buf: Uint8Array, lba: number, blockSize: number, seed: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const blocks = buf.length / blockSize;
  for (let b = 0; b < blocks; b++) {
    let x = blockState(seed, lba + b);
    const base = b * blockSize;
    for (let o = 0; o < blockSize; o += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      dv.setUint32(base + o, x >>> 0, true);
    }
  }
}

export function pattern(lba: number, blocks: number, blockSize: number, seed: number): Uint8Array {
  const b = new Uint8Array(blocks * blockSize);
  fillPattern(b, lba, blockSize, seed);
  return b;
}

/** sha256 (hex) of the pattern over [lba, lba + blocks). */
export function patternHash(lba: number, blocks: number, blockSize: number, seed: number): string {
  const h = createHash('sha256');
  const step = Math.max(1, Math.floor((1 << 20) / blockSize));
  for (let b = 0; b < blocks; b += step) h.update(pattern(lba + b, Math.min(step, blocks - b), blockSize, seed));
  return h.digest('hex');
}


/**
 * Extents of 1..maxBlocks blocks that cover [lba, lba + blocks) exactly once, in a random order
 * (so the writes land at random offsets with random lengths, and never overlap).
 */
export function randomExtents(seed: number, lba: number, blocks: number, maxBlocks: number): Array<{ lba: number; blocks: number }> {
  const r = prng(seed);
  const out: Array<{ lba: number; blocks: number }> = [];
  for (let at = lba; at < lba + blocks;) {
    const n = Math.min(1 + Math.floor(r() * maxBlocks), lba + blocks - at);
    out.push({ lba: at, blocks: n });
    at += n;
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Sequential extents of `chunk` blocks over [lba, lba + blocks). */
export function sequentialExtents(lba: number, blocks: number, chunk: number): Array<{ lba: number; blocks: number }> {
  const out: Array<{ lba: number; blocks: number }> = [];
  for (let at = lba; at < lba + blocks; at += chunk) out.push({ lba: at, blocks: Math.min(chunk, lba + blocks - at) });
  return out;
}
