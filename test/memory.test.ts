import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink, MemoryEndpoint, MemoryLink, MemoryLinkOptions } from '../driver/memory';
import { Burst } from '../driver/types';

interface Got { bytes: Uint8Array; ts: number }

/** Fills a frame of `ep`'s pool: 14-byte Ethernet header, then a 4-byte sequence number, then a pattern. */
function sendSeq(ep: MemoryEndpoint, seqs: number[], len: number, now: number): void {
  const b = new Burst(seqs.length);
  for (const s of seqs) {
    const f = ep.pool.alloc();
    assert.ok(f >= 0, 'sender pool exhausted');
    const at = ep.pool.dataStart(f);
    const p = ep.pool.bytes;
    p.fill(0xee, at, at + 12);
    p[at + 12] = 0x88; p[at + 13] = 0xb5;
    new DataView(p.buffer).setUint32(at + 14, s);
    for (let i = 18; i < len; i++) p[at + i] = (i + s) & 0xff;
    b.push(f, at, len);
  }
  assert.is(ep.tx(b, now), seqs.length);
}

function send(ep: MemoryEndpoint, n: number, len: number, now: number, first = 0): void {
  for (let done = 0; done < n; done += 64) {
    const k = Math.min(64, n - done);
    sendSeq(ep, Array.from({ length: k }, (_, i) => first + done + i), len, now);
  }
}

/** Receives everything due at `now`, copying bytes out and freeing the frames. */
function recv(ep: MemoryEndpoint, now: number, into: Got[] = []): Got[] {
  const b = new Burst(16);
  for (;;) {
    const n = ep.rx(b, now);
    for (let i = 0; i < b.n; i++) {
      into.push({ bytes: ep.pool.bytes.slice(b.off[i]!, b.off[i]! + b.len[i]!), ts: b.ts[i]! });
      ep.pool.free(b.frame[i]!);
    }
    b.clear();
    if (n === 0) return into;
  }
}

/** Runs virtual time forward through every pending delivery to `ep`. */
function drain(ep: MemoryEndpoint, into: Got[] = []): Got[] {
  while (ep.nextDeadline() !== Infinity) recv(ep, ep.nextDeadline(), into);
  return into;
}

const seqOf = (g: Got) => new DataView(g.bytes.buffer, g.bytes.byteOffset).getUint32(14);

function checkPools(link: MemoryLink): void {
  for (const ep of [link.a, link.b]) {
    const c = ep.pool.check();
    assert.is(c.held, 0, `${ep.name} still holds frames`);
    assert.is(c.free, c.total);
  }
}

test('no impairment: exact, in-order delivery both ways', () => {
  const link = createMemoryLink({ frameCount: 128 });
  assert.equal(Array.from(link.a.mac), [2, 0, 0, 0, 0, 0x0a]);
  assert.equal(Array.from(link.b.mac), [2, 0, 0, 0, 0, 0x0b]);
  assert.is(link.a.mtu, 1500);
  assert.is.not(link.a.pool, link.b.pool);
  send(link.a, 100, 200, 50);
  send(link.b, 3, 1522, 60);
  assert.equal(link.a.pool.check().free, 128, 'sender frames are returned at once');
  assert.is(link.b.nextDeadline(), 50);
  assert.is(link.inFlight('ab'), 100);
  const got = recv(link.b, 50);
  assert.is(got.length, 100);
  got.forEach((g, i) => {
    assert.is(seqOf(g), i);
    assert.is(g.bytes.length, 200);
    assert.is(g.ts, 50);
    assert.is(g.bytes[100], (100 + i) & 0xff);
  });
  assert.is(link.b.nextDeadline(), Infinity);
  assert.is(recv(link.a, 59).length, 0);
  const back = recv(link.a, 60);
  assert.equal(back.map(seqOf), [0, 1, 2]);
  assert.is(back[0]!.bytes.length, 1522);
  const st = link.a.stats();
  assert.is(st.txPackets, 100);
  assert.is(st.txBytes, 20000);
  assert.is(st.rxPackets, 3);
  assert.equal(st.drops, {});
  assert.is(link.b.stats().rxPackets, 100);
  checkPools(link);
});

test('delay and jitter set delivery times; nextDeadline tracks the earliest', () => {
  const link = createMemoryLink({ ab: { delayUs: 1000 }, ba: { delayUs: 300, jitterUs: 200 } });
  send(link.a, 5, 100, 10);
  assert.is(link.b.nextDeadline(), 1010);
  assert.is(recv(link.b, 1009).length, 0);
  assert.equal(recv(link.b, 1010).map((g) => g.ts), [1010, 1010, 1010, 1010, 1010]);
  send(link.b, 500, 64, 0);
  const got = drain(link.a);
  assert.is(got.length, 500);
  for (const g of got) assert.ok(g.ts >= 300 && g.ts < 500, `ts ${g.ts}`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i]!.ts >= got[i - 1]!.ts, 'delivered in time order');
  const spread = Math.max(...got.map((g) => g.ts)) - Math.min(...got.map((g) => g.ts));
  assert.ok(spread > 150, `jitter spread ${spread}`);
  checkPools(link);
});

