/**
 * Regression: a connection that carries a streamed capture carries nothing else in the middle of
 * it. Requests sent on it in one write with the trace (pipelined, before its 'started' line went
 * out) are answered after the capture, as those sent while it streams; the events of a ping
 * started earlier on the same connection wait for the capture's end too. Read as the protocol
 * says (JSON lines; after a 'started' line with `stream`, length-prefixed chunks up to a zero
 * length), the connection parses and the capture is a whole pcap.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink } from '../driver/memory';
import { readCapture } from '../driver/pcap';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';

type Item = { line: Record<string, unknown> } | { capture: Buffer };

/** The connection's bytes as the protocol reads them; throws where they do not parse. */
function parse(b: Buffer): Item[] {
  const items: Item[] = [];
  let off = 0;
  while (off < b.length) {
    const nl = b.indexOf(10, off);
    if (nl < 0) throw new Error(`a partial line at byte ${off}`);
    const text = b.subarray(off, nl).toString('utf8');
    off = nl + 1;
    let line: Record<string, unknown>;
    try { line = JSON.parse(text) as Record<string, unknown>; } catch { throw new Error(`not a JSON line at byte ${off}: ${JSON.stringify(text.slice(0, 40))}`); }
    items.push({ line });
    if (line.event === 'started' && line.stream) {
      const parts: Buffer[] = [];
      for (;;) {
        if (off + 4 > b.length) throw new Error('the capture has no end mark');
        const n = b.readUInt32BE(off);
        off += 4;
        if (n === 0) break;
        if (off + n > b.length) throw new Error(`a chunk of ${n} bytes is cut`);
        parts.push(b.subarray(off, off + n));
        off += n;
      }
      items.push({ capture: Buffer.concat(parts) });
    }
  }
  return items;
}

async function withStack(fn: (stack: Stack, sock: string) => Promise<void>): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-pipeline-'));
  const sock = path.join(tmp, 'p.sock');
  const link = createMemoryLink({ frameCount: 4096 });
  const stack = createStack({
    name: 'pipeline', engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory' }, { name: 'm1', driver: 'memory' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] },
      { name: 'b', links: [{ device: 'm1', addresses: ['10.1.1.2/24'] }] },
    ],
  }, { drivers: { m0: link.a, m1: link.b }, log: () => {} });
  stack.start();
  const server = await ControlServer.listen(stack, sock);
  try {
    await fn(stack, sock);
  } finally {
    await server.close();
    stack.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Writes `lines` at once (then `later` after 50 ms), half-closes after `ms`, and returns everything
 * the stack sent until it closed.
 */
function session(sock: string, lines: object[], ms: number, later: object[] = []): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    const got: Buffer[] = [];
    const guard = setTimeout(() => { c.destroy(); reject(new Error('the stack did not close the connection')); }, ms + 5000);
    c.on('data', (d: Buffer) => got.push(d));
    c.on('error', reject);
    c.on('close', () => { clearTimeout(guard); resolve(Buffer.concat(got)); });
    const text = (ls: object[]) => ls.map((l) => (typeof l === 'string' ? l : JSON.stringify(l)) + '\n').join('');
    c.write(text(lines));
    if (later.length) setTimeout(() => c.write(text(later)), 50);
    setTimeout(() => c.end(), ms);
  });
}

const lines = (items: Item[]) => items.filter((x): x is { line: Record<string, unknown> } => 'line' in x).map((x) => x.line);
const captures = (items: Item[]) => items.filter((x): x is { capture: Buffer } => 'capture' in x).map((x) => x.capture);

test('requests pipelined behind a streamed trace are answered after its capture, not inside it', async () => {
  await withStack(async (stack, sock) => {
    const traffic = stack.vs('a').ping('10.1.1.2', { count: 20, interval: 0.05 });
    const bytes = await session(sock, [
      { cmd: 'trace', stream: true, count: 3 },
      { cmd: 'ping' },
      { cmd: 'trace', stream: true, count: 1 },
    ], 1500);
    traffic.stop();
    const items = parse(bytes);
    const ls = lines(items);
    assert.equal(ls.map((l) => l.event ?? (l.ok ? 'answer' : 'error')), ['started', 'done', 'error', 'error'],
      'one capture; the two requests after it are answered, once it is done');
    const caps = captures(items);
    assert.is(caps.length, 1);
    assert.is(readCapture(caps[0]!).length, 3, 'the capture is a whole pcap of three frames');
    assert.match(String(ls[2]!.error), /streaming a trace/);
  });
});

test('a bad line during the capture is answered after it; requests behind a trace that fails to start are handled', async () => {
  await withStack(async (stack, sock) => {
    const traffic = stack.vs('a').ping('10.1.1.2', { count: 20, interval: 0.05 });
    const bytes = await session(sock, [{ cmd: 'trace', stream: true, count: 4 }, 'not json' as unknown as object], 1500);
    const refused = await session(sock, [{ cmd: 'trace', stream: true, port: 'x' }, { cmd: 'ping' }], 300);
    traffic.stop();
    const items = parse(bytes);
    assert.is(readCapture(captures(items)[0]!).length, 4);
    const ls = lines(items);
    assert.equal(ls.map((l) => l.event ?? (l.ok ? 'answer' : 'error')), ['started', 'done', 'error']);
    assert.match(String(ls[2]!.error), /bad request/);
    const r = lines(parse(refused));
    assert.is(r.length, 2);
    assert.match(String(r[0]!.error), /trace: port must be a TCP\/UDP port/);
    assert.is(r[1]!.ok, true, 'the request behind the refused trace is answered as usual');
  });
});

test("a ping's events on the connection wait while a trace streams on it", async () => {
  await withStack(async (_stack, sock) => {
    // The trace starts after the ping's first exchange and lasts over the next three (two frames each).
    const bytes = await session(sock, [{ cmd: 'icmp.echo', vs: 'a', target: '10.1.1.2', count: 6, interval: 0.1 }], 1500,
      [{ cmd: 'trace', stream: true, count: 6 }]);
    const items = parse(bytes);
    const caps = captures(items);
    assert.is(caps.length, 1);
    assert.is(readCapture(caps[0]!).length, 6);
    const evs = lines(items).map((l) => l.event);
    assert.is(evs.filter((e) => e === 'reply').length, 6, 'every reply reported');
    assert.is(evs.filter((e) => e === 'done').length, 2, "the trace's and the ping's summaries");
  });
});

test.run();
