/** Connection option defaults and helpers shared by the connection and the SYN-cookie code. */
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

/** Default MSS when the peer sends none (RFC 9293 3.7.1). */
export const DEFAULT_PEER_MSS = 536;

export function resolveOptions(o: Partial<TcpOptions> | undefined): TcpOptions {
  const r: TcpOptions = { ...DEFAULT_TCP_OPTIONS, ...(o ?? {}) };
  if (!(Number.isInteger(r.mss) && r.mss >= 88 && r.mss <= 65495)) throw new RangeError(`TCP mss must be an integer 88..65495, got ${r.mss}`);
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
