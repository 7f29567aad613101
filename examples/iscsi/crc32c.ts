/**
 * CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the iSCSI header and data
 * digest (RFC 7143 section 13.1 and appendix A: "CRC32C"). Slice-by-8 tables: eight table lookups
 * per eight input bytes.
 *
 * `crc32c(a)` followed by `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`, so a digest over
 * scattered views (data segment + padding) needs no copy.
 */

const POLY = 0x82f63b78;
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n];
  for (let s = 1; s < 8; s++) {
    c = T[c & 0xff] ^ (c >>> 8);
    T[s * 256 + n] = c;
  }
}

/**
 * CRC32C of `buf[start, end)`, continuing from `prev` (the result of an earlier call over the
 * preceding bytes; 0 to start). Returns an unsigned 32-bit value.
 */
export function crc32c(buf: Uint8Array, prev = 0, start = 0, end = buf.length): number {
  let c = ~prev;
  let i = start;
  // Byte at a time up to an 8-byte stretch, then eight bytes per step.
  const end8 = end - ((end - i) & 7);
  for (; i < end8; i += 8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c = T[7 * 256 + (a & 0xff)] ^ T[6 * 256 + ((a >>> 8) & 0xff)] ^
      T[5 * 256 + ((a >>> 16) & 0xff)] ^ T[4 * 256 + (a >>> 24)] ^
      T[3 * 256 + buf[i + 4]] ^ T[2 * 256 + buf[i + 5]] ^
      T[256 + buf[i + 6]] ^ T[buf[i + 7]];
  }
  for (; i < end; i++) c = T[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC32C over several views in order. */
export function crc32cv(bufs: readonly Uint8Array[], prev = 0): number {
  let c = prev;
  for (const b of bufs) c = crc32c(b, c);
  return c;
}

/**
 * Writes a digest as it goes on the wire: RFC 7143 appendix B.4 lists the CRC of 32 zero bytes as
 * "aa 36 91 8a", i.e. the 32-bit value 0x8a9136aa least significant byte first.
 */
export function putDigest(b: Uint8Array, off: number, crc: number): void {
  b[off] = crc & 0xff;
  b[off + 1] = (crc >>> 8) & 0xff;
  b[off + 2] = (crc >>> 16) & 0xff;
  b[off + 3] = crc >>> 24;
}

/** Reads a digest written by putDigest. */
export function getDigest(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}
