import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Drop } from '../protocols/drop';
import { Ipv4Header, writeIpv4, IP_MF, IPPROTO_UDP, parseIpv4 } from '../protocols/ipv4';
import { Ipv4Reassembler } from '../protocols/reassembly';

const SRC = parseIpv4('10.0.0.1');
const DST = parseIpv4('10.0.0.2');
const frame = new Uint8Array(70000);
const hdr = new Ipv4Header();

function payload(n: number, seed = 1): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 7 + seed * 13) & 0xff;
  return p;
}

/** Builds fragment [off, off+len) of `data` in `frame` at a non-zero offset and parses it into `hdr`. */
function frag(data: Uint8Array, off: number, len: number, mf: boolean, id = 42, src = SRC, dst = DST, proto = IPPROTO_UDP): Ipv4Header {
  const at = 14;
  writeIpv4(frame, at, src, dst, proto, len, 64, id, (mf ? IP_MF : 0) | (off >> 3), 0);
  frame.set(data.subarray(off, off + len), at + 20);
  assert.is(hdr.parse(frame, at, 20 + len), Drop.None);
  return hdr;
}

function pushFrag(r: Ipv4Reassembler, ctx: number, data: Uint8Array, off: number, len: number, mf: boolean, now = 0, id = 42): Drop {
  return r.push(ctx, frag(data, off, len, mf, id), frame, now);
}

test('in order: completes on the last fragment with the exact payload and header fields', () => {
  const r = new Ipv4Reassembler();
  const data = payload(3000);
  assert.is(pushFrag(r, 1, data, 0, 1480, true), Drop.None);
  assert.not.ok(r.done);
  assert.is(pushFrag(r, 1, data, 1480, 1480, true), Drop.None);
  assert.not.ok(r.done);
  assert.is(r.pending, 1);
  assert.is(r.heldBytes, 2960);
  assert.is(pushFrag(r, 1, data, 2960, 40, false), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
  assert.equal([r.doneCtx, r.doneSrc, r.doneDst, r.doneProto, r.doneId], [1, SRC, DST, IPPROTO_UDP, 42]);
  assert.equal([r.doneHdr.src, r.doneHdr.dst, r.doneHdr.proto, r.doneHdr.id, r.doneHdr.payloadLen, r.doneHdr.totalLen, r.doneHdr.ttl, r.doneHdr.mf],
    [SRC, DST, IPPROTO_UDP, 42, 3000, 3020, 64, false]);
  assert.is(r.pending, 0);
  assert.is(r.heldBytes, 0);
  assert.is(r.nextDeadline(), Infinity);
});

test('out of order and reversed, with a small last fragment first', () => {
  const r = new Ipv4Reassembler();
  const data = payload(4001, 3);
  const pieces: [number, number, boolean][] = [[3200, 801, false], [800, 800, true], [2400, 800, true], [0, 800, true], [1600, 800, true]];
  for (let i = 0; i < pieces.length; i++) {
    const [o, l, mf] = pieces[i];
    assert.is(pushFrag(r, 0, data, o, l, mf), Drop.None);
    assert.is(r.done, i === pieces.length - 1);
  }
  assert.equal([...r.datagram], [...data]);
  // The same slot and buffer are reused for the next datagram.
  const d2 = payload(100, 9);
  assert.is(pushFrag(r, 0, d2, 48, 52, false, 0, 43), Drop.None);
  assert.is(pushFrag(r, 0, d2, 0, 48, true, 0, 43), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...d2]);
});

test('exact duplicates are dropped alone; the datagram still completes', () => {
  const r = new Ipv4Reassembler();
  const data = payload(2000);
  assert.is(pushFrag(r, 0, data, 0, 1000, true), Drop.None);
  assert.is(pushFrag(r, 0, data, 0, 1000, true), Drop.Ipv4FragmentDuplicate);
  assert.is(r.heldBytes, 1000);
  assert.is(pushFrag(r, 0, data, 1000, 1000, false), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...data]);
  assert.is(r.stats[Drop.Ipv4FragmentDuplicate], 1);
  // A late copy after completion starts a new datagram (which then times out).
  assert.is(pushFrag(r, 0, data, 1000, 1000, false, 5), Drop.None);
  assert.not.ok(r.done);
  assert.is(r.pending, 1);
});

test('overlap discards the whole datagram (RFC 5722 style)', () => {
  const r = new Ipv4Reassembler();
  const data = payload(3000);
  assert.is(pushFrag(r, 0, data, 0, 1488, true), Drop.None);
  assert.is(pushFrag(r, 0, data, 2000, 1000, false), Drop.None);
  assert.is(pushFrag(r, 0, data, 1480, 520, true), Drop.Ipv4ReassemblyOverlap); // overlaps [1480,1488)
  assert.is(r.pending, 0);
  assert.is(r.heldBytes, 0);
  assert.is(r.stats[Drop.Ipv4ReassemblyOverlap], 1);
  // What is left of it arrives later: a fresh datagram that lacks its head, so no completion.
  assert.is(pushFrag(r, 0, data, 1488, 512, true), Drop.None);
  assert.not.ok(r.done);
  // A fragment covering another one entirely, and one contained inside another.
  const r2 = new Ipv4Reassembler();
  assert.is(pushFrag(r2, 0, data, 8, 16, true), Drop.None);
  assert.is(pushFrag(r2, 0, data, 0, 32, true), Drop.Ipv4ReassemblyOverlap);
  assert.is(pushFrag(r2, 0, data, 0, 64, true), Drop.None);
  assert.is(pushFrag(r2, 0, data, 16, 8, true), Drop.Ipv4ReassemblyOverlap);
});

