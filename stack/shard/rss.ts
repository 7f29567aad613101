/**
 * Outbound connections steered by the device's RSS: a shard opening a connection takes a local
 * port whose return traffic the NIC hashes (Toeplitz over the peer's address and port and ours)
 * to this shard's queue, so the connection's frames never need handing over. Devices without a
 * usable RSS configuration (veth, a non-Toeplitz hash) keep the usual ephemeral port; their
 * stray frames are handed to the owner instead (stack/shard/steer.ts).
 */
import { nextPortForQueue, RssFields, RssPortSelector } from '../../protocols/rss/select';
import type { TcpTuple } from '../../protocols/tcp/types';
import type { Engine } from '../engine';
import type { VirtualServer } from '../vs';

/** A device's RSS as the main thread read it (driver/rss.ts), passed to every shard. */
export interface RssInfo {
  key: Uint8Array;
  indir: number[];
  tcp4: RssFields;
  tcp6: RssFields;
}

/** Makes `engine`'s active opens choose ports for queue `queue` on the devices that have `rss` (by device name). */
export function installRss(engine: Engine, queue: number, rss: Record<string, RssInfo | undefined>): void {
  const byDev = engine.devices.map((d) => {
    const r = rss[d.name];
    return r ? new RssPortSelector(r.key, r.indir, { tcp4: r.tcp4, tcp6: r.tcp6 }) : null;
  });
  if (!byDev.some((s) => s !== null)) return;
  engine.portForQueue = (vs: VirtualServer, t: TcpTuple, dflt: number): number => {
    // The device the connection leaves by is the one its replies come in on.
    const r = vs.rules.select(0, 0, vs.tables, t.remoteAddr);
    const link = r ? vs.links[r.link] : undefined;
    const sel = link ? byDev[link.dev] : null;
    if (!sel) return dflt;
    const p = nextPortForQueue(sel, queue, t.remoteAddr, t.remotePort, t.localAddr, (x) => engine.tcp.portInUse(vs, x));
    return p < 0 ? dflt : p;
  };
}
