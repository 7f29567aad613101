/**
 * Node's `http` and `https` running unchanged over xdpstack TCP (examples/http/serve.ts), driven by
 * kernel clients in a lab namespace: curl, wrk -t1 -c32 (all 200, no socket errors), curl -k over
 * TLS with a certificate made at test time, and the http example program run as a user would.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun } from './lib/rig';
import { framesAccounted as accounted } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import { serveNode, selfSignedCert, CertFiles } from '../examples/http/serve';

const PREFIX = labPrefix('xh');
const privileged = canRunPrivileged();
let lab: Lab;
let stack: Stack;
let cert: CertFiles;
let requests = 0;
const statuses = new Map<number, number>();

const framesAccounted = () => accounted(stack);

const handler: http.RequestListener = (req, res) => {
  requests++;
  const body = req.url === '/big' ? Buffer.alloc(200_000, 'b') : Buffer.from(`hello ${req.method} ${req.url}\n`);
  res.on('finish', () => statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1));
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
};

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.2.0.2/24' }] });
    cert = selfSignedCert('xdpstack.test');
    stack = createStack({
      name: 'http-lab', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'web', links: [{ device: lab.stackDevice, addresses: ['10.2.0.1/24'] }] }],
    }, { log: () => {} });
    const vs = stack.vs('web');
    serveNode(vs.createServer({ noDelay: true }).listen(80), http.createServer(handler));
    const tls = https.createServer({ key: fs.readFileSync(cert.key), cert: fs.readFileSync(cert.cert) }, handler);
    serveNode(vs.createServer({ noDelay: true }).listen(443), tls);
    stack.start();
  });
  test.after(() => {
    try { stack?.close(); } finally {
      labDown(PREFIX);
      if (cert) fs.rmSync(cert.dir, { recursive: true, force: true });
    }
  });

  test('curl: GET, keep-alive reuse, 200 kB body, POST', async () => {
    const ns = lab.peers[0]!.ns;
    const r = await nsRun(ns, 'curl', ['-sS', '--max-time', '5', 'http://10.2.0.1/a', 'http://10.2.0.1/b']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'hello GET /a\nhello GET /b\n');
    const big = await nsRun(ns, 'sh', ['-c', 'curl -sS --max-time 5 http://10.2.0.1/big | wc -c']);
    assert.is(big.stdout.trim(), '200000', big.stderr);
    const post = await nsRun(ns, 'curl', ['-sS', '--max-time', '5', '-d', 'x=1', '-o', '/dev/null', '-w', '%{http_code}', 'http://10.2.0.1/p']);
    assert.is(post.stdout, '200', post.stderr);
    await framesAccounted();
  });

  test('wrk -t1 -c32 -d3s: every response 200, no socket errors', async () => {
    const before = requests;
    statuses.clear();
    const r = await nsRun(lab.peers[0]!.ns, 'wrk', ['-t1', '-c32', '-d3s', 'http://10.2.0.1/'], { timeout: 20000 });
    assert.is(r.code, 0, r.stderr);
    const m = /(\d+) requests in/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const done = Number(m![1]);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1];
    console.log(`# wrk -t1 -c32 over xdpstack + Node http: ${rps} req/s`);
    assert.ok(done > 1000, `only ${done} requests`);
    assert.not.match(r.stdout, /Socket errors/, r.stdout);
    assert.not.match(r.stdout, /Non-2xx/, r.stdout);
    assert.ok(requests - before >= done, `server saw ${requests - before}, wrk counted ${done}`);
    assert.equal([...statuses.keys()], [200]);
    await framesAccounted();
  });

  test('https: tls.TLSSocket over xdpstack sockets, curl -k gets the body', async () => {
    const ns = lab.peers[0]!.ns;
    const r = await nsRun(ns, 'curl', ['-sS', '-k', '--max-time', '5', 'https://10.2.0.1/secure', 'https://10.2.0.1/again']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'hello GET /secure\nhello GET /again\n');
    // Certificate really is ours (verify against it instead of -k).
    const v = await nsRun(ns, 'curl', ['-sS', '--max-time', '5', '--cacert', cert.cert, '--resolve', 'xdpstack.test:443:10.2.0.1',
      'https://xdpstack.test/verified']);
    assert.is(v.stdout, 'hello GET /verified\n', v.stderr);
    const big = await nsRun(ns, 'sh', ['-c', 'curl -sS -k --max-time 5 https://10.2.0.1/big | wc -c']);
    assert.is(big.stdout.trim(), '200000', big.stderr);
    await framesAccounted();
  });

  test('examples/http: the example program serves https in its VS (curl -k)', async () => {
    // The in-test stack owns the device: close it first, then run the example as a user would.
    stack.close();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xh-example-'));
    const cfg = path.join(dir, 'web.json');
    fs.writeFileSync(cfg, JSON.stringify({
      name: 'xh-example', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp' }],
      virtualServers: [{ name: 'site', links: [{ device: lab.stackDevice, addresses: ['10.2.0.1/24'] }] }],
    }));
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'http', 'index.js'), cfg, '--https'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    try {
      for (let i = 0; i < 100 && !out.includes('https on port 443'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(out.includes('https on port 443'), out);
      const r = await nsRun(lab.peers[0]!.ns, 'curl', ['-sS', '-k', '--max-time', '5', 'https://10.2.0.1/']);
      assert.is(r.stdout, 'hello from VS site\n', r.stderr + out);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.is(child.exitCode, 0, out);
  });
}

test.run();
