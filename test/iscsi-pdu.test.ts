import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { crc32c, crc32cv } from '../examples/iscsi/crc32c';
import { Pdu, PduReader, frame, newBhs, decodeLun, encodeLun } from '../examples/iscsi/pdu';
import { parseText, encodeText, parseBinary, parseNumber } from '../examples/iscsi/keys';
import { chapResponse } from '../examples/iscsi/chap';
import { encode, bhs, u32 } from './lib/iscsi-wire';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
/** RFC 3720 appendix B.4 / RFC 7143 appendix A: digests as the bytes appear on the wire. */
const wire = (crc: number) => Buffer.from(Uint8Array.of(crc & 0xff, (crc >>> 8) & 0xff, (crc >>> 16) & 0xff, crc >>> 24)).toString('hex');

// ---- CRC32C ---------------------------------------------------------------------------------

test('CRC32C: RFC 3720 B.4 test vectors (32 bytes of 0x00, 0xff, ascending, descending)', () => {
  assert.is(wire(crc32c(new Uint8Array(32))), 'aa36918a');
  assert.is(wire(crc32c(new Uint8Array(32).fill(0xff))), '43aba862');
  assert.is(wire(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))), '4e79dd46');
  assert.is(wire(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))), '5cdb3f11');
});

test('CRC32C: RFC 3720 B.4 SCSI Read (10) command PDU vector, and the Castagnoli check value', () => {
  const pdu = hex('01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018 28000000 00000000 02000000 00000000');
  assert.is(pdu.length, 48);
  assert.is(wire(crc32c(pdu)), '563a96d9');
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('CRC32C: chaining over split views equals one pass (any split, any length)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), fc.nat(300), (b, x, y) => {
    const i = Math.min(x, b.length), j = Math.min(Math.max(i, y), b.length);
    const whole = crc32c(b);
    return crc32cv([b.subarray(0, i), b.subarray(i, j), b.subarray(j)]) === whole &&
      crc32c(b, crc32c(b, 0, 0, i), i, b.length) === whole;
  }), { numRuns: 300 });
});

// ---- PDU reader -----------------------------------------------------------------------------

interface Got { op: number; bhs: Uint8Array; data: Uint8Array; problem?: string }
function reader(maxData = 1 << 20, hd = false, dd = false) {
  const got: Got[] = [];
  const fatal: string[] = [];
  const r = new PduReader((p: Pdu) => {
    const k = p.retain();
    got.push({ op: p.bhs[0] & 0x3f, bhs: p.bhs.slice(), data: Uint8Array.from(Buffer.concat(k.parts)), problem: p.problem });
    k.release();
  }, (f) => fatal.push(f));
  r.maxData = maxData; r.headerDigest = hd; r.dataDigest = dd;
  return { r, got, fatal };
}

const arbPdu = fc.record({
  op: fc.constantFrom(0x00, 0x01, 0x02, 0x04, 0x05, 0x06),
  itt: fc.nat(),
  data: fc.uint8Array({ maxLength: 700 }),
});

test('reader: PDUs framed across arbitrary chunk splits, with and without digests (fast-check)', () => {
  fc.assert(fc.property(fc.array(arbPdu, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), fc.boolean(), fc.boolean(),
    (pdus, cuts, hd, dd) => {
      const stream = Buffer.concat(pdus.map((p) => encode(bhs(p.op, 0x80, { itt: p.itt }), p.data, { hd, dd })));
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const { r, got, fatal } = reader(1 << 20, hd, dd);
      let prev = 0;
      for (const c of [...points, stream.length]) { r.input(Uint8Array.from(stream.subarray(prev, c))); prev = c; }
      assert.equal(fatal, []);
      assert.is(got.length, pdus.length);
      pdus.forEach((p, i) => {
        assert.is(got[i].op, p.op);
        assert.is(u32(got[i].bhs, 16), p.itt >>> 0);
        assert.equal(got[i].data, p.data);
        assert.is(got[i].problem, undefined);
      });
      assert.not.ok(r.midPdu);
    }), { numRuns: 400 });
});

