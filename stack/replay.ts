/**
 * Replay: a stack of a config run under virtual time with its device fed from a capture
 * (`xdpstack replay CONFIG IN.pcap --out OUT.pcap`, `replayCapture()`): what it sends is written to
 * a capture; the same input always gives the same output, byte for byte.
 */
import * as fs from 'node:fs';
import type { Driver } from '../driver/types';
import { macToString } from '../driver/types';
import { LINKTYPE_ETHERNET, openPcapDriver, PcapWriter, readCapture } from '../driver/pcap';
import { cloneConfig, DeviceConfig, fileErrorText, loadConfig, StackConfig, validateConfig } from './control/config';
import { parseCidrText } from './control/validate';
import { AddrMap } from '../protocols/ip/addr';
import { Stack } from './stack';

export interface ReplayResult {
  /** Frames read from the capture and given to the stack. */
  input: number;
  /** Records skipped because their link type is not Ethernet. */
  skippedNonEthernet: number;
  /** Frames the stack sent (written to the output). */
  output: number;
  /** The MAC the replayed device had. */
  mac: string;
  /** Virtual time span covered (µs). */
  startUs: number;
  endUs: number;
  counters: unknown;
  frames: { total: number; free: number; held: number };
}

/** Addresses (both families) of the links on `device` that use the device's MAC (links with their own MAC excluded). */
function addressesOn(cfg: StackConfig, device: string): AddrMap<true> {
  const out = new AddrMap<true>();
  for (const v of cfg.virtualServers) {
    for (const l of v.links) {
      if (l.device !== device || l.mac !== undefined) continue;
      for (const a of l.addresses ?? []) out.set(parseCidrText(a).addr, true);
    }
  }
  return out;
}

/**
 * The unicast destination MAC most used by the capture's frames to one of `addrs` (IPv4 or IPv6
 * to the address, or an ARP reply to it), through up to two VLAN tags; null when there is none.
 */
export function captureMacFor(recs: { data: Uint8Array }[], addrs: { has(a: number): boolean; get6At?(b: Uint8Array, off: number): unknown }): string | null {
  const votes = new Map<string, number>();
  for (const { data: b } of recs) {
    if (b.length < 14 || (b[0]! & 1)) continue;
    let off = 12;
    let type = (b[off]! << 8) | b[off + 1]!;
    for (let tags = 0; tags < 2 && (type === 0x8100 || type === 0x88a8) && b.length >= off + 6; tags++) {
      off += 4;
      type = (b[off]! << 8) | b[off + 1]!;
    }
    off += 2;
    let target = -1;
    if (type === 0x0800 && b.length >= off + 20) target = ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
    else if (type === 0x0806 && b.length >= off + 28 && b[off + 7] === 2) target = ((b[off + 24]! << 24) | (b[off + 25]! << 16) | (b[off + 26]! << 8) | b[off + 27]!) >>> 0;
    if (type === 0x86dd && b.length >= off + 40) {
      // IPv6 (and NDP, whose unicast advertisements go to the address too): the destination address.
      if (addrs.get6At?.(b, off + 24) === undefined) continue;
    } else if (target < 0 || !addrs.has(target)) continue;
    const m = macToString(b.subarray(0, 6));
    votes.set(m, (votes.get(m) ?? 0) + 1);
  }
  let best: string | null = null;
  let n = 0;
  for (const [m, k] of votes) if (k > n) { best = m; n = k; }
  return best;
}

/**
 * Runs the stack of `config` with its single device replaced by a pcap driver reading `input`
 * under virtual time (the capture's timestamps), writing what it sends to `output`. Same input,
 * same output, byte for byte. `lingerUs` (default 5 s) lets timers (ARP retries, reassembly)
 * run after the last input frame.
 */
export function replayCapture(config: StackConfig | string, input: string | Uint8Array, output: string | PcapWriter,
  opts: { device?: string; mac?: string; lingerUs?: number } = {}): ReplayResult {
  const cfg = typeof config === 'string' ? loadConfig(config) : validateConfig(cloneConfig(config), 'config');
  let dev: DeviceConfig | undefined;
  if (opts.device !== undefined) {
    dev = cfg.devices.find((d) => d.name === opts.device);
    if (!dev) throw new Error(`replay: the config has no device '${opts.device}' (devices: ${cfg.devices.map((d) => d.name).join(', ')})`);
  } else if (cfg.devices.length === 1) {
    dev = cfg.devices[0]!;
  } else {
    throw new Error(`replay: the config has ${cfg.devices.length} devices; choose the one the capture feeds with --device`);
  }
  let recs: ReturnType<typeof readCapture>;
  try {
    recs = readCapture(input);
  } catch (e) {
    // The capture's own problems (truncated, wrong magic) say where; a file that cannot be read, why.
    const where = typeof input === 'string' ? input : 'the capture';
    throw new Error((e as NodeJS.ErrnoException).code ? `replay: cannot read ${where}: ${fileErrorText(e)}` : `replay: ${where}: ${(e as Error).message}`);
  }
  const eth = recs.filter((r) => r.linkType === LINKTYPE_ETHERNET);
  let bytes: Uint8Array;
  if (eth.length === recs.length) {
    bytes = typeof input === 'string' ? fs.readFileSync(input) : input;
  } else {
    const w = new PcapWriter();
    for (const r of eth) w.write(r.data, 0, r.data.length, r.tsUs, r.origLen);
    bytes = w.toBuffer();
  }
  const start = eth.length ? eth[0]!.tsUs : 0;
  const end = eth.length ? eth[eth.length - 1]!.tsUs : 0;
  // The device's MAC: given, else the config's, else the one the capture's traffic to the config's
  // addresses was sent to (an AF_XDP device takes its interface's MAC, which the config does not say).
  const mac = opts.mac ?? dev.mac ?? captureMacFor(eth, addressesOn(cfg, dev.name)) ?? '02:00:00:00:00:01';
  const mtu = dev.driver === 'afxdp' ? 1500 : dev.mtu;
  let writer: PcapWriter;
  try {
    writer = typeof output === 'string' ? new PcapWriter(output) : output;
  } catch (e) {
    throw new Error(`replay: cannot write ${String(output)}: ${fileErrorText(e)}`);
  }
  const pcap = openPcapDriver({ name: dev.name, input: bytes, output: writer, mac, mtu, frameSize: dev.frameSize, frameCount: dev.frameCount ?? 1024 });
  const others: Record<string, Driver> = { [dev.name]: pcap };
  // Other devices of the config see no traffic.
  for (const d of cfg.devices) if (d !== dev) others[d.name] = openPcapDriver({ name: d.name, mac: d.mac, mtu: d.driver === 'afxdp' ? 1500 : d.mtu });
  cfg.control = false;
  let stack: Stack;
  try {
    stack = new Stack(cfg, { drivers: others, now: start });
  } catch (e) {
    pcap.close();
    if (typeof output === 'string') writer.close();
    throw e;
  }
  let final: number;
  try {
    final = stack.runVirtual(start, end + (opts.lingerUs ?? 5_000_000));
  } finally {
    stack.close();
    if (typeof output === 'string') writer.close();
  }
  const pool = stack.engine.devices[cfg.devices.indexOf(dev)]!.pool.check();
  return {
    input: eth.length, skippedNonEthernet: recs.length - eth.length, output: pcap.stats().txPackets, mac: mac.toLowerCase(),
    startUs: start, endUs: final, counters: stack.show('counters'),
    frames: { total: pool.total, free: pool.free, held: pool.held },
  };
}
