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
 *       "links": [{ "device": "xs0", "vlan": 10, "addresses": ["10.1.1.1/24"] }],
 *       "routes": [{ "dst": "default", "via": "10.1.1.254" }]
 *     }],
 *     "services": [{ "type": "udp-echo", "vs": "a", "port": 7 }]
 *   }
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCidr4, parseIpv4, ipv4ToString } from '../protocols/ipv4';
import { maskOf } from './routing';

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
  addresses?: string[];
}

export interface RouteConfig {
  dst: string;
  via?: string;
  link?: string;
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
}

export interface ServiceConfig {
  type: string;
  vs: string;
  port: number;
  address?: string;
}

export interface StackConfig {
  /** Stack name: names the control socket (default: the config file's base name, or 'xdpstack'). */
  name?: string;
  /** Control socket path, or false for none. Default /run/xdpstack/NAME.sock. */
  control?: { socket?: string } | false;
  engine?: { icmpRate?: number; icmpBurst?: number; outCapacity?: number };
  devices: DeviceConfig[];
  virtualServers: VsConfig[];
  services?: ServiceConfig[];
}

/** Service kinds the config accepts; the stack registers their implementations (see stack.ts). */
export const SERVICE_TYPES = new Set<string>(['udp-echo', 'tcp-echo']);

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: { path: string; message: string }[]) {
    super(problems.length === 1
      ? `${source}: ${problems[0]!.path}: ${problems[0]!.message}`
      : `${source}: ${problems.length} problems:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const DEV_NAME_RE = /^[A-Za-z0-9_.:-]{1,15}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

type Obj = Record<string, unknown>;

class Checker {
  readonly problems: { path: string; message: string }[] = [];

  fail(p: string, message: string): void {
    this.problems.push({ path: p || '(top level)', message });
  }

  isObject(v: unknown, p: string): v is Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.fail(p, `must be an object, got ${describe(v)}`);
      return false;
    }
    return true;
  }

  keys(o: Obj, p: string, allowed: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(join(p, k), `unknown key '${k}' (allowed: ${allowed.join(', ')})`);
    }
  }

  array(o: Obj, k: string, p: string, required: boolean): unknown[] | null {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), 'is required (an array)');
      return null;
    }
    if (!Array.isArray(v)) {
      this.fail(join(p, k), `must be an array, got ${describe(v)}`);
      return null;
    }
    // A sparse array (library API) would pass forEach with its holes unchecked.
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) {
        this.fail(join(join(p, k), i), 'is missing (a hole in the array)');
        return null;
      }
    }
    return v;
  }

  string(o: Obj, k: string, p: string, required: boolean, re?: RegExp, hint?: string): string | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), 'is required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.fail(join(p, k), `must be a string, got ${describe(v)}`);
      return undefined;
    }
    if (re && !re.test(v)) {
      this.fail(join(p, k), `${JSON.stringify(v)} is not valid${hint ? ` (${hint})` : ''}`);
      return undefined;
    }
    return v;
  }

  int(o: Obj, k: string, p: string, required: boolean, min: number, max: number): number | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), `is required (an integer ${min}..${max})`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.fail(join(p, k), `must be an integer, got ${describe(v)}`);
      return undefined;
    }
    if (v < min || v > max) {
      this.fail(join(p, k), `must be ${min}..${max}, got ${v}`);
      return undefined;
    }
    return v;
  }

  oneOf<T extends string | number>(o: Obj, k: string, p: string, required: boolean, values: readonly T[]): T | undefined {
    const v = o[k];
    if (v === undefined) {
      if (required) this.fail(join(p, k), `is required (one of ${values.map((x) => JSON.stringify(x)).join(', ')})`);
      return undefined;
    }
    if (!values.includes(v as T)) {
      this.fail(join(p, k), `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(v)}`);
      return undefined;
    }
    return v as T;
  }

  bool(o: Obj, k: string, p: string): boolean | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.fail(join(p, k), `must be true or false, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  ipv4(o: Obj, k: string, p: string, required: boolean): number | undefined {
    const s = this.string(o, k, p, required);
    if (s === undefined) return undefined;
    try {
      return parseIpv4(s);
    } catch (e) {
      this.fail(join(p, k), (e as Error).message);
      return undefined;
    }
  }
}

