/**
 * Internet checksum (RFC 1071) and small byte helpers shared by the wire views.
 *
 * `sum16` returns a running ones' complement sum that is *not* complemented, so sums over
 * several ranges (pseudo-header, header, payload) can be chained through `acc`. The value it
 * returns is reduced to at most 17 bits, so any number of chained calls stays far below 2^31.
 * `fold` turns a running sum into the value to store in a checksum field. A received header or
 * segment verifies when `fold(sum over all of it, checksum field included) === 0`.
 */

// Two cached DataViews (e.g. the UMEM and one scratch buffer), so long sums read 32-bit words
// without allocating a view per call.
let dvB0: Uint8Array | null = null;
let dvV0: DataView | null = null;
let dvB1: Uint8Array | null = null;
let dvV1: DataView | null = null;

function viewOf(b: Uint8Array): DataView {
  if (b === dvB0) return dvV0!;
  if (b === dvB1) {
    const v = dvV1!;
    dvB1 = dvB0; dvV1 = dvV0;
    dvB0 = b; dvV0 = v;
    return v;
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dvB1 = dvB0; dvV1 = dvV0;
  dvB0 = b; dvV0 = v;
  return v;
}

/** Ones' complement running sum of `len` bytes at `off` (big-endian 16-bit words; an odd last byte is padded with zero). */
export function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc;
  let i = off;
  if (len >= 64) {
    // 32-bit words summed in a double (exact below 2^53, i.e. for any IP datagram), then
    // folded: the ones' complement sum is independent of the word size (RFC 1071).
    const dv = viewOf(b);
    const end16 = off + (len & ~15);
    const end4 = off + (len & ~3);
    while (i < end16) {
      s += dv.getUint32(i) + dv.getUint32(i + 4) + dv.getUint32(i + 8) + dv.getUint32(i + 12);
      i += 16;
    }
    while (i < end4) {
      s += dv.getUint32(i);
      i += 4;
    }
    const hi = Math.floor(s / 4294967296);
    const lo = s >>> 0;
    s = (lo >>> 16) + (lo & 0xffff) + (hi >>> 16) + (hi & 0xffff);
  }
  const end = off + (len & ~1);
  while (i < end) {
    s += (b[i] << 8) | b[i + 1];
    i += 2;
  }
  if (len & 1) s += b[off + len - 1] << 8;
  while (s > 0x1ffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Folds a running sum to 16 bits and complements it: the value to store in a checksum field. */
export function fold(acc: number): number {
  let s = acc;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Running sum of the IPv4 pseudo-header (RFC 768 / RFC 9293): addresses, protocol, L4 length. */
export function pseudoSum4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/** `fold(sum16(b, off, len, acc))`: the checksum of a range, or 0 when a range holding its checksum verifies. */
export function internetChecksum(b: Uint8Array, off: number, len: number, acc = 0): number {
  return fold(sum16(b, off, len, acc));
}

/**
 * Incremental checksum update (RFC 1624, eqn. 3) when one 16-bit word changes from `oldWord`
 * to `newWord`: returns the new checksum field value.
 */
export function checksumAdjust(checksum: number, oldWord: number, newWord: number): number {
  let s = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Copies `len` bytes with memmove semantics, also when `src` and `dst` are different views of
 * one ArrayBuffer that overlap. Allocates nothing.
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= 0) return;
  if (src === dst) {
    if (srcOff !== dstOff) dst.copyWithin(dstOff, srcOff, srcOff + len);
    return;
  }
  if (src.buffer === dst.buffer) {
    const sAbs = src.byteOffset + srcOff;
    const dAbs = dst.byteOffset + dstOff;
    if (sAbs === dAbs) return;
    if (dAbs > sAbs && dAbs < sAbs + len) {
      for (let i = len - 1; i >= 0; i--) dst[dstOff + i] = src[srcOff + i];
      return;
    }
  }
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
}

/** Reads a big-endian u16. */
export function rd16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

/** Reads a big-endian u32 as an unsigned number. */
export function rd32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/** Writes a big-endian u16. */
export function wr16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v;
}

/** Writes a big-endian u32. */
export function wr32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = v >>> 16;
  b[off + 2] = v >>> 8;
  b[off + 3] = v;
}
