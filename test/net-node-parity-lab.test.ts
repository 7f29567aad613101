/**
 * Timeouts against Node's own `net` over the kernel, which needs a dead peer and shorter kernel
 * timers than loopback gives: Node runs in a network namespace with tcp_syn_retries=1 and
 * tcp_retries2=3 beside a server namespace whose link can go down; ours runs the same scenarios in
 * virtual time over the memory link with the same limits per connection (synRetries 1,
 * maxRetransmits 3) and frames dropped. Compared: the events, the error (code, errno, syscall,
 * address, port, message) and when it comes.
 *   - connect timeout: the SYN is never answered → 'connect ETIMEDOUT a:p' after ~3 s (1 s + 2 s);
 *   - retransmission timeout: the peer vanishes under a write → 'read ETIMEDOUT' after ~3 s;
 *   - keepalive: setKeepAlive(true, 1000), the peer vanishes → 'read ETIMEDOUT' after 1 s idle and
 *     ten probes a second apart (libuv's TCP_KEEPINTVL 1, TCP_KEEPCNT 10), ~11 s.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { twoHosts, World } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

const P = labPrefix('na');
const NS_C = `${P}-c`;
const NS_S = `${P}-s`;
const DEAD = '10.77.0.9';

interface Obs { ev: string[]; err: Record<string, unknown> | null; ms: number }

/** What Node's net does in the client namespace (one JSON line per scenario). */
const NODE_CLIENT = `
const net = require('net');
const { execFileSync } = require('child_process');
const shape = (e, dead, srv) => e && ({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall,
  address: e.address === dead ? 'DEAD' : e.address === srv ? 'SRV' : e.address, port: e.port,
  message: e.message.split(dead).join('DEAD').split(srv).join('SRV') });
function run(name, start, vanish) {
  return new Promise((resolve) => {
    const ev = []; let err = null; let t0 = 0;
    const s = start();
    for (const n of ['connectionAttemptFailed', 'connect', 'end', 'error', 'close']) s.on(n, (x, ...r) => ev.push(
      n === 'error' ? 'error ' + x.code : n === 'close' ? 'close ' + x : n === 'connectionAttemptFailed' ? n + ' ' + r[2].code : n));
    s.on('error', (e) => { err = e; });
    s.on('connect', () => { vanish(s); t0 = Date.now(); });
    if (!vanish.onConnect) t0 = Date.now();
    s.on('close', () => resolve({ name, ev, err: shape(err, '${DEAD}', '10.77.0.2'), ms: Date.now() - t0 }));
  });
}
const down = () => execFileSync('ip', ['-n', '${NS_S}', 'link', 'set', '${P}s', 'down']);
const up = () => execFileSync('ip', ['-n', '${NS_S}', 'link', 'set', '${P}s', 'up']);
(async () => {
  const out = {};
  const none = () => {};
  out.syn = await run('syn', () => net.connect(80, '${DEAD}'), none);
  const est = (s) => { down(); s.write('hello'); }; est.onConnect = true;
  out.rto = await run('rto', () => net.connect(7000, '10.77.0.2'), est);
  up();
  await new Promise((r) => setTimeout(r, 300));
  const ka = (s) => { s.setKeepAlive(true, 1000); down(); }; ka.onConnect = true;
  out.keepalive = await run('keepalive', () => net.connect(7000, '10.77.0.2'), ka);
  up();
  console.log(JSON.stringify(out));
})();
`;

const NODE_SERVER = `require('net').createServer((s) => { s.on('error', () => {}); s.resume(); }).listen(7000, '10.77.0.2', () => console.log('up'));`;

