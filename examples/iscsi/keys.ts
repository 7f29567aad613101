/**
 * iSCSI text: key=value pairs, each ended by a NUL (RFC 7143 section 6.1), in Login and Text
 * PDUs' data segments, and the value forms of RFC 7143 6.1 and 13 (numbers, booleans, lists,
 * binary values in hex "0x" or base64 "0b").
 */

export type KeyPairs = Array<[string, string]>;

/** RFC 7143 6.1: key names up to 63 bytes, made of letters, digits, '.', '-', '+', '@', '_'. */
const KEY_RE = /^[A-Za-z0-9.\-+@_]{1,63}$/;

const dec = new TextDecoder('utf-8', { fatal: false });
const enc = new TextEncoder();

/**
 * Parses a text data segment. Trailing NULs (padding) are ignored. A pair without '=' or with a
 * malformed key name is a protocol error (RFC 7143 6.1): `error` says which.
 */
export function parseText(data: Uint8Array): { pairs: KeyPairs; error?: string } {
  const pairs: KeyPairs = [];
  let start = 0;
  const n = data.length;
  while (start < n) {
    let end = data.indexOf(0, start);
    if (end < 0) end = n; // RFC 7143 6.1 asks for a terminating NUL; accept a missing last one
    if (end === start) { start = end + 1; continue; } // padding / empty entry
    const s = dec.decode(data.subarray(start, end));
    const eq = s.indexOf('=');
    if (eq <= 0) return { pairs, error: `no "=" in "${s.slice(0, 64)}"` };
    const key = s.slice(0, eq);
    if (!KEY_RE.test(key)) return { pairs, error: `bad key name "${key.slice(0, 64)}"` };
    pairs.push([key, s.slice(eq + 1)]);
    start = end + 1;
  }
  return { pairs };
}

/** Encodes pairs as key=value NUL... */
export function encodeText(pairs: KeyPairs): Uint8Array {
  return enc.encode(pairs.map(([k, v]) => `${k}=${v}\0`).join(''));
}

/**
 * RFC 7143 6.1 numerical-value: "an unsigned integer always less than 2^64 encoded as a
 * decimal-constant or a hex-constant" ("0x"/"0X" and one or more hex digits, leading zeros
 * allowed, so "0x0000000000002000" is 8192). A base64-constant ("0b"/"0B", big-endian bytes) is
 * also taken: 6.1 defines it for binary and large-numerical values and it is unambiguous here.
 * Returns NaN when malformed or not below 2^64; values above 2^53 come back inexact, which no key
 * range (RFC 7143 13) is affected by.
 */
export function parseNumber(v: string): number {
  let n: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) {
    const digits = v.slice(2).replace(/^0+(?=.)/, '');
    if (digits.length > 16) return NaN; // 2^64 or more (and no long conversion for a hostile value)
    n = BigInt('0x' + digits);
  } else if (/^[0-9]+$/.test(v)) {
    const digits = v.replace(/^0+(?=.)/, '');
    if (digits.length > 20) return NaN;
    n = BigInt(digits);
  } else {
    const b = /^0[bB]/.test(v) && v.length <= 2 + 24 ? parseBinary(v) : undefined;
    if (!b || b.length === 0) return NaN;
    n = 0n;
    for (const x of b) n = (n << 8n) | BigInt(x);
  }
  return n < 1n << 64n ? Number(n) : NaN;
}

/** RFC 7143 6.1 boolean: "Yes" or "No"; anything else is undefined. */
export function parseBool(v: string): boolean | undefined {
  return v === 'Yes' ? true : v === 'No' ? false : undefined;
}

/**
 * RFC 7143 6.1 binary values: "0x" followed by hex digits (an odd count has an implied leading
 * zero), or "0b" followed by base64. Returns undefined when malformed.
 */
export function parseBinary(v: string): Uint8Array | undefined {
  if (v.length < 3) return undefined;
  const p = v.slice(0, 2);
  const body = v.slice(2);
  if (p === '0x' || p === '0X') {
    if (!/^[0-9a-fA-F]+$/.test(body)) return undefined;
    return Uint8Array.from(Buffer.from(body.length & 1 ? '0' + body : body, 'hex'));
  }
  if (p === '0b' || p === '0B') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return undefined;
    return Uint8Array.from(Buffer.from(body, 'base64'));
  }
  return undefined;
}

/** Hex form of a binary value ("0x..."). */
export function hexValue(b: Uint8Array): string {
  return '0x' + Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}
