/**
 * Fuzz targets for the file and control-plane inputs: the capture reader (driver/pcap.ts), the
 * config loader (stack/control/config.ts) and the control-socket protocol (stack/control/control.ts).
 *
 * - Capture reader: any bytes give records or a CaptureFormatError (never another exception); a
 *   record's bytes lie inside the file, its timestamp is a finite number, origLen ≥ its length;
 *   well-formed files built from known records read back to them.
 * - Config loader: any JSON value gives a config or a ConfigError (never a TypeError or another
 *   exception); an accepted config is accepted again after a JSON round trip.
 * - Control socket: any line gets exactly one answer, a JSON object with `ok` a boolean and, when
 *   false, an error message; no request makes the handler fail with an internal error
 *   (TypeError, RangeError, ...); the stack goes on answering `ping` afterwards.
 */
import * as fc from 'fast-check';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { readCapture, CaptureFormatError } from '../../driver/pcap';
import { validateConfig, ConfigError, StackConfig } from '../../stack/control/config';
import { ControlServer, Request as CtlRequest } from '../../stack/control/control';
import { createStack, Stack } from '../../stack/stack';
import { Target, Violation, expect } from './lib';
import { captureFiles } from './corpus';

// ------------------------------------------------------------------ capture reader

interface Rec { sec: number; frac: number; data: Uint8Array; origExtra: number }
interface CapIn {
  ng: boolean; le: boolean; nano: boolean; linkType: number; recs: Rec[];
  /** pcapng: if_tsresol option value (or none), if_tsoffset, and block kinds per record (6 EPB, 3 SPB, 2 PB, other: unknown). */
  tsresol: number | null; tsoffset: number | null; kinds: number[];
  /** Optional damage: a 32-bit word replaced at a position (fraction of the length). */
  damage: { at: number; value: number } | null;
}

function buildCapture(x: CapIn): { bytes: Uint8Array; expect: Rec[] | null } {
  const parts: Uint8Array[] = [];
  const u32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v >>> 0, x.le); return b; };
  const u16 = (v: number) => { const b = new Uint8Array(2); new DataView(b.buffer).setUint16(0, v & 0xffff, x.le); return b; };
  const pad4 = (b: Uint8Array) => { const n = (b.length + 3) & ~3; const o = new Uint8Array(n); o.set(b); return o; };
  const cat = (...xs: Uint8Array[]) => { const n = xs.reduce((a, b) => a + b.length, 0); const o = new Uint8Array(n); let p = 0; for (const b of xs) { o.set(b, p); p += b.length; } return o; };
  let expected: Rec[] | null = [];
  if (!x.ng) {
    parts.push(u32(x.nano ? 0xa1b23c4d : 0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(x.linkType));
    for (const r of x.recs) {
      const frac = r.frac % (x.nano ? 1e9 : 1e6);
      parts.push(u32(r.sec), u32(frac), u32(r.data.length), u32(r.data.length + r.origExtra), r.data);
    }
  } else {
    const block = (type: number, body: Uint8Array) => { const b = pad4(body); return cat(u32(type), u32(b.length + 12), b, u32(b.length + 12)); };
    parts.push(block(0x0a0d0d0a, cat(u32(0x1a2b3c4d), u16(1), u16(0), u32(0xffffffff), u32(0xffffffff))));
    const opts: Uint8Array[] = [];
    if (x.tsresol !== null) opts.push(u16(9), u16(1), pad4(Uint8Array.of(x.tsresol)));
    if (x.tsoffset !== null) { const v = new Uint8Array(8); new DataView(v.buffer).setBigInt64(0, BigInt(x.tsoffset), x.le); opts.push(u16(14), u16(8), v); }
    if (opts.length) opts.push(u16(0), u16(0));
    parts.push(block(1, cat(u16(x.linkType), u16(0), u32(0), ...opts)));
    x.recs.forEach((r, i) => {
      const k = x.kinds[i % Math.max(1, x.kinds.length)] ?? 6;
      if (k === 6) parts.push(block(6, cat(u32(0), u32(r.sec), u32(r.frac), u32(r.data.length), u32(r.data.length + r.origExtra), r.data)));
      else if (k === 2) parts.push(block(2, cat(u16(0), u16(0), u32(r.sec), u32(r.frac), u32(r.data.length), u32(r.data.length + r.origExtra), r.data)));
      else if (k === 3) parts.push(block(3, cat(u32(r.data.length), r.data)));
      else { parts.push(block(0x40000000 + k, r.data)); return; }
      expected!.push(r);
    });
    if (x.tsresol !== null && (x.tsresol & 0x7f) > 63) expected = null;
  }
  let bytes = cat(...parts);
  if (!x.ng) expected = x.recs;
  if (x.damage && bytes.length >= 4) {
    const at = Math.min(bytes.length - 4, Math.floor(x.damage.at * bytes.length)) & ~3;
    new DataView(bytes.buffer).setUint32(at, x.damage.value >>> 0, x.le);
    expected = null;
  }
  return { bytes, expect: expected };
}

