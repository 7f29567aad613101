/**
 * The loop that joins drivers and the sans-IO engine. One Runtime per engine (per NIC queue later).
 *
 * - `step(now)`: one iteration: driver housekeeping, receive bursts, engine input, timers, socket
 *   events, transmit. Returns the next deadline.
 * - `start()`: real time. Idle waits on the drivers' readiness (AF_XDP fd polled from the event
 *   loop) and on the next timer deadline; `busyPoll` spins with setImmediate for maximum rate.
 * - `runVirtual()`: virtual time (pcap replay, memory link): jumps from deadline to deadline.
 */
import { Burst, Driver } from '../driver/types';
import { Engine } from './engine';

export interface RuntimeOptions {
  busyPoll?: boolean;
  /** Max bursts read per driver per step (fairness between devices). */
  burstsPerStep?: number;
  /**
   * Clock for the application's calls made between steps (µs). Real time (start()): the monotonic
   * clock by default. Virtual time: the virtual clock, when the caller advances it between steps.
   */
  clock?: () => number;
}

const t0 = performance.now();
/** Monotonic microseconds since the process started. */
export function monotonicUs(): number {
  return Math.floor((performance.now() - t0) * 1000);
}

/**
 * Add to `monotonicUs()` for µs since the epoch. From the process's time origin, which every worker
 * thread shares (performance.now() counts from it in each): shards stamp their traces alike.
 */
export function epochOffsetUs(): number {
  return Math.round((performance.timeOrigin + t0) * 1000);
}

/** Atomics.waitAsync (Node ≥ 16; not in the ES2022 typings). */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

/** Steps run back to back in one event-loop turn while frames keep arriving. */
const MAX_STEPS_PER_TURN = 16;
/**
 * Busy-poll mode spins only while traffic flows: after this many turns without a received frame
 * it sleeps until the socket is readable (or a timer is due), so an idle stack leaves the CPU to
 * others — on a small machine, to the very peers it serves.
 */
const BUSY_IDLE_TURNS = 64;

export class Runtime {
  private readonly rxBurst = new Burst();
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private readonly burstsPerStep: number;
  /** Iterations run (diagnostics). */
  steps = 0;
  /** Frames received by the last step. */
  lastRx = 0;
  /** Called at the end of every step with its time (the stack's housekeeping, which keeps its own pace). */
  onStep: ((now: number) => void) | null = null;
  /** Shards: the doorbell value read by the last step, and whether a wait on it is pending. */
  private bellSeen = 0;
  private bellArmed = false;
  /** Consecutive event-loop turns without a received frame. */
  private idleTurns = 0;
  /** Shards: the last step left frames in the devices' queues because a ring toward another shard was nearly full. */
  private heldBack = false;

  /** Whether the loop spins (setImmediate) rather than waiting for readiness. */
  private get spinning(): boolean {
    return !!this.opts.busyPoll && this.idleTurns < BUSY_IDLE_TURNS;
  }

  constructor(readonly engine: Engine, readonly drivers: Driver[], readonly opts: RuntimeOptions = {}) {
    if (drivers.length !== engine.devices.length) {
      throw new Error(`runtime needs one driver per engine device (${engine.devices.length}), got ${drivers.length}`);
    }
    this.burstsPerStep = opts.burstsPerStep ?? 8;
    if (opts.clock) engine.clock = opts.clock;
  }

  /** One iteration at time `now` (µs). Returns the earliest time something is due. */
  step(now: number): number {
    this.steps++;
    const e = this.engine;
    let rx = 0;
    const steer = e.steer;
    // Shards: each frame of a burst may be handed to another shard. A burst is read only while
    // every ring toward the others has room for all of it; else the frames wait in the device's
    // queue (the kernel's ring) until the owners took theirs, instead of being dropped here.
    const need = steer === null ? 0 : Math.min(this.rxBurst.capacity, steer.ringSlots);
    this.heldBack = false;
    for (let d = 0; d < this.drivers.length; d++) {
      const drv = this.drivers[d]!;
      drv.service(now);
      for (let k = 0; k < this.burstsPerStep; k++) {
        if (steer !== null && steer.room() < need) {
          if (!this.heldBack) steer.counters.heldBack++;
          this.heldBack = true;
          break;
        }
        this.rxBurst.n = 0;
        const n = drv.rx(this.rxBurst, now);
        if (n === 0) break;
        rx += n;
        e.input(d, this.rxBurst, now);
        // Replies wait for the end of the step: one TX kick carries them with what the
        // applications send from their event handlers (a kick is a system call in copy mode).
        if (n < this.rxBurst.capacity) break;
      }
    }
    // Shards: frames other shards handed to this one (the doorbell is read first, so a frame
    // handed over after the rings were read rings it again).
    if (steer !== null) {
      this.bellSeen = steer.bell();
      rx += e.inputForwarded(this.rxBurst, now);
    }
    this.lastRx = rx;
    e.advance(now);
    e.flushEvents();
    if (this.onStep !== null) this.onStep(now);
    let next = e.nextDeadline();
    for (let d = 0; d < this.drivers.length; d++) {
      this.flushTx(d, now);
      const dl = this.drivers[d]!.nextDeadline();
      if (dl < next) next = dl;
      if (e.devices[d]!.out.n) next = Math.min(next, now); // TX ring was full: try again soon
    }
    // Frames left in the rings (no free frame in the pool): again shortly.
    if (steer !== null && steer.pending > 0) next = Math.min(next, now + 100);
    // Frames held back in the devices' queues: read them once the other shards drained their rings.
    if (this.heldBack) next = Math.min(next, now + 100);
    return next;
  }

