/**
 * ICMPv6 (RFC 4443): checksum with the pseudo-header from the packet bytes, echo, error quotes
 * walked to the upper layer, the error writer (≤ 1280 bytes, 2.4(c)) against scapy, and the rules
 * of 2.4(e) about when no error is sent.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Drop } from '../protocols/drop';
import { Ipv6Header, writeIpv6, IPV6_HLEN, IPPROTO_ICMPV6, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS } from '../protocols/ipv6';
import {
  Icmp6Packet, writeIcmp6Error, writeIcmp6EchoReply, icmp6EchoReplyInPlace, icmp6Checksum, mustNotSendError6, isIcmp6Error,
  ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY, ICMP6_PACKET_TOO_BIG, ICMP6_PARAM_PROB, ICMP6_DST_UNREACH, ICMP6_TIME_EXCEEDED,
  ICMP6_DST_UNREACH_NOPORT, ICMP6_ERROR_MAX_PACKET, ICMP6_PARAMPROB_OPTION, ICMP6_PARAMPROB_NEXTHEADER, ND_REDIRECT,
  MLDV2_LISTENER_REPORT, MLD_LISTENER_QUERY, ND_ROUTER_ADVERT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT,
} from '../protocols/icmpv6';
import { parseIp6, ANY6 } from '../protocols/ip/addr';
import { SAMPLE_PCAPS } from './lib/env';
import { packet, optsHdr, frag, readPcap } from './lib/ipv6-frames';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const A = parseIp6('fd00::2');
const B = parseIp6('fd00::1');
const UDP = 17;

// Built with scapy 2.5:
// INNER = IPv6(src=fd00::2, dst=fd00::1, hlim=64, fl=0x12345, tc=0xb8)/UDP(sport=1000, dport=2000)/(b'x'*40)
const INNER = '6b81234500301140fd000000000000000000000000000002fd00000000000000000000000000000103e807d00030906878787878787878787878787878787878787878787878787878787878787878787878787878787878';
// IPv6(src=fd00::1, dst=fd00::2, hlim=64)/ICMPv6PacketTooBig(mtu=1280)/INNER
const SCAPY_PTB = '6000000000603a40fd000000000000000000000000000001fd00000000000000000000000000000202005e6b00000500' + INNER;
// IPv6(fd00::1 → fd00::2)/ICMPv6ParamProblem(code=1, ptr=6)/INNER
const SCAPY_PP = '6000000000603a40fd000000000000000000000000000001fd00000000000000000000000000000204016164000000066' + INNER.slice(1);
// IPv6(fd00::1 → fd00::2)/ICMPv6DestUnreach(code=4)/INNER
const SCAPY_UNREACH = '6000000000603a40fd000000000000000000000000000001fd00000000000000000000000000000201046467000000006' + INNER.slice(1);
// IPv6(fd00::2 → fd00::1)/ICMPv6EchoRequest(id=0x1234, seq=7, data=b'abcdefgh')
const SCAPY_ECHO = '6000000000103a40fd000000000000000000000000000002fd0000000000000000000000000000018000e1df123400076162636465666768';
// IPv6(fd00::1 → fd00::2)/ICMPv6EchoReply(id=0x1234, seq=7, data=b'abcdefgh')
const SCAPY_REPLY = '6000000000103a40fd000000000000000000000000000001fd0000000000000000000000000000028100e0df123400076162636465666768';

const ip = new Ipv6Header();
const icmp = new Icmp6Packet();

function parseAll(b: Uint8Array): Drop {
  assert.is(ip.parse(b, 0, b.length), Drop.None);
  assert.is(ip.nextHeader, IPPROTO_ICMPV6);
  return icmp.parse(b, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff);
}

/** Writes an IPv6 header + the error message the way the engine will, returns the packet. */
function buildError(type: number, code: number, param: number, orig: Uint8Array, src = B, dst = A): Uint8Array {
  const b = new Uint8Array(2000);
  const n = writeIcmp6Error(b, IPV6_HLEN, type, code, param, orig, 0, orig.length, src, dst);
  writeIpv6(b, 0, src, dst, IPPROTO_ICMPV6, n, 64);
  return b.subarray(0, IPV6_HLEN + n);
}