function checkCapture(bytes: Uint8Array): ReturnType<typeof readCapture> | null {
  let recs: ReturnType<typeof readCapture>;
  try {
    recs = readCapture(bytes);
  } catch (e) {
    if (e instanceof CaptureFormatError) {
      expect(e.offset >= 0 && e.offset <= bytes.length, `error offset ${e.offset} outside the file of ${bytes.length} bytes`);
      return null;
    }
    throw e;
  }
  for (const r of recs) {
    expect(r.data.buffer === bytes.buffer && r.data.byteOffset >= bytes.byteOffset && r.data.byteOffset + r.data.length <= bytes.byteOffset + bytes.length,
      'record bytes outside the file');
    expect(Number.isFinite(r.tsUs), `timestamp ${r.tsUs}`);
    expect(r.origLen >= r.data.length, 'origLen < captured length');
    expect(Number.isInteger(r.linkType) && r.linkType >= 0, 'link type');
  }
  return recs;
}

export const pcapTarget: Target<CapIn> = {
  name: 'pcap',
  arb: fc.record({
    ng: fc.boolean(), le: fc.boolean(), nano: fc.boolean(),
    linkType: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 0xffff })),
    recs: fc.array(fc.record({
      sec: fc.integer({ min: 0, max: 0xffffffff }), frac: fc.integer({ min: 0, max: 0xffffffff }),
      data: fc.uint8Array({ maxLength: 80 }), origExtra: fc.integer({ min: 0, max: 100 }),
    }), { maxLength: 5 }),
    tsresol: fc.option(fc.integer({ min: 0, max: 255 })),
    tsoffset: fc.option(fc.integer({ min: -1e12, max: 1e12 })),
    kinds: fc.array(fc.constantFrom(6, 6, 2, 3, 5, 0x77), { maxLength: 5 }),
    damage: fc.option(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), value: fc.integer({ min: 0, max: 0xffffffff }) }), { freq: 3 }),
  }),
  toBytes: (x) => buildCapture(x).bytes,
  execStructured(x) {
    const { bytes, expect: want } = buildCapture(x);
    const got = checkCapture(bytes);
    if (want && !x.ng) {
      expect(got !== null && got.length === want.length, `well-formed pcap refused or miscounted: ${got?.length}`);
      got!.forEach((r, i) => expect(Buffer.compare(Buffer.from(r.data), Buffer.from(want[i]!.data)) === 0, 'record bytes'));
    }
  },
  corpus: () => [...captureFiles()],
  execBytes: (b) => { checkCapture(b); },
  structuredShare: 0.15,
  maxLen: 4096,
};

// ------------------------------------------------------------------ config loader

const VALID: StackConfig = {
  name: 'fz',
  control: { socket: '/tmp/x.sock' },
  engine: { icmpRate: 100, icmpBurst: 50, outCapacity: 1024 },
  devices: [
    { name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' },
    { name: 'eth1', driver: 'afxdp', queue: 0 } as never,
    { name: 'p0', driver: 'pcap', input: 'in.pcap', output: 'out.pcap' } as never,
  ],
  virtualServers: [
    { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', '10.1.2.1/24'] }], routes: [{ dst: '10.9.0.0/16', via: '10.1.1.254' }, { dst: '0.0.0.0/0', via: '10.1.1.254', table: 100 }] as never, rules: [{ from: '10.1.2.0/24', table: 100 }] as never },
    { name: 'b', links: [{ device: 'm0', vlan: 20, mac: '02:00:00:00:00:02', addresses: ['10.1.1.1/24'] }] },
  ],
  services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'b', port: 7 }],
} as StackConfig;

