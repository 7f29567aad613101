/**
 * Shared pieces of the kernel-peer lab tests that drive a whole `Stack` over AF_XDP: frame
 * accounting after a test, the bounded wait for DAD, connecting to a kernel listener that may not be
 * up yet, bounded writes and the 100 MB kernel → app transfer hashed on both sides.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { createHash, randomBytes, Hash } from 'node:crypto';
import { once } from 'node:events';
import { sleep } from './rig';
import type { Stack, VsHandle } from '../../stack/stack';
import type { Socket, TcpSocketConnectOpts } from '../../stack/api/net';

export type SockErr = Error & { code?: string };

/** `test` where the lab can run (as root); elsewhere a no-op, so the file reports fewer tests. */
export function privilegedTest(privileged: boolean): typeof test {
  return privileged ? test : ((() => {}) as unknown as typeof test);
}

/** After the traffic settles (frames queued for TX leave within a few ms), every frame of the stack's first device is accounted for. */
export async function framesAccounted(stack: Stack): Promise<void> {
  const pool = stack.engine.devices[0]!.pool;
  for (let i = 0; i < 200 && pool.check().held !== 0; i++) await sleep(10);
  const c = pool.check();
  assert.is(c.free + c.kernel + c.tx + c.held, c.total, `frame states add up: ${JSON.stringify(c)}`);
  assert.is(c.held, 0, `no frame held: ${JSON.stringify(c)}`);
}

/** The addresses are tentative until DAD passes (RFC 4862, 1 s): bounded wait until all are preferred. */
export async function addressesPreferred(stack: Stack): Promise<void> {
  const tentative = () => (stack.show('addresses') as Array<{ state: string }>).some((a) => a.state !== 'preferred');
  for (let i = 0; i < 100 && tentative(); i++) await sleep(50);
  assert.not.ok(tentative(), 'addresses preferred after DAD');
}

/** `p`, or a rejection naming `what` after `ms` (the timer does not outlive the race). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Connects from the VS, retrying (bounded) while the kernel peer's listener is not up yet (RST → ECONNREFUSED). */
export async function connectRetry(vs: VsHandle, opts: TcpSocketConnectOpts, tries = 50): Promise<Socket> {
  for (let i = 0; ; i++) {
    const s = vs.connect(opts);
    const r = await new Promise<SockErr | null>((resolve) => {
      s.once('connect', () => resolve(null));
      s.once('error', (e: SockErr) => resolve(e));
    });
    if (!r) return s;
    if (r.code !== 'ECONNREFUSED' || i >= tries) throw r;
    await sleep(100);
  }
}

/** Writes every chunk, waiting for 'drain' when asked to; with `drainMs` a stalled connection fails here instead of holding the suite. */
export async function writeAll(s: Socket, chunks: Iterable<Buffer>, drainMs?: number): Promise<void> {
  for (const c of chunks) {
    if (s.write(c)) continue;
    await (drainMs === undefined ? once(s, 'drain') : within(once(s, 'drain'), drainMs, 'drain'));
  }
}

/** `n` random chunks of `size` bytes, each fed to `h` as it is made. */
export function* randomChunks(h: Hash, n: number, size: number): Generator<Buffer> {
  for (let i = 0; i < n; i++) { const b = randomBytes(size); h.update(b); yield b; }
}

/** Writes `n` random MiB to `file`; their sha256 (hex). */
export function writeRandomFile(file: string, n: number): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (const b of randomChunks(h, n, 1 << 20)) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export interface Hashed { hash: string; bytes: number; peer: string; family: string }

/**
 * A server of `vs` on `port` for one connection: hashes all it receives, ends its side and closes
 * the listener at the peer's end. `peer` is the connection's `remoteAddress remoteFamily`, `family`
 * the listener's address family.
 */
export function hashOneConnection(vs: VsHandle, port: number): Promise<Hashed> {
  return new Promise<Hashed>((resolve, reject) => {
    const srv = vs.createServer((s) => {
      const peer = `${s.remoteAddress} ${s.remoteFamily}`;
      const family = String(srv.address() && (srv.address() as { family: string }).family);
      const hh = createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => { hh.update(d); n += d.length; });
      s.on('error', reject);
      s.on('end', () => { s.end(); srv.close(); resolve({ hash: hh.digest('hex'), bytes: n, peer, family }); });
    });
    srv.listen(port);
  });
}

/**
 * Writes `chunks` on `s`, ends it and waits for the peer's end (within `ms` when given); all that
 * came back. With `ms` the writes are bounded the same way.
 */
export async function sendAndReceive(s: Socket, chunks: Buffer[], ms?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  const ended = once(s, 'end');
  await writeAll(s, chunks, ms);
  s.end();
  await (ms === undefined ? ended : within(ended, ms, 'end'));
  return Buffer.concat(parts);
}

/**
 * A python3 TCP server for one connection (run it in a peer's namespace): it hashes what it
 * receives until the client's end, then sends `reply` (a Python expression over `a`, the client's
 * address, `n`, the byte count, and `h`, the sha256), then each of the `after` lines, and closes.
 */
export function pyHashServer(socketArgs: string, bindAddr: string, reply: string, after: string[] = []): string {
  return [
    'import socket,hashlib',
    `l=socket.socket(${socketArgs})`,
    'l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)',
    `l.bind(${bindAddr})`,
    'l.listen(1)',
    'c,a=l.accept()',
    'h=hashlib.sha256()',
    'n=0',
    'while True:',
    '  d=c.recv(65536)',
    '  if not d: break',
    '  h.update(d); n+=len(d)',
    `c.sendall((${reply}).encode())`,
    ...after,
    'c.close()',
  ].join('\n');
}