test('invalid fragments: sizes, inconsistent last fragment, beyond 65535', () => {
  const r = new Ipv4Reassembler();
  const data = payload(4000);
  assert.is(pushFrag(r, 0, data, 0, 1001, true), Drop.Ipv4FragmentInvalid); // MF with length not multiple of 8
  assert.is(pushFrag(r, 0, data, 8, 0, true), Drop.Ipv4FragmentInvalid); // empty
  assert.is(r.pending, 0);
  // Two different last fragments.
  assert.is(pushFrag(r, 0, data, 0, 1000, true), Drop.None);
  assert.is(pushFrag(r, 0, data, 2000, 100, false), Drop.None);
  assert.is(pushFrag(r, 0, data, 3000, 100, false), Drop.Ipv4FragmentInvalid);
  assert.is(r.pending, 0);
  // Data beyond the announced end.
  assert.is(pushFrag(r, 0, data, 1000, 100, false), Drop.None);
  assert.is(pushFrag(r, 0, data, 1104, 16, true), Drop.Ipv4FragmentInvalid);
  assert.is(r.pending, 0);
  // A last fragment ending before data already held.
  assert.is(pushFrag(r, 0, data, 2000, 800, true), Drop.None);
  assert.is(pushFrag(r, 0, data, 1000, 100, false), Drop.Ipv4FragmentInvalid);
  assert.is(r.pending, 0);
  // Offset + length beyond an IPv4 datagram: offset 65528 (max), 16 bytes.
  const big = new Uint8Array(65536 + 16);
  assert.is(r.push(0, frag(big, 65528, 16, false), frame, 0), Drop.Ipv4FragmentInvalid);
  assert.is(r.stats[Drop.Ipv4FragmentInvalid], 6);
});

test('largest datagram (65515 bytes of payload) reassembles', () => {
  const r = new Ipv4Reassembler();
  const data = payload(65515, 5);
  let off = 0;
  while (off < data.length) {
    const len = Math.min(1480, data.length - off);
    assert.is(pushFrag(r, 0, data, off, len, off + len < data.length), Drop.None);
    off += len;
  }
  assert.ok(r.done);
  assert.is(r.datagram.length, 65515);
  assert.equal(Buffer.compare(Buffer.from(r.datagram), Buffer.from(data)), 0);
  // One byte more is invalid.
  assert.is(pushFrag(r, 0, payload(65520), 65512, 8, false, 0, 7), Drop.Ipv4FragmentInvalid);
});

test('timeout: expire() counts and frees; late fragments start afresh; nextDeadline', () => {
  const r = new Ipv4Reassembler({ timeoutUs: 1_000_000 });
  const data = payload(2000);
  assert.is(pushFrag(r, 0, data, 0, 1000, true, 100), Drop.None);
  assert.is(pushFrag(r, 0, data, 0, 1000, true, 200, 99), Drop.None);
  assert.is(r.nextDeadline(), 1_000_100);
  assert.is(r.expire(1_000_099), 0);
  assert.is(r.expire(1_000_100), 1);
  assert.is(r.nextDeadline(), 1_000_200);
  assert.is(r.pending, 1);
  assert.is(r.stats[Drop.Ipv4ReassemblyTimeout], 1);
  // The rest of datagram 42 arrives too late: it cannot complete.
  assert.is(pushFrag(r, 0, data, 1000, 1000, false, 1_000_150), Drop.None);
  assert.not.ok(r.done);
  // Datagram 99 is past its deadline when its tail arrives, before expire() ran: it is
  // expired on the spot (counted) and the tail starts a new datagram.
  assert.is(pushFrag(r, 0, data, 1000, 1000, false, 1_000_300, 99), Drop.None);
  assert.not.ok(r.done);
  assert.is(r.stats[Drop.Ipv4ReassemblyTimeout], 2);
  assert.is(r.expire(10_000_000), 2);
  assert.is(r.stats[Drop.Ipv4ReassemblyTimeout], 4);
  assert.is(r.pending, 0);
  assert.is(r.heldBytes, 0);
  assert.is(r.nextDeadline(), Infinity);
});

