import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpState } from '../protocols/tcp/types';
import { ChannelOpts, Pair, pattern } from './tcp-harness';
import type { TcpOptions } from '../protocols/tcp/types';

function transfer(size: number, co: ChannelOpts, opts: Partial<TcpOptions>, limitUs = 600_000_000) {
  const p = new Pair(co, opts, opts);
  const data = pattern(3, size);
  p.a.connect(0);
  p.run(5_000_000, () => p.a.state === TcpState.Established && p.b !== null && p.b.state === TcpState.Established);
  assert.is(p.a.state, TcpState.Established, 'handshake');
  let off = 0;
  const pump = () => {
    while (off < size) {
      const n = p.a.write(data, off, Math.min(65536, size - off), p.now);
      if (n === 0) break;
      off += n;
    }
    if (off === size && p.a.state === TcpState.Established) p.a.shutdown(p.now);
  };
  p.ha.onWritable = () => pump();
  pump();
  const end = p.run(limitUs, () => p.hb.rxBytes >= size && p.hb.remoteClosed > 0);
  assert.is(p.hb.rxBytes, size, `all bytes delivered (t=${end}us, a=${p.a.stateName}, b=${p.b!.stateName}, ` +
    `cwnd=${p.a.cwnd}, rto=${p.a.rto}, una=${p.a.sndUna}, nxt=${p.a.sndNxt}, max=${p.a.sndMax})`);
  assert.ok(Buffer.compare(Buffer.from(p.hb.received()), Buffer.from(data)) === 0, 'byte exact');
  // Close the other direction and let both sides finish.
  p.b!.shutdown(p.now);
  p.run(p.now + 200_000_000, () => p.a.state === TcpState.Closed && p.b!.state === TcpState.Closed);
  assert.is(p.b!.state, TcpState.Closed, `B closed (${p.b!.stateName})`);
  assert.is(p.a.state, TcpState.Closed, `A closed after TIME_WAIT (${p.a.stateName})`);
  assert.equal(p.ha.closed, [null]);
  assert.equal(p.hb.closed, [null]);
  return { p, end };
}

const lossy: ChannelOpts = { seed: 7, loss: 0.02, dup: 0.01, reorder: 0.03, delayUs: 5000, jitterUs: 1000, rate: 12.5, queueBytes: 200_000 };

test('clean channel: 1 MB with defaults (CUBIC, SACK, TS, WS)', () => {
  const { p } = transfer(1 << 20, { seed: 1, loss: 0, dup: 0, reorder: 0, delayUs: 1000, jitterUs: 0 }, {});
  assert.is(p.a.stats.retransSegs, 0);
  assert.ok(p.a.timestamps && p.a.sack && p.a.recvWscale > 0);
});

for (const cc of ['newreno', 'cubic'] as const) {
  test(`5 MB byte-exact over a lossy/reordering/duplicating channel, ${cc} with SACK`, () => {
    const { p, end } = transfer(5 << 20, lossy, { cc });
    assert.ok(p.a.stats.retransSegs > 0, 'losses were repaired');
    assert.ok(p.a.stats.sackRecoveries > 0, 'SACK recovery used');
    assert.ok(end < 300_000_000, `finished in ${end / 1e6}s virtual`);
  });
  test(`5 MB byte-exact over a lossy channel, ${cc} without SACK and timestamps (NewReno recovery)`, () => {
    const { p, end } = transfer(5 << 20, { ...lossy, seed: 11 }, { cc, sack: false, timestamps: false });
    assert.ok(p.a.stats.fastRetransmits > 0, 'fast retransmit used');
    assert.ok(end < 400_000_000, `finished in ${end / 1e6}s virtual`);
  });
}

test('heavy loss (10%) still completes', () => {
  transfer(512 * 1024, { seed: 5, loss: 0.1, dup: 0.02, reorder: 0.05, delayUs: 2000, jitterUs: 2000 }, { cc: 'cubic' });
});

test('small buffers and window scaling off: flow control with a slow reader', () => {
  const co: ChannelOpts = { seed: 3, loss: 0.01, dup: 0, reorder: 0.01, delayUs: 1000, jitterUs: 200 };
  const p = new Pair(co, { windowScale: false, rcvBuf: 8192, sndBuf: 8192 }, { windowScale: false, rcvBuf: 8192, sndBuf: 8192 });
  p.a.connect(0);
  p.run(5_000_000, () => p.b !== null && p.b.state === TcpState.Established);
  p.hb.autoConsume = false;
  const data = pattern(0, 100_000);
  let off = 0;
  const pump = () => { while (off < data.length) { const n = p.a.write(data, off, data.length - off, p.now); if (!n) break; off += n; } };
  p.ha.onWritable = pump;
  pump();
  let consumed = 0;
  // The reader consumes 4 KiB every 10 ms.
  const step = () => {
    const n = Math.min(4096, p.hb.rxBytes - consumed);
    if (n > 0) { consumed += n; p.b!.consumed(n, p.now); }
  };
  for (let t = 10_000; t < 120_000_000 && consumed < data.length; t += 10_000) {
    p.run(t, () => false);
    p.now = t;
    step();
    assert.ok(p.hb.rxBytes - consumed <= 8192, 'never more than the receive buffer unconsumed');
  }
  assert.is(consumed, data.length);
  assert.ok(Buffer.compare(Buffer.from(p.hb.received()), Buffer.from(data)) === 0);
});

test('both directions at once over varied channels (seeds, loss, reordering, options) never stall', () => {
  let runs = 0;
  for (let seed = 1; seed <= 24; seed++) {
    const co: ChannelOpts = {
      seed, loss: (seed % 5) * 0.02, dup: 0.02, reorder: (seed % 3) * 0.05, delayUs: 3000, jitterUs: seed % 2 ? 3000 : 0,
      rate: seed % 4 ? 12.5 : 0, queueBytes: 100_000,
    };
    const sack = seed % 3 !== 1;
    const o: Partial<TcpOptions> = { cc: seed % 2 ? 'cubic' : 'newreno', sack, timestamps: seed % 4 < 2, windowScale: seed % 7 !== 0 };
    const p = new Pair(co, o, o);
    p.a.connect(0);
    p.run(60_000_000, () => p.b !== null && p.b.state === TcpState.Established && p.a.state === TcpState.Established);
    assert.is(p.a.state, TcpState.Established, `seed ${seed}: handshake`);
    const da = pattern(seed, 200_000);
    const db = pattern(seed + 1, 100_000);
    let oa = 0;
    let ob = 0;
    const pa = () => {
      while (oa < da.length) { const n = p.a.write(da, oa, da.length - oa, p.now); if (!n) break; oa += n; }
      if (oa === da.length && p.a.state === TcpState.Established) p.a.shutdown(p.now);
    };
    const pb = () => { while (ob < db.length) { const n = p.b!.write(db, ob, db.length - ob, p.now); if (!n) break; ob += n; } };
    p.ha.onWritable = pa;
    p.hb.onWritable = pb;
    pa();
    pb();
    const end = p.run(900_000_000, () => p.hb.rxBytes >= da.length && p.ha.rxBytes >= db.length && p.hb.remoteClosed > 0);
    assert.ok(end < 300_000_000, `seed ${seed}: finished late (${end / 1e6} s)`);
    assert.ok(Buffer.compare(Buffer.from(p.hb.received()), Buffer.from(da)) === 0, `seed ${seed}: A->B exact`);
    assert.ok(Buffer.compare(Buffer.from(p.ha.received()), Buffer.from(db)) === 0, `seed ${seed}: B->A exact`);
    runs++;
  }
  assert.is(runs, 24);
});

test.run();
