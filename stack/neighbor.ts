/**
 * Neighbor cache, one for both families: ARP (RFC 826) for IPv4 and NDP (RFC 4861) for IPv6 run the
 * same RFC 4861 state machine (Linux uses it for IPv4 too); the host sends the family's solicitation.
 *
 * States: INCOMPLETE (resolving, packets queued), REACHABLE, STALE, DELAY, PROBE, FAILED (removed).
 * Packets waiting for resolution are whole frames (frame accounting stays exact); the queue is
 * bounded per entry, and the number of entries per cache is bounded too.
 */
import type { Timer, TimerWheel } from './timers';
import { addrKey, IpAddr } from '../protocols/ip/addr';

export const enum NState {
  Incomplete = 0,
  Reachable = 1,
  Stale = 2,
  Delay = 3,
  Probe = 4,
}

export const NSTATE_NAMES = ['INCOMPLETE', 'REACHABLE', 'STALE', 'DELAY', 'PROBE'] as const;

export interface NeighborParams {
  retransUs: number;
  maxProbes: number;
  reachableUs: number;
  delayUs: number;
  gcStaleUs: number;
  queueLen: number;
  maxEntries: number;
}

export const DEFAULT_NEIGHBOR_PARAMS: NeighborParams = {
  retransUs: 1_000_000,
  maxProbes: 3,
  reachableUs: 30_000_000,
  delayUs: 5_000_000,
  gcStaleUs: 60_000_000,
  queueLen: 4,
  maxEntries: 4096,
};

/** A frame waiting for resolution: its Ethernet destination is written when the MAC is known. */
export interface PendingFrame {
  dev: number;
  frame: number;
  off: number;
  len: number;
}

export interface NeighborHost {
  /**
   * Sends an ARP request or NDP Neighbor Solicitation for `ip` (broadcast / to the solicited-node
   * group when `mac` is null, else unicast to `mac`).
   */
  solicit(cache: NeighborCache, ip: IpAddr, mac: Uint8Array | null, now: number): void;
  /** Sends a frame whose neighbor just resolved, writing `mac` as Ethernet destination. */
  release(cache: NeighborCache, p: PendingFrame, mac: Uint8Array, now: number): void;
  /**
   * Drops a queued frame (resolution failed or queue overflow), counting it. On overflow `n` is the
   * entry being resolved: the host may note in `n.notes` what the frame was, to report a failure.
   */
  discard(cache: NeighborCache, p: PendingFrame, unreachable: boolean, n?: Neighbor): void;
  /** Resolution of `n` failed; its queued frames were discarded just before. */
  failed(cache: NeighborCache, n: Neighbor): void;
  /** Drops a frame for a new neighbor: the table is at its limit (maxEntries) and nothing could go. */
  discardTableFull(cache: NeighborCache, p: PendingFrame): void;
}

export class Neighbor {
  state = NState.Incomplete;
  readonly mac = new Uint8Array(6);
  probes = 0;
  updated = 0;
  /** Last time a frame was sent (or queued) through this entry; -Infinity: never. */
  used = -Infinity;
  /** Learned from the wire and never used for output (first to go when the table is full). */
  learnedOnly = false;
  readonly queue: PendingFrame[] = [];
  /** The host's notes about frames dropped from the queue while resolving (see `discard`). */
  notes: IpAddr[] | null = null;
  timer: Timer;
  /** The entry's key in its cache's Map. */
  readonly key: number | string;
  constructor(readonly ip: IpAddr, readonly cache: NeighborCache) {
    this.key = addrKey(ip);
    this.timer = cache.wheel.create((now) => cache.onTimer(this, now));
  }
}

/**
 * An entry's place in the use order is refreshed at most this often (µs): the output path touches
 * the order about once per second per neighbor instead of once per frame.
 */
const USE_REFRESH_US = 1_000_000;
/** Entries looked at per eviction before giving up (skipped entries move to the back). */
const EVICT_SCAN = 64;

export class NeighborCache {
  /** Entries by address, least recently used first (see `touch`). */
  readonly entries = new Map<number | string, Neighbor>();
  /** Entries learned from the wire and not used for output yet, oldest first. */
  private readonly learnedOnly = new Set<Neighbor>();
  /** Counters: resolved, failed, queueDrops, evicted. */
  resolved = 0;
  failed = 0;
  queueDrops = 0;
  evicted = 0;
  /** Times an entry could not be created because the table was at maxEntries (limit hits). */
  tableFull = 0;