test('limits: datagram count and byte budget refuse new datagrams; overflow of an existing one discards it', () => {
  const r = new Ipv4Reassembler({ maxDatagrams: 4, maxBytes: 10_000 });
  const data = payload(8000);
  for (let id = 0; id < 4; id++) assert.is(pushFrag(r, 0, data, 0, 1000, true, 0, id), Drop.None);
  assert.is(pushFrag(r, 0, data, 0, 1000, true, 0, 4), Drop.Ipv4ReassemblyOverflow);
  assert.is(r.pending, 4);
  // Existing datagrams still progress and complete, which frees room.
  assert.is(pushFrag(r, 0, data, 1000, 8, false, 0, 0), Drop.None);
  assert.ok(r.done);
  assert.is(r.pending, 3);
  assert.is(pushFrag(r, 0, data, 0, 1000, true, 0, 4), Drop.None);
  // Byte budget: 4000 held; an existing datagram growing past 10000 is discarded.
  assert.is(r.heldBytes, 4000);
  assert.is(pushFrag(r, 0, data, 1000, 5000, true, 0, 1), Drop.None);
  assert.is(r.heldBytes, 9000);
  assert.is(pushFrag(r, 0, data, 6000, 1480, true, 0, 1), Drop.Ipv4ReassemblyOverflow);
  assert.is(r.pending, 3);
  assert.is(r.heldBytes, 3000);
  // A new datagram that does not fit the byte budget is refused.
  const r2 = new Ipv4Reassembler({ maxBytes: 1500 });
  assert.is(pushFrag(r2, 0, data, 0, 1000, true, 0, 1), Drop.None);
  assert.is(pushFrag(r2, 0, data, 0, 1000, true, 0, 2), Drop.Ipv4ReassemblyOverflow);
  assert.is(r2.stats[Drop.Ipv4ReassemblyOverflow], 1);
  // Fragment count limit.
  const r3 = new Ipv4Reassembler({ maxFragments: 3 });
  for (let i = 0; i < 3; i++) assert.is(pushFrag(r3, 0, data, i * 8, 8, true), Drop.None);
  assert.is(pushFrag(r3, 0, data, 24, 8, true), Drop.Ipv4ReassemblyOverflow);
  assert.is(r3.pending, 0);
  assert.throws(() => new Ipv4Reassembler({ maxDatagrams: 0 }), /maxDatagrams/);
});

test('contexts with identical addresses and ids are kept apart', () => {
  const r = new Ipv4Reassembler();
  const a = payload(1600, 1);
  const b = payload(1600, 2);
  assert.is(pushFrag(r, 1, a, 0, 800, true), Drop.None);
  assert.is(pushFrag(r, 2, b, 0, 800, true), Drop.None);
  assert.is(r.pending, 2);
  // Same range in another context is not a duplicate or overlap.
  assert.is(pushFrag(r, 2, b, 800, 800, false), Drop.None);
  assert.ok(r.done);
  assert.is(r.doneCtx, 2);
  assert.equal([...r.datagram], [...b]);
  assert.is(pushFrag(r, 1, a, 800, 800, false), Drop.None);
  assert.ok(r.done);
  assert.is(r.doneCtx, 1);
  assert.equal([...r.datagram], [...a]);
  // Different source, protocol or id are different datagrams too.
  const d = payload(16);
  r.push(0, frag(d, 0, 8, true, 5, SRC, DST, 17), frame, 0);
  r.push(0, frag(d, 0, 8, true, 5, SRC + 1, DST, 17), frame, 0);
  r.push(0, frag(d, 0, 8, true, 5, SRC, DST, 6), frame, 0);
  r.push(0, frag(d, 0, 8, true, 6, SRC, DST, 17), frame, 0);
  assert.is(r.pending, 4);
});

test('non-fragment passes straight through; random fragment storm never throws and keeps accounting', () => {
  const r = new Ipv4Reassembler({ maxDatagrams: 8, maxBytes: 20_000, timeoutUs: 5000 });
  const d = payload(100);
  writeIpv4(frame, 0, SRC, DST, IPPROTO_UDP, 100, 64, 1, 0, 0);
  frame.set(d, 20);
  hdr.parse(frame, 0, 120);
  assert.is(r.push(0, hdr, frame, 0), Drop.None);
  assert.ok(r.done);
  assert.equal([...r.datagram], [...d]);

  let seed = 7;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n; };
  const big = payload(9000);
  let completed = 0;
  for (let i = 0; i < 20000; i++) {
    const now = i;
    const id = rnd(4);
    const off = rnd(8) * 1000;
    const len = rnd(6) === 0 ? 1 + rnd(1000) : 1000;
    const last = off + len >= 8000 || rnd(16) === 0;
    const dr = r.push(rnd(2), frag(big, off, len, !last, id), frame, now);
    assert.ok(dr >= Drop.None && dr < Drop.Count);
    if (r.done) {
      completed++;
      // Every fragment carries big[off..off+len): a completed datagram must be a prefix of it.
      assert.ok(Buffer.from(r.datagram).equals(Buffer.from(big.subarray(0, r.datagram.length))));
    }
    if (i % 97 === 0) r.expire(now);
    assert.ok(r.heldBytes >= 0 && r.heldBytes <= 20_000);
    assert.ok(r.pending >= 0 && r.pending <= 8);
  }
  assert.ok(completed > 0);
  r.expire(1e12);
  assert.is(r.pending, 0);
  assert.is(r.heldBytes, 0);
});

test.run();
