/**
 * `show connections` against a Linux kernel peer over AF_XDP: the same TCP connection seen from
 * both ends, our row beside `ss -tnio` run in the peer's namespace. While the peer does not read,
 * what it acknowledged (its Recv-Q) is what our row counts as acknowledged, and the rest is our send
 * queue; once it read everything, the bytes each side received are the bytes the other had
 * acknowledged, each side's MSS is the one the other advertised, and the window scale shifts and
 * options (SACK, timestamps) agree. Privileged: runs as root (always in CI).
 */
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, sleep } from './lib/rig';
import { addressesPreferred, privilegedTest, within } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import type { Socket } from '../stack/api/net';
import type { ConnectionRow, TcpInfo } from '../stack/connections';
import { test } from 'uvu';

const PREFIX = labPrefix('ca');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
let lab: Lab;
let stack: Stack;

const UP = 200_000;   // peer → stack
const DOWN = 250_000; // stack → peer (within the 256 KiB send buffer: all of it in our Send-Q)

/** The fields of the one connection `ss -tnio` prints for a filter (state, queues, then the info line). */
interface SsConn { state: string; recvQ: number; sendQ: number; info: Map<string, string>; flags: Set<string> }

function parseSs(out: string): SsConn[] {
  const lines = out.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('State') && !l.startsWith('Recv-Q'));
  const conns: SsConn[] = [];
  for (const l of lines) {
    if (!/^\s/.test(l)) {
      // With a state filter ss leaves the State column out.
      const t = l.trim().split(/\s+/);
      const state = /^\d+$/.test(t[0]!) ? 'ESTAB' : t.shift()!;
      conns.push({ state, recvQ: Number(t[0]), sendQ: Number(t[1]), info: new Map(), flags: new Set() });
    } else if (conns.length) {
      const c = conns[conns.length - 1]!;
      for (const tok of l.trim().split(/\s+/)) {
        const i = tok.indexOf(':');
        if (i > 0) c.info.set(tok.slice(0, i), tok.slice(i + 1));
        else c.flags.add(tok);
      }
    }
  }
  return conns;
}

async function ssPeer(port: number): Promise<SsConn> {
  // -o as well: this ss (iproute2 6.1) prints the `ts` and `sack` flags only with -o or -e.
  const r = await nsRun(lab.peers[0]!.ns, 'ss', ['-tnio', 'state', 'established', `( dport = :${port} )`], { timeout: 5000 });
  assert.is(r.code, 0, r.stderr);
  const c = parseSs(r.stdout);
  assert.is(c.length, 1, r.stdout);
  return c[0]!;
}

function ourRow(port: number): TcpInfo {
  const r = (stack.show('connections', { port, state: 'established' }) as ConnectionRow[]).filter((x): x is TcpInfo => x.proto === 'tcp' && x.state === 'ESTAB');
  assert.is(r.length, 1, JSON.stringify(r));
  return r[0]!;
}