test('reader: byte-at-a-time input frames the same PDUs', () => {
  const d = Uint8Array.from({ length: 13 }, (_, i) => i + 1);
  const s = Buffer.concat([encode(bhs(0x00, 0x80, { itt: 7 }), d, { hd: true, dd: true }), encode(bhs(0x01, 0x80, { itt: 8 }), undefined, { hd: true, dd: true })]);
  const { r, got } = reader(8192, true, true);
  for (const b of s) r.input(Uint8Array.of(b));
  assert.is(got.length, 2);
  assert.equal(got[0].data, d);
  assert.is(u32(got[1].bhs, 16), 8);
});

test('reader: header digest error is fatal (RFC 7143 7.8: cannot find the next PDU), nothing after it is delivered', () => {
  const a = encode(bhs(0x00, 0x80, { itt: 1 }), undefined, { hd: true });
  a[50] ^= 1;
  const b = encode(bhs(0x00, 0x80, { itt: 2 }), undefined, { hd: true });
  const { r, got, fatal } = reader(8192, true);
  r.input(Uint8Array.from(Buffer.concat([a, b])));
  assert.equal(fatal, ['header-digest']);
  assert.is(got.length, 0);
});

test('reader: data digest error gives a data-digest problem and the next PDU is still framed', () => {
  const a = encode(bhs(0x05, 0x80, { itt: 1 }), new Uint8Array(10).fill(3), { hd: true, dd: true });
  a[48 + 4 + 2] ^= 0xff; // a data byte
  const b = encode(bhs(0x00, 0x80, { itt: 2 }), new Uint8Array(5).fill(1), { hd: true, dd: true });
  const { r, got, fatal } = reader(8192, true, true);
  r.input(Uint8Array.from(Buffer.concat([a, b])));
  assert.equal(fatal, []);
  assert.is(got.length, 2);
  assert.is(got[0].problem, 'data-digest');
  assert.is(got[0].data.length, 0);
  assert.is(got[1].problem, undefined);
  assert.equal(got[1].data, new Uint8Array(5).fill(1));
});

test('reader: non-zero TotalAHSLength is reported, the AHS skipped, the data kept in step', () => {
  const ahs = new Uint8Array(8); ahs[1] = 8; // some AHS words
  const a = encode(bhs(0x01, 0x80, { itt: 1 }), new Uint8Array(6).fill(9), {}, ahs);
  const b = encode(bhs(0x00, 0x80, { itt: 2 }));
  const { r, got } = reader();
  r.input(Uint8Array.from(Buffer.concat([a, b])));
  assert.is(got.length, 2);
  assert.is(got[0].problem, 'ahs');
  assert.is(got[1].problem, undefined);
  assert.is(u32(got[1].bhs, 16), 2);
});

test('reader: data segment longer than our MaxRecvDataSegmentLength is skipped unbuffered and reported', () => {
  const big = new Uint8Array(5000).fill(7);
  const a = encode(bhs(0x05, 0x80, { itt: 1 }), big, { dd: true });
  const b = encode(bhs(0x00, 0x80, { itt: 2 }), new Uint8Array(4).fill(2), { dd: true });
  const s = Buffer.concat([a, b]);
  const { r, got } = reader(4096, false, true);
  for (let i = 0; i < s.length; i += 1000) r.input(Uint8Array.from(s.subarray(i, i + 1000)));
  assert.is(got.length, 2);
  assert.is(got[0].problem, 'data-too-long');
  assert.is(got[0].data.length, 0);
  assert.equal(got[1].data, new Uint8Array(4).fill(2));
});

test('reader: opcodes an initiator may not send are reported as reserved-opcode', () => {
  for (const op of [0x07, 0x0f, 0x1c, 0x20, 0x25, 0x3f]) {
    const { r, got } = reader();
    r.input(encode(bhs(op, 0x80, { itt: 1 }), new Uint8Array(3)));
    assert.is(got.length, 1, `op ${op}`);
    assert.is(got[0].problem, 'reserved-opcode');
  }
  for (const op of [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10]) {
    const { r, got } = reader();
    r.input(encode(bhs(op, 0x80, { itt: 1 })));
    assert.is(got[0].problem, undefined, `op ${op}`);
  }
});

