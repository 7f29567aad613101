/**
 * Stack configuration: a JSON document declaring devices, virtual servers (links, addresses,
 * routes, rules) and services to start.
 *
 * `validateConfig()` checks everything before anything is opened: types, ranges, unknown keys,
 * duplicates and references between sections. Every problem is reported with the file name and
 * the field path (`virtualServers[2].links[0].vlan`), all of them at once, in a ConfigError.
 *
 * Example:
 *   {
 *     "name": "demo",
 *     "devices": [{ "name": "xs0", "driver": "afxdp", "queue": 0 }],
 *     "virtualServers": [{
 *       "name": "a",
 *       "links": [{ "device": "xs0", "vlan": 10, "addresses": ["10.1.1.1/24", "fd00:1::1/64"] }],
 *       "routes": [{ "dst": "default", "via": "10.1.1.254" }, { "dst": "::/0", "via": "fe80::1%xs0.10" }]
 *     }],
 *     "services": [{ "type": "udp-echo", "vs": "a", "port": 7 }]
 *   }
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addrEq, addrToString, ANY6, IpAddr, isUnspecified, localOverlap } from '../../protocols/ip/addr';
import { findJsonError, lineColumn } from './json-error';
import { Checker, checkDecap, describe, checkLink, checkMetrics, checkRoute, checkRule, checkVip, DEV_NAME_RE, join, LinkFacts, MAC_RE, NAME_HINT, Obj, ValidationState } from './validate';
import { LogFormat, logFormatProblem, LogLevel, logLevelProblem } from './log';
import { POLICE_KEYS, PoliceConfig, policeProblem } from '../../driver/police';
import { LIMIT_KEYS, limitProblem, Limits, VS_LIMIT_KEYS, VsLimits } from '../limits';
import { ServiceConfig, serviceKind, serviceTypes } from './services';

export type DriverKind = 'afxdp' | 'pcap' | 'memory';

export interface DeviceConfig {
  name: string;
  driver: DriverKind;
  /** afxdp: kernel interface (default: the device name). */
  ifname?: string;
  queue?: number;
  frameSize?: 2048 | 4096;
  frameCount?: number;
  mode?: 'auto' | 'native' | 'skb';
  zeroCopy?: 'auto' | 'on' | 'off';
  busyPoll?: boolean;
  ringSize?: number;
  /**
   * afxdp: SYN and ARP policers of the device's XDP program (frames over the rate are dropped in
   * the kernel, counted as xdp-syn-policed / xdp-arp-policed). driver/police.ts: keys, defaults.
   */
  police?: Partial<PoliceConfig>;
  /** pcap/memory: the device MAC (afxdp takes the interface's). */
  mac?: string;
  /** pcap/memory: the device MTU (afxdp takes the interface's). */
  mtu?: number;
  /** pcap: capture to replay, and where transmitted frames go. */
  input?: string;
  output?: string;
  /** memory: PRNG seed of the link. */
  seed?: number;
}

export interface LinkConfig {
  name?: string;
  device: string;
  vlan?: number;
  mac?: string;
  mtu?: number;
  /** CIDRs of either family: "10.1.1.1/24", "fd00::1/64" (a link-local one replaces the link's automatic fe80::/64). */
  addresses?: string[];
}

export interface RouteConfig {
  /** "10.2.0.0/16", "fd00:2::/48", or 'default' (IPv4 unless `via` or `src` is IPv6; ::/0 for IPv6). */
  dst: string;
  /** Gateway of the route's family; a link-local one needs `link`, or is written scoped: "fe80::1%LINK". */
  via?: string;
  link?: string;
  /** The gateway `via` is on `link` although no address of the link covers it (as `ip route ... onlink`). */
  onlink?: boolean;
  table?: number;
  metric?: number;
  src?: string;
}

export interface RuleConfig {
  priority: number;
  from?: string;
  fwmark?: number;
  table: number;
}

