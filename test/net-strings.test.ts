/**
 * Strings written to sockets arrive as the bytes of their encoding: UTF-8 with multi-byte
 * characters, latin1, hex, base64; large strings; corked writes mixing strings and Buffers; strings
 * written while connecting; and a small send buffer that forces partial writes (the rest must not be
 * overwritten by later writes).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, sha } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';

async function roundTrip(write: (c: Socket) => void, tcp = {}, whileConnecting = false): Promise<Buffer> {
  const w = twoHosts({ tcp });
  const got: Buffer[] = [];
  let ended = false;
  createServer(w.a.ctx(), (s: Socket) => {
    s.on('data', (d) => got.push(d));
    s.on('end', () => { ended = true; s.end(); });
  }).listen(80);
  const c = connect(w.b.ctx(), 80, '10.1.1.1');
  if (whileConnecting) { write(c); c.end(); } else c.once('connect', () => { write(c); c.end(); });
  assert.ok(await w.run(() => ended, 60_000_000), 'transfer completed');
  return Buffer.concat(got);
}

test('encodings: utf8 (multi-byte), latin1, hex, base64, written while connecting', async () => {
  const parts: [string, BufferEncoding][] = [
    ['héllo wörld ✓ 𝄞 ', 'utf8'], ['caf\u00e9 ', 'latin1'], ['deadbeef', 'hex'], ['aGVsbG8=', 'base64'],
  ];
  const want = Buffer.concat(parts.map(([s, e]) => Buffer.from(s, e)));
  for (const early of [true, false]) {
    const got = await roundTrip((c) => { for (const [s, e] of parts) c.write(s, e); }, {}, early);
    assert.ok(got.equals(want), `${early ? 'while connecting' : 'connected'}: ${got.toString('hex')} vs ${want.toString('hex')}`);
  }
});

test('large strings and corked writes mixing strings and Buffers arrive byte-exact', async () => {
  const big = 'x'.repeat(30_000) + 'ü'.repeat(20_000) + '€'.repeat(10_000); // > 64 KiB of UTF-8
  const want: Buffer[] = [];
  const got = await roundTrip((c) => {
    c.cork();
    for (let i = 0; i < 50; i++) {
      const h = `HTTP/1.1 200 OK\r\nX-N: ${i}\r\n\r\n`;
      const b = Buffer.from(`body-${i}-ä`);
      c.write(h, 'latin1');
      c.write(b);
      want.push(Buffer.from(h, 'latin1'), b);
    }
    c.uncork();
    c.write(big);
    want.push(Buffer.from(big));
  });
  assert.is(sha(got), sha(Buffer.concat(want)));
});

test('a small send buffer: string writes wait for room, their bytes stay intact (two sockets interleaved)', async () => {
  const w = twoHosts({ tcp: { sndBuf: 4096 } });
  const got = new Map<number, Buffer[]>();
  let ended = 0;
  createServer(w.a.ctx(), (s: Socket) => {
    const list: Buffer[] = [];
    got.set(s.remotePort!, list);
    s.on('data', (d) => list.push(d));
    s.on('end', () => { ended++; s.end(); });
  }).listen(80);
  const want = new Map<number, Buffer[]>();
  const clients = [0, 1].map(() => connect(w.b.ctx(), 80, '10.1.1.1'));
  let connected = 0;
  for (const c of clients) c.once('connect', () => { connected++; });
  assert.ok(await w.run(() => connected === 2, 1_000_000));
  const port = new Map(clients.map((c) => [c, c.localPort!]));
  for (const c of clients) want.set(port.get(c)!, []);
  for (let i = 0; i < 400; i++) {
    for (const [k, c] of clients.entries()) {
      const s = `conn ${k} line ${i}: ${(k ? 'αβγδ' : 'wxyz').repeat(i % 50)}\n`;
      c.write(s); // the send buffer fills at once: most of these wait
      want.get(port.get(c)!)!.push(Buffer.from(s));
    }
  }
  for (const c of clients) c.end();
  assert.ok(await w.run(() => ended === 2, 60_000_000), 'both transfers completed');
  for (const c of clients) {
    const g = Buffer.concat(got.get(port.get(c)!)!);
    const x = Buffer.concat(want.get(port.get(c)!)!);
    assert.is(g.length, x.length);
    assert.is(sha(g), sha(x), `connection from port ${port.get(c)}`);
  }
});

test.run();