function checkConfig(v: unknown): void {
  let cfg: StackConfig;
  try {
    cfg = validateConfig(v, 'fuzz.json');
  } catch (e) {
    if (e instanceof ConfigError) {
      expect(e.problems.length > 0 && e.message.startsWith('fuzz.json'), `ConfigError without a problem: ${e.message}`);
      return;
    }
    throw new Violation(`config gave ${(e as Error)?.name}: ${(e as Error)?.message} instead of a ConfigError`);
  }
  // An accepted config survives a JSON round trip (what a file would hold).
  try {
    validateConfig(JSON.parse(JSON.stringify(cfg)), 'again.json');
  } catch (e) {
    throw new Violation(`accepted config refused after a JSON round trip: ${(e as Error).message}`);
  }
}

/** A JSON-like value for a config field: valid-looking strings and numbers or any JSON. */
const fieldArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('10.1.1.1/24', '0.0.0.0/0', '127.0.0.1/8', '10.1.1.1', '02:00:00:00:00:09', 'm0', 'a', 'b', 'memory', 'afxdp', 'pcap', 'udp-echo', 'tcp-echo', '', ' ', '1e3', 'x'.repeat(70)),
  fc.constantFrom(0, -1, 1, 7, 10, 20, 4094, 4095, 4096, 65535, 65536, 1.5, 1e300, -0),
  fc.constantFrom(null, true, false, [], {}, [null], { name: 'x' }),
  fc.jsonValue({ maxDepth: 2 }),
);

interface CfgIn { edits: { path: number[]; key: string | null; value: unknown; del: boolean }[]; raw: unknown }

function applyEdits(x: CfgIn): unknown {
  if (x.raw !== undefined) return x.raw;
  const root = JSON.parse(JSON.stringify(VALID)) as unknown;
  for (const e of x.edits) {
    // Walk down by indexes into the object/array tree, then set, add or delete a field.
    let cur: unknown = root;
    let parent: Record<string, unknown> | unknown[] | null = null;
    let parentKey: string | number = '';
    for (const step of e.path) {
      if (cur === null || typeof cur !== 'object') break;
      const keys = Object.keys(cur);
      if (!keys.length) break;
      const k = keys[step % keys.length]!;
      parent = cur as Record<string, unknown>;
      parentKey = Array.isArray(cur) ? Number(k) : k;
      cur = (cur as Record<string, unknown>)[k];
    }
    // A copy of the value: the generators share constant objects between runs.
    const value = e.value === undefined ? undefined : JSON.parse(JSON.stringify(e.value)) as unknown;
    if (cur !== null && typeof cur === 'object' && e.key !== null) {
      if (Array.isArray(cur) && !/^\d{1,2}$/.test(e.key)) continue; // only indexes of arrays
      if (e.del) delete (cur as Record<string, unknown>)[e.key];
      else (cur as Record<string, unknown>)[e.key] = value;
    } else if (parent) {
      if (e.del && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[parentKey as string];
      else (parent as Record<string, unknown>)[parentKey as string] = value;
    }
  }
  return root;
}

const CONFIG_KEYS = ['name', 'control', 'engine', 'devices', 'virtualServers', 'services', 'links', 'addresses', 'routes', 'rules', 'device', 'vlan', 'mac',
  'driver', 'queue', 'input', 'output', 'socket', 'icmpRate', 'icmpBurst', 'outCapacity', 'dst', 'via', 'src', 'table', 'metric', 'from', 'to', 'type', 'vs', 'port', 'mtu', 'fwmark', 'priority'];

export const configTarget: Target<CfgIn> = {
  name: 'config',
  arb: fc.record({
    edits: fc.array(fc.record({
      path: fc.array(fc.nat(), { maxLength: 5 }),
      key: fc.option(fc.oneof(fc.constantFrom(...CONFIG_KEYS), fc.string({ maxLength: 8 })), { freq: 2 }),
      value: fieldArb,
      del: fc.boolean(),
    }), { maxLength: 4 }),
    raw: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) }),
  }),
  toBytes: (x) => new TextEncoder().encode(JSON.stringify(applyEdits(x)) ?? 'null'),
  execStructured(x) { checkConfig(applyEdits(x)); },
  corpus: () => {
    const out = [new TextEncoder().encode(JSON.stringify(VALID)), new TextEncoder().encode(JSON.stringify(VALID, null, 2))];
    for (const f of ['examples/demo.json']) {
      try { out.push(new Uint8Array(fs.readFileSync(path.join(__dirname, '..', '..', '..', f)))); } catch { /* not in this checkout */ }
    }
    return out;
  },
  execBytes(b) {
    // What loadConfig does with a file's text: JSON.parse (its error is a ConfigError there), then validate.
    let v: unknown;
    try { v = JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8')); } catch { return; }
    checkConfig(v);
  },
  structuredShare: 0.25,
  maxLen: 4096,
};

