/**
 * Node's `http` server running unchanged over xdpstack TCP/IPv6 (examples/http/serve.ts), driven
 * by `curl -6` and `wrk` in a kernel peer: GET with keep-alive, a 200 kB body, POST, the request's
 * socket showing the IPv6 peer, the VS's link-local address with a zone, and the same server
 * reached over IPv4 (as ::ffff:a.b.c.d, as Node on ::). Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as http from 'node:http';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun } from './lib/rig';
import { addressesPreferred, framesAccounted as accounted, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { serveNode } from '../examples/http/serve';
import { addrToString, linkLocalFromMac } from '../protocols/ip/addr';

const PREFIX = labPrefix('y8');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const V6 = 'fd00:81::1';
const V4 = '10.8.1.1';
let lab: Lab;
let stack: Stack;
let requests = 0;
const statuses = new Map<number, number>();
const peers: string[] = [];

const framesAccounted = () => accounted(stack);

const handler: http.RequestListener = (req, res) => {
  requests++;
  if (req.url === '/who') {
    const s = req.socket as unknown as { remoteAddress?: string; remoteFamily?: string; localAddress?: string; localPort?: number };
    peers.push(`${s.remoteFamily} ${s.remoteAddress} -> ${s.localAddress}:${s.localPort}`);
  }
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  req.on('end', () => {
    const body = req.url === '/big' ? Buffer.alloc(200_000, 'b')
      : Buffer.from(`hello ${req.method} ${req.url}${chunks.length ? ` ${Buffer.concat(chunks).toString()}` : ''}\n`);
    res.on('finish', () => statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
};

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.8.1.2/24', ipv6: 'fd00:81::2/64' }] });
    stack = createStack({
      name: 'lab6-http', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'web', links: [{ device: lab.stackDevice, addresses: [`${V4}/24`, `${V6}/64`] }] }],
    }, { log: () => {} });
    // listen(80) with no host: on ::, both families (as a Node server).
    serveNode(stack.vs('web').createServer({ noDelay: true }).listen(80), http.createServer(handler));
    stack.start();
    await addressesPreferred(stack);
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });
}

ptest('curl -6: GET with keep-alive reuse, 200 kB body, POST; the socket shows the IPv6 peer', async () => {
  const ns = lab.peers[0]!.ns;
  const r = await nsRun(ns, 'curl', ['-6', '-sS', '--max-time', '5', '-g', `http://[${V6}]/a`, `http://[${V6}]/b`, '-w', '%{num_connects}\n']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'hello GET /a\n1\nhello GET /b\n0\n', 'the second request reused the connection');
  const big = await nsRun(ns, 'sh', ['-c', `curl -6 -sS --max-time 5 -g 'http://[${V6}]/big' | wc -c`]);
  assert.is(big.stdout.trim(), '200000', big.stderr);
  const post = await nsRun(ns, 'curl', ['-6', '-sS', '--max-time', '5', '-d', 'x=1', '-g', `http://[${V6}]/p`]);
  assert.is(post.stdout, 'hello POST /p x=1\n', post.stderr);
  const who = await nsRun(ns, 'curl', ['-6', '-sS', '--max-time', '5', '-g', `http://[${V6}]/who`]);
  assert.is(who.code, 0, who.stderr);
  assert.match(peers.at(-1)!, new RegExp(`^IPv6 fd00:81::2 -> ${V6}:80$`));
  await framesAccounted();
});

ptest("curl -6 to the VS's link-local address with a zone (fe80::…%eth0)", async () => {
  const ll = addrToString(linkLocalFromMac(stack.engine.vs('web').links[0]!.mac));
  const r = await nsRun(lab.peers[0]!.ns, 'curl', ['-6', '-sS', '--max-time', '5', '-g', `http://[${ll}%25eth0]/ll`]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'hello GET /ll\n');
  await framesAccounted();
});

ptest('the same server over IPv4: curl -4, the peer seen as ::ffff:10.8.1.2', async () => {
  const r = await nsRun(lab.peers[0]!.ns, 'curl', ['-4', '-sS', '--max-time', '5', `http://${V4}/who`]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'hello GET /who\n');
  assert.is(peers.at(-1), `IPv6 ::ffff:10.8.1.2 -> ::ffff:${V4}:80`);
  await framesAccounted();
});

ptest('wrk -t1 -c16 -d2s over IPv6: every response 200, no socket errors', async () => {
  const before = requests;
  statuses.clear();
  const r = await nsRun(lab.peers[0]!.ns, 'wrk', ['-t1', '-c16', '-d2s', `http://[${V6}]/`], { timeout: 20000 });
  assert.is(r.code, 0, r.stderr);
  const m = /(\d+) requests in/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const done = Number(m![1]);
  console.log(`# wrk -t1 -c16 over xdpstack IPv6 + Node http: ${/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]} req/s`);
  assert.ok(done > 100, `only ${done} requests`);
  assert.not.match(r.stdout, /Socket errors/, r.stdout);
  assert.not.match(r.stdout, /Non-2xx/, r.stdout);
  assert.ok(requests - before >= done, `server saw ${requests - before}, wrk counted ${done}`);
  assert.equal([...statuses.keys()], [200]);
  await framesAccounted();
});

test.run();
