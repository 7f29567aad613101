/**
 * Regression: tearing down 10,000 connections at once stalled the event loop. Every timer due in
 * one tick fired in one step (10,000 retransmissions, then 10,000 ETIMEDOUT closes; or 10,000
 * TIME_WAIT expiries), and every socket event queued by them was delivered in that same step, so
 * the receive path and the fill ring waited for all of it (pings every 10 ms lost 17-35 %, RTTs up
 * to 8 s). Each step now runs at most `stepTimers` timer callbacks and delivers events to at most
 * `stepEvents` connections; the rest is carried to the next step, which is due at once.
 *
 * Checked under virtual time with the stack under test (host a) serving 10,000 connections from
 * a peer (host b) over the memory link: no step does more than the bounds, every step still reads
 * what has arrived (an ICMP echo sent every 10 ms during the teardown is answered by the very next
 * step of host a), and steps that leave work behind report a deadline no later than now (the
 * runtime then runs the next step from setImmediate, after pending I/O).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { twoHosts, World } from './lib/world';
import { connect, createServer, Socket } from '../stack/api/net';
import { Burst } from '../driver/types';
import { TimerWheel } from '../stack/timers';
import { icmpEchoFrame } from './lib/frames';

const VSES = 10;
const TOTAL = 10_000;
const STEP_TIMERS = 256; // the engine's defaults
const STEP_EVENTS = 512;

interface Setup {
  w: World;
  accepted: Socket[];
  clients: Socket[];
}

/** 10,000 established connections, 1,000 in each of 10 VSes (one VLAN each). */
async function establish(tcp: Record<string, number>): Promise<Setup> {
  const vlans = Array.from({ length: VSES }, (_, i) => 200 + i);
  const w = twoHosts({ vlans, tcp: { rcvBuf: 4096, sndBuf: 4096, ...tcp }, link: { frameCount: 16384, wireFrames: 16384 } });
  const accepted: Socket[] = [];
  for (let i = 0; i < VSES; i++) {
    createServer(w.a.ctx(i), (s: Socket) => {
      accepted.push(s);
      s.on('error', () => { /* ETIMEDOUT when the peer vanished: expected */ });
      s.on('end', () => s.end());
    }).listen({ port: 3260, backlog: 4096 });
  }
  await w.run(() => false, 1000);
  const clients: Socket[] = [];
  let connected = 0;
  for (let k = 0; k < TOTAL; k += 500) {
    for (let j = k; j < k + 500; j++) {
      const c = connect(w.b.ctx(j % VSES), { port: 3260, host: '10.1.1.1' }, () => { connected++; });
      c.on('error', () => { /* not expected; counted by the assertions on closes */ });
      c.resume();
      clients.push(c);
    }
    assert.ok(await w.run(() => connected === k + 500, 30_000_000), `batch at ${k}: ${connected} connected`);
  }
  assert.ok(await w.run(() => accepted.length === TOTAL, 10_000_000), `accepted ${accepted.length}`);
  return { w, accepted, clients };
}

interface StepRecord { timers: number; closes: number; rx: number; carried: boolean; next: number; now: number }

/**
 * Steps both hosts under virtual time until `done()` or `maxSteps`, recording host a's work per
 * step. Every 10 ms of virtual time an ICMP echo request from the peer to 10.1.1.1 (VLAN 200) is put
 * on the wire; a's answers are noted with the index of the step that sent them.
 */
