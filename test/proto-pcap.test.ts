import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Drop } from '../protocols/drop';
import { EthFrame, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, isBroadcast, macToString } from '../protocols/ethernet';
import { ArpPacket, ARP_REPLY, ARP_REQUEST } from '../protocols/arp';
import { Ipv4Header, ipv4ToString, IPPROTO_TCP } from '../protocols/ipv4';
import { internetChecksum, sum16, fold, pseudoSum4 } from '../protocols/checksum';
import { SAMPLE_PCAPS } from './lib/env';

const PCAPS = SAMPLE_PCAPS;

interface Packet { data: Uint8Array; linkType: number }

/** Minimal classic-pcap reader (little/big endian, µs or ns magic), enough for the test captures. */
function readPcap(path: string): Packet[] {
  const f = new Uint8Array(readFileSync(path));
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const magic = dv.getUint32(0, true);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`${path}: not a classic pcap file`);
  const linkType = dv.getUint32(20, le) & 0xffff;
  const out: Packet[] = [];
  let p = 24;
  while (p + 16 <= f.length) {
    const incl = dv.getUint32(p + 8, le);
    p += 16;
    out.push({ data: f.subarray(p, Math.min(p + incl, f.length)), linkType });
    p += incl;
  }
  return out;
}

/** Offset of the network header and its ethertype for the link types in the captures. */
function l3Of(pkt: Packet, eth: EthFrame): { off: number; type: number; drop: Drop } {
  if (pkt.linkType === 113) { // Linux cooked capture (SLL): 16-byte header, protocol at 14
    return { off: 16, type: (pkt.data[14] << 8) | pkt.data[15], drop: Drop.None };
  }
  assert.is(pkt.linkType, 1);
  const drop = eth.parse(pkt.data, 0, pkt.data.length);
  return { off: eth.l3Off, type: eth.etherType, drop };
}

test('802.1ad_QinQ.pcap: outer and inner VLAN, ARP request and reply', () => {
  const pkts = readPcap(`${PCAPS}/802.1ad_QinQ.pcap`);
  assert.ok(pkts.length >= 2);
  const e = new EthFrame();
  const a = new ArpPacket();
  const b0 = pkts[0].data;
  assert.is(e.parse(b0, 0, b0.length), Drop.None);
  assert.equal([e.outerVlan, e.vlan, e.etherType, e.hdrLen], [200, 2001, ETH_P_ARP, 22]);
  assert.ok(isBroadcast(b0, e.dstOff));
  assert.is(a.parse(b0, e.l3Off, e.l3Len), Drop.None);
  assert.is(a.op, ARP_REQUEST);
  assert.is(macToString(b0, a.shaOff), '00:20:d2:5a:fb:3f');
  assert.is(ipv4ToString(a.spa), '172.21.79.97');
  assert.is(macToString(b0, a.thaOff), '00:00:00:00:00:00');
  assert.is(ipv4ToString(a.tpa), '172.21.79.100');

  const b1 = pkts[1].data;
  assert.is(e.parse(b1, 0, b1.length), Drop.None);
  assert.equal([e.outerVlan, e.vlan], [200, 2001]);
  assert.is(a.parse(b1, e.l3Off, e.l3Len), Drop.None);
  assert.is(a.op, ARP_REPLY);
  assert.is(macToString(b1, a.shaOff), '00:80:ea:81:88:63');
  assert.is(ipv4ToString(a.spa), '172.21.79.100');
  assert.is(macToString(b1, a.thaOff), '00:20:d2:5a:fb:3f');
  assert.is(ipv4ToString(a.tpa), '172.21.79.97');
});

