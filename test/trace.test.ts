import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { traceDriver } from '../driver/trace';
import { PcapWriter, readCapture, openPcapDriver } from '../driver/pcap';
import { createMemoryLink } from '../driver/memory';
import { Burst, Driver } from '../driver/types';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-trace-'));

function tsharkFields(file: string, fields: string[]): string[][] {
  let out: string;
  try {
    out = execFileSync('tshark', ['-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('tshark is not installed (scripts/setup.sh installs it)');
    throw e;
  }
  return out.split('\n').filter((l) => l.trim()).map((l) => l.split('\t'));
}

/** Sends `lens.length` frames from `d`, each with destination MAC `dst` and its length. */
function sendFrames(d: Driver, dst: number, lens: number[], now: number): number {
  const b = new Burst();
  for (const len of lens) {
    const f = d.pool.alloc();
    const at = d.pool.dataStart(f);
    const p = d.pool.bytes;
    p.fill(0, at, at + len);
    p.set([2, 0, 0, 0, 0, dst], at);
    p.set(d.mac, at + 6);
    p[at + 12] = 0x88; p[at + 13] = 0xb5;
    b.push(f, at, len);
  }
  return d.tx(b, now);
}

function recvAll(d: Driver, now: number): number[] {
  const b = new Burst();
  const lens: number[] = [];
  d.rx(b, now);
  for (let i = 0; i < b.n; i++) { lens.push(b.len[i]!); d.pool.free(b.frame[i]!); }
  return lens;
}

test('trace over a memory link writes both directions, readable by tshark', () => {
  const file = path.join(tmp, 'both.pcap');
  const w = new PcapWriter(file);
  const link = createMemoryLink({ ab: { delayUs: 100 }, ba: { delayUs: 100 } });
  const a = traceDriver(link.a, w);
  assert.is(a.kind, 'trace(memory)');
  assert.is(a.pool, link.a.pool);
  assert.is(a.mac, link.a.mac);
  assert.is(a.mtu, 1500);
  assert.is(sendFrames(a, 0x0b, [60, 70], 1_000_000), 2); // a → b at t = 1 s
  assert.equal(recvAll(link.b, 1_000_100), [60, 70]);
  sendFrames(link.b, 0x0a, [80, 90, 100], 1_000_200); // b → a
  assert.is(a.nextDeadline(), 1_000_300);
  assert.equal(recvAll(a, 1_000_300), [80, 90, 100]);
  assert.is(a.stats().traced, 5);
  assert.is(a.stats().txPackets, 2);
  a.close();
  w.close();
  const rows = tsharkFields(file, ['frame.len', 'eth.src', 'frame.time_epoch']);
  assert.equal(rows.map((r) => Number(r[0])), [60, 70, 80, 90, 100]);
  assert.equal(rows.map((r) => r[1]), ['02:00:00:00:00:0a', '02:00:00:00:00:0a', '02:00:00:00:00:0b', '02:00:00:00:00:0b', '02:00:00:00:00:0b']);
  assert.equal(readCapture(file).map((r) => r.tsUs), [1_000_000, 1_000_000, 1_000_300, 1_000_300, 1_000_300]);
  assert.equal(link.a.pool.check().free, link.a.pool.frameCount);
  assert.equal(link.b.pool.check().free, link.b.pool.frameCount);
});

test('rx/tx switches, filter and limit', () => {
  const link = createMemoryLink({});
  const onlyTx = new PcapWriter();
  const t1 = traceDriver(link.a, onlyTx, { rx: false });
  sendFrames(t1, 0x0b, [60], 0);
  sendFrames(link.b, 0x0a, [61], 0);
  assert.equal(recvAll(t1, 0), [61]);
  assert.equal(readCapture(onlyTx.toBuffer()).map((r) => r.data.length), [60]);

  const filtered = new PcapWriter();
  const t2 = traceDriver(link.a, filtered, { filter: (bytes, off, len) => len >= 100 && bytes[off + 13] === 0xb5, limit: 3 });
  sendFrames(t2, 0x0b, [60, 100, 200, 99, 300, 400, 500], 0);
  recvAll(link.b, 0);
  sendFrames(link.b, 0x0a, [150], 0);
  assert.equal(recvAll(t2, 0), [150]);
  assert.equal(readCapture(filtered.toBuffer()).map((r) => r.data.length), [100, 200, 300]);
  assert.is(t2.traced, 3);
  assert.equal(link.a.pool.check().held, 0);
  assert.equal(link.b.pool.check().held, 0);
});

test('trace over the pcap driver records the replayed input and the replies', () => {
  const input = new PcapWriter();
  const fr = new Uint8Array(64).fill(7);
  input.write(fr, 0, 64, 10);
  input.write(fr, 0, 60, 20);
  const outFile = path.join(tmp, 'replay-out.pcap');
  const traceFile = path.join(tmp, 'replay-trace.pcap');
  const d = traceDriver(openPcapDriver({ input: input.toBuffer(), output: outFile, frameCount: 4 }), new PcapWriter(traceFile), { closeWriter: true });
  const b = new Burst();
  while (d.nextDeadline() !== Infinity) {
    const now = d.nextDeadline();
    d.rx(b, now);
    d.service(now);
    assert.is(d.tx(b, now + 5), b.n); // echo every frame back
    b.clear();
  }
  d.close();
  assert.equal(readCapture(traceFile).map((r) => [r.tsUs, r.data.length]), [[10, 64], [15, 64], [20, 60], [25, 60]]);
  assert.equal(tsharkFields(traceFile, ['frame.len']).map((r) => Number(r[0])), [64, 64, 60, 60]);
  assert.equal(readCapture(outFile).map((r) => r.tsUs), [15, 25]);
  assert.equal(d.pool.check().free, 4);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