test('10% loss over 10000 frames', () => {
  const link = createMemoryLink({ loss: 0.1, seed: 7, frameCount: 256 });
  for (let t = 0; t < 100; t++) { send(link.a, 100, 60, t, t * 100); recv(link.b, t); }
  const c = link.a.linkCounters();
  assert.ok(c.lost > 900 && c.lost < 1100, `lost ${c.lost}`);
  assert.is(c.delivered, 10000 - c.lost);
  assert.is(link.b.stats().rxPackets, 10000 - c.lost);
  assert.is(link.a.stats().drops['link-loss'], c.lost);
  checkPools(link);
});

test('duplicates are byte-identical extra copies', () => {
  const link = createMemoryLink({ duplicate: 0.2, seed: 3, frameCount: 256 });
  const got: Got[] = [];
  for (let t = 0; t < 50; t++) { send(link.a, 100, 80, t, t * 100); recv(link.b, t, got); }
  const c = link.a.linkCounters();
  assert.ok(c.duplicated > 850 && c.duplicated < 1150, `duplicated ${c.duplicated}`);
  assert.is(got.length, 5000 + c.duplicated);
  let dups = 0;
  for (let i = 1; i < got.length; i++) {
    if (seqOf(got[i]!) === seqOf(got[i - 1]!)) {
      dups++;
      assert.equal(Array.from(got[i]!.bytes), Array.from(got[i - 1]!.bytes));
    }
  }
  assert.is(dups, c.duplicated);
  assert.equal([...new Set(got.map(seqOf))].length, 5000);
  checkPools(link);
});

test('corruption flips exactly one bit', () => {
  const link = createMemoryLink({ corrupt: 0.3, seed: 11, frameCount: 256 });
  const ref = createMemoryLink({ frameCount: 256 });
  for (let t = 0; t < 20; t++) { send(link.a, 100, 120, t, t * 100); send(ref.a, 100, 120, t, t * 100); }
  const got = drain(link.b);
  const want = drain(ref.b);
  assert.is(got.length, 2000);
  let changed = 0;
  for (let i = 0; i < got.length; i++) {
    let bits = 0;
    const a = got[i]!.bytes, b = want[i]!.bytes;
    for (let k = 0; k < a.length; k++) { let x = a[k]! ^ b[k]!; while (x) { bits += x & 1; x >>= 1; } }
    assert.ok(bits <= 1, `frame ${i} differs in ${bits} bits`);
    changed += bits;
  }
  const c = link.a.linkCounters();
  assert.is(changed, c.corrupted);
  assert.ok(c.corrupted > 500 && c.corrupted < 700, `corrupted ${c.corrupted}`);
  checkPools(link);
  checkPools(ref);
});

test('rate limit spaces frames by their serialization time; the queue tail-drops', () => {
  // 8 Mbit/s = 1 byte per µs: a 1000-byte frame takes 1000 µs
  const link = createMemoryLink({ ab: { rateBps: 8e6, queueFrames: 4, delayUs: 50 } });
  send(link.a, 10, 1000, 0);
  const c = link.a.linkCounters();
  assert.is(c.queueDrops, 6);
  assert.is(link.a.stats().drops['queue-full'], 6);
  const got = drain(link.b);
  assert.equal(got.map((g) => g.ts), [1050, 2050, 3050, 4050]);
  assert.equal(got.map(seqOf), [0, 1, 2, 3]);
  // once the queue has drained a little, frames are accepted again and wait behind the busy line
  send(link.a, 2, 1000, 2500); // queue holds frames ending at 3000 and 4000: room for 2
  send(link.a, 1, 500, 2500); // queue full again (4 frames waiting)
  assert.is(link.a.linkCounters().queueDrops, 7);
  assert.equal(drain(link.b).map((g) => g.ts), [5050, 6050]);
  // frames sent after the line is idle start at once
  send(link.a, 1, 500, 10000);
  assert.equal(drain(link.b).map((g) => g.ts), [10550]);
  checkPools(link);
});

test('reordering holds frames back so later ones overtake them', () => {
  const link = createMemoryLink({ reorder: 0.25, reorderDelayUs: 55, seed: 5 });
  const got: Got[] = [];
  for (let i = 0; i < 2000; i++) { send(link.a, 1, 64, i * 10, i); recv(link.b, i * 10, got); }
  drain(link.b, got);
  const c = link.a.linkCounters();
  assert.ok(c.reordered > 400 && c.reordered < 600, `reordered ${c.reordered}`);
  const seen = got.map(seqOf);
  let inversions = 0;
  for (let i = 1; i < seen.length; i++) if (seen[i]! < seen[i - 1]!) inversions++;
  assert.ok(inversions > 300, `inversions ${inversions}`);
  // nothing lost or duplicated, and a held-back frame arrives exactly reorderDelayUs late
  assert.equal([...seen].sort((x, y) => x - y), Array.from({ length: 2000 }, (_, i) => i));
  const late = got.filter((g) => g.ts !== seqOf(g) * 10);
  assert.is(late.length, c.reordered);
  for (const g of late) assert.is(g.ts, seqOf(g) * 10 + 55);
  checkPools(link);
});