export interface VsConfig {
  name: string;
  links: LinkConfig[];
  routes?: RouteConfig[];
  rules?: RuleConfig[];
  /** This VS's own limits (tcpConnections, tcpSynQueue, neighbors); the stack's `limits` otherwise. */
  limits?: VsLimits;
  /**
   * Addresses the VS serves behind an L4 load balancer (direct server return) without answering
   * ARP/NDP for them: `["198.51.100.10", "2001:db8::10"]`. Their traffic comes encapsulated.
   */
  vips?: string[];
  /** Where encapsulated traffic for the VIPs is taken from (load balancers' CIDRs) and the bytes it adds. */
  decap?: DecapConfig;
}

export interface DecapConfig {
  from: string[];
  /** Bytes the load balancer's encapsulation adds (0..512); default: the outer header the SYN came in (20 or 40). */
  overhead?: number;
}


export interface StackConfig {
  /** Stack name: names the control socket (default: the config file's base name, or 'xdpstack'). */
  name?: string;
  /** Control socket path, or false for none. Default /run/xdpstack/NAME.sock. */
  control?: { socket?: string } | false;
  engine?: { icmpRate?: number; icmpBurst?: number; outCapacity?: number; stepTimers?: number; stepEvents?: number; dadTransmits?: number };
  /** Limits on the tables peers can grow (stack/limits.ts: keys, defaults, ranges). */
  limits?: Partial<Limits>;
  devices: DeviceConfig[];
  virtualServers: VsConfig[];
  services?: ServiceConfig[];
  /**
   * Prometheus metrics over HTTP on the host's own network (node:http, not the stack's):
   * `{ "listen": "127.0.0.1:9464" }` or `"[::1]:9464"`, served at /metrics by `xdpstack run`
   * (a program calls `stack.serveMetrics()`).
   */
  metrics?: { listen: string };
  /** Lines of this level and more severe are logged: error, warn, info (default), debug. */
  logLevel?: LogLevel;
  /** 'text' (default: time, level, event, key=value fields) or 'json' (one object per line). */
  logFormat?: LogFormat;
}


export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: { path: string; message: string }[]) {
    super(problems.length === 1
      ? `${source}: ${problems[0]!.path}: ${problems[0]!.message}`
      : `${source}: ${problems.length} problems:\n${problems.slice(0, LISTED_PROBLEMS).map((p) => `  ${p.path}: ${p.message}`).join('\n')}` +
        (problems.length > LISTED_PROBLEMS ? `\n  ... and ${problems.length - LISTED_PROBLEMS} more` : ''));
    this.name = 'ConfigError';
  }
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** What the errors of reading a config file mean, said after their code. */
const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory', EISDIR: 'a directory, not a file', EACCES: 'permission denied', EPERM: 'permission denied',
  ENOTDIR: 'a part of the path is not a directory', ELOOP: 'too many symbolic links', ENAMETOOLONG: 'the path is too long',
  EMFILE: 'too many open files', EEXIST: 'a file of that name is in the way', EFBIG: 'the file is too large', ERR_STRING_TOO_LONG: 'the file is too large',
};
/** A file system error as a message says it: its code and what the code means (`ENOENT (no such file)`). */
export function fileErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code && Object.hasOwn(READ_ERRORS, code) ? `${code} (${READ_ERRORS[code]})` : code ?? (e as Error).message;
}
/** A ConfigError's message lists this many problems; `problems` has them all. */
const LISTED_PROBLEMS = 25;

const DEVICE_KEYS: Record<DriverKind, readonly string[]> = {
  afxdp: ['name', 'driver', 'ifname', 'queue', 'frameSize', 'frameCount', 'mode', 'zeroCopy', 'busyPoll', 'ringSize', 'police'],
  pcap: ['name', 'driver', 'mac', 'mtu', 'frameSize', 'frameCount', 'input', 'output'],
  memory: ['name', 'driver', 'mac', 'mtu', 'frameSize', 'frameCount', 'seed'],
};

