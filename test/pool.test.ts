import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FramePool, FrameState, FrameAccountingError } from '../umem/pool';

test('alloc/free keep the totals and detect double free', () => {
  const p = new FramePool({ frameSize: 2048, frameCount: 8 });
  const a = p.alloc();
  const b = p.alloc();
  assert.is(a, 0);
  assert.is(b, 1);
  assert.equal(p.check(), { free: 6, kernel: 0, tx: 0, held: 2, total: 8 });
  p.free(a);
  assert.throws(() => p.free(a), (e: unknown) => e instanceof FrameAccountingError && /double free/.test((e as Error).message));
  p.move(b, FrameState.Held, FrameState.Tx);
  assert.throws(() => p.move(b, FrameState.Held, FrameState.Tx), /is tx, expected held/);
  assert.equal(p.check(), { free: 7, kernel: 0, tx: 1, held: 0, total: 8 });
  p.free(b);
  assert.equal(p.check().free, 8);
});

test('empty pool returns -1, never throws', () => {
  const p = new FramePool({ frameSize: 4096, frameCount: 2 });
  assert.is.not(p.alloc(), -1);
  assert.is.not(p.allocTo(FrameState.Kernel), -1);
  assert.is(p.alloc(), -1);
  assert.equal(p.check(), { free: 0, kernel: 1, tx: 0, held: 1, total: 2 });
});

test('owners are tracked and transfer checks the holder', () => {
  const p = new FramePool({ frameSize: 2048, frameCount: 4 });
  const f = p.alloc(7);
  assert.is(p.heldBy(7), 1);
  assert.throws(() => p.transfer(f, 8, 9), /not held by owner 8/);
  p.transfer(f, 7, 9);
  assert.is(p.ownerOf(f), 9);
  assert.is(p.heldBy(7), 0);
});

test('bad options give clear errors', () => {
  assert.throws(() => new FramePool({ frameSize: 1000, frameCount: 4 }), /frameSize must be 2048 or 4096/);
  assert.throws(() => new FramePool({ frameSize: 2048, frameCount: 0 }), /frameCount/);
  assert.throws(() => new FramePool({ frameSize: 2048, frameCount: 4, buffer: new ArrayBuffer(100) }), /smaller/);
});

test('addresses map to frames', () => {
  const p = new FramePool({ frameSize: 2048, frameCount: 4, headroom: 256 });
  assert.is(p.addr(3), 6144);
  assert.is(p.frameOf(6144 + 256 + 10), 3);
  assert.is(p.dataStart(1), 2048 + 256);
});

test.run();
