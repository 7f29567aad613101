/** Connection option defaults and helpers shared by the connection and the SYN-cookie code. */
import type { IpAddr } from '../ip/addr';
import type { TcpOptions } from './types';

export const DEFAULT_TCP_OPTIONS: Readonly<TcpOptions> = {
  mss: 1460,
  rcvBuf: 256 * 1024,
  sndBuf: 256 * 1024,
  cc: 'cubic',
  noDelay: false,
  windowScale: true,
  timestamps: true,
  sack: true,
  delayedAck: true,
  ackDelayUs: 40_000,
  rtoMinUs: 200_000,
  rtoMaxUs: 120_000_000,
  rtoInitialUs: 1_000_000,
  maxRetransmits: 15,
  synRetries: 6,
  keepAlive: false,
  keepIdleUs: 7_200_000_000,
  keepIntvlUs: 75_000_000,
  keepCnt: 9,
  timeWaitUs: 60_000_000,
  finWait2TimeoutUs: 60_000_000,
  challengeAckLimit: 10,
  maxOooRanges: 16,
  initialCwnd: 10,
};

/** Default MSS when an IPv4 peer sends none (RFC 9293 3.7.1: 576 - 40). */
export const DEFAULT_PEER_MSS = 536;
/** Default MSS when an IPv6 peer sends none (RFC 9293 3.7.1, MUST-15: 1280 - 60). */
export const DEFAULT_PEER_MSS6 = 1220;

/** The send MSS to assume when a peer at `remote` sends no MSS option (RFC 9293 3.7.1, MUST-15). */
export function defaultPeerMss(remote: IpAddr): number {
  return typeof remote === 'number' ? DEFAULT_PEER_MSS : DEFAULT_PEER_MSS6;
}

/** Range of an MSS option we offer or send with (TCP_MIN_MSS of Linux; the largest IPv4 payload less 40). */
export const MSS_MIN = 88;
export const MSS_MAX = 65495;

/**
 * An MSS computed from a path or link MTU (MTU - 40), brought into MSS_MIN..MSS_MAX: a tiny MTU
 * (a link of 68 bytes, a path MTU from ICMP) must give a usable connection, never an exception on
 * the receive path. Only values the application passes itself are refused (resolveOptions).
 */
export function clampMss(mss: number): number {
  if (!(mss >= MSS_MIN)) return MSS_MIN; // NaN too
  if (mss > MSS_MAX) return MSS_MAX;
  return Math.floor(mss);
}

export function resolveOptions(o: Partial<TcpOptions> | undefined): TcpOptions {
  const r: TcpOptions = { ...DEFAULT_TCP_OPTIONS, ...(o ?? {}) };
  if (!(Number.isInteger(r.mss) && r.mss >= MSS_MIN && r.mss <= MSS_MAX)) throw new RangeError(`TCP mss must be an integer ${MSS_MIN}..${MSS_MAX}, got ${r.mss}`);
  if (!(r.rcvBuf >= 1 && r.rcvBuf <= 1 << 30)) throw new RangeError(`TCP rcvBuf must be 1..2^30, got ${r.rcvBuf}`);
  if (!(r.sndBuf >= 1 && r.sndBuf <= 1 << 30)) throw new RangeError(`TCP sndBuf must be 1..2^30, got ${r.sndBuf}`);
  if (r.cc !== 'newreno' && r.cc !== 'cubic') throw new RangeError(`TCP cc must be 'newreno' or 'cubic', got '${r.cc as string}'`);
  return r;
}

/** Smallest power of two >= max(n, 4096). */
export function bufSize(n: number): number {
  let s = 4096;
  while (s < n) s *= 2;
  return s;
}

/** Window scale shift we offer for a receive buffer of `rcvBuf` bytes (RFC 7323 2.3, at most 14). */
export function wscaleFor(rcvBuf: number): number {
  let s = 0;
  while (s < 14 && bufSize(rcvBuf) >>> s > 65535) s++;
  return s;
}
