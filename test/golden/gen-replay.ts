/**
 * Generates the replay golden input `replay-in.pcap` with the project's own emitters, for the
 * stack of `replay.json`: two virtual servers with the same address 10.1.1.1/24 on VLANs 10 and
 * 20 of one device, each with a UDP echo service on port 7. Per VLAN, a peer 10.1.1.2 sends an ARP
 * request, an ICMP echo request, a UDP datagram to the echo port and one to a closed port; then
 * malformed and foreign frames follow.
 *
 *   node dist/test/golden/gen-replay.js            rewrites replay-in.pcap
 *   node dist/test/golden/gen-replay.js --expected also rewrites replay-expected.pcap from the
 *                                                  current stack (check it with tshark first!)
 */
import * as path from 'node:path';
import { PcapWriter } from '../../driver/pcap';
import { writeEth, ETH_P_ARP, ETH_P_IPV4 } from '../../protocols/ethernet';
import { writeArp, ARP_REQUEST } from '../../protocols/arp';
import { writeIpv4, parseIpv4, IPPROTO_ICMP, IPPROTO_UDP } from '../../protocols/ipv4';
import { writeUdp } from '../../protocols/udp';
import { fold, sum16 } from '../../protocols/checksum';
import { replayCapture } from '../../stack/replay';

export const GOLDEN_DIR = path.join(__dirname, '..', '..', '..', 'test', 'golden');
export const CONFIG = path.join(GOLDEN_DIR, 'replay.json');
export const INPUT = path.join(GOLDEN_DIR, 'replay-in.pcap');
export const EXPECTED = path.join(GOLDEN_DIR, 'replay-expected.pcap');

const STACK_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);
const BCAST = Uint8Array.of(255, 255, 255, 255, 255, 255);
const ZERO = new Uint8Array(6);
const US = parseIpv4('10.1.1.1');
const PEER = parseIpv4('10.1.1.2');
const T0 = 1_700_000_000_000_000; // µs

