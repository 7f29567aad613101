// The service's frame budget: pinned Data-Out views and chunks parked unread (output backed up)
// draw on one count, so neither can take more of the shared frame pool than the service may.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HoldBudget } from '../examples/iscsi/hold';

test('parked chunks count against the same budget as pinned views; refused past it; returned on unpark', () => {
  const b = new HoldBudget({ maxHeldChunks: 3, maxHeldBytesPerConnection: 1 << 20 });
  const a = b.connection();
  const c = b.connection();
  assert.ok(a.park());
  assert.ok(c.park());
  let freed = 0;
  const ch = a.chunk(1000, () => { freed++; });
  const release = ch.hold();
  assert.ok(release, 'a pin fits: 3 of 3');
  ch.end();
  assert.is(b.held, 3);
  assert.not.ok(c.park(), 'the budget is spent: a fourth frame is refused');
  const ch2 = c.chunk(1000, () => { freed++; });
  assert.is(ch2.hold(), null, 'and so is a pin');
  ch2.end();
  assert.is(freed, 1, 'a chunk nobody pinned is freed when input ends');
  assert.is(b.refused, 2);
  a.unpark();
  assert.ok(c.park(), 'an unparked frame makes room');
  release!();
  assert.is(freed, 2, 'the pinned chunk is freed on its last release');
  c.unpark(); c.unpark();
  assert.is(b.held, 0);
  assert.is(b.peak, 3);
  assert.equal([a.heldChunks, c.heldChunks], [0, 0]);
});

test.run();
