/** Builds an engine with N virtual servers for the micro-benchmarks (no driver, frames from a FramePool). */
import { parseMac, Burst } from '../driver/types';
import { FramePool } from '../umem/pool';
import { Engine } from '../stack/engine';

/** VLANs per device: 2048 (so 4096 VSes use two devices, VLAN ids 1..2048 each). */
export const VLANS_PER_DEV = 2048;
export const DEV_MAC = parseMac('02:00:00:00:00:01');

export function devOf(i: number): number { return Math.floor(i / VLANS_PER_DEV); }
export function vlanOf(i: number): number { return (i % VLANS_PER_DEV) + 1; }

/** Frees every frame queued on every device's output. */
export function drainAll(e: Engine): void {
  for (const d of e.devices) {
    const out = d.out;
    for (let i = 0; i < out.n; i++) d.pool.free(out.frame[i]!);
    out.n = 0;
  }
}

export function makeEngine(devices: number, frameCount = 1024): { e: Engine; pools: FramePool[] } {
  const e = new Engine({ ndp: { dadTransmits: 0 } }); // IPv6 addresses usable at once
  const pools: FramePool[] = [];
  for (let d = 0; d < devices; d++) {
    const pool = new FramePool({ frameSize: 2048, frameCount });
    pools.push(pool);
    e.addDevice({ name: `eth${d}`, pool, mac: DEV_MAC, mtu: 1500 });
  }
  return { e, pools };
}

/** Adds VS number i: one link on its (device, VLAN) with 10.1.1.1/24, and fd00:1::1/64 with `ipv6`. */
export function addVs(e: Engine, i: number, ipv6 = false): void {
  const vs = e.createVs(`vs${i}`);
  const dev = `eth${devOf(i)}`;
  const vlan = vlanOf(i);
  e.addLink(vs, { device: dev, vlan });
  e.addAddress(vs, `${dev}.${vlan}`, '10.1.1.1/24');
  if (ipv6) e.addAddress(vs, `${dev}.${vlan}`, 'fd00:1::1/64');
  drainAll(e); // the gratuitous ARP (IPv6: unsolicited NA, MLD reports)
}

export { Burst };
