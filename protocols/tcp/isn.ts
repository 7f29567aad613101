/**
 * Initial sequence numbers (RFC 6528): ISN = M + F(localip, localport, remoteip, remoteport,
 * secretkey), M a 4-microsecond clock, F a keyed PRF (./hash). Also the per-connection
 * timestamp offset (RFC 7323 section 7.1), so TSval does not leak a global clock.
 */
import { HashKey, hash5 } from './hash';
import type { IpAddr } from '../ip/addr';

/**
 * An address as one word for the PRF: an IPv4 address itself; an IPv6 address compressed under
 * the key first (a plain fold of its words would let a host choose an address in its own prefix
 * that folds like another host's and so learn that host's ISNs).
 */
export function addrWord(key: HashKey, a: IpAddr): number {
  return typeof a === 'number' ? a : hash5(key, a.w0, a.w1, a.w2, a.w3, 0x6);
}

export function isnFor(key: HashKey, localAddr: IpAddr, localPort: number, remoteAddr: IpAddr, remotePort: number, now: number): number {
  const f = hash5(key, addrWord(key, localAddr), addrWord(key, remoteAddr), ((localPort & 0xffff) << 16) | (remotePort & 0xffff), 0x15a, 0);
  return (Math.floor(now / 4) + f) >>> 0;
}

export function tsOffsetFor(key: HashKey, localAddr: IpAddr, localPort: number, remoteAddr: IpAddr, remotePort: number): number {
  return hash5(key, addrWord(key, localAddr), addrWord(key, remoteAddr), ((localPort & 0xffff) << 16) | (remotePort & 0xffff), 0x75, 1);
}