async function measure(s: Setup, done: () => boolean, maxSteps: number, closes: { n: number }):
  Promise<{ steps: StepRecord[]; pingSent: Map<number, number>; pingAnswered: Map<number, number> }> {
  const { w } = s;
  const a = w.a;
  const epA = a.runtime.drivers[0]!;
  const epB = w.b.runtime.drivers[0]!;
  const pingSent = new Map<number, number>(); // seq -> index of the first step of a after it was sent
  const pingAnswered = new Map<number, number>(); // seq -> index of the step of a that answered
  let stepIdx = 0;
  // Watch a's transmissions for echo replies (VLAN-tagged: type at 38, sequence at 44).
  const txA = epA.tx.bind(epA);
  epA.tx = (b: Burst, now: number): number => {
    const bytes = epA.pool.bytes;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]!;
      if (b.len[i]! >= 46 && bytes[o + 12] === 0x81 && bytes[o + 16] === 0x08 && bytes[o + 17] === 0x00 &&
        bytes[o + 27] === 1 && bytes[o + 38] === 0 && bytes[o + 42] === 0x51 && bytes[o + 43] === 0x51) {
        const seq = (bytes[o + 44]! << 8) | bytes[o + 45]!;
        if (!pingAnswered.has(seq)) pingAnswered.set(seq, stepIdx);
      }
    }
    return txA(b, now);
  };
  const macA = epA.mac;
  const macB = epB.mac;
  const sendPing = (seq: number, now: number) => {
    const bytes = icmpEchoFrame(200, macA, macB, '10.1.1.2', '10.1.1.1', 0x5151, seq, new Uint8Array(56));
    const pool = epB.pool;
    const f = pool.alloc();
    assert.ok(f >= 0, 'peer pool has a frame for the ping');
    const off = pool.dataStart(f);
    pool.bytes.set(bytes, off);
    const burst = new Burst(1);
    burst.push(f, off, bytes.length);
    assert.is(epB.tx(burst, now), 1);
  };
  const steps: StepRecord[] = [];
  let now = w.now();
  let nextPing = now;
  let seq = 0;
  for (let i = 0; i < maxSteps && !done(); i++) {
    if (now >= nextPing) {
      sendPing(seq, now);
      pingSent.set(seq, stepIdx);
      seq++;
      nextPing += 10_000;
    }
    const f0 = a.engine.wheel.fired;
    const c0 = closes.n;
    const na = a.runtime.step(now);
    const rec: StepRecord = { timers: a.engine.wheel.fired - f0, closes: 0, rx: a.runtime.lastRx, carried: false, next: na, now };
    stepIdx++;
    const nb = w.b.runtime.step(now);
    // Socket 'close' events of a's sockets run here (process.nextTick after the step's events).
    await new Promise<void>((r) => setImmediate(r));
    rec.closes = closes.n - c0;
    rec.carried = na <= now;
    steps.push(rec);
    // Next time: the next deadline, but never past the next ping. When something is due now (work
    // carried over, or a timer of the current 1 ms tick), the next tick boundary, as the world's run
    // loop does (the timer wheel fires per tick; crawling by microseconds would only add steps).
    const next = Math.min(na, nb, w.link.nextDeadline(), nextPing);
    now = next > now ? next : Math.min(Math.floor(now / 1000) * 1000 + 1000, nextPing);
  }
  return { steps, pingSent, pingAnswered };
}

function checkSteps(r: Awaited<ReturnType<typeof measure>>, what: string): void {
  const maxTimers = Math.max(...r.steps.map((x) => x.timers));
  const maxCloses = Math.max(...r.steps.map((x) => x.closes));
  console.log(`# ${what}: ${r.steps.length} steps of host a, at most ${maxTimers} timers and ${maxCloses} socket closes in one step, ` +
    `${r.pingSent.size} pings, ${r.pingAnswered.size} answered`);
  assert.ok(maxTimers <= STEP_TIMERS, `${what}: a step ran ${maxTimers} timer callbacks (bound ${STEP_TIMERS})`);
  assert.ok(maxCloses <= STEP_EVENTS, `${what}: one step delivered ${maxCloses} socket closes (bound ${STEP_EVENTS})`);
  assert.ok(r.pingSent.size >= 3, `${what}: pings were sent during the teardown (${r.pingSent.size})`);
  for (const [seq, sentAt] of r.pingSent) {
    const at = r.pingAnswered.get(seq);
    if (at === undefined && sentAt >= r.steps.length - 1) continue; // sent just before the end
    assert.ok(at !== undefined, `${what}: ping ${seq} was not answered`);
    // The first step of host a after the request was on the wire read it and answered it.
    assert.ok(at! <= sentAt + 1, `${what}: ping ${seq} sent before step ${sentAt} answered in step ${at}`);
  }
}