function join(p: string, k: string | number): string {
  if (typeof k === 'number') return `${p}[${k}]`;
  return p ? `${p}.${k}` : k;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function cidr(c: Checker, s: unknown, p: string): { addr: number; prefixLen: number } | undefined {
  if (typeof s !== 'string') {
    c.fail(p, `must be a string like "10.0.0.1/24", got ${describe(s)}`);
    return undefined;
  }
  try {
    return parseCidr4(s);
  } catch (e) {
    c.fail(p, (e as Error).message);
    return undefined;
  }
}

const DEVICE_KEYS: Record<DriverKind, readonly string[]> = {
  afxdp: ['name', 'driver', 'ifname', 'queue', 'frameSize', 'frameCount', 'mode', 'zeroCopy', 'busyPoll', 'ringSize'],
  pcap: ['name', 'driver', 'mac', 'mtu', 'frameSize', 'frameCount', 'input', 'output'],
  memory: ['name', 'driver', 'mac', 'mtu', 'frameSize', 'frameCount', 'seed'],
};

interface DevInfo { kind: DriverKind; mtu: number | undefined; mac: string | undefined }
interface LinkInfo { name: string; device: string; vlan: number; mac: string; addrs: { addr: number; prefixLen: number }[] }

/**
 * Checks a parsed config and returns it typed. `sourceName` (usually the file path) starts every
 * error message. Throws ConfigError listing every problem found.
 */
export function validateConfig(obj: unknown, sourceName = 'config'): StackConfig {
  const c = new Checker();
  if (!c.isObject(obj, '')) throw new ConfigError(sourceName, c.problems);
  c.keys(obj, '', ['name', 'control', 'engine', 'devices', 'virtualServers', 'services']);
  c.string(obj, 'name', '', false, NAME_RE, 'letters, digits, _ . -; at most 64');
  if (obj.control !== undefined && obj.control !== false && c.isObject(obj.control, 'control')) {
    c.keys(obj.control, 'control', ['socket']);
    c.string(obj.control, 'socket', 'control', false, /^\S+$/, 'a path');
  }
  if (obj.engine !== undefined && c.isObject(obj.engine, 'engine')) {
    c.keys(obj.engine, 'engine', ['icmpRate', 'icmpBurst', 'outCapacity']);
    c.int(obj.engine, 'icmpRate', 'engine', false, 0, 1_000_000);
    c.int(obj.engine, 'icmpBurst', 'engine', false, 0, 1_000_000);
    c.int(obj.engine, 'outCapacity', 'engine', false, 64, 1 << 20);
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

  // ---- virtual servers
  const vsLinks = new Map<string, LinkInfo[]>();
  const addrOwner = new Map<string, string>();
  const macOwner = new Map<string, string>();
  const vss = c.array(obj, 'virtualServers', '', true);
  vss?.forEach((v, i) => {
    const p = join('virtualServers', i);
    if (!c.isObject(v, p)) return;
    c.keys(v, p, ['name', 'links', 'routes', 'rules']);
    const name = c.string(v, 'name', p, true, NAME_RE, 'letters, digits, _ . -; at most 64');
    const links: LinkInfo[] = [];
    if (name) {
      if (vsLinks.has(name)) c.fail(join(p, 'name'), `duplicate virtual server name '${name}'`);
      else vsLinks.set(name, links);
    }
    const ls = c.array(v, 'links', p, true);
    ls?.forEach((l, j) => {
      const lp = join(join(p, 'links'), j);
      if (!c.isObject(l, lp)) return;
      c.keys(l, lp, ['name', 'device', 'vlan', 'mac', 'mtu', 'addresses']);
      const device = c.string(l, 'device', lp, true);
      const dev = device !== undefined ? devs.get(device) : undefined;
      if (device !== undefined && !dev) {
        c.fail(join(lp, 'device'), `no device '${device}' in devices (known: ${[...devs.keys()].join(', ') || 'none'})`);
      }
      const vlan = c.int(l, 'vlan', lp, false, 1, 4094) ?? -1;
      let mac = c.string(l, 'mac', lp, false, MAC_RE, 'like 02:00:00:00:00:01');
      if (mac && (parseInt(mac.slice(0, 2), 16) & 1)) { c.fail(join(lp, 'mac'), `${mac} is a multicast address`); mac = undefined; }
      const maxMtu = dev?.mtu ?? 9000;
      c.int(l, 'mtu', lp, false, 68, maxMtu);
      const lname = c.string(l, 'name', lp, false, NAME_RE, 'letters, digits, _ . -') ??
        (device ? (vlan >= 0 ? `${device}.${vlan}` : device) : `#${j}`);
      if (links.some((x) => x.name === lname)) c.fail(lp, `duplicate link name '${lname}' in virtual server '${name}' (give links distinct 'name's)`);
      const effMac = (mac ?? dev?.mac ?? `device:${device}`).toLowerCase();
      const info: LinkInfo = { name: lname, device: device ?? '', vlan, mac: effMac, addrs: [] };
      if (device && dev) {
        const key = `${device}/${vlan}/${effMac}`;
        const prev = macOwner.get(key);
        if (prev) {
          c.fail(lp, `device ${device}${vlan >= 0 ? ` VLAN ${vlan}` : ' (untagged)'} with the same MAC is already used by ${prev}: give one of them its own 'mac'`);
        } else macOwner.set(key, lp);
      }
      const addrs = c.array(l, 'addresses', lp, false);
      addrs?.forEach((a, k) => {
        const ap = join(join(lp, 'addresses'), k);
        const r = cidr(c, a, ap);
        if (!r) return;
        if (r.addr === 0 || r.addr >= 0xe0000000 || (r.addr >>> 24) === 127) {
          c.fail(ap, `${a} is not a usable unicast address`);
          return;
        }
        if (r.prefixLen === 0) { c.fail(ap, 'prefix length must be 1..32'); return; }
        const key = `${device}/${vlan}/${r.addr}`;
        const prev = addrOwner.get(key);
        if (prev) c.fail(ap, `${ipv4ToString(r.addr)} is already used on device ${device}${vlan >= 0 ? ` VLAN ${vlan}` : ''} by ${prev}`);
        else addrOwner.set(key, ap);
        info.addrs.push(r);
      });
      links.push(info);
    });

    const routes = c.array(v, 'routes', p, false);
    routes?.forEach((r, j) => {
      const rp = join(join(p, 'routes'), j);
      if (!c.isObject(r, rp)) return;
      c.keys(r, rp, ['dst', 'via', 'link', 'table', 'metric', 'src']);
      const dst = c.string(r, 'dst', rp, true);
      if (dst !== undefined && dst !== 'default') {
        const d = cidr(c, dst, join(rp, 'dst'));
        if (d && ((d.addr & ~maskOf(d.prefixLen)) >>> 0) !== 0) {
          c.fail(join(rp, 'dst'), `${dst} has host bits set (did you mean ${ipv4ToString((d.addr & maskOf(d.prefixLen)) >>> 0)}/${d.prefixLen}?)`);
        }
      }
      const via = c.ipv4(r, 'via', rp, false);
      const linkName = c.string(r, 'link', rp, false);
      c.int(r, 'table', rp, false, 1, 0xffffffff);
      c.int(r, 'metric', rp, false, 0, 0xffffffff);
      const src = c.ipv4(r, 'src', rp, false);
      let link: LinkInfo | undefined;
      if (linkName !== undefined) {
        link = links.find((x) => x.name === linkName);
        if (!link) c.fail(join(rp, 'link'), `virtual server '${name}' has no link '${linkName}' (links: ${links.map((x) => x.name).join(', ') || 'none'})`);
      }
      if (via !== undefined) {
        const onLink = (x: LinkInfo) => x.addrs.some((a) => ((a.addr ^ via) & maskOf(a.prefixLen)) === 0);
        if (link ? !onLink(link) : !links.some(onLink)) {
          c.fail(join(rp, 'via'), `gateway ${ipv4ToString(via)} is not on a connected network of ${link ? `link '${link.name}'` : `virtual server '${name}'`}`);
        }
      } else if (linkName === undefined && links.length > 1) {
        c.fail(rp, `give 'via' or 'link': virtual server '${name}' has ${links.length} links`);
      } else if (links.length === 0) {
        c.fail(rp, `virtual server '${name}' has no link for this route`);
      }
      if (src !== undefined && !links.some((x) => x.addrs.some((a) => a.addr === src))) {
        c.fail(join(rp, 'src'), `${ipv4ToString(src)} is not an address of virtual server '${name}'`);
      }
    });

    const rules = c.array(v, 'rules', p, false);
    const prios = new Set<number>();
    rules?.forEach((r, j) => {
      const rp = join(join(p, 'rules'), j);
      if (!c.isObject(r, rp)) return;
      c.keys(r, rp, ['priority', 'from', 'fwmark', 'table']);
      const prio = c.int(r, 'priority', rp, true, 0, 32767);
      if (prio !== undefined) {
        if (prios.has(prio)) c.fail(join(rp, 'priority'), `duplicate rule priority ${prio}`);
        prios.add(prio);
      }
      const from = c.string(r, 'from', rp, false);
      if (from !== undefined && from !== 'all') {
        if (from.includes('/')) cidr(c, from, join(rp, 'from'));
        else c.ipv4(r, 'from', rp, false);
      }
      c.int(r, 'fwmark', rp, false, 0, 0xffffffff);
      c.int(r, 'table', rp, true, 1, 0xffffffff);
    });
  });

  // ---- services
  const svcs = c.array(obj, 'services', '', false);
  const bound = new Map<string, string>();
  svcs?.forEach((s, i) => {
    const p = join('services', i);
    if (!c.isObject(s, p)) return;
    c.keys(s, p, ['type', 'vs', 'port', 'address']);
    const type = c.string(s, 'type', p, true);
    if (type !== undefined && !SERVICE_TYPES.has(type)) c.fail(join(p, 'type'), `unknown service type ${JSON.stringify(type)} (known: ${[...SERVICE_TYPES].join(', ')})`);
    const vs = c.string(s, 'vs', p, true);
    const links = vs !== undefined ? vsLinks.get(vs) : undefined;
    if (vs !== undefined && !links) c.fail(join(p, 'vs'), `no virtual server '${vs}' (known: ${[...vsLinks.keys()].join(', ') || 'none'})`);
    const port = c.int(s, 'port', p, true, 1, 65535);
    const addr = c.ipv4(s, 'address', p, false);
    if (addr !== undefined && addr !== 0 && links && !links.some((l) => l.addrs.some((a) => a.addr === addr))) {
      c.fail(join(p, 'address'), `${ipv4ToString(addr)} is not an address of virtual server '${vs}'`);
    }
    if (vs !== undefined && port !== undefined) {
      const key = `${vs}/${type?.startsWith('tcp-') ? 'tcp' : 'udp'}/${port}`;
      const prev = bound.get(key);
      if (prev) c.fail(join(p, 'port'), `port ${port} of virtual server '${vs}' is already used by ${prev}`);
      else bound.set(key, p);
    }
  });

  if (c.problems.length) throw new ConfigError(sourceName, c.problems);
  return obj as unknown as StackConfig;
}

/** Reads and validates a JSON config file. Relative pcap paths are resolved against the file's directory. */
export function loadConfig(file: string): StackConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    let where = '';
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      where = ` at line ${line}, column ${pos - before.lastIndexOf('\n')}`;
    }
    throw new ConfigError(file, [{ path: '(file)', message: `not valid JSON${where}: ${(e as Error).message}` }]);
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