test('reader: retain pins the chunk via hold when the data sits in one chunk; a Data-Out split over chunks comes as pinned views; copies without hold', () => {
  const s = encode(bhs(0x05, 0x80, { itt: 1 }), new Uint8Array(100).fill(5));
  let pins = 0, releases = 0;
  const hold = () => { pins++; return () => { releases++; }; };
  const kept: Array<readonly Uint8Array[]> = [];
  const r = new PduReader((p) => { const k = p.retain(); kept.push(k.parts); k.release(); }, () => { /* none */ });
  const chunk = Uint8Array.from(s);
  r.input(chunk, hold);
  assert.is(pins, 1);
  assert.is(releases, 1);
  assert.is(kept[0].length, 1);
  assert.is(kept[0][0].buffer, chunk.buffer); // a view, no copy
  // Straddling: one pinned view per chunk (the header chunk holds data bytes 0..41).
  const c1 = Uint8Array.from(s.subarray(0, 90)), c2 = Uint8Array.from(s.subarray(90));
  r.input(c1, hold); r.input(c2, hold);
  assert.is(pins, 3);
  assert.is(releases, 3);
  assert.equal(kept[1].map((v) => [v.buffer === c1.buffer, v.buffer === c2.buffer, v.length]), [[true, false, 42], [false, true, 58]]);
  assert.equal(Uint8Array.from(Buffer.concat(kept[1])), new Uint8Array(100).fill(5));
  // No hold: a copy that outlives changes to the chunk.
  const c3 = Uint8Array.from(s);
  r.input(c3);
  c3.fill(0);
  assert.equal(Uint8Array.from(Buffer.concat(kept[2])), new Uint8Array(100).fill(5));
  assert.is(r.stats.copiedBytes, 100);
});

test('reader: data of a Text or NOP-Out PDU split over chunks is copied (never pinned) and joined', () => {
  for (const op of [0x00, 0x04]) {
    const d = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const s = encode(bhs(op, 0x80, { itt: 1 }), d);
    let pins = 0;
    const hold = () => { pins++; return () => { /* counted by pins */ }; };
    const got: Uint8Array[] = [];
    const r = new PduReader((p) => { assert.is(p.dataLength, 300); got.push(p.data.slice()); const k = p.retain(); assert.is(k.parts.length, 1); k.release(); }, () => { /* none */ });
    const c1 = Uint8Array.from(s.subarray(0, 100)), c2 = Uint8Array.from(s.subarray(100, 200)), c3 = Uint8Array.from(s.subarray(200));
    r.input(c1, hold); r.input(c2, hold); c1.fill(0); c2.fill(0); r.input(c3, hold);
    assert.is(pins, 0, `op ${op}`);
    assert.equal(got, [d]);
  }
});

test('reader: a header split from its data in another chunk stays intact when the first chunk is reused', () => {
  const s = encode(bhs(0x05, 0x80, { itt: 0x11223344 }), new Uint8Array(20).fill(6));
  const got: Array<{ itt: number; data: Uint8Array }> = [];
  const r = new PduReader((p) => got.push({ itt: u32(p.bhs, 16), data: p.data.slice() }), () => { /* none */ });
  const buf = new Uint8Array(64);
  buf.set(s.subarray(0, 52));
  r.input(buf.subarray(0, 52));
  buf.fill(0xee); // the caller reuses its buffer
  r.input(Uint8Array.from(s.subarray(52)));
  assert.is(got.length, 1);
  assert.is(got[0].itt, 0x11223344);
  assert.equal(got[0].data, new Uint8Array(20).fill(6));
});

test('reader: midPdu reports an unfinished PDU', () => {
  const { r } = reader();
  const s = encode(bhs(0x00, 0x80), new Uint8Array(8));
  r.input(s.subarray(0, 30));
  assert.ok(r.midPdu);
  r.input(s.subarray(30));
  assert.not.ok(r.midPdu);
});