test('arp-too-long-tha.pcap: 802.1ad tag alone, ARP with 14-byte hardware addresses → ArpBadHardware', () => {
  const pkts = readPcap(`${PCAPS}/arp-too-long-tha.pcap`);
  const e = new EthFrame();
  const a = new ArpPacket();
  const b = pkts[0].data;
  assert.is(e.parse(b, 0, b.length), Drop.None);
  assert.equal([e.outerVlan, e.vlan, e.etherType, e.hdrLen], [48, -1, ETH_P_ARP, 18]);
  assert.is(a.parse(b, e.l3Off, e.l3Len), Drop.ArpBadHardware);
  // Every truncation of it is dropped too, never thrown.
  for (let n = 0; n < b.length; n++) {
    const d = e.parse(b, 0, n);
    if (d === Drop.None) assert.is.not(a.parse(b, e.l3Off, e.l3Len), Drop.None);
  }
});

test('TCP captures: valid IPv4 headers, verified TCP checksums', () => {
  const e = new EthFrame();
  const ip = new Ipv4Header();
  // Expected TCP checksum validity per frame, as tshark reports it (tcp.check_checksum): the
  // AccECN capture was taken on a host with checksum offload, so its own segments carry only
  // the pseudo-header sum.
  const cases: [string, [string, string, number, number][], boolean[]][] = [
    ['tcp_eight_lowest_weight_flags_set.pcap', [['10.0.0.2', '10.128.0.2', 0x8e4a, 40]], [true]],
    ['tcp-handshake-nano.pcap', [['131.155.215.69', '137.116.81.94', 0x29a9, 60], ['137.116.81.94', '131.155.215.69', 0x1c44, 60], ['131.155.215.69', '137.116.81.94', 0x29aa, 52]], [true, true, true]],
    ['accecn_handshake.pcap', [], [false, true, false, false, true, true]],
  ];
  for (const [file, want, tcpOk] of cases) {
    const pkts = readPcap(`${PCAPS}/${file}`);
    let seen = 0;
    for (const pkt of pkts) {
      const l3 = l3Of(pkt, e);
      assert.is(l3.drop, Drop.None, file);
      if (l3.type === ETH_P_IPV6) continue;
      assert.is(l3.type, ETH_P_IPV4, file);
      const b = pkt.data;
      assert.is(ip.parse(b, l3.off, b.length - l3.off), Drop.None, file);
      assert.is(ip.proto, IPPROTO_TCP);
      assert.is(internetChecksum(b, l3.off, ip.hdrLen), 0);
      if (seen < want.length) {
        const [src, dst, id, total] = want[seen];
        assert.equal([ipv4ToString(ip.src), ipv4ToString(ip.dst), ip.id, ip.totalLen], [src, dst, id, total], `${file} #${seen}`);
      }
      // TCP checksum over pseudo-header + segment agrees with tshark.
      const ok = fold(sum16(b, ip.payloadOff, ip.payloadLen, pseudoSum4(ip.src, ip.dst, ip.proto, ip.payloadLen))) === 0;
      assert.is(ok, tcpOk[seen], `${file} #${seen} tcp checksum`);
      seen++;
    }
    assert.is(seen, tcpOk.length, file);
  }
});

test('every sample capture: parsers never throw on any frame or truncation of it', () => {
  const e = new EthFrame();
  const ip = new Ipv4Header();
  const a = new ArpPacket();
  const files = readFileSync(`${PCAPS}/README.md`, 'utf8').match(/[\w.-]+\.pcap/g) ?? [];
  assert.ok(files.length >= 10);
  let frames = 0;
  for (const file of new Set(files)) {
    for (const pkt of readPcap(`${PCAPS}/${file}`)) {
      if (pkt.linkType !== 1) continue;
      frames++;
      const b = pkt.data;
      for (let n = 0; n <= b.length; n++) {
        if (e.parse(b, 0, n) !== Drop.None) continue;
        if (e.etherType === ETH_P_ARP) a.parse(b, e.l3Off, e.l3Len);
        else if (e.etherType === ETH_P_IPV4) ip.parse(b, e.l3Off, e.l3Len);
      }
    }
  }
  assert.ok(frames > 10);
});

test.run();