test('error writer matches scapy for Packet Too Big, Parameter Problem and Destination Unreachable', () => {
  const inner = hex(INNER);
  assert.is(toHex(buildError(ICMP6_PACKET_TOO_BIG, 0, 1280, inner)), SCAPY_PTB);
  assert.is(toHex(buildError(ICMP6_PARAM_PROB, ICMP6_PARAMPROB_NEXTHEADER, 6, inner)), SCAPY_PP);
  assert.is(toHex(buildError(ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_NOPORT, 1234, inner)), SCAPY_UNREACH, 'param ignored for Destination Unreachable');
});

test('errors parse: type, code, MTU, pointer, the quoted packet walked to UDP', () => {
  assert.is(parseAll(hex(SCAPY_PTB)), Drop.None);
  assert.equal([icmp.type, icmp.code, icmp.mtu], [ICMP6_PACKET_TOO_BIG, 0, 1280]);
  assert.equal([icmp.innerOff, icmp.innerLen, icmp.innerSrcOff, icmp.innerDstOff, icmp.innerNextHeader, icmp.innerL4Off, icmp.innerL4Len],
    [48, 88, 56, 72, UDP, 88, 48]);
  assert.ok(isIcmp6Error(icmp.type));
  assert.is(parseAll(hex(SCAPY_PP)), Drop.None);
  assert.equal([icmp.type, icmp.code, icmp.pointer, icmp.innerNextHeader], [ICMP6_PARAM_PROB, 1, 6, UDP]);
  assert.is(parseAll(hex(SCAPY_UNREACH)), Drop.None);
  assert.equal([icmp.type, icmp.code, icmp.innerNextHeader], [ICMP6_DST_UNREACH, 4, UDP]);
});

test('quote through extension headers; a partial quote gives a short L4 length; a quoted non-first fragment has no L4', () => {
  const orig = packet([optsHdr(IPPROTO_HOPOPTS, []), optsHdr(IPPROTO_DSTOPTS, [])], UDP, new Uint8Array(1400).fill(7), A, B);
  let e = buildError(ICMP6_TIME_EXCEEDED, 0, 0, orig);
  assert.is(parseAll(e), Drop.None);
  assert.equal([icmp.innerNextHeader, icmp.innerL4Off - icmp.innerOff], [UDP, 56]);
  assert.is(icmp.innerOff + icmp.innerLen, e.length);
  assert.is(icmp.innerL4Len, e.length - icmp.innerL4Off, 'the quote is cut: what remains of UDP');
  const f = packet([frag(1448, true, 9)], UDP, new Uint8Array(64), A, B);
  e = buildError(ICMP6_DST_UNREACH, 0, 0, f);
  assert.is(parseAll(e), Drop.None);
  assert.is(icmp.innerNextHeader, 44);
  // Quote that ends inside the chain: upper layer unknown.
  e = buildError(ICMP6_DST_UNREACH, 0, 0, orig.subarray(0, 44));
  assert.is(parseAll(e), Drop.None);
  assert.equal([icmp.innerNextHeader, icmp.innerL4Off], [-1, -1]);
  // Fewer than 40 quoted bytes: unusable.
  e = buildError(ICMP6_DST_UNREACH, 0, 0, orig.subarray(0, 39));
  assert.is(parseAll(e), Drop.Icmpv6Truncated);
});

test('the error is at most 1280 bytes, IPv6 header included (RFC 4443 2.4(c))', () => {
  const big = packet([], UDP, new Uint8Array(8000).fill(3), A, B);
  const e = buildError(ICMP6_PACKET_TOO_BIG, 0, 1400, big);
  assert.is(e.length, ICMP6_ERROR_MAX_PACKET);
  assert.is(parseAll(e), Drop.None);
  assert.equal([...e.subarray(48, 48 + 1232)], [...big.subarray(0, 1232)]);
  // In place: the quote overlapping the output (orig at the error's own quote position) is moved safely.
  const buf = new Uint8Array(3000);
  buf.set(big.subarray(0, 2000), 0);
  const n = writeIcmp6Error(buf, IPV6_HLEN, ICMP6_TIME_EXCEEDED, 1, 0, buf, 0, 2000, B, A);
  assert.is(n, 1240);
  assert.equal([...buf.subarray(48, 48 + 1232)], [...big.subarray(0, 1232)]);
});

