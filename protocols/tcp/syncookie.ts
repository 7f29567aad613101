/**
 * SYN cookies (RFC 4987 section 3.6) for the listener. The SYN-ACK's ISN carries a 5-bit time
 * counter (64 s steps, valid for two steps), a 3-bit MSS index and a 24-bit keyed hash over the
 * 4-tuple, the client's ISN, the counter and the encoded options. When the client offered
 * timestamps, the low 6 bits of our TSval carry its window scale (4 bits, 15 = none), SACK
 * permission and a marker bit; they come back in TSecr and are covered by the hash. Without
 * timestamps a cookie connection has no window scaling and no SACK (as Linux).
 */
import { HashKey, hash5, hashKey } from './hash';
import { addrWord, tsOffsetFor } from './isn';
import { defaultPeerMss, resolveOptions, wscaleFor } from './options';
import { TcpOptions, TcpSegmentIn, TcpSegmentOut, TcpTuple, TH_ACK, TH_SYN } from './types';

/** MSS values a cookie can encode (the largest not above min(client MSS, ours) is used). */
export const COOKIE_MSS = [536, 1200, 1300, 1360, 1400, 1440, 1452, 1460] as const;
const PERIOD_US = 64_000_000;

let lastSecret: Uint8Array | null = null;
let lastKey: HashKey | null = null;

/** Key for a secret (the last conversion is cached: listeners use one secret). */
export function keyOf(secret: Uint8Array | HashKey): HashKey {
  if (secret instanceof Uint32Array) return secret;
  if (secret !== lastSecret) { lastKey = hashKey(secret); lastSecret = secret; }
  return lastKey!;
}

/** What a valid cookie ACK establishes; pass it to TcpConnection.fromCookie. */
export interface SynCookieInfo {
  /** Our ISN (the cookie) and the client's. */
  iss: number;
  irs: number;
  /** MSS to send with (from the table, before timestamp overhead). */
  mss: number;
  /** Client's window scale, -1 when none (then ours is off too). */
  sndWscale: number;
  sackOk: boolean;
  tsOk: boolean;
  /** Client's TSval from the ACK (TS.Recent), when tsOk. */
  tsRecent: number;
  /** Our timestamp clock offset for this tuple (the SYN-ACK's TSval used it). */
  tsOffset: number;
}

function mssIndex(clientMss: number, ours: number, t: TcpTuple): number {
  const m = Math.min(clientMss || defaultPeerMss(t.remoteAddr), ours);
  let i = 0;
  while (i + 1 < COOKIE_MSS.length && COOKIE_MSS[i + 1]! <= m) i++;
  return i;
}

function cookieHash(key: HashKey, t: TcpTuple, clientIsn: number, counter: number, mssIdx: number, bits: number): number {
  return hash5(key, addrWord(key, t.localAddr), addrWord(key, t.remoteAddr), ((t.localPort & 0xffff) << 16) | (t.remotePort & 0xffff), clientIsn,
    ((counter & 31) << 16) | (mssIdx << 8) | bits) & 0xffffff;
}

/**
 * Fills `out` with the SYN-ACK answering `syn` statelessly (ports from the tuple, options as a
 * normal passive open with `opts` would negotiate them; `mss` = the MSS we advertise).
 * Returns the cookie (our ISN).
 */
export function synAckFor(
  syn: TcpSegmentIn, out: TcpSegmentOut, t: TcpTuple, mss: number, secret: Uint8Array | HashKey, now: number,
  opts?: Partial<TcpOptions>,
): number {
  const key = keyOf(secret);
  const o = resolveOptions({ ...(opts ?? {}), mss });
  const l = { mss, rcvBuf: o.rcvBuf, windowScale: o.windowScale, timestamps: o.timestamps, sack: o.sack };
  const counter = Math.floor(now / PERIOD_US);
  const idx = mssIndex(syn.mss, l.mss, t);
  const tsOk = l.timestamps && syn.hasTs;
  let bits = 0;
  if (tsOk) {
    const ws = l.windowScale && syn.wscale >= 0 ? syn.wscale : 15;
    bits = 0x20 | ((l.sack && syn.sackOk) ? 0x10 : 0) | ws;
  }
  const iss = (((counter & 31) << 27) | (idx << 24) | cookieHash(key, t, syn.seq, counter, idx, bits)) >>> 0;
  out.reset();
  out.srcPort = t.localPort;
  out.dstPort = t.remotePort;
  out.seq = iss;
  out.ack = (syn.seq + 1) >>> 0;
  out.flags = TH_SYN | TH_ACK;
  out.window = Math.min(l.rcvBuf, 65535);
  out.mss = l.mss;
  if (tsOk) {
    out.hasTs = true;
    const clock = (Math.floor(now / 1000) + tsOffsetFor(key, t.localAddr, t.localPort, t.remoteAddr, t.remotePort)) >>> 0;
    // The low 6 bits carry the options; when that puts the TSval ahead of the clock, take the
    // previous 64 ms step (as Linux's cookie_init_timestamp): the connection built from the cookie
    // continues from the clock, and a TSval that went backwards would fail the client's PAWS
    // (RFC 7323 5.3) on our first data.
    let tsv = ((clock & ~0x3f) | bits) >>> 0;
    if (((tsv - clock) | 0) > 0) tsv = (tsv - 64) >>> 0;
    out.tsVal = tsv;
    out.tsEcr = syn.tsVal;
    if (bits & 0x10) out.sackOk = true;
    if ((bits & 15) !== 15) out.wscale = wscaleFor(l.rcvBuf);
  }
  return iss;
}

/**
 * Validates the ACK completing a cookie handshake (flags ACK without SYN/RST). Returns what the
 * connection needs, or null when the cookie is invalid or older than two periods (64..128 s).
 */
export function check(ack: TcpSegmentIn, t: TcpTuple, secret: Uint8Array | HashKey, now: number): SynCookieInfo | null {
  const key = keyOf(secret);
  if ((ack.flags & (TH_ACK | TH_SYN)) !== TH_ACK) return null;
  const iss = (ack.ack - 1) >>> 0;
  const clientIsn = (ack.seq - 1) >>> 0;
  const cur = Math.floor(now / PERIOD_US);
  let bits = 0;
  if (ack.hasTs && (ack.tsEcr & 0x20)) bits = ack.tsEcr & 0x3f;
  const idx = (iss >>> 24) & 7;
  for (let back = 0; back <= 1; back++) {
    const counter = cur - back;
    if (counter < 0 || (counter & 31) !== iss >>> 27) continue;
    if (cookieHash(key, t, clientIsn, counter, idx, bits) !== (iss & 0xffffff)) continue;
    const tsOk = bits !== 0;
    return {
      iss, irs: clientIsn, mss: COOKIE_MSS[idx]!,
      sndWscale: tsOk && (bits & 15) !== 15 ? bits & 15 : -1,
      sackOk: tsOk && (bits & 0x10) !== 0,
      tsOk, tsRecent: tsOk ? ack.tsVal : 0,
      tsOffset: tsOffsetFor(key, t.localAddr, t.localPort, t.remoteAddr, t.remotePort),
    };
  }
  return null;
}

/** `synCookie.make` = synAckFor, `synCookie.check` = check. */
export const synCookie = { make: synAckFor, check };