// ---- frame (target PDUs) -----------------------------------------------------------------------

test('frame: header digest over the BHS (RFC B.4 vector), padding zero, data digest over data+padding', () => {
  const vec = hex('01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018 28000000 00000000 02000000 00000000');
  const h = newBhs(0, 0); h.set(vec);
  const out = frame(h, [], 0, true, true);
  assert.is(out.length, 1);
  assert.is(Buffer.from(out[0].subarray(48)).toString('hex'), '563a96d9');
  const h2 = newBhs(0x25, 0x80);
  const d = Uint8Array.of(1, 2, 3, 4, 5);
  const o2 = Buffer.concat(frame(h2, [d.subarray(0, 2), d.subarray(2)], 5, false, true));
  assert.is(o2.length, 48 + 5 + 3 + 4);
  assert.is((o2[5] << 16) | (o2[6] << 8) | o2[7], 5);
  assert.equal([...o2.subarray(53, 56)], [0, 0, 0]);
  const padded = Uint8Array.of(1, 2, 3, 4, 5, 0, 0, 0);
  assert.is(Buffer.from(o2.subarray(56)).toString('hex'), wire(crc32c(padded)));
  // No data: no data digest (RFC 7143 11.2: digests cover a present data segment).
  assert.is(Buffer.concat(frame(newBhs(0x20, 0x80), [], 0, true, true)).length, 52);
});

// ---- LUN, text keys, CHAP ------------------------------------------------------------------------

test('LUN field: SAM single-level peripheral and flat addressing; other forms are no LUN', () => {
  assert.is(decodeLun(hex('0001000000000000')), 1);
  assert.is(decodeLun(hex('0000000000000000')), 0);
  assert.is(decodeLun(hex('4105000000000000')), 0x105);
  assert.is(decodeLun(hex('0001000100000000')), 0xffffffff);
  assert.is(decodeLun(hex('8001000000000000')), 0xffffffff);
  assert.is(decodeLun(encodeLun(300)), 300);
  assert.is(decodeLun(encodeLun(7)), 7);
});

test('text: key=value NUL pairs, padding ignored, malformed pairs reported (RFC 7143 6.1)', () => {
  const d = Uint8Array.from(Buffer.from('InitiatorName=iqn.x\0HeaderDigest=None,CRC32C\0\0\0'));
  assert.equal(parseText(d).pairs, [['InitiatorName', 'iqn.x'], ['HeaderDigest', 'None,CRC32C']]);
  assert.ok(parseText(Uint8Array.from(Buffer.from('novalue\0'))).error);
  assert.ok(parseText(Uint8Array.from(Buffer.from('=x\0'))).error);
  assert.ok(parseText(Uint8Array.from(Buffer.from('bad key=x\0'))).error);
  assert.equal(parseText(encodeText([['A', '1'], ['B', '']])).pairs, [['A', '1'], ['B', '']]);
  assert.is(parseNumber('8192'), 8192);
  assert.is(parseNumber('0x2000'), 8192);
  assert.ok(Number.isNaN(parseNumber('12a')));
  assert.equal(parseBinary('0x0a0B'), Uint8Array.of(10, 11));
  assert.equal(parseBinary('0xabc'), Uint8Array.of(0x0a, 0xbc));
  assert.equal(parseBinary('0bAQID'), Uint8Array.of(1, 2, 3));
  assert.is(parseBinary('0xzz'), undefined);
  assert.is(parseBinary('AQID'), undefined);
});

test('CHAP: MD5 response per RFC 1994 (identifier, secret, challenge), checked with the RFC 1321 MD5 of a known string', () => {
  // MD5("") = d41d8cd98f00b204e9800998ecf8427e (RFC 1321 A.5); id 0x61 'a' + "" + "bc" hashes "abc".
  const r = chapResponse(0x61, '', Uint8Array.from(Buffer.from('bc')));
  assert.is(Buffer.from(r).toString('hex'), '900150983cd24fb0d6963f7d28e17f72'); // MD5("abc"), RFC 1321 A.5
});

test.run();