interface DevInfo { kind: DriverKind; mtu: number | undefined; mac: string | undefined }

/** What a config file has declared so far, as the validator's rules ask it (first owner wins). */
class ConfigState implements ValidationState {
  readonly vsLinks = new Map<string, LinkFacts[]>();
  private readonly macOwner = new Map<string, string>();
  private readonly addrOwner = new Map<string, string>();
  constructor(private readonly devs: Map<string, DevInfo>) {}
  device(name: string) { return this.devs.get(name); }
  deviceNames() { return [...this.devs.keys()]; }
  macUser(device: string, vlan: number, mac: string) { return this.macOwner.get(`${device}/${vlan}/${mac}`); }
  addressUser(device: string, vlan: number, addr: IpAddr) { return this.addrOwner.get(`${device}/${vlan}/${addrToString(addr)}`); }
  links(vs: string) { return this.vsLinks.get(vs) ?? []; }
  hasRulePriority() { return false; }
  vips() { return []; }
  /** Records a checked link: its (device, VLAN, MAC) and addresses now belong to `where`. */
  record(l: LinkFacts, where: string): void {
    if (!l.device || !this.devs.has(l.device)) return;
    const key = `${l.device}/${l.vlan}/${l.mac}`;
    if (!this.macOwner.has(key)) this.macOwner.set(key, where);
    l.addrs.forEach((a) => {
      const k = `${l.device}/${l.vlan}/${addrToString(a.addr)}`;
      if (!this.addrOwner.has(k)) this.addrOwner.set(k, a.where ?? where);
    });
  }
}

/**
 * Checks a parsed config and returns it typed. `sourceName` (usually the file path) starts every
 * error message. Throws ConfigError listing every problem found.
 */
