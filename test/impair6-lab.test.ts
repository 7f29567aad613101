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
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { corruptionCaught, ImpairRig, TransferResult } from './lib/impair';

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
    // Over IPv6 the checksum covers the IPv6 pseudo-header (RFC 8200 8.1).
    await corruptionCaught(rig, results);
    rig.setImpair(0, 0);
    await settled();
  });
}

test.run();