  private flushTx(d: number, now: number): void {
    const out = this.engine.devices[d]!.out;
    if (out.n === 0) return;
    const k = this.drivers[d]!.tx(out, now);
    out.shift(k);
  }

  /** Runs under virtual time until nothing is due or `until` (µs) is reached. Returns the final time. */
  runVirtual(start: number, until = Infinity, maxSteps = 10_000_000): number {
    let now = start;
    for (let i = 0; i < maxSteps; i++) {
      const next = this.step(now);
      if (next === Infinity || next > until) return now;
      now = Math.max(now, next);
    }
    throw new Error(`virtual run did not settle after ${maxSteps} steps`);
  }

  /** Starts the real-time loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.engine.clock = this.opts.clock ?? monotonicUs;
    if (!this.opts.clock) this.engine.epochOffsetUs = epochOffsetUs();
    this.engine.wheel.replayLate = false; // a late step fires each due timer once, at the time it runs
    this.engineKick = () => this.schedule(0);
    this.pollFallback = false;
    for (const d of this.drivers) {
      // While frames are held back, readiness (level-triggered) would only spin: the retry is timed.
      const ok = d.onReadable ? d.onReadable(() => { if (!this.heldBack) this.schedule(0); }) : false;
      if (!ok) this.pollFallback = true;
    }
    this.schedule(0);
  }

  /**
   * Shards: wakes the loop when another shard rings this one's doorbell (frames handed over).
   * The wait is on the value the last step read before it took the rings' frames.
   */
  private armBell(): void {
    const s = this.engine.steer!;
    this.bellArmed = true;
    const w = waitAsync(s.bells, s.self, this.bellSeen);
    const woke = (): void => {
      this.bellArmed = false;
      if (this.running) this.schedule(0);
    };
    if (w.async) void (w.value as Promise<string>).then(woke);
    else queueMicrotask(woke);
  }

  /** A driver cannot signal readiness: poll it every millisecond while idle. */
  private pollFallback = false;

  /** For the engine's onOutput: a socket queued frames outside a step. */
  engineKick: () => void = () => {};

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private schedule(delayUs: number): void {
    if (!this.running) return;
    if (delayUs <= 0 || this.spinning) {
      if (this.immediate) return;
      if (this.timer) { clearTimeout(this.timer); this.timer = null; }
      this.immediate = setImmediate(() => { this.immediate = null; this.tick(); });
      return;
    }
    if (this.immediate) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.tick(); }, Math.max(1, Math.ceil(delayUs / 1000)));
  }

  private tick(): void {
    if (!this.running) return;
    this.turnSteps = 0;
    this.turnStep();
  }

  /** Steps taken in this turn of the event loop. */
  private turnSteps = 0;
  private readonly afterTicks = (): void => { queueMicrotask(this.continueTurn); };
  private readonly continueTurn = (): void => { this.turnStep(); };

  /**
   * One step. While traffic flows, the next step of the same event-loop turn (a turn costs more
   * than a step) follows once the process.nextTick callbacks and then the promise jobs queued by the
   * step's socket events have run: those often write the answer (a stream's end() after 'end', an
   * HTTP response), which then leaves in that next step instead of after the whole turn. After
   * MAX_STEPS_PER_TURN steps the loop yields, so timers and I/O callbacks get their turn.
   */
  private turnStep(): void {
    if (!this.running) return;
    const now = monotonicUs();
    let next: number;
    try {
      next = this.step(now);
    } catch (e) {
      // A bug must not stop the loop: counted as an internal error, reported once, and the loop
      // keeps serving. (Received frames are accounted for by the engine itself, whatever throws.)
      this.engine.internalError(e);
      next = now + 1000;
      this.lastRx = 0; // end this turn; retry after the back-off
    }
    if (this.lastRx > 0 && ++this.turnSteps < MAX_STEPS_PER_TURN && this.running) {
      process.nextTick(this.afterTicks);
      return;
    }
    this.idleTurns = this.lastRx > 0 ? 0 : this.idleTurns + 1;
    if (!this.bellArmed && this.engine.steer !== null) this.armBell();
    if (next === Infinity) {
      if (this.spinning) this.schedule(0);
      else if (this.pollFallback) this.schedule(1000);
      return; // wait for readability or a kick
    }
    let delay = next - monotonicUs();
    // A driver that cannot signal readiness is polled at least every millisecond.
    if (this.pollFallback && delay > 1000) delay = 1000;
    this.schedule(delay);
  }
}
