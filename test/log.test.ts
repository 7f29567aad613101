/**
 * Logs (stack/control/log.ts): one line per event with its ISO 8601 time and level, filtered by
 * level, as text or JSON; every runtime change (from the API and from the control socket, single
 * stack or stack of shards) is logged once; a limit reached is logged once when first reached and
 * once when clear again, however many packets hit it; a device lost and back is logged once each
 * (lab, AF_XDP over veth, as root).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createLogger, formatLine, LogLevel } from '../stack/control/log';
import { ConfigError, StackConfig, validateConfig } from '../stack/control/config';
import { ControlServer, controlRequest } from '../stack/control/control';
import { createStack, Stack } from '../stack/stack';
import { ShardedStack } from '../stack/shard/threads';
import { runStack } from '../stack/cli/stack-commands';
import { main } from '../stack/cli/cli';
import { peerWorld, PeerWorld } from './lib/peer-world';
import { canRunPrivileged, labPrefix } from './lib/env';
import { sleep } from './lib/rig';
import { labDown, labUp } from '../stack/lab/lab';
import { TcpSegmentOut, TH_SYN } from '../protocols/tcp/types';
import { tcpHeaderLen, writeTcp } from '../protocols/tcp';
import { ETH_P_IPV4, writeEth } from '../protocols/ethernet';
import { IPPROTO_TCP, writeIpv4 } from '../protocols/ipv4';
import { ip } from './lib/frames';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-log-'));
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;
/** The event part of text lines (after the time and the padded level). */
const events = (lines: string[], level = 'info') => lines.filter((l) => l.slice(25, 31) === level.padEnd(6)).map((l) => l.slice(31));

// ------------------------------------------------------------------------------- the logger

test('a line: ISO time, level padded to 5, event, key=value fields (quoted when needed); JSON one object per line', () => {
  const t = new Date('2026-12-02T15:04:05.123Z');
  assert.is(formatLine('text', t, 'info', 'vs.add', { name: 'c', links: 1 }), '2026-12-02T15:04:05.123Z info  vs.add name=c links=1');
  assert.is(formatLine('text', t, 'error', 'x', {}), '2026-12-02T15:04:05.123Z error x');
  assert.is(formatLine('text', t, 'warn', 'limit.reached', { vs: null, scope: 'listener *:80', limit: 'tcpSynQueue', used: 16, gone: undefined }),
    '2026-12-02T15:04:05.123Z warn  limit.reached scope="listener *:80" limit=tcpSynQueue used=16');
  assert.is(formatLine('text', t, 'debug', 'e', { a: '', b: 'x="y"', c: true }), '2026-12-02T15:04:05.123Z debug e a="" b="x=\\"y\\"" c=true');
  assert.equal(JSON.parse(formatLine('json', t, 'warn', 'device.lost', { device: 'xs0', queue: 0, none: null })),
    { time: '2026-12-02T15:04:05.123Z', level: 'warn', msg: 'device.lost', device: 'xs0', queue: 0 });
});

test('levels filter: a logger writes its level and the more severe ones', () => {
  const all: LogLevel[] = ['error', 'warn', 'info', 'debug'];
  for (const [i, level] of all.entries()) {
    const lines: string[] = [];
    const log = createLogger({ level, write: (l) => lines.push(l), clock: () => new Date(0) });
    for (const l of all) log[l](`m-${l}`);
    assert.equal(lines.map((l) => l.split(' ').slice(1).filter(Boolean)[0]), all.slice(0, i + 1), `level ${level}`);
    assert.equal(all.map((l) => log.enabled(l)), all.map((_, j) => j <= i));
  }
  assert.throws(() => createLogger({ level: 'loud' as LogLevel }), /log level must be one of error, warn, info, debug, got "loud"/);
  assert.throws(() => createLogger({ format: 'xml' as 'json' }), /log format must be one of text, json, got "xml"/);
  let err: unknown = null;
  try {
    validateConfig({ logLevel: 'verbose', logFormat: 'yaml', devices: [{ name: 'eth0', driver: 'memory' }], virtualServers: [] }, 'stack.json');
  } catch (e) { err = e; }
  assert.instance(err, ConfigError);
  assert.match((err as Error).message, /logLevel: must be one of error, warn, info, debug, got "verbose"/);
  assert.match((err as Error).message, /logFormat: must be one of text, json, got "yaml"/);
});