test('echo: request parses; reply writer and in-place reply match scapy', () => {
  const req = hex(SCAPY_ECHO);
  assert.is(parseAll(req), Drop.None);
  assert.equal([icmp.type, icmp.id, icmp.seq, icmp.dataOff, icmp.dataLen], [ICMP6_ECHO_REQUEST, 0x1234, 7, 48, 8]);
  const out = new Uint8Array(req.length);
  const n = writeIcmp6EchoReply(out, IPV6_HLEN, icmp.id, icmp.seq, req, icmp.dataOff, icmp.dataLen, B, A);
  writeIpv6(out, 0, B, A, IPPROTO_ICMPV6, n, 64);
  assert.is(toHex(out), SCAPY_REPLY);
  // In place: swap the addresses, turn the message around.
  const b = req.slice();
  b.copyWithin(8, 24, 40);
  b.set(req.subarray(8, 24), 24);
  icmp6EchoReplyInPlace(b, IPV6_HLEN);
  assert.is(toHex(b), SCAPY_REPLY);
  assert.is(parseAll(b), Drop.None);
  assert.is(icmp.type, ICMP6_ECHO_REPLY);
});

test('checksum: a flipped bit anywhere, or other addresses, fail; icmp6Checksum agrees with the stored value', () => {
  const req = hex(SCAPY_ECHO);
  assert.is(icmp6Checksum(req, 40, 16, A, B), 0xe1df);
  for (let i = 8; i < req.length; i++) {
    if (i === 4 || i === 5) continue;
    const c = req.slice();
    c[i] ^= 0x10;
    assert.is(icmp.parse(c, 40, 16, 8, 24), Drop.Icmpv6BadChecksum, `bit flipped at ${i}`);
  }
  assert.is(icmp.parse(req, 40, 16, 8, 24), Drop.None);
});

test('unknown informational types are dropped; unknown error types are passed on with their quote (RFC 4443 2.4(a)(b))', () => {
  const mk = (type: number, body: Uint8Array) => {
    const b = new Uint8Array(IPV6_HLEN + 8 + body.length);
    b[IPV6_HLEN] = type;
    b.set(body, IPV6_HLEN + 8);
    writeIpv6(b, 0, A, B, IPPROTO_ICMPV6, 8 + body.length, 64);
    const c = icmp6Checksum(b, IPV6_HLEN, 8 + body.length, A, B);
    b[IPV6_HLEN + 2] = c >>> 8; b[IPV6_HLEN + 3] = c & 0xff;
    return b;
  };
  assert.is(parseAll(mk(200, new Uint8Array(4))), Drop.Icmpv6UnknownType);
  assert.is(parseAll(mk(100, hex(INNER))), Drop.None);
  assert.is(icmp.innerNextHeader, UDP);
  for (const t of [MLD_LISTENER_QUERY, MLDV2_LISTENER_REPORT, ND_ROUTER_ADVERT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_REDIRECT]) {
    assert.is(parseAll(mk(t, new Uint8Array(16))), Drop.None, `type ${t}`);
  }
  const short = mk(ICMP6_ECHO_REQUEST, new Uint8Array(0));
  assert.is(icmp.parse(short, 40, 7, 8, 24), Drop.Icmpv6Truncated);
});

test('captures: every ICMPv6 message in the sample captures verifies its checksum', () => {
  let n = 0;
  for (const name of ['icmpv6.pcap', 'icmpv6-ns-nonce.pcap', 'icmpv6-ra-pref64.pcap', 'ipv6-bad-version.pcap']) {
    for (const f of readPcap(path.join(SAMPLE_PCAPS, name))) {
      if (ip.parse(f, 14, f.length - 14) !== Drop.None) continue;
      assert.is(icmp.parse(f, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff), Drop.None, `${name}`);
      n++;
      f[ip.l4Off + 2] ^= 1;
      assert.is(icmp.parse(f, ip.l4Off, ip.l4Len, ip.srcOff, ip.dstOff), Drop.Icmpv6BadChecksum);
      f[ip.l4Off + 2] ^= 1;
    }
  }
  assert.is(n, 12);
});