// ------------------------------------------------------------------ control socket

/** A stand-in for the client connection: collects what the server writes. */
class FakeConn {
  destroyed = false;
  readonly out: string[] = [];
  write(s: string): boolean { this.out.push(s); return true; }
  destroy(): void { this.destroyed = true; }
}

interface ControlHarness { stack: Stack; server: ControlServer; internal: Error[] }
let harness: ControlHarness | null = null;
let linesSinceReset = 0;

function controlConfig(): StackConfig {
  return {
    name: 'fzctl',
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: '10.9.0.0/16', via: '10.1.1.254' }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }] },
    ],
    services: [{ type: 'udp-echo', vs: 'a', port: 7 }],
  };
}

function getHarness(): ControlHarness {
  if (harness && linesSinceReset < 20000) return harness;
  if (harness) { harness.stack.close(); }
  const stack = createStack(controlConfig());
  // The server is used without listening: lines go straight to its line handler.
  const Ctor = ControlServer as unknown as new (s: Stack, p: string) => ControlServer;
  const server = new Ctor(stack, path.join(os.tmpdir(), 'xdpstack-fuzz-unused.sock'));
  const internal: Error[] = [];
  const target = server.target as { request(req: CtlRequest): unknown };
  const orig = target.request.bind(target);
  target.request = (req: CtlRequest) => {
    try { return orig(req); } catch (e) {
      // Errors meant for the client are plain Errors (or the config validator's); anything else is a bug.
      // (RangeError with a message of the address parsers is how they refuse bad text: not internal.)
      if (e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError || !(e instanceof Error) ||
        (e instanceof RangeError && /call stack|Invalid (array|string|typed array) length|out of range|Invalid time/i.test(e.message))) internal.push(e as Error);
      throw e;
    }
  };
  harness = { stack, server, internal };
  linesSinceReset = 0;
  return harness;
}

function checkLine(line: string): void {
  // Trace requests write capture files to the path given, and sessions (trace, icmp.echo) answer
  // over time, not once: never sent by the fuzzer.
  if (/"cmd"\s*:\s*"trace"/.test(line) || /trace/.test(line) && /"out"/.test(line) || /icmp\.echo/.test(line)) return;
  const h = getHarness();
  linesSinceReset++;
  const c = new FakeConn();
  const trimmed = line.trim();
  if (!trimmed) return;
  const st = { sessions: new Set(), pending: 0, readEnded: false, binary: false, deferred: [] };
  (h.server as unknown as { handleLine(c: FakeConn, l: string, st: unknown): void }).handleLine(c, trimmed, st);
  expect(c.out.length === 1, `${c.out.length} answers to one line`);
  let r: { ok?: unknown; error?: unknown };
  try { r = JSON.parse(c.out[0]!) as typeof r; } catch { throw new Violation(`answer is not JSON: ${c.out[0]!.slice(0, 100)}`); }
  expect(c.out[0]!.endsWith('\n') && typeof r.ok === 'boolean', 'answer shape');
  if (r.ok === false) expect(typeof r.error === 'string' && r.error.length > 0, 'error answer without a message');
  if (h.internal.length) {
    const e = h.internal[0]!;
    h.internal.length = 0;
    let cmd = '';
    try { cmd = String((JSON.parse(trimmed) as { cmd?: unknown }).cmd); } catch { /* not JSON */ }
    throw new Violation(`request '${cmd}' made the server fail with ${e.name}: ${e.message}`);
  }
}