export function validateConfig(obj: unknown, sourceName = 'config'): StackConfig {
  const c = new Checker();
  if (!c.isObject(obj, '')) throw new ConfigError(sourceName, c.problems);
  c.keys(obj, '', ['name', 'control', 'engine', 'limits', 'devices', 'virtualServers', 'services', 'metrics', 'logLevel', 'logFormat']);
  c.string(obj, 'name', '', false, NAME_RE, 'letters, digits, _ . -; at most 64');
  if (obj.control !== undefined && obj.control !== false && c.isObject(obj.control, 'control')) {
    c.keys(obj.control, 'control', ['socket']);
    c.string(obj.control, 'socket', 'control', false, /^\S+$/, 'a path');
  }
  if (obj.metrics !== undefined) checkMetrics(c, obj.metrics, 'metrics');
  for (const [k, problem] of [['logLevel', logLevelProblem], ['logFormat', logFormatProblem]] as const) {
    const why = obj[k] === undefined ? null : problem(obj[k]);
    if (why) c.fail(k, why);
  }
  if (obj.engine !== undefined && c.isObject(obj.engine, 'engine')) {
    c.keys(obj.engine, 'engine', ['icmpRate', 'icmpBurst', 'outCapacity', 'stepTimers', 'stepEvents', 'dadTransmits']);
    c.int(obj.engine, 'icmpRate', 'engine', false, 0, 1_000_000);
    c.int(obj.engine, 'icmpBurst', 'engine', false, 0, 1_000_000);
    c.int(obj.engine, 'outCapacity', 'engine', false, 64, 1 << 20);
    // Work of one step: timer callbacks, and connections whose socket events are delivered.
    c.int(obj.engine, 'stepTimers', 'engine', false, 1, 1 << 20);
    c.int(obj.engine, 'stepEvents', 'engine', false, 1, 1 << 20);
    // Duplicate Address Detection probes per new IPv6 address (RFC 4862 DupAddrDetectTransmits; 0: none).
    c.int(obj.engine, 'dadTransmits', 'engine', false, 0, 16);
  }

  // ---- limits (ranges from limits.ts, shared with the engine)
  if (obj.limits !== undefined && c.isObject(obj.limits, 'limits')) {
    c.keys(obj.limits, 'limits', LIMIT_KEYS);
    for (const k of LIMIT_KEYS) {
      const v = obj.limits[k];
      const why = v === undefined ? null : limitProblem(k, v);
      if (why) c.fail(join('limits', k), why);
    }
  }

  // ---- devices
  const devs = new Map<string, DevInfo>();
  const afxdpQueues = new Map<string, string>();
  const devices = c.array(obj, 'devices', '', true);
  if (devices && devices.length === 0) c.fail('devices', 'needs at least one device');
  devices?.forEach((d, i) => {
    const p = join('devices', i);
    if (!c.isObject(d, p)) return;
    const name = c.string(d, 'name', p, true, DEV_NAME_RE, 'letters, digits, _ . : -; at most 15');
    const kind = c.oneOf(d, 'driver', p, true, ['afxdp', 'pcap', 'memory'] as const);
    if (kind) c.keys(d, p, DEVICE_KEYS[kind]);
    const frameSize = c.oneOf(d, 'frameSize', p, false, [2048, 4096] as const) ?? 2048;
    c.int(d, 'frameCount', p, false, kind === 'afxdp' ? 128 : 16, 1 << 20);
    let mtu: number | undefined;
    let mac: string | undefined;
    if (kind === 'afxdp') {
      const ifname = c.string(d, 'ifname', p, false, DEV_NAME_RE, 'a kernel interface name') ?? name;
      const queue = c.int(d, 'queue', p, false, 0, 1023) ?? 0;
      c.oneOf(d, 'mode', p, false, ['auto', 'native', 'skb'] as const);
      c.oneOf(d, 'zeroCopy', p, false, ['auto', 'on', 'off'] as const);
      c.bool(d, 'busyPoll', p);
      const rs = c.int(d, 'ringSize', p, false, 64, 1 << 16);
      if (rs !== undefined && (rs & (rs - 1)) !== 0) c.fail(join(p, 'ringSize'), `must be a power of two, got ${rs}`);
      // Policer ranges from driver/police.ts, shared with the driver.
      const pp = join(p, 'police');
      if (d.police !== undefined && c.isObject(d.police, pp)) {
        c.keys(d.police, pp, POLICE_KEYS);
        for (const k of POLICE_KEYS) {
          const v = (d.police as Obj)[k];
          const why = v === undefined ? null : policeProblem(k, v);
          if (why) c.fail(join(pp, k), why);
        }
      }
      if (ifname) {
        const key = `${ifname}/${queue}`;
        const prev = afxdpQueues.get(key);
        if (prev) c.fail(p, `interface ${ifname} queue ${queue} is already used by ${prev}`);
        else afxdpQueues.set(key, p);
      }
    } else if (kind) {
      mac = c.string(d, 'mac', p, false, MAC_RE, 'like 02:00:00:00:00:01');
      if (mac && (parseInt(mac.slice(0, 2), 16) & 1)) c.fail(join(p, 'mac'), `${mac} is a multicast address`);
      // Room for two VLAN tags plus the Ethernet header after the frame headroom (as the drivers check).
      mtu = c.int(d, 'mtu', p, false, 68, frameSize - 256 - 22) ?? 1500;
      if (kind === 'pcap') {
        c.string(d, 'input', p, false, /^.+$/, 'a file path');
        c.string(d, 'output', p, false, /^.+$/, 'a file path');
      } else {
        c.int(d, 'seed', p, false, -(2 ** 31), 2 ** 32 - 1);
      }
    }
    if (name && kind) {
      if (devs.has(name)) c.fail(join(p, 'name'), `duplicate device name '${name}'`);
      else devs.set(name, { kind, mtu, mac });
    }
  });
  if (devices && devices.length > 255) c.fail('devices', `at most 255 devices, got ${devices.length}`);

  // ---- virtual servers (the rules are stack/control/validate.ts's, checked against what the file builds)
  const state = new ConfigState(devs);
  const vsLinks = state.vsLinks;
  const vsVips = new Map<string, IpAddr[]>();
  const vss = c.array(obj, 'virtualServers', '', true);
  vss?.forEach((v, i) => {
    const p = join('virtualServers', i);
    if (!c.isObject(v, p)) return;
    c.keys(v, p, ['name', 'links', 'routes', 'rules', 'limits', 'vips', 'decap']);
    if (v.limits !== undefined && c.isObject(v.limits, join(p, 'limits'))) {
      const lp = join(p, 'limits');
      c.keys(v.limits, lp, Object.keys(VS_LIMIT_KEYS));
      for (const [k, base] of Object.entries(VS_LIMIT_KEYS)) {
        const x = (v.limits as Obj)[k];
        const why = x === undefined ? null : limitProblem(base, x);
        if (why) c.fail(join(lp, k), why);
      }
    }
    const name = c.string(v, 'name', p, true, NAME_RE, NAME_HINT);
    const links: LinkFacts[] = [];
    if (name) {
      if (vsLinks.has(name)) c.fail(join(p, 'name'), `duplicate virtual server name '${name}'`);
      else vsLinks.set(name, links);
    }
    const ls = c.array(v, 'links', p, true);
    ls?.forEach((l, j) => {
      const lp = join(join(p, 'links'), j);
      const info = checkLink(c, l, lp, state, name ?? '', j, links);
      if (!info) return;
      state.record(info, lp);
      links.push(info);
    });
    const routes = c.array(v, 'routes', p, false);
    routes?.forEach((r, j) => checkRoute(c, r, join(join(p, 'routes'), j), state, name ?? '', links));
    const rules = c.array(v, 'rules', p, false);
    const prios = new Set<number>();
    rules?.forEach((r, j) => checkRule(c, r, join(join(p, 'rules'), j), state, name ?? '', prios));
    const vips = c.array(v, 'vips', p, false);
    const taken: IpAddr[] = [];
    if (name) vsVips.set(name, taken);
    vips?.forEach((a, j) => {
      const x = checkVip(c, a, join(join(p, 'vips'), j), name ?? '', links, taken);
      if (x !== undefined) taken.push(x);
    });
    if (v.decap !== undefined) checkDecap(c, v.decap, join(p, 'decap'));
  });

  // ---- services
  const svcs = c.array(obj, 'services', '', false);
  const bound = new Map<string, { addr: IpAddr; path: string }[]>();
  svcs?.forEach((s, i) => {
    const p = join('services', i);
    if (!c.isObject(s, p)) return;
    const type = c.string(s, 'type', p, true);
    const kind = type !== undefined ? serviceKind(type) : undefined;
    if (type !== undefined && !kind) c.fail(join(p, 'type'), `unknown service type ${JSON.stringify(type)} (known: ${serviceTypes().join(', ')})`);
    c.keys(s, p, ['type', 'vs', 'port', 'address', ...(kind?.keys ?? [])]);
    kind?.validate?.(c, s, p);
    const vs = c.string(s, 'vs', p, true);
    const links = vs !== undefined ? vsLinks.get(vs) : undefined;
    if (vs !== undefined && !links) c.fail(join(p, 'vs'), `no virtual server '${vs}' (known: ${[...vsLinks.keys()].join(', ') || 'none'})`);
    const port = c.int(s, 'port', p, kind !== undefined && kind.defaultPort === undefined, 1, 65535) ?? kind?.defaultPort;
    // An address of the VS (a VIP too), of either family, or the unspecified one (0.0.0.0 or ::: every address).
    const addr = c.addr(s, 'address', p, false);
    if (addr !== undefined && !isUnspecified(addr) && links && !links.some((l) => l.addrs.some((a) => addrEq(a.addr, addr))) &&
      !(vsVips.get(vs!) ?? []).some((a) => addrEq(a, addr))) {
      c.fail(join(p, 'address'), `${addrToString(addr)} is not an address of virtual server '${vs}'`);
    }
    if (vs !== undefined && port !== undefined) {
      // Two services share a port when their addresses do not overlap (as two sockets may: one on a
      // VIP, one on an interface address). Without an address a service listens on :: (both families).
      const key = `${vs}/${kind?.transport ?? 'udp'}/${port}`;
      const at = addr ?? ANY6;
      const list = bound.get(key) ?? [];
      const prev = list.find((b) => localOverlap(b.addr, false, at, false));
      if (prev) c.fail(join(p, 'port'), `port ${port} of virtual server '${vs}' is already used by ${prev.path}${prev.addr !== ANY6 || at !== ANY6 ? ` (${addrToString(prev.addr)} and ${addrToString(at)} overlap)` : ''}`);
      else bound.set(key, [...list, { addr: at, path: p }]);
    }
  });

  if (c.problems.length) throw new ConfigError(sourceName, c.problems);
  return obj as unknown as StackConfig;
}

