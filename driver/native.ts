/**
 * Loader for the native AF_XDP core (driver/native/xsk.cc, built by `make -C driver` into
 * driver/native/build/Release/xdpstack_native.node). Types of what the addon exports.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface XdpStatistics {
  rxDropped: number;
  rxInvalidDescs: number;
  txInvalidDescs: number;
  rxRingFull: number;
  rxFillRingEmptyDescs: number;
  txRingEmptyDescs: number;
}

/** Our XDP program attached to one interface, with the owned-address maps. */
export interface NativeProgram {
  readonly attachMode: 'native' | 'skb';
  /** True when attached through libxdp's multiprog dispatcher. */
  readonly dispatcher: boolean;
  readonly xsksMapFd: number;
  /** kind 0 = MAC (6 bytes), 1 = IPv4 (4 bytes, network order), 2 = IPv6 (16 bytes), 3 = solicited-node group (its last 4 bytes); see driver/owned.ts. */
  mapUpdate(kind: 0 | 1 | 2 | 3, key: Uint8Array, vlan: number, add: boolean): boolean;
  /** [redirected, passed, SYNs policed, ARP policed] frames, summed over CPUs. */
  counters(): [number, number, number, number];
  /** Sets policer `which` (0 SYN, 1 ARP): GCRA interval and burst tolerance in ns; interval 0 = off. */
  police(which: 0 | 1, intervalNs: number, burstNs: number): void;
  detach(): void;
}

export interface NativeXskOptions {
  ifname: string;
  queue: number;
  frameSize: number;
  frameCount: number;
  ringSize: number;
  /** 0 = try zero-copy then copy, 1 = zero-copy only, 2 = copy only. */
  zeroCopy: 0 | 1 | 2;
  busyPoll: boolean;
}

/** One UMEM + AF_XDP socket. All ring calls move a whole burst. */
export interface NativeXsk {
  readonly umem: ArrayBuffer;
  readonly fd: number;
  readonly zeroCopy: boolean;
  readonly kickErrors: number;
  /** The queue the socket is bound to. */
  readonly queue: number;
  /**
   * Puts the socket in the XSKMAP entry of its queue: the map of a Program of this thread, or an
   * XSKMAP given by its fd (a program attached by another thread; checked to be an XSKMAP with an
   * entry for the queue). The socket leaves the map when it is closed.
   */
  register(p: NativeProgram | number): void;
  fill(addrs: Uint32Array, n: number): number;
  rx(addrs: Uint32Array, lens: Uint32Array, max: number): number;
  tx(addrs: Uint32Array, lens: Uint32Array, n: number): number;
  complete(addrs: Uint32Array, max: number): number;
  /** Kicks TX; returns the descriptors still waiting in the TX ring. */
  kick(): number;
  stats(): XdpStatistics;
  /** Writes [fill, rx, tx, completion] ring levels into out. */
  ringLevels(out: Uint32Array): void;
  pollStart(cb: () => void): boolean;
  pollStop(): void;
  /** Closes the socket and the UMEM registration and creates both again (same area, same interface name and queue). */
  reopen(): boolean;
  close(): void;
}

export interface NativeAddon {
  Program: new (ifname: string, objPath: string, mode: 'native' | 'skb') => NativeProgram;
  Xsk: new (o: NativeXskOptions) => NativeXsk;
  /** Detaches every XDP program called `name` (default xdpstack_xdp) from ifname; returns how many. */
  removeProgram(ifname: string, name?: string): number;
  /** Names of the XDP programs attached to ifname. */
  attachedPrograms(ifname: string): string[];
  /** Recent libxdp/libbpf messages; `clear` empties the buffer. */
  lastLog(clear?: boolean): string;
  burstMax: number;
  /** Entries of the program's XSKMAP (XDPSTACK_MAX_QUEUES). */
  maxQueues: number;
}

/** Errors thrown by the addon carry the errno and the library log. */
export interface NativeError extends Error {
  errno?: number;
  what?: string;
  log?: string;
}

const repoRoot = (() => {
  // dist/driver/native.js -> repo root is two levels up; driver/native.ts (ts-node) one level up.
  for (const up of ['..', path.join('..', '..')]) {
    const r = path.resolve(__dirname, up);
    if (fs.existsSync(path.join(r, 'driver', 'Makefile'))) return r;
  }
  return path.resolve(__dirname, '..', '..');
})();

export const ADDON_PATH = process.env.XDPSTACK_NATIVE ?? path.join(repoRoot, 'driver', 'native', 'build', 'Release', 'xdpstack_native.node');
export const XDP_OBJECT_PATH = process.env.XDPSTACK_XDP_OBJ ?? path.join(repoRoot, 'driver', 'build', 'bpf', 'xdpstack_xdp.bpf.o');
/** The program name our XDP object carries (used to find stale attachments). */
export const XDP_PROG_NAME = 'xdpstack_xdp';

let cached: NativeAddon | undefined;

/**
 * How to get the native parts built: what the package's install step found missing
 * (scripts/install-native.js records it), or the checkout's set-up script.
 */
export function howToBuild(): string {
  const inCheckout = fs.existsSync(path.join(repoRoot, 'scripts', 'setup.sh'));
  const rebuild = inCheckout ? `run 'bash scripts/setup.sh' (or 'make -C driver')` : `run 'npm rebuild xdpstack'`;
  let st: { built?: boolean; skipped?: boolean; missing?: string[]; other?: string[]; failed?: boolean; log?: string } | undefined;
  try { st = JSON.parse(fs.readFileSync(path.join(repoRoot, 'driver', 'build', 'native-status.json'), 'utf8')) as typeof st; } catch { /* never built */ }
  if (st?.skipped) return `it was skipped at install (XDPSTACK_SKIP_NATIVE=1): ${rebuild}`;
  const needs = [...(st?.missing?.length ? [`Debian packages ${st.missing.join(' ')} (apt-get install ${st.missing.join(' ')})`] : []), ...(st?.other ?? [])];
  if (needs.length) return `its build needs ${needs.join('; ')}; then ${rebuild}`;
  if (st?.failed) return `its build failed at install (see ${st.log ?? 'driver/build/native-build.log'}); fix it, then ${rebuild}`;
  return rebuild;
}

/**
 * Loads the addon once per thread; throws an Error naming the fix when it is missing or unloadable.
 * Each worker_thread loads its own instance (the addon is context-aware and keeps no process-wide
 * mutable state of its own; see driver/native/xsk.cc).
 */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  if (!fs.existsSync(ADDON_PATH)) throw new Error(`afxdp: native addon not built (${ADDON_PATH} missing): ${howToBuild()}`);
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(ADDON_PATH) as NativeAddon;
  } catch (e) {
    throw new Error(`afxdp: cannot load native addon ${ADDON_PATH}: ${(e as Error).message} (rebuild: 'make -C driver clean all')`);
  }
  return cached;
}
