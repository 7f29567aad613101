/**
 * Node's own modules on top of the net-shaped API, against the same programs on Node's `net` over
 * the kernel (harness: test/lib/net-parity.ts; both ends ours, over the memory link): `http` with
 * a keep-alive agent and pipelined requests, `tls`/`https` with a self-signed certificate,
 * `stream.pipeline` through a socket, `readline` over a socket, `events.once` and `for await`.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import * as readline from 'node:readline';
import { once } from 'node:events';
import { pipeline, Transform } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { until } from './lib/realtime';
import type { Socket } from '../stack/api/net';
import { selfSignedCert, CertFiles } from '../examples/http/serve';
import { both, listen, same, sleep } from './lib/net-parity';

let cert: CertFiles | null = null;

test.after(() => { if (cert) fs.rmSync(cert.dir, { recursive: true, force: true }); });

test('http: a keep-alive agent reuses one connection (GET, POST with a body, GET); two pipelined requests are answered in order', async () => {
  const got = same(await both(async (env, r) => {
    const hs = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d; });
      req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
    });
    const srv = env.srv.createServer((s: Socket) => hs.emit('connection', s));
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    (agent as unknown as { createConnection: unknown }).createConnection = (o: { port: number; host: string }) => env.cli.connect({ port: o.port, host: o.host });
    const answers: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      answers.push(await new Promise((resolve) => {
        const req = http.request({ host: env.srvHost, port, path: `/x${i}`, method: i === 1 ? 'POST' : 'GET', agent }, (res) => {
          let b = '';
          res.on('data', (d: Buffer) => { b += d; });
          res.on('end', () => resolve({ status: res.statusCode, body: b, reused: req.reusedSocket, connection: res.headers.connection }));
        });
        req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code }));
        req.end(i === 1 ? 'body' : undefined);
      }));
    }
    agent.destroy();
    // Two requests in one write; the second asks the server to close.
    const s = env.cli.connect(port, env.srvHost);
    let raw = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => { raw += d; });
    s.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(await until(() => s.destroyed, 3000), `${env.name}: the server closed after the second response`);
    const bodies = raw.split('\r\n\r\n').filter((x) => x.startsWith('GET')).map((x) => x.split('HTTP')[0]);
    hs.close();
    srv.close();
    await sleep(10);
    return { answers, bodies };
  }));
  assert.equal((got.answers as { reused: boolean }[]).map((a) => a.reused), [false, true, true]);
  assert.equal(got.bodies, ['GET /a ', 'GET /b ']);
});

test('tls over a socket (tls.connect({ socket }), a TLS server fed its connections) and https with createConnection', async () => {
  cert ??= selfSignedCert('localhost');
  const key = fs.readFileSync(cert.key);
  const crt = fs.readFileSync(cert.cert);
  const got = same(await both(async (env, r) => {
    const ts = tls.createServer({ key, cert: crt }, (c) => { c.on('data', (d: Buffer) => c.write(`tls:${d}`)); c.on('end', () => c.end()); });
    const srv = env.srv.createServer((s: Socket) => ts.emit('connection', s));
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const c = tls.connect({ socket: env.cli.connect(port, env.srvHost) as unknown as import('node:net').Socket, rejectUnauthorized: false, servername: 'localhost' });
    const ev: string[] = [];
    for (const n of ['secureConnect', 'end', 'close', 'error']) c.on(n, (e?: { code?: string }) => ev.push(n === 'error' ? `error ${e?.code}` : n));
    let text = '';
    c.on('data', (d: Buffer) => { text += d; });
    assert.ok(await until(() => ev.includes('secureConnect'), 5000), `${env.name}: handshake`);
    const session = { protocol: c.getProtocol(), authorized: c.authorized };
    c.write('hello');
    assert.ok(await until(() => text === 'tls:hello', 3000), `${env.name}: echoed`);
    c.end();
    assert.ok(await until(() => ev.includes('close'), 3000), `${env.name}: closed`);
    srv.close();
    const hs = https.createServer({ key, cert: crt }, (req, res) => res.end(`secure ${req.url}`));
    const srv2 = env.srv.createServer((s: Socket) => hs.emit('connection', s));
    const p2 = await listen(srv2, 0, env.srvHost);
    const body = await new Promise((resolve) => {
      const req = https.request({
        host: env.srvHost, port: p2, path: '/s', rejectUnauthorized: false,
        createConnection: (o: tls.ConnectionOptions) => tls.connect({ ...o, socket: env.cli.connect(p2, env.srvHost) as unknown as import('node:net').Socket }),
      } as https.RequestOptions, (res) => { let b = ''; res.on('data', (d: Buffer) => { b += d; }); res.on('end', () => resolve(b)); });
      req.on('error', (e: Error & { code?: string }) => resolve(`error ${e.code}`));
      req.end();
    });
    hs.close();
    srv2.close();
    await sleep(10);
    return { ev, text, session, body };
  }));
  assert.equal(got.ev, ['secureConnect', 'end', 'close']);
  assert.is(got.body, 'secure /s');
});

test('stream.pipeline through a socket, readline over a socket, events.once(server, \'listening\'), for await over a socket', async () => {
  const got = same(await both(async (env, r) => {
    const pipelineDone: unknown[] = [];
    const srv = env.srv.createServer((s: Socket) => {
      pipeline(s, new Transform({ transform(c: Buffer, _e, cb) { cb(null, c.toString().toUpperCase()); } }), s,
        (err) => pipelineDone.push((err as { code?: string } | null | undefined)?.code ?? null));
    });
    const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
    const s = env.cli.connect(port, env.srvHost);
    const rl = readline.createInterface({ input: s as unknown as NodeJS.ReadableStream, crlfDelay: Infinity });
    const lines: string[] = [];
    rl.on('line', (l) => lines.push(l));
    const rlClosed = once(rl, 'close');
    s.write('one\ntwo\r\nthr');
    await sleep(20);
    s.end('ee\n');
    await Promise.race([rlClosed, sleep(3000)]);
    assert.ok(await until(() => pipelineDone.length > 0, 3000), `${env.name}: the pipeline ended`);
    srv.close();
    const srv2 = env.srv.createServer((x: Socket) => x.end('abc'));
    srv2.listen(0, env.srvHost);
    await once(srv2, 'listening');
    const c = env.cli.connect((srv2.address() as { port: number }).port, env.srvHost);
    const chunks: string[] = [];
    for await (const ch of c) chunks.push(String(ch));
    srv2.close();
    const closeArgs = await Promise.race([once(srv2, 'close'), sleep(2000).then(() => ['timed out'])]);
    return { lines, pipelineDone, chunks: chunks.join(''), closeArgs };
  }));
  assert.equal(got, { lines: ['ONE', 'TWO', 'THREE'], pipelineDone: [null], chunks: 'abc', closeArgs: [] });
});

test.run();