test('timer wheel: advance(now, budget) fires at most budget timers; the rest fire at the next advance, in time order', () => {
  const w = new TimerWheel(0);
  const fired: number[] = [];
  for (let i = 0; i < 1000; i++) w.set(w.create(() => fired.push(i)), 5_000 + (i < 500 ? 0 : 1000));
  assert.is(w.advance(10_000, 300), 300);
  assert.ok(w.nextDeadline() <= 10_000, 'the rest are still due');
  assert.is(w.advance(10_000, 300), 300);
  assert.is(w.advance(10_000, 300), 300);
  assert.is(w.advance(10_000, 300), 100);
  assert.is(fired.length, 1000);
  // Every timer of the 5 ms tick before any of the 6 ms tick.
  assert.ok(fired.slice(0, 500).every((i) => i < 500));
  assert.is(w.size, 0);
  assert.is(w.nextDeadline(), Infinity);
});

test('10,000 connections whose peer vanished: retransmissions and ETIMEDOUT closes are spread over steps, pings answered', async () => {
  // Few retransmissions with a low cap: the whole series and the ETIMEDOUT fit in seconds.
  const s = await establish({ maxRetransmits: 3, rtoMaxUs: 2_000_000 });
  const { w, accepted } = s;
  const closes = { n: 0 };
  for (const x of accepted) x.on('close', () => { closes.n++; });
  // The peer vanishes: nothing TCP comes back from it (its ICMP still does: our pings).
  const epB = w.b.runtime.drivers[0]!;
  const txB = epB.tx.bind(epB);
  epB.tx = (b: Burst, now: number): number => {
    const bytes = epB.pool.bytes;
    let k = 0;
    for (let i = 0; i < b.n; i++) {
      const o = b.off[i]!;
      if (bytes[o + 27] === 6) { epB.pool.free(b.frame[i]!); continue; } // IPv4 protocol TCP (VLAN-tagged frames)
      b.frame[k] = b.frame[i]!; b.off[k] = o; b.len[k] = b.len[i]!; k++;
    }
    const n = b.n;
    b.n = k;
    txB(b, now);
    return n;
  };
  // Every connection has one unacknowledged byte: all retransmission timers run together.
  for (const x of accepted) x.write('x');
  const r = await measure(s, () => closes.n === TOTAL, 200_000, closes);
  assert.is(closes.n, TOTAL, 'every connection timed out');
  checkSteps(r, 'peer vanished');
  assert.ok(r.steps.some((x) => x.timers === STEP_TIMERS && x.carried), 'some steps reached the bound and carried work over');
  assert.is(w.a.engine.tcp.connCount, 0);
});

test('10,000 connections closed by the application at once: TIME_WAIT expiries spread over steps, pings answered', async () => {
  const s = await establish({ timeWaitUs: 2_000_000 });
  const { w, accepted } = s;
  let ended = 0;
  for (const c of s.clients) c.on('close', () => { ended++; });
  const closes = { n: 0 };
  for (const x of accepted) x.on('close', () => { closes.n++; });
  for (const x of accepted) x.end(); // a closes first: all 10,000 enter TIME_WAIT together
  assert.ok(await w.run(() => ended === TOTAL && closes.n === TOTAL, 30_000_000), `peer closed ${ended}, a closed ${closes.n}`);
  assert.is(w.a.engine.tcp.timeWaitCount, TOTAL);
  // 2 MSL later every TIME_WAIT timer is due in the same tick.
  const r = await measure(s, () => w.a.engine.tcp.connCount === 0, 200_000, closes);
  assert.is(w.a.engine.tcp.connCount, 0);
  checkSteps(r, 'TIME_WAIT expiry');
  assert.ok(r.steps.some((x) => x.timers === STEP_TIMERS), 'the expiries needed several steps');
  for (const h of [w.a, w.b]) {
    const c = h.engine.devices[0]!.pool.check();
    assert.is(c.held, 0, 'no frame held');
  }
});

test.run();
