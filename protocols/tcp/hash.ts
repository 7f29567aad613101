/**
 * HalfSipHash-2-4 (the 32-bit SipHash variant) over 32-bit words, used as the keyed PRF for
 * ISNs (RFC 6528), timestamp offsets and SYN cookies. The 128-bit secret is used as the 64-bit
 * HalfSipHash key plus two more key words absorbed first as message words. Fixed arity, no
 * allocation.
 */

/** A 128-bit secret as four u32 words. */
export type HashKey = Uint32Array;

/** Turns 16 secret bytes into a key (more bytes are ignored; fewer are an error). */
export function hashKey(secret: Uint8Array): HashKey {
  if (secret.length < 16) throw new RangeError(`TCP secret must be at least 16 bytes, got ${secret.length}`);
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++) k[i] = (secret[4 * i] | (secret[4 * i + 1] << 8) | (secret[4 * i + 2] << 16) | (secret[4 * i + 3] << 24)) >>> 0;
  return k;
}

let v0 = 0, v1 = 0, v2 = 0, v3 = 0;

function round(): void {
  v0 = (v0 + v1) | 0; v1 = (v1 << 5) | (v1 >>> 27); v1 ^= v0; v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0; v3 = (v3 << 8) | (v3 >>> 24); v3 ^= v2;
  v0 = (v0 + v3) | 0; v3 = (v3 << 7) | (v3 >>> 25); v3 ^= v0;
  v2 = (v2 + v1) | 0; v1 = (v1 << 13) | (v1 >>> 19); v1 ^= v2; v2 = (v2 << 16) | (v2 >>> 16);
}

function absorb(m: number): void {
  v3 ^= m; round(); round(); v0 ^= m;
}

/** PRF of five u32 words under `key`: a u32. */
export function hash5(key: HashKey, a: number, b: number, c: number, d: number, e: number): number {
  v0 = key[0]!; v1 = key[1]!; v2 = 0x6c796765 ^ key[0]!; v3 = 0x74656462 ^ key[1]!;
  absorb(key[2]!); absorb(key[3]!);
  absorb(a | 0); absorb(b | 0); absorb(c | 0); absorb(d | 0); absorb(e | 0);
  const fin = (7 * 4) << 24;
  v3 ^= fin; round(); round(); v0 ^= fin;
  v2 ^= 0xff; round(); round(); round(); round();
  return (v1 ^ v3) >>> 0;
}
