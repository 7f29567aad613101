/**
 * TCP over IPv6 against Linux peers through the lab's impairment (random loss and bit corruption
 * in tc BPF on the peers' switch ports), as test/impair-lab.test.ts does for IPv4: transfers both
 * ways and an echo, byte-exact (sha256) within a deadline, and every corrupted frame caught by a
 * checksum (the IPv6 pseudo-header sum: by the stack as tcp-bad-checksum, by the peer's kernel as
 * TcpInCsumErrors). Registered only with root.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab';
import { ImpairRig, peerCsumErrors, TransferResult } from './lib/impair';

const PREFIX = labPrefix('xb');

if (canRunPrivileged()) {
  let lab: Lab;
  let rig: ImpairRig;
  const results: TransferResult[] = [];

  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.72.0.2/24', ipv6: true }, { vlan: 7, ipv4: '10.72.7.2/24', ipv6: true }] });
    rig = new ImpairRig(lab, { ipv6: true });
  });
  test.after(() => {
    try { rig?.close(); } finally {
      labDown(PREFIX);
      if (results.length) {
        console.log('# impair6-lab transfers: ' + results.map((r) => `${r.kind}@p${r.peer} ${r.bytes >> 10} KiB ${r.ms} ms (${r.retransSegs} rexmit, ${r.rtoExpirations} RTO)`).join('; '));
      }
    }
  });

  async function settled(): Promise<void> {
    const c = await rig.poolSettled();
    assert.is(c.free + c.kernel + c.tx + c.held, c.total, `frame states add up: ${JSON.stringify(c)}`);
    assert.is(c.held, 0, `no frame held: ${JSON.stringify(c)}`);
  }

  test('the transfers go over IPv6 (the peers reach the stack at its IPv6 addresses)', async () => {
    assert.ok(rig.vss.every((v) => v.host.includes(':')), JSON.stringify(rig.vss));
    results.push(await rig.toStack(0, 256 << 10, 30_000));
    results.push(await rig.fromStack(1, 256 << 10, 30_000));
    await settled();
  });

  test('1 % loss both ways: 2 MB to the stack, from the stack and echoed, byte-exact, no stall', async () => {
    rig.setImpair(0.01, 0);
    for (const peer of [0, 1]) {
      results.push(await rig.toStack(peer, 2 << 20, 60_000));
      results.push(await rig.fromStack(peer, 2 << 20, 60_000));
    }
    results.push(await rig.echo(0, 2 << 20, 60_000));
    const imp = rig.impairment();
    for (const p of imp) assert.ok(p.in.dropped > 0 && p.out.dropped > 0, `peer ${p.peer}: drops in both directions ${JSON.stringify(p)}`);
    await settled();
  });

  test('1 % corruption + 1 % loss both ways: every corrupted frame is caught by a checksum, data byte-exact', async () => {
    rig.setImpair(0.01, 0.01);
    const drops0 = rig.drops()['tcp-bad-checksum'] ?? 0;
    const peerErr0 = await Promise.all(lab.peers.map((p) => peerCsumErrors(p.ns)));
    for (const peer of [0, 1]) {
      results.push(await rig.toStack(peer, 2 << 20, 60_000));
      results.push(await rig.fromStack(peer, 2 << 20, 60_000));
    }
    const imp = rig.impairment();
    const badAtStack = (rig.drops()['tcp-bad-checksum'] ?? 0) - drops0;
    const corruptedOut = imp.reduce((n, p) => n + p.out.corrupted, 0);
    for (const p of imp) assert.ok(p.in.corrupted > 0 && p.out.corrupted > 0, `peer ${p.peer} corrupted both ways: ${JSON.stringify(p)}`);
    // A flipped bit in a TCP segment always fails the checksum (RFC 9293 3.1, RFC 8200 8.1).
    assert.ok(badAtStack >= 1 && badAtStack <= corruptedOut, `stack tcp-bad-checksum ${badAtStack}, corrupted toward the stack ${corruptedOut}`);
    const peerErr = await Promise.all(lab.peers.map((p) => peerCsumErrors(p.ns)));
    lab.peers.forEach((_, i) => {
      const got = peerErr[i]! - peerErr0[i]!;
      assert.ok(got >= 1 && got <= imp[i]!.in.corrupted, `peer ${i} TcpInCsumErrors +${got}, corrupted toward it ${imp[i]!.in.corrupted}`);
    });
    rig.setImpair(0, 0);
    await settled();
  });
}

test.run();
