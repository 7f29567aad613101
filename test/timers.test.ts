import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TimerWheel } from '../stack/timers';

test('timers fire in order at their time, across levels, and cancel works', () => {
  const w = new TimerWheel(0);
  const fired: [string, number][] = [];
  const mk = (name: string, at: number) => { const t = w.create((now) => fired.push([name, now])); w.set(t, at); return t; };
  mk('a', 5_000);
  mk('b', 2_000_000); // level 1
  mk('c', 3_600_000_000); // overflow (1 h)
  const d = mk('d', 7_000);
  w.cancel(d);
  assert.is(w.size, 3);
  assert.is(w.nextDeadline(), 5_000);
  w.advance(4_999);
  assert.equal(fired, []);
  w.advance(5_000);
  assert.equal(fired, [['a', 5_000]]);
  assert.is(w.nextDeadline(), 2_000_000);
  w.advance(10_000_000);
  assert.equal(fired.map((f) => f[0]), ['a', 'b']);
  assert.is(fired[1]![1], 2_000_000);
  w.advance(3_600_000_000);
  assert.equal(fired.map((f) => f[0]), ['a', 'b', 'c']);
  assert.is(w.size, 0);
  assert.is(w.nextDeadline(), Infinity);
});

test('a timer re-armed from its callback replays exactly during one long jump', () => {
  const w = new TimerWheel(0);
  const at: number[] = [];
  const t = w.create((now) => { at.push(now); if (at.length < 4) w.set(t, now + 1_000_000); });
  w.set(t, 1_000_000);
  w.advance(100_000_000);
  assert.equal(at, [1_000_000, 2_000_000, 3_000_000, 4_000_000]);
});

test('replayLate = false (real time): a late advance fires a re-arming timer once, with the current time', () => {
  const w = new TimerWheel(0);
  w.replayLate = false;
  const seen: number[] = [];
  const t = w.create((now) => { seen.push(now); w.set(t, now + 1_000_000); });
  w.set(t, 1_000_000);
  w.advance(10_000_000);
  assert.equal(seen, [10_000_000]);
  assert.is(w.nextDeadline(), 11_000_000);
});

test('many timers: cost follows expirations, not pending count', () => {
  const w = new TimerWheel(0);
  let n = 0;
  for (let i = 0; i < 100_000; i++) w.set(w.create(() => n++), 1_000 + (i % 5000) * 1000);
  w.advance(2_000);
  assert.is(n, 40); // deadlines 1 ms and 2 ms: 2 of every 5000 pattern steps, 100000/5000 = 20 each
  w.advance(10_000_000);
  assert.is(n, 100_000);
});

test('a timer due later in the current millisecond does not fire early, so a callback that re-arms it cannot spin', () => {
  // A TCP connection's timer callback does nothing before its deadline and re-arms for it: fired
  // early, it was re-armed into the slot being drained and fired again, a million times per step.
  const w = new TimerWheel(0);
  const at: number[] = [];
  const t = w.create((now) => { at.push(now); if (now < 5_900) w.set(t, 5_900); });
  w.set(t, 5_900);
  w.advance(5_200); // same 1 ms tick as the deadline, before it
  assert.equal(at, []);
  assert.is(w.size, 1);
  assert.is(w.nextDeadline(), 5_900);
  w.advance(5_600);
  assert.equal(at, []);
  w.advance(5_900);
  assert.equal(at, [5_900]);
  assert.is(w.size, 0);
});

test('a timer cancelled or re-armed by another callback while it waits for the rest of its tick', () => {
  const w = new TimerWheel(0);
  const fired: string[] = [];
  const late = w.create(() => fired.push('late'));
  const moved = w.create(() => fired.push('moved'));
  const first = w.create(() => { fired.push('first'); w.cancel(late); w.set(moved, 9_000); });
  w.set(late, 5_800);
  w.set(moved, 5_700);
  w.set(first, 5_100);
  w.advance(5_300);
  assert.equal(fired, ['first']);
  w.advance(6_000);
  assert.equal(fired, ['first']);
  w.advance(9_000);
  assert.equal(fired, ['first', 'moved']);
  assert.is(w.size, 0);
});

test('nextDeadline stays exact with thousands of timers in one slot, as timers are cancelled, re-armed and fire', () => {
  const w = new TimerWheel(0);
  const ts = Array.from({ length: 5000 }, () => w.create(() => {}));
  // A minute ahead (level 1), all in one slot, in no particular order.
  ts.forEach((t, i) => w.set(t, 60_000_000 + ((i * 7919) % 5000) * 10));
  assert.is(w.nextDeadline(), 60_000_000);
  const first = ts.find((t) => t.deadline === 60_000_000)!;
  w.cancel(first);
  assert.is(w.nextDeadline(), 60_000_010, 'the earliest cancelled: the next one');
  w.set(first, 59_999_995);
  assert.is(w.nextDeadline(), 59_999_995, 're-armed earlier');
  w.set(first, 70_000_000);
  assert.is(w.nextDeadline(), 60_000_010, 're-armed later');
  // Near: level 0 wins over level 1; gone again, level 1's minimum is back.
  const near = w.create(() => {});
  w.set(near, 5_000);
  assert.is(w.nextDeadline(), 5_000);
  w.cancel(near);
  assert.is(w.nextDeadline(), 60_000_010);
  // Fire the first half: the next deadline follows.
  w.advance(60_000_000 + 2500 * 10 - 1);
  assert.is(w.nextDeadline(), 60_000_000 + 2500 * 10);
  w.advance(80_000_000);
  assert.is(w.size, 0);
  assert.is(w.nextDeadline(), Infinity);
});

test.run();