// ------------------------------------------------------------------------------- runtime changes

function smallConfig(name: string): StackConfig {
  return {
    name, control: false, engine: { dadTransmits: 0 },
    devices: [{ name: 'eth0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'eth0', vlan: 10, addresses: ['10.1.1.1/24'] }] }],
  };
}

test('every runtime change from the API is logged once, after it is made; a refused one is not; the config\'s own at debug', () => {
  const lines: string[] = [];
  const s = createStack(smallConfig('api'), { log: (l) => lines.push(l) });
  try {
    assert.equal(events(lines), [], 'building the config logs nothing at info');
    const c = s.createVs('c', [{ device: 'eth0', vlan: 30, addresses: ['10.3.3.1/24'] }]);
    c.addLink({ device: 'eth0', vlan: 40, addresses: ['10.4.4.1/24', 'fd00:4::1/64'] });
    c.addAddress('10.3.3.5/24', 'eth0.30');
    c.removeAddress('10.3.3.5/24', 'eth0.30');
    c.addRoute({ dst: '10.9.0.0/16', via: '10.3.3.254', table: 100 });
    c.removeRoute({ dst: '10.9.0.0/16', via: '10.3.3.254', table: 100 });
    c.addRule({ priority: 100, from: '10.3.3.0/24', table: 100 });
    c.removeRule(100);
    assert.throws(() => c.addAddress('10.3.3.300/24', 'eth0.30'), /not an IPv4 address|10\.3\.3\.300/);
    assert.throws(() => s.createVs('c'), /already exists/);
    c.removeLink('eth0.40');
    s.destroyVs('c');
    assert.equal(events(lines), [
      'vs.add name=c links=1',
      'link.add vs=c name=eth0.40 device=eth0 vlan=40 addresses=10.4.4.1/24,fd00:4::1/64',
      'address.add vs=c link=eth0.30 cidr=10.3.3.5/24',
      'address.del vs=c link=eth0.30 cidr=10.3.3.5/24',
      'route.add vs=c dst=10.9.0.0/16 via=10.3.3.254 table=100',
      'route.del vs=c dst=10.9.0.0/16 via=10.3.3.254 table=100 removed=1',
      'rule.add vs=c priority=100 from=10.3.3.0/24 table=100',
      'rule.del vs=c priority=100 removed=1',
      'link.del vs=c link=eth0.40',
      'vs.del name=c',
    ]);
    for (const l of lines) assert.match(l, TIME);
  } finally {
    s.close();
  }
  // At debug, the config's own VS shows too.
  const dbg: string[] = [];
  createStack(smallConfig('dbg'), { log: (l) => dbg.push(l), logLevel: 'debug' }).close();
  assert.equal(events(dbg, 'debug'), ['vs.add name=a links=0', 'link.add vs=a name=eth0.10 device=eth0 vlan=10 addresses=10.1.1.1/24']);
  // The config's logLevel applies when the options say none.
  const quietLines: string[] = [];
  const q = createStack({ ...smallConfig('q'), logLevel: 'warn' }, { log: (l) => quietLines.push(l) });
  q.createVs('z');
  q.close();
  assert.equal(quietLines, []);
});

test('changes through the control socket are logged once each, as the request said them', async () => {
  const lines: string[] = [];
  const s = createStack(smallConfig('ctl'), { log: (l) => lines.push(l) });
  const sock = path.join(dir, 'ctl.sock');
  const server = await ControlServer.listen(s, sock);
  try {
    const reqs = [
      { cmd: 'vs.add', name: 'c', links: [{ device: 'eth0', vlan: 30, addresses: ['10.3.3.1/24'] }], limits: { tcpConnections: 100 } },
      { cmd: 'address.add', vs: 'c', link: 'eth0.30', cidr: '10.3.3.7/24' },
      { cmd: 'route.add', vs: 'c', dst: 'default', via: '10.3.3.254' },
      { cmd: 'address.add', vs: 'c', link: 'eth0.30', cidr: '10.1.1.1/24' }, // VS a's address, but on another VLAN: allowed
      { cmd: 'vs.add', name: 'c' }, // refused: exists
      { cmd: 'vs.del', name: 'c' },
      { cmd: 'show', kind: 'counters' }, // not a change
    ];
    for (const r of reqs) await controlRequest(sock, r, { timeoutMs: 5000 });
    assert.equal(events(lines), [
      'vs.add name=c links=1 limits.tcpConnections=100',
      'address.add vs=c link=eth0.30 cidr=10.3.3.7/24',
      'route.add vs=c dst=default via=10.3.3.254',
      'address.add vs=c link=eth0.30 cidr=10.1.1.1/24',
      'vs.del name=c',
    ]);
  } finally {
    await server.close();
    s.close();
  }
});

test('a stack of shards logs a change once for the group, not once per shard', async () => {
  const lines: string[] = [];
  const s = await ShardedStack.start(smallConfig('shl'), { shards: 2, log: (l) => lines.push(l) });
  try {
    await s.request({ cmd: 'vs.add', name: 'b', links: [{ device: 'eth0', vlan: 20, addresses: ['10.2.2.1/24'] }] });
    await s.request({ cmd: 'route.add', vs: 'b', dst: '10.8.0.0/16', via: '10.2.2.254' });
    await s.request({ cmd: 'route.del', vs: 'b', dst: '10.8.0.0/16', via: '10.2.2.254' });
    await s.request({ cmd: 'vs.del', name: 'b' });
    let refused = '';
    try { await s.request({ cmd: 'vs.del', name: 'nope' }); } catch (e) { refused = (e as Error).message; }
    assert.match(refused, /no virtual server 'nope'/);
    assert.equal(events(lines), [
      'vs.add name=b links=1',
      'route.add vs=b dst=10.8.0.0/16 via=10.2.2.254',
      'route.del vs=b dst=10.8.0.0/16 via=10.2.2.254 removed=1',
      'vs.del name=b',
    ]);
  } finally {
    await s.close();
  }
});

// ------------------------------------------------------------------------------- limits

/** A SYN from 10.1.1.2:sport to 10.1.1.1:dport, as a raw frame from the peer's MAC. */
function synFrame(w: PeerWorld, sport: number, dport: number): Uint8Array {
  const o = new TcpSegmentOut();
  o.srcPort = sport; o.dstPort = dport; o.seq = 1000 + sport; o.flags = TH_SYN; o.window = 65535; o.mss = 1460;
  const hl = tcpHeaderLen(o);
  const b = new Uint8Array(14 + 20 + hl);
  writeEth(b, 0, w.link.a.mac, 0, w.link.b.mac, 0, ETH_P_IPV4, -1);
  writeTcp(b, 34, o, 0, ip('10.1.1.2'), ip('10.1.1.1'));
  writeIpv4(b, 14, ip('10.1.1.2'), ip('10.1.1.1'), IPPROTO_TCP, hl, 64, sport, 0, 0);
  return b;
}

test('a limit reached by 100 connections over it is logged once; once again when clear; a new episode once more', async () => {
  const lines: string[] = [];
  const w = peerWorld({}, { log: (l) => lines.push(l) }, { tcpConnections: 2 });
  try {
    w.stack.vs('a').createServer(() => {}).listen(80);
    // The peer learns the stack's MAC first (a ping is not needed: ARP from a UDP datagram).
    const u = w.peer.createUdpSocket(w.peer.vs('p'), { type: 'udp4' });
    u.bind(0);
    u.send(Buffer.from('x'), 9, '10.1.1.1');
    await w.run(() => false, 50_000);
    u.close();
    w.inject(Array.from({ length: 102 }, (_, i) => synFrame(w, 20000 + i, 80)));
    // The two half-open connections are reset by the peer (it has no such connections): the VS is under its limit again.
    await w.run(() => false, 3_000_000);
    const drops = (w.stack.show('counters', { vs: 'a' }) as { vs: { drops: { reasons: Record<string, number> } }[] }).vs[0]!.drops;
    assert.is(drops.reasons['tcp-connection-limit'], 100, 'RFC 9293 does not say; our limit: 100 SYNs refused and counted');
    assert.equal(events(lines, 'warn'), ['limit.reached vs=a scope=vs limit=tcpConnections max=2 hits=100']);
    assert.equal(events(lines, 'info'), ['limit.cleared vs=a scope=vs limit=tcpConnections used=0 max=2 hits=100']);
    // A second flood: one more pair.
    w.inject(Array.from({ length: 12 }, (_, i) => synFrame(w, 30000 + i, 80)));
    await w.run(() => false, 3_000_000);
    assert.is(events(lines, 'warn').length, 2, lines.join('\n'));
    assert.equal(events(lines, 'info').slice(1), ['limit.cleared vs=a scope=vs limit=tcpConnections used=0 max=2 hits=10']);
    assert.is(lines.length, 4, lines.join('\n'));
  } finally {
    w.stack.close();
  }
});

test('limit events follow the level: none at error', async () => {
  const lines: string[] = [];
  const w = peerWorld({}, { log: (l) => lines.push(l), logLevel: 'error' }, { tcpConnections: 1 });
  try {
    w.stack.vs('a').createServer(() => {}).listen(80);
    w.inject(Array.from({ length: 5 }, (_, i) => synFrame(w, 20000 + i, 80)));
    await w.run(() => false, 3_000_000);
    assert.ok((w.stack.show('limits', { vs: 'a' }) as { limit: string; hits: number }[]).find((r) => r.limit === 'tcpConnections')!.hits >= 4);
    assert.equal(lines, []);
  } finally {
    w.stack.close();
  }
});

// ------------------------------------------------------------------------------- CLI

test('xdpstack run: --log-level and --log-format checked; JSON lines; changes from the control socket logged', async () => {
  const file = path.join(dir, 'run.json');
  fs.writeFileSync(file, JSON.stringify({ ...smallConfig('logrun'), control: undefined }));
  const out: string[] = [];
  const code = await main(['run', file, '--log-level', 'loud'], { out: (l) => out.push(l), err: (l) => out.push(l) });
  assert.is(code, 2);
  assert.match(out.join('\n'), /option '--log-level' must be one of error, warn, info, debug, got "loud"/);
  const out2: string[] = [];
  assert.is(await main(['run', file, '--log-format', 'xml'], { out: (l) => out2.push(l), err: (l) => out2.push(l) }), 2);
  assert.match(out2.join('\n'), /option '--log-format' must be one of text, json, got "xml"/);

  const errs: string[] = [];
  const stdout: string[] = [];
  let stop!: () => void;
  const stopped = new Promise<void>((r) => { stop = r; });
  const sock = path.join(dir, 'logrun.sock');
  const running = runStack(file, { socket: sock, logFormat: 'json' }, { out: (l) => stdout.push(l), err: (l) => errs.push(l) }, stopped);
  for (let i = 0; i < 100 && !stdout.length; i++) await sleep(20);
  assert.match(stdout[0] ?? '', /^xdpstack: stack 'logrun' running/);
  const r = await controlRequest(sock, { cmd: 'vs.add', name: 'n' }, { timeoutMs: 5000 });
  assert.ok(r.ok, r.error);
  stop();
  assert.is(await running, 0);
  const objs = errs.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(objs.map((o) => ({ level: o.level, msg: o.msg, name: o.name })), [{ level: 'info', msg: 'vs.add', name: 'n' }]);
  assert.match(String(objs[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

// ------------------------------------------------------------------------------- device loss (lab)

const privileged = canRunPrivileged();
if (privileged) {
  const PEERS = [{ ipv4: '10.1.1.2/24' }];
  /** Waits (bounded) until cond() holds; returns whether it did. */
  const until = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end && !cond()) await sleep(50);
    return cond();
  };
  const count = (lines: string[], level: string, re: RegExp) => events(lines, level).filter((l) => re.test(l)).length;

  test('a device lost and back: logged once each (warn, then info), however long it stays lost', async () => {
    const prefix = labPrefix('ma');
    const lines: string[] = [];
    let stack: Stack | null = null;
    try {
      let lab = labUp({ prefix, peers: PEERS });
      stack = createStack({
        name: `log-${prefix}`, control: false,
        devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 1024 }],
        virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, addresses: ['10.1.1.1/24'] }] }],
      }, { log: (l) => lines.push(l) });
      stack.start();
      const lost = new RegExp(`^afxdp: lost device ${lab.stackDevice} queue 0: it no longer exists`);
      const back = new RegExp(`^afxdp: device ${lab.stackDevice} queue 0 is back`);
      execFileSync('ip', ['link', 'del', 'dev', lab.stackDevice]);
      assert.ok(await until(() => count(lines, 'warn', lost) > 0, 5000), lines.join('\n'));
      await sleep(2500); // lost for a while: still one line
      assert.is(count(lines, 'warn', /lost device/), 1, lines.join('\n'));
      lab = labUp({ prefix, peers: PEERS, force: true });
      assert.ok(await until(() => count(lines, 'info', back) > 0, 8000), lines.join('\n'));
      await sleep(1500);
      assert.is(count(lines, 'info', /is back/), 1, lines.join('\n'));
      assert.is(count(lines, 'warn', /lost device/), 1, lines.join('\n'));
      for (const l of lines) assert.match(l, TIME);
    } finally {
      try { stack?.close(); } finally { labDown(prefix); }
    }
  });

  test('a stack of shards: a device lost and back is logged once each for the group, not per queue', async () => {
    const prefix = labPrefix('mb');
    const lines: string[] = [];
    let stack: ShardedStack | null = null;
    try {
      const lab = labUp({ prefix, queues: 2, peers: PEERS });
      stack = await ShardedStack.start({
        name: `logsh-${prefix}`,
        devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 1024 }],
        virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, addresses: ['10.1.1.1/24'] }] }],
      } as StackConfig, { shards: 2, log: (l) => lines.push(l) });
      execFileSync('ip', ['link', 'set', 'dev', lab.stackDevice, 'down']);
      assert.ok(await until(() => count(lines, 'warn', /lost device/) > 0, 5000), lines.join('\n'));
      await sleep(2500);
      execFileSync('ip', ['link', 'set', 'dev', lab.stackDevice, 'up']);
      assert.ok(await until(() => count(lines, 'info', /is back/) > 0, 8000), lines.join('\n'));
      await sleep(2500); // the queues notice it too (at debug): still one line each
      assert.is(count(lines, 'warn', /lost device/), 1, lines.join('\n'));
      assert.match(events(lines, 'warn').find((l) => /lost device/.test(l))!, new RegExp(`^afxdp: lost device ${lab.stackDevice}: it is down`));
      assert.is(count(lines, 'info', /is back/), 1, lines.join('\n'));
      const st = (await stack.show('links')) as { state: string }[];
      assert.equal(st.map((l) => l.state), ['up']);
    } finally {
      try { await stack?.close(); } finally { labDown(prefix); }
    }
  });
}

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();