const CMDS = ['ping', 'show', 'vs.add', 'vs.del', 'link.add', 'link.del', 'address.add', 'address.del', 'route.add', 'route.del'];
const KINDS = ['vs', 'links', 'addresses', 'routes', 'rules', 'neighbors', 'counters', 'pool', 'x'];

interface CtlIn { cmd: string; fields: [string, unknown][]; wrap: number }

export const controlTarget: Target<CtlIn> = {
  name: 'control',
  arb: fc.record({
    cmd: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...CMDS) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) }),
    fields: fc.array(fc.tuple(
      fc.oneof(fc.constantFrom('name', 'vs', 'kind', 'links', 'cidr', 'link', 'dst', 'via', 'src', 'table', 'metric', 'device', 'cmd', '__proto__', 'constructor'), fc.string({ maxLength: 6 })),
      fc.oneof(fc.constantFrom(...KINDS, 'a', 'b', 'c', 'm0', 'm0.10', 'm0.30', '10.1.1.5/24', '10.9.0.0/16', '10.1.1.254', '127.0.0.1/8', '0.0.0.0/0'),
        fc.constantFrom([{ device: 'm0', vlan: 30 }], [{ device: 'm0', vlan: 10 }], [{ device: 'nope' }], [null], [{}], [{ device: 'm0', vlan: 30, addresses: ['10.3.3.3/24'] }]),
        fc.jsonValue({ maxDepth: 2 })),
    ), { maxLength: 5 }),
    wrap: fc.integer({ min: 0, max: 9 }),
  }),
  toBytes: (x) => new TextEncoder().encode(ctlLine(x)),
  execStructured(x) { checkLine(ctlLine(x)); },
  corpus: () => [
    '{"cmd":"ping"}', '{"cmd":"show","kind":"counters"}', '{"cmd":"show","kind":"vs","vs":"a"}',
    '{"cmd":"vs.add","name":"c","links":[{"device":"m0","vlan":30}]}', '{"cmd":"vs.del","name":"c"}',
    '{"cmd":"address.add","vs":"a","link":"m0.10","cidr":"10.1.1.5/24"}', '{"cmd":"address.del","vs":"a","cidr":"10.1.1.5/24"}',
    '{"cmd":"route.add","vs":"a","dst":"10.8.0.0/16","via":"10.1.1.254","table":100}', '{"cmd":"route.del","vs":"a","dst":"10.8.0.0/16"}',
    '{"cmd":"show","kind":"neighbors"}', '[1,2]', 'null', '"x"',
  ].map((s) => new TextEncoder().encode(s)),
  execBytes(b) { checkLine(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8').split('\n')[0]!); },
  periodic() {
    // The stack still answers after everything it was sent.
    const h = getHarness();
    const c = new FakeConn();
    (h.server as unknown as { handleLine(c: FakeConn, l: string, cl: (() => void)[]): void }).handleLine(c, '{"cmd":"ping"}', []);
    expect(c.out.length === 1 && (JSON.parse(c.out[0]!) as { ok: boolean }).ok === true, 'ping not answered');
  },
  close() { harness?.stack.close(); harness = null; },
  structuredShare: 0.25,
  maxLen: 1024,
};

function ctlLine(x: CtlIn): string {
  const o: Record<string, unknown> = { cmd: x.cmd };
  for (const [k, v] of x.fields) o[k] = v;
  const s = JSON.stringify(o);
  // Sometimes not a request object at all, or with junk around it.
  if (x.wrap === 0) return `[${s}]`;
  if (x.wrap === 1) return s.slice(0, Math.max(1, s.length >> 1));
  if (x.wrap === 2) return `${s} trailing`;
  return s;
}