export function buildInput(): Uint8Array {
  const w = new PcapWriter();
  const b = new Uint8Array(2048);
  let t = T0;
  const put = (len: number) => { w.write(b, 0, Math.max(len, 60), t); t += 1000; };
  const pad = () => b.fill(0);

  for (const [vlan, peerMac] of [[10, Uint8Array.of(2, 0, 0, 0, 0, 0x0a)], [20, Uint8Array.of(2, 0, 0, 0, 0, 0x14)]] as const) {
    // ARP: who has 10.1.1.1?
    pad();
    let h = writeEth(b, 0, BCAST, 0, peerMac, 0, ETH_P_ARP, vlan);
    writeArp(b, h, ARP_REQUEST, peerMac, 0, PEER, ZERO, 0, US);
    put(h + 28);
    // ICMP echo request, 32 bytes of data.
    pad();
    h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, vlan);
    const ic = h + 20;
    b[ic] = 8; b[ic + 1] = 0; b[ic + 4] = 0x12; b[ic + 5] = vlan; b[ic + 6] = 0; b[ic + 7] = 1;
    for (let i = 0; i < 32; i++) b[ic + 8 + i] = 0x61 + (i % 26);
    const c = fold(sum16(b, ic, 40));
    b[ic + 2] = c >>> 8; b[ic + 3] = c & 0xff;
    writeIpv4(b, h, PEER, US, IPPROTO_ICMP, 40, 64, 0x100 + vlan, 0, 0);
    put(h + 60);
    // UDP to the echo service.
    pad();
    h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, vlan);
    const msg = Buffer.from(`echo me on VLAN ${vlan}`);
    b.set(msg, h + 28);
    writeUdp(b, h + 20, 40000 + vlan, 7, msg.length, PEER, US);
    writeIpv4(b, h, PEER, US, IPPROTO_UDP, 8 + msg.length, 64, 0x200 + vlan, 0, 0);
    put(h + 28 + msg.length);
    // UDP to a closed port: ICMP port unreachable.
    pad();
    h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, vlan);
    b.set(msg, h + 28);
    writeUdp(b, h + 20, 40000 + vlan, 9999, msg.length, PEER, US);
    writeIpv4(b, h, PEER, US, IPPROTO_UDP, 8 + msg.length, 64, 0x300 + vlan, 0, 0);
    put(h + 28 + msg.length);
  }

  const peerMac = Uint8Array.of(2, 0, 0, 0, 0, 0x0a);
  // Malformed: a 10-byte runt (written as is, not padded).
  pad();
  writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, 10);
  w.write(b, 0, 10, t); t += 1000;
  // Malformed: IPv4 header checksum wrong.
  pad();
  let h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, 10);
  writeUdp(b, h + 20, 1, 7, 4, PEER, US);
  writeIpv4(b, h, PEER, US, IPPROTO_UDP, 12, 64, 0x400, 0, 0);
  b[h + 10] ^= 0xff;
  put(h + 32);
  // Malformed: UDP checksum wrong.
  pad();
  h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, 10);
  writeUdp(b, h + 20, 1, 7, 4, PEER, US);
  b[h + 26] ^= 0x55;
  writeIpv4(b, h, PEER, US, IPPROTO_UDP, 12, 64, 0x401, 0, 0);
  put(h + 32);
  // Malformed: IP version 6 in an IPv4 ethertype.
  pad();
  h = writeEth(b, 0, STACK_MAC, 0, peerMac, 0, ETH_P_IPV4, 20);
  writeIpv4(b, h, PEER, US, IPPROTO_UDP, 12, 64, 0x402, 0, 0);
  b[h] = 0x65;
  put(h + 32);
  // Malformed: ARP cut short inside the 802.1Q frame (total length 60 with padding, ARP 10 bytes).
  pad();
  h = writeEth(b, 0, BCAST, 0, peerMac, 0, ETH_P_ARP, 10);
  writeArp(b, h, ARP_REQUEST, peerMac, 0, PEER, ZERO, 0, US);
  w.write(b, 0, h + 10, t); t += 1000;
  // Foreign: VLAN 30 has no link; untagged frame; frame for another MAC.
  pad();
  h = writeEth(b, 0, BCAST, 0, peerMac, 0, ETH_P_ARP, 30);
  writeArp(b, h, ARP_REQUEST, peerMac, 0, PEER, ZERO, 0, US);
  put(h + 28);
  pad();
  h = writeEth(b, 0, BCAST, 0, peerMac, 0, ETH_P_ARP, -1);
  writeArp(b, h, ARP_REQUEST, peerMac, 0, PEER, ZERO, 0, US);
  put(h + 28);
  pad();
  h = writeEth(b, 0, Uint8Array.of(2, 0, 0, 0, 0, 0x77), 0, peerMac, 0, ETH_P_IPV4, 10);
  writeUdp(b, h + 20, 1, 7, 4, PEER, US);
  writeIpv4(b, h, PEER, US, IPPROTO_UDP, 12, 64, 0x403, 0, 0);
  put(h + 32);
  // A last echo request on VLAN 20 after the garbage: the stack still answers.
  pad();
  const peer20 = Uint8Array.of(2, 0, 0, 0, 0, 0x14);
  h = writeEth(b, 0, STACK_MAC, 0, peer20, 0, ETH_P_IPV4, 20);
  const ic = h + 20;
  b[ic] = 8; b[ic + 4] = 0x12; b[ic + 5] = 0x34; b[ic + 7] = 2;
  const c = fold(sum16(b, ic, 8));
  b[ic + 2] = c >>> 8; b[ic + 3] = c & 0xff;
  writeIpv4(b, h, PEER, US, IPPROTO_ICMP, 8, 64, 0x500, 0, 0);
  put(h + 28);
  return w.toBuffer();
}

if (require.main === module) {
  const fs = require('node:fs') as typeof import('node:fs');
  fs.writeFileSync(INPUT, buildInput());
  console.log(`wrote ${INPUT}`);
  if (process.argv.includes('--expected')) {
    const r = replayCapture(CONFIG, INPUT, EXPECTED);
    console.log(`wrote ${EXPECTED}: ${r.output} frame(s)`);
  }
}