test('mustNotSendError6 (RFC 4443 2.4(e))', () => {
  const h = new Ipv6Header();
  const MC = parseIp6('ff02::1');
  const udp = packet([], UDP, new Uint8Array(16), B, A);
  h.parse(udp, 0, udp.length);
  assert.not.ok(mustNotSendError6(ICMP6_DST_UNREACH, 4, udp, h), 'unicast UDP: errors allowed');
  assert.ok(mustNotSendError6(ICMP6_DST_UNREACH, 4, udp, h, true), 'came to a link-layer multicast address');
  assert.not.ok(mustNotSendError6(ICMP6_PACKET_TOO_BIG, 0, udp, h, true), 'PTB exempt');
  // About an ICMPv6 error or a Redirect: never. About an echo request: allowed.
  const err = buildError(ICMP6_DST_UNREACH, 0, 0, udp, B, A);
  h.parse(err, 0, err.length);
  assert.ok(mustNotSendError6(ICMP6_PARAM_PROB, 0, err, h));
  const redirect = packet([], IPPROTO_ICMPV6, Uint8Array.of(ND_REDIRECT, 0, 0, 0, 0, 0, 0, 0), A, B);
  h.parse(redirect, 0, redirect.length);
  assert.ok(mustNotSendError6(ICMP6_PARAM_PROB, 0, redirect, h));
  const echo = hex(SCAPY_ECHO);
  h.parse(echo, 0, echo.length);
  assert.not.ok(mustNotSendError6(ICMP6_PARAM_PROB, 0, echo, h));
  // To a multicast destination: only PTB and Parameter Problem code 2.
  const mcast = packet([], UDP, new Uint8Array(16), MC, A);
  h.parse(mcast, 0, mcast.length);
  assert.ok(mustNotSendError6(ICMP6_DST_UNREACH, 4, mcast, h));
  assert.ok(mustNotSendError6(ICMP6_PARAM_PROB, ICMP6_PARAMPROB_NEXTHEADER, mcast, h));
  assert.not.ok(mustNotSendError6(ICMP6_PARAM_PROB, ICMP6_PARAMPROB_OPTION, mcast, h));
  assert.not.ok(mustNotSendError6(ICMP6_PACKET_TOO_BIG, 0, mcast, h));
  // From :: or a multicast source: never.
  for (const src of [ANY6, MC]) {
    const p = packet([], UDP, new Uint8Array(16), B, src);
    h.parse(p, 0, p.length);
    assert.ok(mustNotSendError6(ICMP6_PACKET_TOO_BIG, 0, p, h));
    assert.ok(mustNotSendError6(ICMP6_PARAM_PROB, ICMP6_PARAMPROB_OPTION, p, h));
  }
});

test('malformed: truncations and corruptions never throw', () => {
  const seeds = [hex(SCAPY_PTB), hex(SCAPY_ECHO), buildError(ICMP6_TIME_EXCEEDED, 0, 0, packet([optsHdr(IPPROTO_HOPOPTS, []), frag(0, true, 1)], UDP, new Uint8Array(24), A, B))];
  let x = 99;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16;
  for (const s of seeds) {
    for (let n = 0; n <= s.length - 40; n++) {
      const d = icmp.parse(s, 40, n, 8, 24);
      assert.ok(d >= 0 && d < Drop.Count);
    }
    for (let i = 0; i < 3000; i++) {
      const c = s.slice();
      for (let k = 0; k < 3; k++) c[40 + (rnd() % (c.length - 40))] = rnd() & 0xff;
      // Fix the checksum so the quote walk is reached.
      c[42] = 0; c[43] = 0;
      const ck = icmp6Checksum(c, 40, c.length - 40, B, A);
      c[42] = ck >>> 8; c[43] = ck & 0xff;
      const d = icmp.parse(c, 40, c.length - 40, 8, 24);
      assert.ok(d >= 0 && d < Drop.Count);
      if (d === Drop.None && icmp.innerL4Off >= 0) assert.ok(icmp.innerL4Off + icmp.innerL4Len <= c.length && icmp.innerL4Len >= 0);
    }
  }
});

test.run();