  constructor(
    readonly wheel: TimerWheel,
    readonly host: NeighborHost,
    /** Link identity for the host (which VS/link this cache serves). */
    readonly linkRef: unknown,
    readonly params: NeighborParams = DEFAULT_NEIGHBOR_PARAMS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Resolves `ip` for an outgoing frame. Returns the MAC when it can be sent now; otherwise the frame
   * is queued (or dropped when the queue is full) and null is returned: the caller no longer owns it.
   * The frame is `dev`, `frame`, `off`, `len` (a PendingFrame is made only when it waits: nothing
   * is allocated for a neighbor already known).
   */
  resolve(ip: IpAddr, dev: number, frame: number, off: number, len: number, now: number): Uint8Array | null {
    let n = this.entries.get(typeof ip === 'number' ? ip : ip.toString());
    if (n !== undefined && n.state !== NState.Incomplete) {
      if (now - n.used >= USE_REFRESH_US) this.touch(n, now);
      if (n.state === NState.Stale) {
        n.state = NState.Delay;
        this.wheel.set(n.timer, now + this.params.delayUs);
      }
      return n.mac;
    }
    const p: PendingFrame = { dev, frame, off, len };
    if (!n) {
      if (this.entries.size >= this.params.maxEntries && !this.evictOne()) {
        this.tableFull++;
        this.host.discardTableFull(this, p);
        return null;
      }
      n = new Neighbor(ip, this);
      this.entries.set(n.key, n);
      n.used = now;
      n.probes = 1;
      n.queue.push(p);
      this.host.solicit(this, ip, null, now);
      this.wheel.set(n.timer, now + this.params.retransUs);
      return null;
    }
    // Still resolving: the frame waits with the others.
    if (now - n.used >= USE_REFRESH_US) this.touch(n, now);
    if (n.queue.length >= this.params.queueLen) {
      // Keep the newest packets, as Linux does.
      this.queueDrops++;
      this.host.discard(this, n.queue.shift()!, false, n);
    }
    n.queue.push(p);
    return null;
  }

  /** Looks up without side effects. */
  peek(ip: IpAddr): Neighbor | undefined {
    return this.entries.get(typeof ip === 'number' ? ip : ip.toString());
  }

  /**
   * Learns `ip` is at `mac`. `confirmed` (an ARP reply to us) makes the entry REACHABLE; an ARP
   * request from the neighbor creates or refreshes it as STALE (RFC 826 merge + RFC 4861 rules).
   * `create` is false for frames that only update an existing entry.
   */
  learn(ip: IpAddr, mac: Uint8Array, macOff: number, confirmed: boolean, create: boolean, now: number): void {
    let n = this.entries.get(typeof ip === 'number' ? ip : ip.toString());
    if (!n) {
      if (!create) return;
      if (this.entries.size >= this.params.maxEntries && !this.evictOne()) { this.tableFull++; return; }
      n = new Neighbor(ip, this);
      this.entries.set(n.key, n);
      n.learnedOnly = true;
      this.learnedOnly.add(n);
    }
    let changed = false;
    for (let i = 0; i < 6; i++) {
      if (n.mac[i] !== mac[macOff + i]) {
        changed = true;
        n.mac[i] = mac[macOff + i]!;
      }
    }
    n.updated = now;
    const wasIncomplete = n.state === NState.Incomplete && n.queue.length > 0;
    if (confirmed || n.state === NState.Incomplete) {
      if (n.state === NState.Incomplete) this.resolved++;
      n.state = confirmed ? NState.Reachable : NState.Stale;
      n.probes = 0;
      this.wheel.set(n.timer, now + (confirmed ? this.params.reachableUs : this.params.gcStaleUs));
    } else if (changed) {
      n.state = NState.Stale;
      this.wheel.set(n.timer, now + this.params.gcStaleUs);
    }
    n.notes = null;
    if (wasIncomplete) {
      const q = n.queue.splice(0);
      for (const p of q) this.host.release(this, p, n.mac, now);
    }
  }

  /**
   * A Neighbor Advertisement for `ip` (RFC 4861 section 7.2.5). An NA never creates an entry. For
   * an INCOMPLETE entry: without a target link-layer address it is ignored; with one, the entry
   * resolves (REACHABLE when Solicited, else STALE). For a resolved entry: with Override clear and
   * a different address, a REACHABLE entry only becomes STALE (the address is not taken); otherwise
   * the address is taken when given, Solicited makes the entry REACHABLE, and a changed address
   * without Solicited makes it STALE. `mac` null: no Target Link-Layer Address option. Returns
   * false when the advertisement was for no entry, or for an INCOMPLETE one without an address: it
   * taught nothing (the caller counts it).
   */
  learnAdvert(ip: IpAddr, mac: Uint8Array | null, macOff: number, solicited: boolean, override: boolean, now: number): boolean {
    const n = this.entries.get(typeof ip === 'number' ? ip : ip.toString());
    if (!n) return false;
    if (n.state === NState.Incomplete) {
      if (!mac) return false;
      this.learn(ip, mac, macOff, solicited, false, now);
      return true;
    }
    let differs = false;
    if (mac) for (let i = 0; i < 6; i++) if (n.mac[i] !== mac[macOff + i]) { differs = true; break; }
    if (!override && differs) {
      if (n.state === NState.Reachable) {
        n.state = NState.Stale;
        this.wheel.set(n.timer, now + this.params.gcStaleUs);
      }
      return true;
    }
    if (mac && differs) for (let i = 0; i < 6; i++) n.mac[i] = mac[macOff + i]!;
    n.updated = now;
    if (solicited) {
      n.state = NState.Reachable;
      n.probes = 0;
      this.wheel.set(n.timer, now + this.params.reachableUs);
    } else if (differs) {
      n.state = NState.Stale;
      this.wheel.set(n.timer, now + this.params.gcStaleUs);
    }
    return true;
  }

  /** @internal timer expiry */
  onTimer(n: Neighbor, now: number): void {
    const P = this.params;
    switch (n.state) {
      case NState.Incomplete:
        if (n.probes >= P.maxProbes) return this.fail(n);
        n.probes++;
        this.host.solicit(this, n.ip, null, now);
        this.wheel.set(n.timer, now + P.retransUs);
        return;
      case NState.Reachable:
        n.state = NState.Stale;
        this.wheel.set(n.timer, now + P.gcStaleUs);
        return;
      case NState.Stale:
        // Unused for gcStale: forget it.
        this.remove(n);
        return;
      case NState.Delay:
        n.state = NState.Probe;
        n.probes = 1;
        this.host.solicit(this, n.ip, n.mac, now);
        this.wheel.set(n.timer, now + P.retransUs);
        return;
      case NState.Probe:
        if (n.probes >= P.maxProbes) return this.fail(n);
        n.probes++;
        this.host.solicit(this, n.ip, n.mac, now);
        this.wheel.set(n.timer, now + P.retransUs);
        return;
    }
  }

  private fail(n: Neighbor): void {
    this.failed++;
    const q = n.queue.splice(0);
    this.remove(n);
    for (const p of q) this.host.discard(this, p, true);
    this.host.failed(this, n);
    n.notes = null;
  }

  remove(n: Neighbor): void {
    this.wheel.cancel(n.timer);
    this.entries.delete(n.key);
    if (n.learnedOnly) { n.learnedOnly = false; this.learnedOnly.delete(n); }
  }

  /** Output went through `n`: it moves to the back of the use order (most recently used). */
  private touch(n: Neighbor, now: number): void {
    n.used = now;
    if (n.learnedOnly) { n.learnedOnly = false; this.learnedOnly.delete(n); }
    this.entries.delete(n.key);
    this.entries.set(n.key, n);
  }

  /**
   * Forgets one entry (an operator's flush, as `ip neigh flush`): frames waiting for it are dropped
   * as when resolution fails, so their senders learn the host is unreachable (Linux's
   * neigh_invalidate on an administrative delete does the same).
   */
  forget(n: Neighbor): void {
    if (this.entries.get(n.key) !== n) return;
    const q = n.queue.splice(0);
    this.remove(n);
    for (const p of q) this.host.discard(this, p, true);
    n.notes = null;
  }

  /** Frees every queued frame and forgets every entry (link or VS removed). */
  flush(): void {
    for (const n of this.entries.values()) {
      this.wheel.cancel(n.timer);
      const q = n.queue.splice(0);
      for (const p of q) this.host.discard(this, p, true);
    }
    this.entries.clear();
    this.learnedOnly.clear();
  }

  /**
   * Makes room for one entry (the table is at its cap). First an entry only learned from the wire
   * and never used for output, the oldest first (a flood of ARP senders churns through these);
   * then the least recently used STALE entry. An entry in use (REACHABLE, DELAY, PROBE, or resolving
   * with frames queued) is never taken: when there are only such entries the new one is refused.
   */
  private evictOne(): boolean {
    for (const n of this.learnedOnly) {
      this.evicted++;
      this.remove(n);
      return true;
    }
    let scanned = 0;
    for (const n of this.entries.values()) {
      if (n.state === NState.Stale && n.queue.length === 0) {
        this.evicted++;
        this.remove(n);
        return true;
      }
      if (++scanned >= EVICT_SCAN) break;
    }
    // None in the front of the order: rotate what was looked at to the back, so the next eviction
    // looks further (bounded work per call, every entry reached over a few calls).
    let k = 0;
    for (const n of this.entries.values()) {
      if (k++ >= scanned) break;
      this.entries.delete(n.key);
      this.entries.set(n.key, n);
    }
    return false;
  }
}