/** Reads and validates a JSON config file. Relative pcap paths are resolved against the file's directory. */
export function loadConfig(file: string): StackConfig {
  if (typeof file !== 'string' || file === '') {
    throw new ConfigError(String(file), [{ path: '(file)', message: `a config file path must be a non-empty string, got ${file === '' ? 'an empty one' : describe(file)}` }]);
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read: ${fileErrorText(e)}` }]);
  }
  // A byte order mark some editors put first is no JSON, but no mistake either.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    // V8 names no position for some mistakes and quotes the text around it across lines: find it here.
    const found = findJsonError(text) ?? { offset: text.length, reason: (e as Error).message.split('\n')[0]! };
    const { line, column } = lineColumn(text, found.offset);
    throw new ConfigError(file, [{ path: '(file)', message: `not valid JSON at line ${line}, column ${column}: ${found.reason}` }]);
  }
  const cfg = validateConfig(obj, file);
  const dir = path.dirname(path.resolve(file));
  for (const d of cfg.devices) {
    if (d.input) d.input = path.resolve(dir, d.input);
    if (d.output) d.output = path.resolve(dir, d.output);
  }
  if (cfg.name === undefined) {
    const base = path.basename(file).replace(/\.json$/i, '').replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
    if (base) cfg.name = base;
  }
  return cfg;
}

/**
 * A copy of a config object for the validator. A config is JSON data: a function, a symbol or a
 * class instance in it cannot be copied, and says where (instead of a DataCloneError).
 */
export function cloneConfig(config: unknown): StackConfig {
  try {
    return structuredClone(config) as StackConfig;
  } catch (e) {
    const at = notJsonAt(config, '', 0, new Set());
    throw new ConfigError('config', [{ path: at?.path || '(top level)', message: `must be JSON data (objects, arrays, strings, numbers, true/false, null), got ${at?.what ?? (e as Error).message}` }]);
  }
}

/** The first value in `v` that JSON cannot hold, with its path (depth-limited). */
function notJsonAt(v: unknown, p: string, depth: number, seen: Set<object>): { path: string; what: string } | undefined {
  if (typeof v === 'function') return { path: p, what: 'a function' };
  if (typeof v === 'symbol') return { path: p, what: 'a symbol' };
  if (typeof v === 'bigint') return { path: p, what: `a bigint ${String(v)}` };
  if (typeof v !== 'object' || v === null || depth > 64 || seen.has(v)) return undefined;
  seen.add(v);
  for (const [k, x] of Object.entries(v)) {
    const r = notJsonAt(x, Array.isArray(v) ? join(p, Number(k)) : join(p, k), depth + 1, seen);
    if (r) return r;
  }
  return undefined;
}
