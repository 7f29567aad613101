/**
 * Limits on every table a peer can grow. Each one has a default, a range the config validator and
 * the engine both check (this table is the one place they come from), and, when reached, a counted
 * drop or a clear error; `show limits` reports use against each limit and how often it was hit.
 *
 * | key                   | scope                  | reached                                                       |
 * |-----------------------|------------------------|---------------------------------------------------------------|
 * | tcpConnections        | all VSes               | SYN dropped (tcp-connection-limit); connect() fails ENFILE      |
 * | tcpConnectionsPerVs   | each VS (overridable)  | SYN dropped (tcp-connection-limit); connect() fails EMFILE      |
 * | tcpSynQueue           | each listener (per VS) | SYN answered with a SYN cookie instead (RFC 4987)               |
 * | tcpTimeWait           | all VSes               | the oldest TIME_WAIT connection is forgotten early              |
 * | tcpReorderMemory      | all VSes, bytes        | out-of-order segment dropped (tcp-reorder-memory)               |
 * | reassemblyDatagrams   | all VSes               | first fragment of a new datagram dropped (ipv4-reassembly-overflow) |
 * | reassemblyMemory      | all VSes, bytes        | fragment dropped (ipv4-reassembly-overflow)                     |
 * | neighbors             | each link (per VS)     | frame to a new neighbor dropped (neighbor-table-full), ARP not learned |
 */

export interface Limits {
  /** TCP connections in the stack, all VSes (TIME_WAIT not included: see tcpTimeWait). */
  tcpConnections: number;
  /** TCP connections of one VS (TIME_WAIT not included); a VS's `limits.tcpConnections` overrides it. */
  tcpConnectionsPerVs: number;
  /** Half-open (SYN_RECEIVED) connections per listener; also bounded by the listen() backlog. */
  tcpSynQueue: number;
  /** Connections in TIME_WAIT, all VSes. */
  tcpTimeWait: number;
  /** Bytes of reorder buffers (out-of-order data) held by all TCP connections. */
  tcpReorderMemory: number;
  /** IPv4 datagrams being reassembled at once, all VSes. */
  reassemblyDatagrams: number;
  /** Bytes held by IPv4 datagrams being reassembled, all VSes. */
  reassemblyMemory: number;
  /** Neighbor (ARP) entries per link. */
  neighbors: number;
}

/** The limits a virtual server may set for itself (overriding the stack's defaults). */
export interface VsLimits {
  tcpConnections?: number;
  tcpSynQueue?: number;
  neighbors?: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  tcpConnections: 262_144,
  tcpConnectionsPerVs: 65_536,
  tcpSynQueue: 4096,
  tcpTimeWait: 65_536,
  tcpReorderMemory: 64 << 20,
  reassemblyDatagrams: 64,
  reassemblyMemory: 256 << 10,
  neighbors: 4096,
};

/** Accepted range of each limit (integers). */
export const LIMIT_RANGES: Readonly<Record<keyof Limits, readonly [number, number]>> = {
  tcpConnections: [1, 1 << 24],
  tcpConnectionsPerVs: [1, 1 << 24],
  tcpSynQueue: [1, 65_535],
  tcpTimeWait: [0, 1 << 24],
  tcpReorderMemory: [0, 2 ** 40],
  reassemblyDatagrams: [1, 65_536],
  reassemblyMemory: [1, 2 ** 31],
  neighbors: [1, 1 << 20],
};

export const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];
/** Keys of a VS's own `limits`, and the stack limit each one overrides. */
export const VS_LIMIT_KEYS: Readonly<Record<keyof VsLimits, keyof Limits>> = {
  tcpConnections: 'tcpConnectionsPerVs',
  tcpSynQueue: 'tcpSynQueue',
  neighbors: 'neighbors',
};

/** Why `v` is not acceptable for limit `k` (null when it is). */
export function limitProblem(k: keyof Limits, v: unknown): string | null {
  const [min, max] = LIMIT_RANGES[k];
  if (typeof v !== 'number' || !Number.isInteger(v)) return `must be an integer ${min}..${max}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
  if (v < min || v > max) return `must be ${min}..${max}, got ${v}`;
  return null;
}

/** The defaults with `given` applied; throws a RangeError naming the first bad or unknown key. */
export function resolveLimits(given: Partial<Limits> = {}): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(DEFAULT_LIMITS, k)) throw new RangeError(`unknown limit '${k}' (known: ${LIMIT_KEYS.join(', ')})`);
    const p = limitProblem(k as keyof Limits, v);
    if (p) throw new RangeError(`limit ${k} ${p}`);
    out[k as keyof Limits] = v as number;
  }
  return out;
}

/** A VS's own limits checked (RangeError naming the key), unknown keys refused. */
export function checkVsLimits(given: VsLimits = {}): VsLimits {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new RangeError(`a virtual server's limits must be an object like { tcpConnections: 1000 }, got ${given === null ? 'null' : Array.isArray(given) ? 'an array' : `${typeof given} ${String(given)}`}`);
  }
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    // Own keys only: `constructor` or `__proto__` is no limit (an object's prototype has them).
    const base = Object.hasOwn(VS_LIMIT_KEYS, k) ? VS_LIMIT_KEYS[k as keyof VsLimits] : undefined;
    if (!base) throw new RangeError(`unknown virtual server limit '${k}' (known: ${Object.keys(VS_LIMIT_KEYS).join(', ')})`);
    const p = limitProblem(base, v);
    if (p) throw new RangeError(`limit ${k} ${p}`);
  }
  return given;
}

/** One row of `show limits`: what is limited where, its use, the limit and how often it was reached. */
export interface LimitRow { vs: string | null; scope: string; limit: string; used: number; max: number; hits: number }

/** A limit that was reached (its hits grew), or is clear again. */
export interface LimitEvent {
  kind: 'reached' | 'cleared';
  row: LimitRow;
  /** cleared: times it was reached since the 'reached' event. */
  hits: number;
}

/**
 * Turns `show limits` rows looked at now and then (once a second) into events, each logged once:
 * 'reached' when a limit's hit count grows, 'cleared' at the first look after that with no new hit
 * and the use under the limit. Never one per packet, however many packets hit the limit.
 */
export class LimitWatch {
  private readonly seen = new Map<string, { hits: number; reached: boolean; from: number }>();

  observe(rows: readonly LimitRow[]): LimitEvent[] {
    const events: LimitEvent[] = [];
    const live = new Set<string>();
    for (const r of rows) {
      const key = `${r.vs ?? ''}\n${r.scope}\n${r.limit}`;
      live.add(key);
      let s = this.seen.get(key);
      if (!s) { s = { hits: 0, reached: false, from: 0 }; this.seen.set(key, s); }
      // A count that went back (a listener closed and opened again under the same address) starts over.
      if (r.hits < s.hits) { s.hits = r.hits; s.from = r.hits; }
      if (r.hits > s.hits) {
        if (!s.reached) {
          s.reached = true;
          s.from = s.hits;
          events.push({ kind: 'reached', row: r, hits: r.hits - s.hits });
        }
        s.hits = r.hits;
      } else if (s.reached && r.used < r.max) {
        s.reached = false;
        events.push({ kind: 'cleared', row: r, hits: r.hits - s.from });
      }
    }
    // Limits that are gone (a VS, listener or link removed) are forgotten.
    for (const k of this.seen.keys()) if (!live.has(k)) this.seen.delete(k);
    return events;
  }
}
