/**
 * Early shedding in the XDP program of an AF_XDP device (driver/bpf/xdpstack_xdp.bpf.c): TCP SYNs
 * (SYN set, ACK clear) and ARP frames for the stack each pass a token bucket before they are
 * redirected; frames over the rate are dropped in the kernel (counted as `xdp-syn-policed` /
 * `xdp-arp-policed`) before they take a slot of the XDP socket's fill ring. Without it a flood of
 * such frames empties the fill ring and the kernel then drops every frame, service traffic alike.
 *
 * The defaults are above what a server sees in normal operation and below what the stack's
 * receive path can take on a small machine (bench/README.md "Floods": on 2 vCPUs the stack answers
 * about 100,000 SYNs/s with SYN cookies while an established connection keeps half its rate, and
 * opens about 26,000 real connections/s). One device's buckets are shared by all its addresses,
 * VSes and CPUs. Config key `police` of an afxdp device; a rate of 0 turns that policer off.
 *
 * Pure data and checks: the config validator uses them without loading the native addon.
 */

export interface PoliceConfig {
  /** TCP SYNs (without ACK) per second to the device's owned addresses; 0 = no policing. */
  synRate: number;
  /** SYNs let through back to back before the rate applies. */
  synBurst: number;
  /** ARP frames per second for the stack (requests for its addresses, frames to its MACs); 0 = off. */
  arpRate: number;
  /** ARP frames let through back to back. */
  arpBurst: number;
}

export const DEFAULT_POLICE: Readonly<PoliceConfig> = {
  synRate: 50_000,
  synBurst: 5_000,
  arpRate: 10_000,
  arpBurst: 1_000,
};

export const POLICE_KEYS = Object.keys(DEFAULT_POLICE) as (keyof PoliceConfig)[];

/** Accepted range of each key (integers). */
export const POLICE_RANGES: Readonly<Record<keyof PoliceConfig, readonly [number, number]>> = {
  synRate: [0, 1_000_000_000],
  synBurst: [1, 10_000_000],
  arpRate: [0, 1_000_000_000],
  arpBurst: [1, 10_000_000],
};

/** Why `v` is not acceptable for key `k` (null when it is). */
export function policeProblem(k: keyof PoliceConfig, v: unknown): string | null {
  const [min, max] = POLICE_RANGES[k];
  const what = k.endsWith('Rate') ? 'frames per second, 0 = no policing' : 'frames';
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    return `must be an integer ${min}..${max} (${what}), got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
  }
  if (v < min || v > max) return `must be ${min}..${max} (${what}), got ${v}`;
  return null;
}

/** The defaults with `given` applied; throws a RangeError naming the first bad or unknown key. */
export function resolvePolice(given: Partial<PoliceConfig> = {}): PoliceConfig {
  const out: PoliceConfig = { ...DEFAULT_POLICE };
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_POLICE)) throw new RangeError(`unknown police key '${k}' (known: ${POLICE_KEYS.join(', ')})`);
    const p = policeProblem(k as keyof PoliceConfig, v);
    if (p) throw new RangeError(`police.${k} ${p}`);
    out[k as keyof PoliceConfig] = v as number;
  }
  return out;
}

/**
 * The program's form of a bucket (GCRA): a frame passes when the bucket's theoretical arrival time
 * is at most burstNs ahead of now, and moves it intervalNs on. Rate 0 = off (interval 0).
 */
export function gcraParams(rate: number, burst: number): { intervalNs: number; burstNs: number } {
  if (rate <= 0) return { intervalNs: 0, burstNs: 0 };
  const intervalNs = Math.max(1, Math.round(1e9 / rate));
  return { intervalNs, burstNs: (Math.max(1, burst) - 1) * intervalNs };
}
