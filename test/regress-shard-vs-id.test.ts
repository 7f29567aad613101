/**
 * Regression: a VS the application created by itself in a shard took the identity the control
 * plane issues next: every later 'vs.add' was refused ("virtual server id N is not free") for good.
 * In a stack of shards VSes come from the control plane only (their identity keys their flows in
 * the shared table, the same in every shard): the shard refuses with a clear error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shardWorld } from './lib/shard-world';

test('a shard\'s application cannot take a VS identity: clear error, and vs.add keeps issuing identities', () => {
  const errors: string[] = [];
  const w = shardWorld({
    app: (s) => {
      try { s.createVs('local'); } catch (e) { errors.push((e as Error).message); }
    },
  });
  try {
    assert.is(errors.length, 2, 'refused in both shards');
    assert.match(errors[0]!, /control plane.*vs\.add/);
    assert.not.ok(w.group.stacks.some((s) => s.engine.vsByName.has('local')));
    w.group.apply({ cmd: 'vs.add', name: 'b', links: [] });
    w.group.apply({ cmd: 'vs.add', name: 'c', links: [] });
    for (const s of w.group.stacks) assert.equal([s.engine.vs('a').id, s.engine.vs('b').id, s.engine.vs('c').id], [1, 2, 3]);
  } finally {
    w.group.close();
  }
});

test.run();