function labUpNs(): void {
  labDownNs();
  sh('ip', ['netns', 'add', NS_C]);
  sh('ip', ['netns', 'add', NS_S]);
  sh('ip', ['link', 'add', `${P}c`, 'type', 'veth', 'peer', 'name', `${P}s`]);
  sh('ip', ['link', 'set', `${P}c`, 'netns', NS_C]);
  sh('ip', ['link', 'set', `${P}s`, 'netns', NS_S]);
  sh('ip', ['-n', NS_C, 'addr', 'add', '10.77.0.1/24', 'dev', `${P}c`]);
  sh('ip', ['-n', NS_S, 'addr', 'add', '10.77.0.2/24', 'dev', `${P}s`]);
  for (const [ns, dev] of [[NS_C, `${P}c`], [NS_S, `${P}s`]] as const) {
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
  sh('sysctl', ['-qw', 'net.ipv4.tcp_syn_retries=1', 'net.ipv4.tcp_retries2=3'], { ns: NS_C });
  // A destination whose frames go out (its MAC is known) and that never answers.
  sh('ip', ['-n', NS_C, 'neigh', 'add', DEAD, 'lladdr', '02:00:00:00:00:99', 'dev', `${P}c`, 'nud', 'permanent']);
}

function labDownNs(): void {
  for (const ns of [NS_C, NS_S]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** Node's observations (the server namespace serves on 10.77.0.2:7000 meanwhile). */
async function nodeSide(): Promise<Record<string, Obs>> {
  let server: ChildProcess | null = null;
  try {
    labUpNs();
    server = spawn('ip', ['netns', 'exec', NS_S, process.execPath, '-e', NODE_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the kernel-side server did not start')), 10_000);
      server!.stdout!.once('data', () => { clearTimeout(t); resolve(); });
    });
    const r = spawnSync('ip', ['netns', 'exec', NS_C, process.execPath, '-e', NODE_CLIENT], { encoding: 'utf8', timeout: 90_000 });
    assert.is(r.status, 0, `Node client: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, Obs>;
  } finally {
    server?.kill('SIGKILL');
    labDownNs();
  }
}

/** The same in virtual time: host b (10.1.1.2) plays the dead or vanishing peer. */
async function oursSide(): Promise<Record<string, Obs>> {
  const out: Record<string, Obs> = {};
  const shape = (e: (Error & Record<string, unknown>) | null): Record<string, unknown> | null => e && {
    name: e.name, code: e.code, errno: e.errno, syscall: e.syscall,
    address: e.address === '10.1.1.2' ? (out.syn ? 'SRV' : 'DEAD') : e.address, port: e.port,
    message: e.message.split('10.1.1.2').join(out.syn ? 'SRV' : 'DEAD'),
  };
  const run = async (w: World, name: string, start: () => Socket, vanish: ((s: Socket) => void) | null): Promise<Obs> => {
    const ev: string[] = [];
    let err: (Error & Record<string, unknown>) | null = null;
    let t0 = w.now();
    let closed = false;
    const s = start();
    for (const n of ['connectionAttemptFailed', 'connect', 'end', 'error', 'close']) {
      s.on(n, (x: unknown, ...r: unknown[]) => ev.push(n === 'error' ? `error ${(x as { code: string }).code}` : n === 'close' ? `close ${String(x)}`
        : n === 'connectionAttemptFailed' ? `${n} ${(r[2] as { code: string }).code}` : n));
    }
    s.on('error', (e: Error & Record<string, unknown>) => { err = e; });
    s.on('close', () => { closed = true; });
    if (vanish) s.on('connect', () => { vanish(s); t0 = w.now(); });
    assert.ok(await w.run(() => closed, 60_000_000), `${name}: closed within a minute`);
    return { ev, err: JSON.parse(JSON.stringify(shape(err))) as Obs['err'], ms: Math.round((w.now() - t0) / 1000) };
  };
  /** A world whose wire drops every IPv4 frame (ARP still answered) once `dead.on` is set. */
  const world = (): { w: World; dead: { on: boolean } } => {
    const w = twoHosts();
    const dead = { on: false };
    for (const ep of [w.link.a, w.link.b]) {
      const tx = ep.tx.bind(ep);
      ep.tx = (b, now) => {
        if (dead.on) {
          const p = ep.pool.bytes;
          for (let i = 0; i < b.n; i++) if (p[b.off[i]! + 16] === 0x08 && p[b.off[i]! + 17] === 0x00) b.len[i] = 0;
        }
        return tx(b, now);
      };
    }
    return { w, dead };
  };
  {
    const { w, dead } = world();
    // Resolve the neighbor first (Node's namespace has a static entry), then the peer goes silent.
    await w.run(() => false, 10_000);
    const probe = connect(w.a.ctx(), 9, '10.1.1.2');
    probe.on('error', () => {});
    await w.run(() => probe.destroyed, 1_000_000);
    dead.on = true;
    out.syn = await run(w, 'syn', () => connect(w.a.ctx(), { port: 80, host: '10.1.1.2', tcp: { synRetries: 1 } }), null);
  }
  for (const name of ['rto', 'keepalive']) {
    const { w, dead } = world();
    createServer(w.b.ctx(), (s: Socket) => { s.on('error', () => {}); s.resume(); }).listen(7000);
    out[name] = await run(w, name, () => connect(w.a.ctx(), { port: 7000, host: '10.1.1.2', tcp: { maxRetransmits: 3 } }),
      name === 'rto' ? (s) => { dead.on = true; s.write('hello'); } : (s) => { s.setKeepAlive(true, 1000); dead.on = true; });
  }
  return out;
}

if (canRunPrivileged()) {
  test('ETIMEDOUT (connect, retransmission, keepalive) as Node over the kernel: events, error fields and timing', async () => {
    const node = await nodeSide();
    const ours = await oursSide();
    for (const k of ['syn', 'rto', 'keepalive']) {
      const n = node[k]!;
      const o = ours[k]!;
      // Ports: the kernel's dead destination is port 80 in both; the server port differs (7000 in both).
      assert.equal(o.ev, n.ev, `${k}: events (xdpstack ${o.ev}, Node ${n.ev})`);
      assert.equal(o.err, n.err, `${k}: error`);
      const ratio = o.ms / n.ms;
      assert.ok(ratio > 0.8 && ratio < 1.25, `${k}: ETIMEDOUT after ${o.ms} ms (Node: ${n.ms} ms)`);
      console.log(`# ${k}: ${o.err?.message} after ${o.ms} ms (Node ${n.ms} ms); events ${o.ev.join(', ')}`);
    }
    assert.equal(node.syn!.err, { name: 'Error', code: 'ETIMEDOUT', errno: -110, syscall: 'connect', address: 'DEAD', port: 80, message: 'connect ETIMEDOUT DEAD:80' });
    assert.equal(node.rto!.err, { name: 'Error', code: 'ETIMEDOUT', errno: -110, syscall: 'read', message: 'read ETIMEDOUT' });
    assert.ok(node.keepalive!.ms > 10_000 && node.keepalive!.ms < 13_000, `Node's keepalive gave up after ${node.keepalive!.ms} ms`);
  });
}

test.run();
