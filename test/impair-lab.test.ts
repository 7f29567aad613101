/**
 * TCP against Linux peers through the lab's impairment (random loss and bit corruption in tc BPF on
 * the peers' switch ports): transfers in both directions (the stack receives, the stack sends) and
 * an echo (both at once) at 0.1 %, 1 % and 5 % loss and with corruption, each byte-exact (sha256)
 * within a deadline (a stall fails with the stack's connection state). The impairment counters prove
 * that frames were really dropped and corrupted, and every corrupted frame is caught by a checksum:
 * by the stack (tcp-bad-checksum) or by the peer's kernel (TcpInCsumErrors). Without root only the
 * option checks run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labImpair, labUp, Lab, LabConfigError, validateImpair } from '../stack/lab/lab';
import { COMMANDS, parsePercent, UsageError } from '../stack/cli/cli';
import { corruptionCaught, ImpairRig, TransferResult } from './lib/impair';
import { nsRun } from './lib/rig';

const PREFIX = labPrefix('xl');
const privileged = canRunPrivileged();

const badSpecs: [unknown, RegExp][] = [
  [{ loss: 1.5 }, /bad loss probability 1.5 \(expected a fraction 0\.\.1/],
  [{ loss: -0.1 }, /bad loss probability -0.1/],
  [{ corrupt: '1%' }, /bad corrupt probability "1%"/],
  [{ loss: Number.NaN }, /bad loss probability NaN/],
  [{ loss: 0.1, dir: 'up' }, /bad impairment direction "up" \(expected 'in', 'out' or 'both'\)/],
  [{ los: 0.1 }, /unknown impairment field 'los'/],
  ['1%', /impairment must be an object/],
];

test('impairment specs: probabilities are fractions 0..1, directions in/out/both, clear errors', () => {
  assert.equal(validateImpair({ loss: 0.01, corrupt: 0.001, dir: 'in' }, 'x'), { loss: 0.01, corrupt: 0.001, dir: 'in' });
  assert.equal(validateImpair({}, 'x'), {});
  for (const [spec, re] of badSpecs) {
    assert.throws(() => validateImpair(spec, 'peer 2'), (e: unknown) => e instanceof LabConfigError && re.test((e as Error).message) && /^peer 2: /.test((e as Error).message), JSON.stringify(spec));
  }
  // labUp and labImpair check their options before touching the system (no root needed to see it).
  assert.throws(() => labUp({ prefix: 'xlzz', peers: [{ impair: { loss: 2 } }] }), /peer 0: bad loss probability 2/);
  assert.throws(() => labUp({ prefix: 'xlzz', peers: [{}], impair: { corrupt: -1 } }), /lab: bad corrupt probability -1/);
  assert.throws(() => labImpair('xlzz', {}), /nothing to change/);
  assert.throws(() => labImpair('xlzz', { loss: 0.1, dir: 'sideways' as never }), /bad impairment direction/);
});

test('CLI: --loss/--corrupt take percentages; lab impair refuses bad options with its usage', async () => {
  assert.is(parsePercent('1%', 'loss', ''), 0.01);
  assert.is(parsePercent('0.1%', 'loss', ''), 0.001);
  assert.is(parsePercent('100%', 'loss', ''), 1);
  assert.is(parsePercent(undefined, 'loss', ''), undefined);
  for (const v of ['1', '0.01', '101%', '-1%', 'abc%', '1 %']) {
    assert.throws(() => parsePercent(v, 'loss', ''), (e: unknown) => e instanceof UsageError && /option '--loss' expects a percentage 0%\.\.100% like 1% or 0\.1%/.test((e as Error).message), v);
  }
  const impair = COMMANDS.find((c) => c.name === 'lab')!.subcommands!.find((c) => c.name === 'impair')!;
  const ctx = { out: () => {}, err: () => {} };
  const cases: [string[], RegExp][] = [
    [['--loss', '1'], /expects a percentage/],
    [['--dir', 'up', '--loss', '1%'], /option '--dir' expects in, out or both, got 'up'/],
    [['--prefix', 'xlzz'], /nothing to change: give --loss, --corrupt or --reset/],
    [['--peer', 'x', '--loss', '1%'], /option '--peer' expects a non-negative integer/],
  ];
  for (const [args, re] of cases) {
    let err: unknown = null;
    try { await impair.run!(args, ctx); } catch (e) { err = e; }
    assert.ok(err instanceof UsageError && re.test((err as Error).message), `${args.join(' ')}: ${String(err)}`);
    assert.match((err as UsageError).usage ?? '', /Usage: xdpstack lab impair/);
  }
});

if (privileged) {
  let lab: Lab;
  let rig: ImpairRig;
  const results: TransferResult[] = [];

  test.before(() => {
    // Peer 0 untagged, peer 1 on VLAN 7: both get the impairment program. Start with 0.1 % loss from
    // `lab up` (the option path), changed later by map updates on the running lab.
    lab = labUp({ prefix: PREFIX, peers: [{ ipv4: '10.71.0.2/24' }, { vlan: 7, ipv4: '10.71.7.2/24' }], impair: { loss: 0.001 } });
    rig = new ImpairRig(lab);
  });
  test.after(() => {
    try { rig?.close(); } finally {
      labDown(PREFIX);
      if (results.length) {
        console.log('# impair-lab transfers: ' + results.map((r) => `${r.kind}@p${r.peer} ${r.bytes >> 10} KiB ${r.ms} ms (${r.retransSegs} rexmit, ${r.rtoExpirations} RTO)`).join('; '));
      }
    }
  });

  async function settled(): Promise<void> {
    const c = await rig.poolSettled();
    assert.is(c.free + c.kernel + c.tx + c.held, c.total, `frame states add up: ${JSON.stringify(c)}`);
    assert.is(c.held, 0, `no frame held: ${JSON.stringify(c)}`);
  }

  test('lab up --loss: every peer (untagged and VLAN) has the program in both directions, counting frames', async () => {
    const imp = rig.impairment();
    assert.is(imp.length, 2);
    for (const p of imp) for (const d of ['in', 'out'] as const) {
      assert.is(p[d].loss, 0.001, `peer ${p.peer} ${d} loss from lab up`);
      assert.is(p[d].corrupt, 0);
    }
    results.push(await rig.toStack(0, 256 << 10, 30_000));
    results.push(await rig.toStack(1, 256 << 10, 30_000));
    for (const p of rig.impairment()) {
      assert.ok(p.in.frames > 0 && p.out.frames > 150, `peer ${p.peer} frames counted: ${JSON.stringify(p)}`);
    }
    await settled();
  });

  test('xdpstack lab impair on the running lab: 100 % loss toward peer 0 cuts only it off; 0 % restores it', async () => {
    const impair = COMMANDS.find((c) => c.name === 'lab')!.subcommands!.find((c) => c.name === 'impair')!;
    const status = COMMANDS.find((c) => c.name === 'lab')!.subcommands!.find((c) => c.name === 'status')!;
    const out: string[] = [];
    const ctx = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const ping = (peer: number) => nsRun(lab.peers[peer]!.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', '-w', '3', rig.vss[peer]!.host]);
    assert.is((await ping(0)).code, 0, 'peer 0 answers before');
    assert.is(await impair.run!(['--prefix', PREFIX, '--loss', '100%', '--peer', '0', '--dir', 'in', '--reset'], ctx), 0);
    const r0 = await ping(0);
    const r1 = await ping(1);
    assert.is.not(r0.code, 0, `peer 0 gets no reply: ${r0.stdout}`);
    assert.is(r1.code, 0, `peer 1 is not impaired: ${r1.stdout}`);
    out.length = 0;
    assert.is(await status.run!(['--prefix', PREFIX], ctx), 0);
    const row = out.find((l) => /^\s+0\s+in\s+100%/.test(l));
    assert.ok(row, `status shows peer 0 in at 100 %: ${out.join('\n')}`);
    const [frames, dropped] = row!.trim().split(/\s+/).slice(4, 6).map(Number);
    assert.ok(dropped! >= 3 && dropped === frames, `every frame toward peer 0 dropped: ${row}`);
    assert.is(await impair.run!(['--prefix', PREFIX, '--loss', '0%', '--peer', '0'], ctx), 0);
    assert.is((await ping(0)).code, 0, 'peer 0 answers again');
    const st = rig.impairment(0)[0]!;
    assert.equal([st.in.loss, st.out.loss], [0, 0]);
    assert.is(st.in.corrupt, 0, 'corruption kept (was 0)');
  });

  // Loss only: each direction of the stack, both peers, sizes that keep the suite short.
  const LOSS: [number, number, number][] = [[0.001, 4 << 20, 60_000], [0.01, 2 << 20, 60_000], [0.05, 1 << 20, 90_000]];
  for (const [loss, size, deadline] of LOSS) {
    test(`${loss * 100} % loss both ways: ${size >> 20} MB to the stack and from the stack, byte-exact, no stall`, async () => {
      rig.setImpair(loss, 0);
      for (const peer of [0, 1]) {
        results.push(await rig.toStack(peer, size, deadline));
        results.push(await rig.fromStack(peer, size, deadline));
      }
      const imp = rig.impairment();
      const dropped = imp.reduce((n, p) => n + p.in.dropped + p.out.dropped, 0);
      const frames = imp.reduce((n, p) => n + p.in.frames + p.out.frames, 0);
      assert.ok(dropped > 0, `frames were dropped: ${JSON.stringify(imp)}`);
      // The drop rate is what was asked for (binomial; 5 standard deviations either side).
      const sd = Math.sqrt(frames * loss * (1 - loss));
      assert.ok(Math.abs(dropped - frames * loss) <= 5 * sd + 2, `dropped ${dropped} of ${frames} at ${loss}`);
      if (loss >= 0.01) for (const p of imp) assert.ok(p.in.dropped > 0 && p.out.dropped > 0, `peer ${p.peer}: drops in both directions ${JSON.stringify(p)}`);
      await settled();
    });
  }

  test('1 % corruption + 1 % loss both ways: every corrupted frame is caught by a checksum, data byte-exact', async () => {
    await corruptionCaught(rig, results);
    await settled();
  });

  test('echo of 4 MB (both directions at once) at 1 % loss and at 0.1 % loss + 0.1 % corruption, byte-exact, no stall', async () => {
    rig.setImpair(0.01, 0);
    results.push(await rig.echo(0, 4 << 20, 90_000));
    rig.setImpair(0.001, 0.001);
    results.push(await rig.echo(1, 4 << 20, 90_000));
    await settled();
  });
}

test.run();
