/**
 * Initial sequence numbers (RFC 6528): ISN = M + F(localip, localport, remoteip, remoteport,
 * secretkey), M a 4-microsecond clock, F a keyed PRF (./hash). Also the per-connection
 * timestamp offset (RFC 7323 section 7.1), so TSval does not leak a global clock.
 */
import { HashKey, hash5 } from './hash';

export function isnFor(key: HashKey, localAddr: number, localPort: number, remoteAddr: number, remotePort: number, now: number): number {
  const f = hash5(key, localAddr, remoteAddr, ((localPort & 0xffff) << 16) | (remotePort & 0xffff), 0x15a, 0);
  return (Math.floor(now / 4) + f) >>> 0;
}

export function tsOffsetFor(key: HashKey, localAddr: number, localPort: number, remoteAddr: number, remotePort: number): number {
  return hash5(key, localAddr, remoteAddr, ((localPort & 0xffff) << 16) | (remotePort & 0xffff), 0x75, 1);
}
