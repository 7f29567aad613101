import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SAMPLE_PCAPS } from './lib/env';
import { execFileSync } from 'node:child_process';
import { readCapture, PcapWriter, openPcapDriver, CaptureFormatError, LINKTYPE_ETHERNET } from '../driver/pcap';
import { Burst } from '../driver/types';

const repoRoot = path.join(__dirname, '..', '..');
const pcapDir = SAMPLE_PCAPS;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-pcap-'));

function tshark(args: string[]): string {
  try {
    return execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new Error('tshark is not installed (scripts/setup.sh installs it)');
    throw new Error(`tshark ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}
function tsharkLens(file: string): number[] {
  return tshark(['-r', file, '-T', 'fields', '-e', 'frame.len']).split('\n').filter((l) => l.trim()).map(Number);
}
function tsharkCount(file: string): number {
  return tshark(['-r', file]).split('\n').filter((l) => l.trim()).length;
}

/** A made-up Ethernet frame of `len` bytes whose content depends on `seed`. */
function frame(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  b.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
  for (let i = 14; i < len; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

// ---- pcapng builder (for reader tests) ------------------------------------------------------
function block(type: number, body: Uint8Array, le: boolean): Uint8Array {
  const padded = (body.length + 3) & ~3;
  const len = 12 + padded;
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, type, le);
  dv.setUint32(4, len, le);
  b.set(body, 8);
  dv.setUint32(len - 4, len, le);
  return b;
}
function shb(le: boolean): Uint8Array {
  const body = new Uint8Array(16);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, 0x1a2b3c4d, le);
  dv.setUint16(4, 1, le);
  dv.setUint16(6, 0, le);
  dv.setBigInt64(8, -1n, le);
  return block(0x0a0d0d0a, body, le);
}
function idb(le: boolean, linkType: number, tsresol?: number): Uint8Array {
  const opts = tsresol === undefined ? 0 : 8 + 4; // if_tsresol (padded) + opt_endofopt
  const body = new Uint8Array(8 + opts);
  const dv = new DataView(body.buffer);
  dv.setUint16(0, linkType, le);
  dv.setUint32(4, 0, le);
  if (tsresol !== undefined) {
    dv.setUint16(8, 9, le);
    dv.setUint16(10, 1, le);
    dv.setUint8(12, tsresol);
  }
  return block(1, body, le);
}
function epb(le: boolean, iface: number, ticks: bigint, data: Uint8Array, origLen = data.length): Uint8Array {
  const body = new Uint8Array(20 + ((data.length + 3) & ~3));
  const dv = new DataView(body.buffer);
  dv.setUint32(0, iface, le);
  dv.setUint32(4, Number(ticks >> 32n), le);
  dv.setUint32(8, Number(ticks & 0xffffffffn), le);
  dv.setUint32(12, data.length, le);
  dv.setUint32(16, origLen, le);
  body.set(data, 20);
  return block(6, body, le);
}
function spb(le: boolean, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  new DataView(body.buffer).setUint32(0, data.length, le);
  body.set(data, 4);
  return block(3, body, le);
}
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// ---- tests -----------------------------------------------------------------------------------

test('PcapWriter round trip in memory and on disk; tshark reads our file', () => {
  const frames = [frame(60, 1), frame(1514, 2), frame(42, 3), frame(200, 4)];
  const times = [1_700_000_000_000_001, 1_700_000_000_500_000, 1_700_000_001_000_000, 1_700_000_002_999_999];
  const file = path.join(tmp, 'rt.pcap');
  const disk = new PcapWriter(file, { bufferSize: 100 }); // tiny buffer: exercises the flush paths
  const mem = new PcapWriter();
  for (let i = 0; i < frames.length; i++) {
    // write from inside a larger buffer at an offset, as the drivers do with pool.bytes
    const big = new Uint8Array(4096);
    big.set(frames[i]!, 300);
    disk.write(big, 300, frames[i]!.length, times[i]!);
    mem.write(big, 300, frames[i]!.length, times[i]!);
  }
  disk.close();
  assert.is(disk.packets, 4);
  const fromMem = mem.toBuffer();
  assert.equal(Array.from(fromMem), Array.from(fs.readFileSync(file)));
  for (const src of [file, fromMem]) {
    const recs = readCapture(src);
    assert.is(recs.length, frames.length);
    recs.forEach((r, i) => {
      assert.equal(Array.from(r.data), Array.from(frames[i]!));
      assert.is(r.tsUs, times[i]);
      assert.is(r.origLen, frames[i]!.length);
      assert.is(r.linkType, LINKTYPE_ETHERNET);
    });
  }
  assert.equal(tsharkLens(file), frames.map((f) => f.length));
  const epoch = tshark(['-r', file, '-T', 'fields', '-e', 'frame.time_epoch']).trim().split('\n').map((s) => s.trim());
  assert.is(epoch[1]!.slice(0, 17), '1700000000.500000');
  assert.throws(() => disk.write(frames[0]!, 0, 60, 0), /closed/);
});

test('writer snap length cuts frames but keeps the wire length', () => {
  const w = new PcapWriter(undefined, { snapLen: 100 });
  w.write(frame(300, 9), 0, 300, 5);
  const [r] = readCapture(w.toBuffer());
  assert.is(r!.data.length, 100);
  assert.is(r!.origLen, 300);
  assert.equal(Array.from(r!.data), Array.from(frame(300, 9).subarray(0, 100)));
});

test('readCapture returns views into the file bytes, not copies', () => {
  const w = new PcapWriter();
  w.write(frame(64, 1), 0, 64, 1);
  const bytes = w.toBuffer();
  const [r] = readCapture(bytes);
  assert.is(r!.data.buffer, bytes.buffer);
  assert.is(r!.data.byteOffset, 24 + 16);
});

test('every sample capture loads, frame counts match tshark', () => {
  if (!fs.existsSync(pcapDir)) {
    throw new Error(`sample captures not found at ${pcapDir} (test/pcaps in the repository)`);
  }
  const files = fs.readdirSync(pcapDir).filter((f) => /\.pcap(ng)?$/.test(f)).sort();
  assert.ok(files.length >= 10, `only ${files.length} captures in ${pcapDir}`);
  for (const f of files) {
    const p = path.join(pcapDir, f);
    const recs = readCapture(p);
    assert.is(recs.length, tsharkCount(p), f);
    assert.equal(recs.map((r) => r.origLen), tsharkLens(p), f);
    for (const r of recs) assert.ok(r.tsUs > 0 && Number.isFinite(r.tsUs), f);
  }
  // The nanosecond capture: its link type is Linux cooked capture, and µs timestamps agree with tshark.
  const nano = path.join(pcapDir, 'tcp-handshake-nano.pcap');
  const recs = readCapture(nano);
  assert.is(recs[0]!.linkType, 113);
  const epochs = tshark(['-r', nano, '-T', 'fields', '-e', 'frame.time_epoch']).trim().split('\n');
  recs.forEach((r, i) => {
    const [s, frac] = epochs[i]!.trim().split('.');
    assert.is(r.tsUs, Number(s) * 1e6 + Number(frac!.padEnd(9, '0').slice(0, 6)));
  });
  assert.throws(() => openPcapDriver({ input: nano }), /link type 113 \(LINUX_SLL\); only Ethernet \(1\) is supported/);
});

test('pcapng converted by editcap reads the same packets as the pcap', () => {
  const src = path.join(pcapDir, 'accecn_handshake.pcap');
  const ng = path.join(tmp, 'accecn.pcapng');
  execFileSync('editcap', ['-F', 'pcapng', src, ng], { stdio: 'pipe' });
  const a = readCapture(src);
  const b = readCapture(ng);
  assert.is(b.length, a.length);
  b.forEach((r, i) => {
    assert.is(r.tsUs, a[i]!.tsUs);
    assert.equal(Array.from(r.data), Array.from(a[i]!.data));
    assert.is(r.linkType, 1);
  });
  // a nanosecond pcap converted to pcapng keeps nanosecond ticks (if_tsresol 9)
  const nanoSrc = path.join(pcapDir, 'tcp-handshake-nano.pcap');
  const ngNano = path.join(tmp, 'nano.pcapng');
  execFileSync('editcap', ['-F', 'pcapng', nanoSrc, ngNano], { stdio: 'pipe' });
  const c = readCapture(nanoSrc);
  const d = readCapture(ngNano);
  assert.equal(d.map((r) => r.tsUs), c.map((r) => r.tsUs));
  assert.equal(d.map((r) => r.linkType), c.map(() => 113));
});

test('hand-built pcapng: both byte orders, if_tsresol, SPB, unknown blocks, two sections', () => {
  for (const le of [true, false]) {
    const f1 = frame(60, 1), f2 = frame(100, 2), f3 = frame(70, 3), f4 = frame(80, 4);
    const unknown = block(0x00000777, new Uint8Array([1, 2, 3, 4, 5]), le);
    const nrb = block(4, new Uint8Array(4), le); // empty name resolution block
    const bytes = concat([
      shb(le), idb(le, 1), unknown, idb(le, 1, 9), // iface 0: µs, iface 1: ns
      epb(le, 0, 1_600_000_000_123_456n, f1),
      epb(le, 1, 1_600_000_001_000_000_789n, f2, 1500),
      nrb,
      spb(le, f3),
      shb(!le), idb(!le, 1, 0x80 | 20), // second section in the other byte order, 2^-20 s ticks
      epb(!le, 0, 3n << 20n, f4),
    ]);
    const file = path.join(tmp, `hand-${le ? 'le' : 'be'}.pcapng`);
    fs.writeFileSync(file, bytes);
    const recs = readCapture(bytes);
    assert.is(recs.length, 4);
    assert.equal(recs.map((r) => r.tsUs), [1_600_000_000_123_456, 1_600_000_001_000_000, 1_600_000_001_000_000, 3_000_000]);
    assert.equal(Array.from(recs[1]!.data), Array.from(f2));
    assert.is(recs[1]!.origLen, 1500);
    assert.equal(Array.from(recs[2]!.data), Array.from(f3));
    assert.equal(Array.from(recs[3]!.data), Array.from(f4));
    assert.is(tsharkCount(file), 4, 'tshark agrees our hand-built file is valid');
  }
});

test('classic pcap in big-endian and nanosecond variants', () => {
  const f = frame(64, 5);
  for (const [magic, le, tsFrac, expect] of [
    [0xa1b2c3d4, false, 250_000, 7_250_000],
    [0xa1b23c4d, true, 250_999_999, 7_250_999],
    [0xa1b23c4d, false, 1, 7_000_000],
  ] as const) {
    const b = new Uint8Array(24 + 16 + 64);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, magic, le);
    dv.setUint16(4, 2, le); dv.setUint16(6, 4, le);
    dv.setUint32(16, 65535, le); dv.setUint32(20, 1, le);
    dv.setUint32(24, 7, le); dv.setUint32(28, tsFrac, le); dv.setUint32(32, 64, le); dv.setUint32(36, 64, le);
    b.set(f, 40);
    const recs = readCapture(b);
    assert.is(recs.length, 1);
    assert.is(recs[0]!.tsUs, expect);
    assert.equal(Array.from(recs[0]!.data), Array.from(f));
    const file = path.join(tmp, `variant-${magic.toString(16)}-${le}.pcap`);
    fs.writeFileSync(file, b);
    assert.equal(tsharkLens(file), [64]);
  }
});

test('malformed input gives a CaptureFormatError naming the offset, never a crash', () => {
  const w = new PcapWriter();
  w.write(frame(60, 1), 0, 60, 1);
  w.write(frame(60, 2), 0, 60, 2);
  const good = w.toBuffer();
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /too short.*offset 0/],
    [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), /not a pcap or pcapng file.*offset 0/],
    [good.subarray(0, 20), /global header truncated.*offset 0/],
    [good.subarray(0, 24 + 10), /record header truncated.*offset 24/],
    [good.subarray(0, good.length - 5), /record data truncated.*offset 116/],
  ];
  const badLen = good.slice();
  new DataView(badLen.buffer).setUint32(24 + 8, 0x7fffffff, true);
  cases.push([badLen, /implausible.*offset 32/]);
  const badVer = good.slice();
  new DataView(badVer.buffer).setUint16(4, 9, true);
  cases.push([badVer, /unsupported pcap version 9.*offset 4/]);
  const ng = concat([shb(true), idb(true, 1), epb(true, 0, 5n, frame(60, 1))]);
  cases.push([ng.subarray(0, ng.length - 8), /pcapng block truncated.*offset 48/]);
  const ngBadTrailer = ng.slice();
  new DataView(ngBadTrailer.buffer).setUint32(ngBadTrailer.length - 4, 12, true);
  cases.push([ngBadTrailer, /trailing length 12/]);
  cases.push([concat([shb(true), epb(true, 0, 5n, frame(60, 1))]), /interface 0, but only 0 are described.*offset 36/]);
  cases.push([concat([idb(true, 1)]), /not a pcap or pcapng/]);
  const ngBadLen = ng.slice();
  new DataView(ngBadLen.buffer).setUint32(ngBadLen.length - 92 + 4, 13, true);
  cases.push([ngBadLen, /block length 13 invalid/]);
  for (const [bytes, re] of cases) {
    let err: unknown;
    try { readCapture(bytes); } catch (e) { err = e; }
    assert.ok(err instanceof CaptureFormatError, `expected CaptureFormatError for ${re}, got ${err}`);
    assert.match((err as Error).message, re);
  }
  // Random garbage after a valid header must also end in a clear error or a clean parse.
  let seed = 12345;
  for (let n = 0; n < 300; n++) {
    const b = good.slice();
    for (let k = 0; k < 4; k++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      b[24 + (seed % (b.length - 24))] = seed >>> 24;
    }
    try { readCapture(b); } catch (e) { assert.ok(e instanceof CaptureFormatError, String(e)); }
  }
  const ngGood = concat([shb(true), idb(true, 1, 9), epb(true, 0, 5n, frame(60, 1)), spb(true, frame(40, 2)), epb(true, 0, 9n, frame(61, 3))]);
  assert.is(readCapture(ngGood).length, 3);
  for (let n = 0; n < 2000; n++) {
    const b = ngGood.slice();
    for (let k = 0; k < 3; k++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      b[seed % b.length] = seed >>> 24;
    }
    try { readCapture(b); } catch (e) { assert.ok(e instanceof CaptureFormatError, String(e)); }
  }
  assert.throws(() => readCapture(path.join(tmp, 'does-not-exist.pcap')), /ENOENT/);
});

test('pcap driver replays under virtual time and records what is sent', () => {
  const frames = [frame(60, 1), frame(100, 2), frame(3000, 3), frame(80, 4), frame(90, 5)];
  const times = [1000, 1000, 1500, 2000, 5000];
  const w = new PcapWriter();
  frames.forEach((f, i) => w.write(f, 0, f.length, times[i]!));
  const outFile = path.join(tmp, 'driver-out.pcap');
  const d = openPcapDriver({ input: w.toBuffer(), output: outFile, frameCount: 8, mac: '02:00:00:00:00:09' });
  assert.equal(Array.from(d.mac), [2, 0, 0, 0, 0, 9]);
  assert.is(d.mtu, 1500);
  const pool = d.pool;
  const b = new Burst(4);
  assert.is(d.nextDeadline(), 1000);
  assert.is(d.rx(b, 999), 0);
  assert.is(d.rx(b, 1000), 2);
  assert.equal(Array.from(b.ts.subarray(0, 2)), [1000, 1000]);
  for (let i = 0; i < 2; i++) {
    assert.is(b.off[i], pool.dataStart(b.frame[i]!));
    assert.equal(Array.from(pool.bytes.subarray(b.off[i]!, b.off[i]! + b.len[i]!)), Array.from(frames[i]!));
  }
  assert.is(d.nextDeadline(), 1500);
  assert.is(pool.check().held, 2);
  // the 3000-byte frame does not fit a 2048-byte frame: dropped and counted
  assert.is(d.rx(b, 2500), 1);
  assert.is(d.stats().drops.oversize, 1);
  assert.is(b.n, 3);
  assert.equal(Array.from(pool.bytes.subarray(b.off[2]!, b.off[2]! + b.len[2]!)), Array.from(frames[3]!));
  assert.is(d.nextDeadline(), 5000);
  // transmit the three frames back at virtual time 7000
  assert.is(d.tx(b, 7_000_000), 3);
  b.clear();
  assert.equal(pool.check(), { free: 8, kernel: 0, tx: 0, held: 0, total: 8 });
  assert.is(d.rx(b, 1e12), 1);
  assert.is(d.nextDeadline(), Infinity);
  assert.is(d.rx(b, 1e12), 0);
  // a frame over the MTU is dropped on send
  const f = b.frame[0]!;
  b.len[0] = 1600;
  assert.is(d.tx(b, 8_000_000), 1);
  assert.is(d.stats().drops['tx-too-big'], 1);
  assert.is(pool.stateOf(f), 0);
  const st = d.stats();
  assert.is(st.rxPackets, 4);
  assert.is(st.txPackets, 3);
  assert.is(st.txBytes, 60 + 100 + 80);
  d.close();
  assert.equal(pool.check(), { free: 8, kernel: 0, tx: 0, held: 0, total: 8 });
  const back = readCapture(outFile);
  assert.equal(back.map((r) => r.data.length), [60, 100, 80]);
  assert.equal(back.map((r) => r.tsUs), [7_000_000, 7_000_000, 7_000_000]);
  assert.equal(tsharkLens(outFile), [60, 100, 80]);
});

test('pcap driver: full burst and empty pool', () => {
  const w = new PcapWriter();
  for (let i = 0; i < 10; i++) w.write(frame(60, i), 0, 60, 100 + i);
  const d = openPcapDriver({ input: w.toBuffer(), frameCount: 4 });
  const b = new Burst(3);
  assert.is(d.rx(b, 1000), 3);
  assert.is(d.rx(b, 1000), 0, 'burst full');
  assert.is(d.nextDeadline(), 103);
  const b2 = new Burst(8);
  assert.is(d.rx(b2, 1000), 1); // one frame left in the pool; the remaining 6 are dropped
  assert.is(d.stats().drops['no-frame'], 6);
  assert.is(d.nextDeadline(), Infinity);
  d.tx(b, 2000); d.tx(b2, 2000);
  assert.equal(d.pool.check().free, 4);
  // an empty driver (no input) never yields and has no deadline
  const e = openPcapDriver({});
  assert.is(e.rx(b2, 1e15), 0);
  assert.is(e.nextDeadline(), Infinity);
});

test('pcap driver replays a sample capture completely under a virtual clock', () => {
  const file = path.join(pcapDir, 'accecn_handshake.pcap');
  const recs = readCapture(file);
  const d = openPcapDriver({ input: file, frameCount: 16 });
  const b = new Burst();
  let now = 0;
  let got = 0;
  const seenTs: number[] = [];
  while (d.nextDeadline() !== Infinity) {
    now = d.nextDeadline();
    got += d.rx(b, now);
    for (let i = 0; i < b.n; i++) { seenTs.push(b.ts[i]!); d.pool.free(b.frame[i]!); }
    b.clear();
  }
  assert.is(got, recs.length);
  assert.equal(seenTs, recs.map((r) => r.tsUs));
  assert.is(d.pool.check().free, 16);
});

test.after(() => { if (!process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true }); });

test.run();