/** Polls `cond` every 20 ms for at most `ms`. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (let t = 0; t < ms; t += 20) { if (cond()) return true; await sleep(20); }
  return cond();
}

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    stack = createStack({
      name: 'conn-lab', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'v', links: [{ device: lab.stackDevice, vlan: 10, addresses: ['10.1.1.1/24'] }] }],
    }, { log: () => {} });
    stack.start();
    await addressesPreferred(stack);
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });
}

ptest('our row of a connection agrees with the kernel peer\'s ss -tnio: queues, bytes, MSS, window scale, options', async () => {
  let server: Socket | null = null;
  let got = 0;
  stack.vs('v').createServer((s) => {
    server = s;
    s.on('data', (d: Buffer) => { got += d.length; });
    s.write(Buffer.alloc(DOWN, 7));
  }).listen(5001);
  // The peer sends UP bytes, does not read for 3 s, then reads DOWN bytes and stays connected 3 s more.
  const py = [
    'import socket, time',
    's = socket.create_connection(("10.1.1.1", 5001), timeout=10)',
    `s.sendall(b"x" * ${UP})`,
    'time.sleep(3)',
    'n = 0',
    `while n < ${DOWN}:`,
    '    d = s.recv(65536)',
    '    if not d: break',
    '    n += len(d)',
    'print(n, flush=True)',
    'time.sleep(3)',
    's.close()',
  ].join('\n');
  const peer = nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', py], { timeout: 20000 });
  try {
    // While the peer does not read: what it acknowledged is in its receive queue, the rest in our send queue.
    assert.ok(await until(() => server !== null && got === UP, 2500), `received ${got} of ${UP}`);
    let last = -1;
    assert.ok(await until(() => { const a = ourRow(5001).bytesAcked; const still = a === last; last = a; return still && a > 0; }, 2000), 'the peer stopped acknowledging (its buffer is full)');
    // A quiet moment: the peer may still take a window probe's bytes and acknowledge them a delayed
    // ACK later (or reopen its window once it collapsed its queue), so the two views are compared
    // when our count of acknowledged bytes did not move around the peer's reading.
    let ss1 = await ssPeer(5001);
    let r1 = ourRow(5001);
    // (Our ACK of the peer's last bytes may still wait for its delayed-ACK timer on a loaded machine.)
    for (let i = 0; i < 25 && (ss1.recvQ !== r1.bytesAcked || ss1.sendQ !== 0); i++) {
      await sleep(200);
      const r0 = ourRow(5001);
      ss1 = await ssPeer(5001);
      r1 = ourRow(5001);
      if (r0.bytesAcked !== r1.bytesAcked) ss1 = { ...ss1, recvQ: -1 }; // moved meanwhile: again
    }
    assert.is(ss1.sendQ, 0, 'the peer has nothing unacknowledged');
    assert.is(r1.recvQ, 0, 'our server read everything');
    assert.is(r1.bytesReceived, UP);
    assert.is(ss1.recvQ, r1.bytesAcked, 'the peer\'s Recv-Q is what it acknowledged to us');
    assert.is(r1.sendQ, DOWN - r1.bytesAcked, 'our Send-Q is the rest');
    assert.ok(r1.sendQ > 0, `the peer's window held data back (${r1.sendQ} bytes)`);
    assert.is(Number(ss1.info.get('bytes_received')), r1.bytesAcked);

    // After the peer read everything.
    assert.ok(await until(() => ourRow(5001).sendQ === 0, 6000), 'everything acknowledged');
    const ss2 = await ssPeer(5001);
    const r2 = ourRow(5001);
    assert.is(ss2.recvQ, 0);
    assert.is(r2.bytesAcked, DOWN);
    assert.is(Number(ss2.info.get('bytes_received')), DOWN, 'the peer received what we count as acknowledged');
    // Linux's bytes_acked counts the SYN's sequence number too (snd_una - iss): one more than the payload.
    assert.is(Number(ss2.info.get('bytes_acked')) - 1, r2.bytesReceived, 'we received what the peer counts as acknowledged');
    assert.is(Number(ss2.info.get('mss')), r2.advmss, 'the peer sends segments of the MSS we advertised');
    assert.is(Number(ss2.info.get('advmss')), r2.mss, 'we send segments of the MSS the peer advertised');
    const [peerSnd, peerRcv] = (ss2.info.get('wscale') ?? '').split(',').map(Number);
    assert.is(peerSnd, r2.rcvWscale, 'the shift the peer applies to our window is ours');
    assert.is(peerRcv, r2.sndWscale);
    assert.is(ss2.flags.has('ts'), r2.timestamps);
    assert.is(ss2.flags.has('sack'), r2.sack);
    assert.ok(r2.timestamps && r2.sack, 'both offered by Linux and by us');
    assert.ok(r2.rttMs !== null && r2.rttMs < 100, `an RTT was measured (${r2.rttMs} ms)`);
    const out = await within(peer, 15000, 'peer script');
    assert.is(out.stdout.trim(), String(DOWN), out.stderr);
  } finally {
    (server as Socket | null)?.destroy();
  }
});

test.run();