function scenario(seed: number): Got[] {
  const opts: MemoryLinkOptions = {
    seed, loss: 0.05, duplicate: 0.05, reorder: 0.1, reorderDelayUs: 300, delayUs: 100, jitterUs: 80,
    corrupt: 0.05, rateBps: 100e6, queueFrames: 64, frameCount: 256,
  };
  const link = createMemoryLink(opts);
  const out: Got[] = [];
  for (let t = 0; t < 300; t++) {
    send(link.a, 7, 60 + (t % 50) * 20, t * 40, t * 7);
    send(link.b, 3, 100, t * 40, t * 3);
    recv(link.b, t * 40, out);
    recv(link.a, t * 40, out);
  }
  drain(link.b, out);
  drain(link.a, out);
  checkPools(link);
  return out;
}

test('same seed and inputs give byte-identical deliveries; other seeds differ', () => {
  const x = scenario(42), y = scenario(42), z = scenario(43);
  assert.is(x.length, y.length);
  for (let i = 0; i < x.length; i++) {
    assert.is(x[i]!.ts, y[i]!.ts);
    assert.equal(Array.from(x[i]!.bytes), Array.from(y[i]!.bytes));
  }
  const same = x.length === z.length && x.every((g, i) => g.ts === z[i]!.ts && g.bytes.every((v, k) => v === z[i]!.bytes[k]));
  assert.not.ok(same, 'seed 43 gives a different sequence');
});

test('empty receiver pool drops and counts; oversize and closed are counted', () => {
  const link = createMemoryLink({ frameCount: 8 });
  send(link.a, 8, 60, 0);
  const b = new Burst(64);
  assert.is(link.b.rx(b, 0), 8);
  send(link.a, 3, 60, 1);
  assert.is(link.b.rx(b, 1), 0);
  assert.is(link.b.stats().drops['no-frame'], 3);
  assert.is(link.a.linkCounters().noFrame, 3);
  assert.is(link.b.nextDeadline(), Infinity);
  for (let i = 0; i < b.n; i++) link.b.pool.free(b.frame[i]!);
  b.clear();
  // a frame longer than mtu + 22 is not sent
  const f = link.a.pool.alloc();
  b.push(f, link.a.pool.dataStart(f), 1523);
  assert.is(link.a.tx(b, 2), 1);
  b.clear();
  assert.is(link.a.stats().drops['tx-too-big'], 1);
  // closing an endpoint throws away what is in flight to it; its tx drops and frees
  send(link.a, 2, 60, 3);
  link.b.close();
  assert.is(link.inFlight('ab'), 0);
  assert.is(link.b.rx(b, 10), 0);
  send(link.b, 1, 60, 4);
  assert.is(link.b.stats().drops.closed, 1);
  checkPools(link);
});

test('a full wire drops and counts', () => {
  const link = createMemoryLink({ wireFrames: 16, delayUs: 10 });
  send(link.a, 20, 60, 0);
  assert.is(link.a.linkCounters().wireFull, 4);
  assert.is(link.a.stats().drops['wire-full'], 4);
  assert.is(link.inFlight('ab'), 16);
  assert.is(drain(link.b).length, 16);
  checkPools(link);
});

test('options are validated; impairments can change at run time', () => {
  assert.throws(() => createMemoryLink({ loss: 1.5 }), /loss must be a probability/);
  assert.throws(() => createMemoryLink({ ab: { delayUs: -1 } }), /delayUs must be/);
  assert.throws(() => createMemoryLink({ queueFrames: 0 }), /queueFrames/);
  assert.throws(() => createMemoryLink({ mtu: 9000 }), /does not fit/);
  assert.throws(() => createMemoryLink({ macA: '02:00' }), /not a MAC/);
  const link = createMemoryLink({ macA: '02:11:22:33:44:55', nameA: 'left' });
  assert.is(link.a.name, 'left');
  assert.is(link.a.mac[5], 0x55);
  link.setImpairments('ab', { loss: 1 });
  send(link.a, 10, 60, 0);
  assert.is(link.a.linkCounters().lost, 10);
  link.setImpairments('ab', {});
  send(link.a, 10, 60, 0);
  assert.is(drain(link.b).length, 10);
  assert.is(link.nextDeadline(), Infinity);
  checkPools(link);
});

test.run();
