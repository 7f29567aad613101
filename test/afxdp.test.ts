/**
 * AF_XDP driver against kernel peers in the lab (prefix 'xa'): receive, transmit, XDP_PASS for
 * traffic the stack does not own, stale-attachment recovery after kill -9, clean exit on
 * SIGTERM, and clear errors. Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canRunPrivileged, sh, labPrefix } from './lib/env';
import { collect } from './lib/collect';
import { labUp, labDown, Lab } from '../stack/lab/lab';
import { openAfxdp, ipv4ToU32, attachedPrograms, AfxdpDriver, RUN_DIR } from '../driver/afxdp';
import { Burst, parseMac } from '../driver/types';
import { parseIp6 } from '../protocols/ip/addr';

const PREFIX = labPrefix('xa');
const privileged = canRunPrivileged();
/** Registers a test only where it can run (as root): elsewhere the file reports fewer tests. */
const ptest = privileged ? test : ((() => {}) as unknown as typeof test);
let lab: Lab;
const logs: string[] = [];
const log = (m: string) => { logs.push(m); };

function open(): AfxdpDriver {
  return openAfxdp({ ifname: lab.stackDevice, frameCount: 1024, log });
}

function inPeer(i: number, cmd: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', lab.peers[i]!.ns, cmd, ...args], { stdio: 'ignore' });
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((r) => { if (p.exitCode !== null || p.signalCode !== null) r(p.exitCode); else p.on('exit', (c) => r(c)); });
}

const isArpFor = (ip: number[]) => (f: Buffer) => {
  let o = 12;
  if (f.readUInt16BE(o) === 0x8100) o += 4;
  return f.readUInt16BE(o) === 0x0806 && f.length >= o + 30 && ip.every((x, k) => f[o + 2 + 24 + k] === x);
};

if (privileged) test.before(() => {
  lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.1.1.2/24', ipv6: 'fd00:1::2/64' }, { vlan: 7, ipv4: '10.1.7.2/24' }] });
});

if (privileged) test.after(() => {
  labDown(PREFIX);
});

ptest('clear errors: missing device, device down', () => {
  assert.throws(() => openAfxdp({ ifname: 'xanodev' }), /no network device 'xanodev'.*ip link/);
  const DN = `${PREFIX}dn`;
  sh('ip', ['link', 'add', DN, 'type', 'veth', 'peer', 'name', `${PREFIX}dnp`]);
  try {
    assert.throws(() => openAfxdp({ ifname: DN }), new RegExp(`${DN} is down: bring it up with 'ip link set dev ${DN} up'`));
    assert.equal(attachedPrograms(DN), []);
  } finally {
    sh('ip', ['link', 'del', DN]);
  }
  assert.throws(() => openAfxdp({ ifname: 'lo', queue: 5 }), /queue 5 does not exist/);
});

