/**
 * Regression: a shard read up to 8 bursts of 64 frames per step from its queue and handed those of
 * the other shard's flows to that shard's ring, dropping what did not fit (ring full): a ring no
 * larger than one step's intake overflowed whenever the owner had not drained it since (on the
 * 2-queue lab: frames dropped when connections of both shards were moved to the other queue at
 * once). Now a shard reads a burst only while every ring toward the others has room for all of
 * it; otherwise the frames wait in its device's queue until the owner took its frames.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { movedTransfer, shardConfig, shardWorld } from './lib/shard-world';

type Row = Record<string, unknown>;

test('frames for the other shard beyond its ring\'s room wait in the queue: none dropped, the transfer byte-exact', async () => {
  // Rings of one burst: one step's intake (8 bursts) is far more than a ring holds.
  const w = shardWorld({ config: shardConfig({ services: [{ type: 'tcp-echo', vs: 'a', port: 7 }] } as never), ringSize: { slots: 64, frameBytes: 2048 } });
  try {
    const r = await movedTransfer(w, 2_000_000, 11, 120_000_000);
    assert.ok(r.ended, 'transfer ended');
    assert.ok(r.moved);
    assert.ok(r.exact, 'byte-exact');
    await w.run(() => false, 2_000_000);
    const rows = (w.group.show('counters') as { shards: Row[] }).shards;
    const sum = (k: string) => rows.reduce((n, r) => n + (r[k] as number), 0);
    const forwarded = rows.reduce((n, r) => n + (r.forwarded as number[]).reduce((a, b) => a + b, 0), 0);
    assert.ok(forwarded > 500, `the moved flow's frames were handed over (${forwarded})`);
    assert.is(sum('ringFull'), 0, 'no frame dropped for a full ring');
    assert.ok(sum('heldBack') > 0, `frames were held back in the queue (${sum('heldBack')} steps)`);
    assert.is(sum('forwardedIn'), forwarded + sum('neighborShared'), 'every frame handed over was taken once');
    const drops = ((w.group.show('counters') as { vs: Row[] }).vs[0]!.drops as { reasons: Record<string, number> }).reasons;
    assert.is(drops['shard-ring-full'] ?? 0, 0);
  } finally {
    w.group.close();
  }
});

test.run();
