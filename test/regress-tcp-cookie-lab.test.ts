/**
 * Regression against a Linux client (lab, AF_XDP): while SYN cookies are in use, the first answer
 * of a cookie connection must not wait for a retransmission timeout. The cookie's SYN-ACK TSval ran
 * up to 63 ms ahead of the connection's clock, so the client's PAWS (RFC 7323 5.3) dropped the
 * server's first data and the answer came a 1 s RTO later (14-24 of 20-30 connections).
 * The SYN queue is kept full by spoofed SYNs sent with scapy from the peer's namespace.
 */
import { tcpState } from '../stack/transport/tcp';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun, Rig, sleep, startRig } from './lib/rig';
import { createServer, Server, Socket } from '../stack/api/net';
import { monotonicUs } from '../stack/runtime';

const PREFIX = labPrefix('xz');
const PORT = 8000;
const privileged = canRunPrivileged();
let lab: Lab;
let rig: Rig;

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    rig = startRig(lab.stackDevice);
    const vs = rig.engine.createVs('t1');
    rig.engine.addLink(vs, { device: lab.stackDevice, vlan: 10 });
    rig.engine.addAddress(vs, `${lab.stackDevice}.10`, '10.1.1.1/24');
  });
  test.after(() => {
    rig?.close();
    labDown(PREFIX);
  });

  test('Linux client while SYN cookies are in use: every first answer comes at once (no PAWS drop, no 1 s RTO)', async () => {
    const vs = rig.engine.vs('t1');
    const srv: Server = createServer({ engine: rig.engine, vs, now: monotonicUs }, (s: Socket) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('error', () => {});
    }).listen({ port: PORT, backlog: 4 }); // a SYN queue of 16
    const peer = lab.peers[0]!;
    // Spoofed SYNs (an on-link address nobody answers for) at 100 per second, for at most 40 s (it
    // is stopped when the clients are done), so the SYN queue stays full and clients get cookies.
    const flood = spawn('ip', ['netns', 'exec', peer.ns, '/usr/bin/python3', '-c', [
      'from scapy.all import IP, TCP, send',
      `p=[IP(src="10.1.1.50",dst="10.1.1.1")/TCP(sport=20000+i,dport=${PORT},flags="S",seq=1000+i) for i in range(4000)]`,
      'send(p, inter=0.01, verbose=0)',
    ].join('\n')], { stdio: 'ignore' });
    const floodDone = once(flood, 'exit');
    const l = tcpState(vs).listeners.get(PORT)![0]!;
    // Python and scapy take seconds to start on a loaded machine: wait up to 20 s for the queue to fill.
    for (let i = 0; i < 2000 && l.synCookiesSent === 0; i++) await sleep(10);
    assert.ok(l.synCookiesSent > 0, `the SYN queue filled (${l.synQueue}) and cookies are in use`);
    // 20 Linux connections one after the other: connect, send, time until the echo comes back.
    const client = await nsRun(peer.ns, '/usr/bin/python3', ['-c', [
      'import socket, time, json',
      'out=[]',
      'for i in range(20):',
      '  s=socket.socket(); s.settimeout(5)',
      `  s.connect(("10.1.1.1",${PORT}))`,
      '  t=time.monotonic(); s.sendall(b"ping%02d" % i)',
      '  d=b""',
      '  while len(d) < 6: d += s.recv(64)',
      '  out.append(round((time.monotonic()-t)*1000, 1)); s.close()',
      'print(json.dumps(out))',
    ].join('\n')], { timeout: 60000 });
    assert.is(client.code, 0, client.stdout + client.stderr);
    const cookies = l.synCookiesAccepted;
    flood.kill();
    await floodDone;
    srv.close();
    const ms = JSON.parse(client.stdout) as number[];
    assert.is(ms.length, 20);
    console.log(`# cookie connections: ${cookies} of 20; echo times (ms): ${ms.join(' ')}`);
    const slow = ms.filter((x) => x > 500).length;
    assert.is(slow, 0, `first answers that waited for a retransmission: ${slow} of 20 (${ms.join(' ')})`);
    assert.ok(cookies >= 15, `most connections went through cookies (${cookies})`);
  });
}

test.run();