ptest('frames from kernel peers arrive with their bytes, VLAN tags in-band', async () => {
  const d = open();
  try {
    assert.is(d.kind, 'afxdp');
    assert.is(d.bindMode, 'copy'); // veth: copy mode only
    assert.is(d.attachMode, 'native');
    assert.equal(Buffer.from(d.mac), Buffer.from(parseMac(lab.stackMac)));
    const rings = d.ringLevels();
    assert.is(rings.fill, 512, 'fill ring topped up with half the frames');
    d.service(Date.now() * 1000);
    assert.equal(d.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
    d.own(ipv4ToU32('10.1.1.1'), 0, true);
    d.own(ipv4ToU32('10.1.7.1'), 7, true);
    d.addOwnedMac(parseMac(lab.stackMac), 0);

    // (1) Broadcast ARP request from an untagged peer, for an owned address.
    let p = inPeer(0, 'ping', ['-c', '1', '-W', '1', '10.1.1.1']);
    let got = await collect(d, isArpFor([10, 1, 1, 1]), 1, 4000);
    await exited(p);
    assert.ok(got.length >= 1, 'ARP request received');
    let f = got[0]!;
    assert.equal([...f.subarray(0, 6)], [255, 255, 255, 255, 255, 255]);
    assert.equal(f.subarray(6, 12), Buffer.from(parseMac(lab.peers[0]!.mac)));
    assert.is(f.readUInt16BE(12), 0x0806);
    assert.is(f.readUInt16BE(14 + 6), 1, 'ARP request opcode');
    assert.equal([...f.subarray(14 + 14, 14 + 18)], [10, 1, 1, 2], 'sender IP');

    // (2) Same from the peer on VLAN 7: the 802.1Q tag stays in the frame.
    p = inPeer(1, 'ping', ['-c', '1', '-W', '1', '10.1.7.1']);
    got = await collect(d, isArpFor([10, 1, 7, 1]), 1, 4000);
    await exited(p);
    assert.ok(got.length >= 1, 'tagged ARP request received');
    f = got[0]!;
    assert.is(f.readUInt16BE(12), 0x8100, 'TPID');
    assert.is(f.readUInt16BE(14) & 0x0fff, 7, 'VLAN id');
    assert.is(f.readUInt16BE(16), 0x0806);
    assert.equal([...f.subarray(18 + 14, 18 + 18)], [10, 1, 7, 2]);

    // (3) A unicast UDP frame to the owned MAC, crafted with scapy: bytes intact.
    const payload = 'hello-xdpstack-' + process.pid;
    const py = `from scapy.all import *; sendp(Ether(dst='${lab.stackMac}',src='${lab.peers[0]!.mac}')/IP(src='10.1.1.2',dst='10.1.1.1')/UDP(sport=1234,dport=5678)/Raw(b'${payload}'), iface='eth0', verbose=False)`;
    p = inPeer(0, '/usr/bin/python3', ['-c', py]);
    got = await collect(d, (x) => x.includes(payload), 1, 15000);
    assert.is(await exited(p), 0, 'scapy sent the frame');
    assert.is(got.length, 1);
    f = got[0]!;
    assert.equal(f.subarray(0, 6), Buffer.from(parseMac(lab.stackMac)));
    assert.is(f.readUInt16BE(12), 0x0800);
    assert.is(f[14 + 9], 17, 'UDP');
    assert.is(f.readUInt16BE(14 + 20), 1234);
    assert.is(f.readUInt16BE(14 + 22), 5678);
    assert.is(f.subarray(14 + 28, 14 + 28 + payload.length).toString(), payload);

    // (4) ARP for an address owned on VLAN 7 but asked untagged: not ours, passed to the kernel.
    const before = d.programCounters();
    p = inPeer(0, 'arping', ['-c', '1', '-w', '1', '-I', 'eth0', '10.1.7.1']);
    got = await collect(d, (x) => x.readUInt16BE(12) === 0x0806 && isArpFor([10, 1, 7, 1])(x), 1, 1500);
    await exited(p);
    assert.is(got.length, 0, 'VLAN key mismatch is not redirected');
    assert.ok(d.programCounters().passed > before.passed, 'counted as passed');

    const st = d.stats();
    assert.ok(st.rxPackets >= 3);
    assert.is((st.xdp as { rxInvalidDescs: number }).rxInvalidDescs, 0);
    assert.is(d.xdpStats().rxRingFull, 0);
    d.service(Date.now() * 1000);
    assert.equal(d.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
  } finally {
    d.close();
  }
  assert.equal(d.pool.check(), { free: 1024, kernel: 0, tx: 0, held: 0, total: 1024 });
  assert.equal(attachedPrograms(lab.stackDevice), [], 'program detached on close');
});

ptest('IPv6 NDP: neighbour solicitations for an owned address are redirected (busy-poll mode)', async () => {
  const d = openAfxdp({ ifname: lab.stackDevice, frameCount: 1024, busyPoll: true, log });
  try {
    assert.is(d.busyPoll, true);
    const target = Uint8Array.from([0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    d.own(parseIp6('fd00:1::1'), 0, true);
    const isNs = (f: Buffer) => f.readUInt16BE(12) === 0x86dd && f[14 + 6] === 58 && f[14 + 40] === 135;
    const p = inPeer(0, 'ping', ['-6', '-c', '1', '-W', '1', 'fd00:1::1']);
    const got = await collect(d, isNs, 1, 4000);
    await exited(p);
    assert.ok(got.length >= 1, 'NS received');
    const f = got[0]!;
    assert.equal([...f.subarray(0, 6)], [0x33, 0x33, 0xff, 0, 0, 1], 'to the solicited-node multicast MAC');
    assert.equal(f.subarray(14 + 48, 14 + 64), Buffer.from(target), 'NS target');
    // Removing the address stops the redirection. The peer's own retries of the first resolution may
    // already sit in our RX ring: drain them and let the peer forget that resolution first.
    d.own(parseIp6('fd00:1::1'), 0, false);
    await exited(inPeer(0, 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0']));
    await collect(d, isNs, 100, 300);
    const p2 = inPeer(0, 'ping', ['-6', '-c', '1', '-W', '1', 'fd00:1::1']);
    const none = await collect(d, isNs, 1, 1200);
    await exited(p2);
    assert.is(none.length, 0);
    d.service(Date.now() * 1000);
    assert.equal(d.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
  } finally {
    d.close();
  }
  assert.equal(d.pool.check().free, 1024);
});

/** Minimal pcap reader: the packets of a classic pcap file. */
function readPcap(file: string): Buffer[] {
  const b = fs.readFileSync(file);
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: Buffer[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = u32(o + 8);
    out.push(b.subarray(o + 16, o + 16 + incl));
    o += 16 + incl;
  }
  return out;
}

async function startCapture(i: number, file: string, filter: string[]): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', lab.peers[i]!.ns, 'tcpdump', '-i', 'eth0', '-U', '-n', '-c', '1', '-w', file, ...filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error('tcpdump did not start: ' + err)), 10000);
    p.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (/listening on/.test(err)) { clearTimeout(t); resolve(); } });
    p.on('exit', () => { clearTimeout(t); reject(new Error('tcpdump exited: ' + err)); });
  });
  return p;
}

ptest('frames sent through AF_XDP are captured on the peer', async () => {
  const d = open();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xa-cap-'));
  try {
    const file = path.join(dir, 'tx.pcap');
    const cap = await startCapture(0, file, ['ether', 'proto', '0x88b5']);
    const pool = d.pool;
    const b = new Burst();
    const payload = Buffer.from('xdpstack-tx-' + process.pid);
    const frames: number[] = [];
    for (let k = 0; k < 3; k++) {
      const f = pool.alloc();
      assert.ok(f >= 0);
      frames.push(f);
      const off = pool.dataStart(f);
      pool.bytes.set(parseMac(lab.peers[0]!.mac), off);
      pool.bytes.set(d.mac, off + 6);
      pool.view.setUint16(off + 12, 0x88b5);
      pool.bytes.fill(0, off + 14, off + 60);
      pool.bytes.set(payload, off + 14);
      pool.bytes[off + 59] = k;
      b.push(f, off, 60);
    }
    assert.is(d.tx(b, Date.now() * 1000), 3, 'all three queued');
    assert.is(b.n, 3, 'the burst is left to the caller (Driver contract)');
    b.shift(3);
    assert.ok(pool.counts().tx + pool.counts().free >= 512 + 3 - 512, 'frames moved to Tx');
    // Completions return the frames to the pool.
    for (let i = 0; i < 50 && pool.counts().tx > 0; i++) {
      d.service(Date.now() * 1000);
      if (pool.counts().tx > 0) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
    for (const f of frames) assert.is(pool.stateOf(f), 0, `frame ${f} is free again`);
    const code = await Promise.race([exited(cap), new Promise<string>((r) => setTimeout(() => r('timeout'), 5000))]);
    if (code === 'timeout') cap.kill('SIGINT');
    await exited(cap);
    const pkts = readPcap(file);
    assert.is(pkts.length, 1, 'tcpdump captured our frame');
    const p = pkts[0]!;
    assert.equal(p.subarray(0, 6), Buffer.from(parseMac(lab.peers[0]!.mac)));
    assert.equal(p.subarray(6, 12), Buffer.from(d.mac));
    assert.is(p.readUInt16BE(12), 0x88b5);
    assert.equal(p.subarray(14, 14 + payload.length), payload);
    assert.is(p[59], 0);
    const st = d.stats();
    assert.is(st.txPackets, 3);
    assert.is(st.txBytes, 180);
    assert.is(d.xdpStats().txInvalidDescs, 0);
    // An invalid descriptor (outside its frame) is dropped and counted, the frame freed.
    const bad = pool.alloc();
    b.push(bad, pool.addr(bad) + 2000, 100);
    assert.is(d.tx(b, 0), 1);
    b.shift(1);
    assert.is(d.stats().drops.tx_invalid_desc, 1);
    assert.is(pool.stateOf(bad), 0);
  } finally {
    d.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(d.pool.check(), { free: 1024, kernel: 0, tx: 0, held: 0, total: 1024 });
});

ptest('XDP_PASS: host traffic on the device keeps working while attached', async () => {
  sh('ip', ['addr', 'add', '10.1.1.100/24', 'dev', lab.stackDevice]);
  const d = open();
  try {
    d.addOwnedMac(parseMac('02:00:00:aa:bb:01'), 0);
    d.own(ipv4ToU32('10.1.1.1'), 0, true);
    const p = inPeer(0, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.1.1.100']);
    const stolen = collect(d, () => true, 1000, 2500);
    assert.is(await exited(p), 0, 'the kernel answered the peer\'s ping through the attached device');
    const frames = await stolen;
    assert.is(frames.length, 0, 'nothing for the kernel was redirected to the stack');
    assert.ok(d.programCounters().passed >= 3);
    d.service(Date.now() * 1000);
    assert.equal(d.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
  } finally {
    d.close();
    sh('ip', ['addr', 'del', '10.1.1.100/24', 'dev', lab.stackDevice]);
  }
  assert.equal(d.pool.check().free, 1024);
});

const childScript = (dev: string) => `
const { openAfxdp, ipv4ToU32 } = require(${JSON.stringify(path.resolve(__dirname, '..', 'driver', 'afxdp.js'))});
const d = openAfxdp({ ifname: ${JSON.stringify(dev)}, frameCount: 256, log: () => {} });
d.own(ipv4ToU32('10.1.1.1'), 0, true);
console.log('ready ' + d.attachMode);
setInterval(() => d.service(0), 1000);
`;

function startChild(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', childScript(lab.stackDevice)], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => { c.kill('SIGKILL'); reject(new Error('child did not start: ' + out)); }, 15000);
    c.stdout!.on('data', (x: Buffer) => { out += x; if (/ready/.test(out)) { clearTimeout(t); resolve(c); } });
    c.stderr!.on('data', (x: Buffer) => { out += x; });
    c.on('exit', () => { clearTimeout(t); reject(new Error('child exited: ' + out)); });
  });
}

ptest('a second process gets "in use by pid N"; kill -9 leaves an attachment the next start replaces', async () => {
  const d = open();
  const r = spawnSync(process.execPath, ['-e', childScript(lab.stackDevice)], { encoding: 'utf8', timeout: 15000 });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, new RegExp(`in use by pid ${process.pid}`));
  d.close();
  assert.equal(d.pool.check().free, 1024);

  const c = await startChild();
  assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp']);
  assert.throws(() => open(), new RegExp(`in use by pid ${c.pid}`));
  c.kill('SIGKILL');
  await exited(c);
  assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp'], 'kill -9 left the program attached');
  assert.ok(fs.existsSync(path.join(RUN_DIR, `${lab.stackDevice}.pid`)), 'and its pid file');

  logs.length = 0;
  const d2 = open();
  try {
    assert.ok(logs.some((m) => /removed 1 stale/.test(m)), 'stale program reported: ' + logs.join(' | '));
    assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp']);
    d2.own(ipv4ToU32('10.1.1.1'), 0, true);
    const p = inPeer(0, 'ping', ['-c', '1', '-W', '1', '10.1.1.1']);
    const got = await collect(d2, isArpFor([10, 1, 1, 1]), 1, 4000);
    await exited(p);
    assert.ok(got.length >= 1, 'the new attachment receives');
    d2.service(Date.now() * 1000);
    assert.equal(d2.pool.check(), { free: 512, kernel: 512, tx: 0, held: 0, total: 1024 });
  } finally {
    d2.close();
  }
  assert.equal(d2.pool.check().free, 1024);
  assert.equal(attachedPrograms(lab.stackDevice), []);
  assert.not.ok(fs.existsSync(path.join(RUN_DIR, `${lab.stackDevice}.pid`)), 'pid file removed on close');
});

ptest('SIGTERM detaches and the process dies by the signal, as Node would', async () => {
  const c = await startChild();
  assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp']);
  c.kill('SIGTERM');
  await exited(c);
  assert.is(c.signalCode, 'SIGTERM');
  assert.equal(attachedPrograms(lab.stackDevice), []);
  assert.not.ok(fs.existsSync(path.join(RUN_DIR, `${lab.stackDevice}.pid`)));
});

test.run();
