/** What the main thread and a shard's worker say to each other (plain, structured-clonable data). */
import type { IpAddr } from '../../protocols/ip/addr';
import type { StackConfig } from '../control/config';
import type { Request } from '../control/control';
import type { ShardDeviceInfo } from './drivers';
import type { MeshMemory } from './steer';
import type { LogFields, LogLevel } from '../control/log';
import type { TraceFilterSpec } from '../trace';
import type { PingIcmpError, PingOptions, PingReply, PingSummary } from '../ping';

/** What the main thread gives a shard. */
export interface ShardData {
  config: StackConfig;
  shard: number;
  shards: number;
  mesh: MeshMemory;
  secret: Uint8Array;
  /** Per device (by name): what the main thread attached (AF_XDP: the XSKMAP to register in). */
  devices: Record<string, ShardDeviceInfo>;
  app?: string;
  busyPoll?: boolean;
  /** Modules to load first (service types they register: `xdpstack run` loads the examples'). */
  preload?: string[];
  /** The main thread's log level: events below it are not posted. */
  logLevel?: LogLevel;
}

/** Messages from the main thread. */
export type ToShard =
  | { t: 'req'; id: number; req: Request }
  | { t: 'trace'; id: number; trace: number; out?: string; stream?: boolean; vs?: string; count?: number; filter?: TraceFilterSpec }
  | { t: 'traceStop'; id: number; trace: number }
  | { t: 'traceFrames'; id: number; trace: number }
  | { t: 'ping'; id: number; ping: number; vs: string; target: string; opts: PingOptions }
  | { t: 'pingStop'; id: number; ping: number }
  | { t: 'close'; id: number };

/** Messages to the main thread. */
export type FromShard =
  | { t: 'ready' }
  | { t: 'res'; id: number; ok: true; data: unknown }
  | { t: 'res'; id: number; ok: false; error: string }
  | { t: 'own'; dev: string; mac?: Uint8Array; addr?: IpAddr; vlan: number; add: boolean }
  | { t: 'log'; msg: string; level?: LogLevel; fields?: LogFields }
  /** A streamed trace's records (pcap records, no global header) and the time (µs since the epoch) after which all its later records come. */
  | { t: 'traceData'; trace: number; data: Uint8Array; watermark: number }
  | { t: 'pingEvent'; ping: number; kind: 'reply'; data: PingReply }
  | { t: 'pingEvent'; ping: number; kind: 'error'; data: { seq: number; error: string } }
  | { t: 'pingEvent'; ping: number; kind: 'unreachable'; data: PingIcmpError }
  | { t: 'pingEvent'; ping: number; kind: 'done'; data: PingSummary }
  | { t: 'fatal'; msg: string };
