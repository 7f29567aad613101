/**
 * Hierarchical timer wheel (sans-IO: time comes in through `advance(now)`).
 *
 * Level 0: 1024 slots of 1 ms; level 1: 1024 slots of 1.024 s (≈ 17 min); beyond that an overflow
 * list re-examined once per level-1 revolution. Insert and cancel are O(1) (intrusive doubly linked
 * lists); advancing costs O(ticks crossed + timers expired or cascaded), independent of the number of
 * timers merely pending. Times are microseconds.
 */

const L0_BITS = 10;
const L0_SLOTS = 1 << L0_BITS;
const L1_SLOTS = 1024;
const TICK_US = 1000;
const L1_SPAN = L0_SLOTS; // ticks per level-1 slot

export type TimerCallback = (now: number) => void;

export class Timer {
  deadline = 0;
  /** 0 = inactive; otherwise the list it is linked in. */
  list: TimerList | null = null;
  next: Timer | null = null;
  prev: Timer | null = null;
  constructor(public cb: TimerCallback) {}
  get active(): boolean {
    return this.list !== null;
  }
}

class TimerList {
  head: Timer | null = null;
  size = 0;
  /**
   * The earliest deadline in the list, kept as timers come (`minDirty` once the earliest one left:
   * recomputed when next asked), so reading it costs nothing however many timers a slot holds.
   */
  private min = Infinity;
  private minDirty = false;
  /** `level.n` counts the timers of every list of one wheel level (a level with none is not scanned). */
  constructor(private readonly level: { n: number } = { n: 0 }) {}
  add(t: Timer): void {
    if (t.deadline < this.min) this.min = t.deadline;
    this.level.n++;
    t.list = this;
    t.prev = null;
    t.next = this.head;
    if (this.head) this.head.prev = t;
    this.head = t;
    this.size++;
  }
  remove(t: Timer): void {
    if (t.deadline <= this.min) this.minDirty = true;
    this.level.n--;
    if (t.prev) t.prev.next = t.next;
    else this.head = t.next;
    if (t.next) t.next.prev = t.prev;
    t.next = t.prev = null;
    t.list = null;
    this.size--;
  }
  /** Detaches every timer and returns the first (linked through `next`). */
  take(): Timer | null {
    const h = this.head;
    this.head = null;
    this.level.n -= this.size;
    this.size = 0;
    this.min = Infinity;
    this.minDirty = false;
    return h;
  }
  /** The earliest deadline (Infinity when empty). */
  earliest(): number {
    if (this.minDirty) {
      let m = Infinity;
      for (let t = this.head; t; t = t.next) if (t.deadline < m) m = t.deadline;
      this.min = m;
      this.minDirty = false;
    }
    return this.size ? this.min : Infinity;
  }
}

export class TimerWheel {
  private readonly l0: TimerList[] = [];
  private readonly l1: TimerList[] = [];
  private readonly overflow = new TimerList();
  /** Timers of the tick being drained whose deadline is after `now` (see advance). */
  private readonly waiting = new TimerList();
  /** Current tick (all ticks < tick have been processed). */
  private tick: number;
  private count = 0;
  /** Timers fired so far (diagnostics). */
  fired = 0;
  /** Time of the previous advance: callbacks see max(deadline, lastNow) as their `now`. */
  private lastNow = 0;
  /**
   * Called with an exception thrown by a timer callback. The wheel goes on with the other timers
   * (one failing callback must not strand the timers detached with it); without a handler the
   * exception is rethrown after this advance.
   */
  onError: ((err: unknown) => void) | null = null;
  /**
   * Whether a late timer sees the time it was due (true: virtual time, where a long jump replays the
   * sequence exactly) or the current time (false: real time). In real time a step that comes late
   * (the event loop was busy or the process stopped for a while) must not replay the missed
   * deadlines: a retransmission timer re-armed from its due time would fire again at once, and a
   * connect would send its SYN retransmissions back to back and give up early. Kernels fire a late
   * timer once, at the time it runs.
   */
  replayLate = true;

  /** Timers in level 0 (nextDeadline skips its slots when there are none). */
  private readonly l0n = { n: 0 };

  constructor(now = 0) {
    for (let i = 0; i < L0_SLOTS; i++) this.l0.push(new TimerList(this.l0n));
    for (let i = 0; i < L1_SLOTS; i++) this.l1.push(new TimerList());
    this.tick = Math.floor(now / TICK_US);
  }

  get size(): number {
    return this.count;
  }

  /** Creates an inactive timer bound to `cb`; arm it with `set`. */
  create(cb: TimerCallback): Timer {
    return new Timer(cb);
  }

  /** (Re)arms `t` to fire at `deadline` (µs). A deadline in the past fires at the next advance. */
  set(t: Timer, deadline: number): void {
    if (t.list) this.cancel(t);
    t.deadline = deadline;
    this.place(t);
    this.count++;
  }

  cancel(t: Timer): void {
    if (!t.list) return;
    t.list.remove(t);
    this.count--;
  }

  private place(t: Timer): void {
    let dt = Math.floor(t.deadline / TICK_US);
    if (dt < this.tick) dt = this.tick;
    const delta = dt - this.tick;
    if (delta < L0_SLOTS) {
      this.l0[dt & (L0_SLOTS - 1)]!.add(t);
    } else if (delta < L0_SLOTS * L1_SLOTS) {
      this.l1[Math.floor(dt / L1_SPAN) % L1_SLOTS]!.add(t);
    } else {
      this.overflow.add(t);
    }
  }

  /**
   * Fires every timer whose deadline is ≤ now, at most `budget` of them: the rest stay due and fire
   * at the next advance (`nextDeadline()` then reports a time ≤ now), so one call never does more
   * than a bounded amount of work however many timers expire together. Callbacks may set or cancel
   * timers. Returns the number fired.
   */
  advance(now: number, budget = Infinity): number {
    const target = Math.floor(now / TICK_US);
    let fired = 0;
    let failed: unknown = undefined;
    let hasFailed = false;
    let work = 0;
    while (this.tick <= target) {
      if (this.count === 0) {
        this.tick = target + 1;
        break;
      }
      const slot = this.tick & (L0_SLOTS - 1);
      // Cascade once per revolution: not again when a budgeted advance resumes within this tick.
      if (slot === 0 && this.cascadedAt !== this.tick) { this.cascadedAt = this.tick; this.cascade(); }
      const list = this.l0[slot]!;
      // One timer at a time from the slot's head, so callbacks may cancel or re-arm any timer; a
      // timer armed for this very tick (deadline ≤ now) lands here again and fires in this advance
      // (within the budget).
      for (let n = 0; list.head && n < 1_000_000; n++) {
        if (work >= budget) break;
        const t = list.head;
        list.remove(t);
        if (Math.floor(t.deadline / TICK_US) > this.tick) {
          this.place(t); // belongs to a later revolution
        } else if (t.deadline > now) {
          // Due later in this very tick: it waits (never fires before its deadline, so a callback
          // that re-arms for the deadline cannot spin here), still cancellable and re-armable.
          this.waiting.add(t);
        } else {
          work++;
          this.count--;
          fired++;
          // Under virtual time a timer sees the time it was due, so a long jump replays the
          // sequence exactly (a retry timer re-armed from here can fire within this advance); in
          // real time it sees the current time (replayLate).
          try {
            t.cb(this.replayLate ? Math.min(now, Math.max(t.deadline, this.lastNow)) : now);
          } catch (err) {
            if (this.onError) this.onError(err);
            else if (!hasFailed) { hasFailed = true; failed = err; }
          }
        }
      }
      if (this.waiting.size) {
        // The rest of this tick is still to come: the next advance starts here again.
        for (let t = this.waiting.take(); t; ) { const next = t.next; list.add(t); t = next; }
        break;
      }
      if (list.head !== null) break; // budget spent: this tick resumes at the next advance
      this.tick++;
    }
    this.fired += fired;
    this.lastNow = now;
    if (hasFailed) throw failed;
    return fired;
  }

  /** Tick whose level-1 cascade was done (a resumed tick must not cascade twice). */
  private cascadedAt = -1;

  /** At the start of each level-0 revolution, move the level-1 slot now due into level 0. */
  private cascade(): void {
    const l1slot = Math.floor(this.tick / L1_SPAN) % L1_SLOTS;
    if (l1slot === 0 && this.overflow.size) this.requeue(this.overflow);
    const list = this.l1[l1slot]!;
    if (list.size) this.requeue(list);
  }

  private requeue(list: TimerList): void {
    let t = list.take();
    while (t) {
      const next = t.next;
      t.list = null;
      t.next = t.prev = null;
      this.place(t);
      t = next;
    }
  }

  /** Earliest pending deadline in µs (Infinity when none). Bounded scan of the slots. */
  nextDeadline(): number {
    if (this.count === 0) return Infinity;
    for (let i = 0; this.l0n.n > 0 && i < L0_SLOTS; i++) {
      const list = this.l0[(this.tick + i) & (L0_SLOTS - 1)]!;
      if (list.size) {
        // A timer for a later revolution can share the slot; it is still a valid lower bound.
        return Math.max(list.earliest(), 0);
      }
    }
    let best = Infinity;
    const base = Math.floor(this.tick / L1_SPAN);
    for (let i = 0; i < L1_SLOTS; i++) {
      const list = this.l1[(base + i) % L1_SLOTS]!;
      if (list.size) return list.earliest();
    }
    for (let t = this.overflow.head; t; t = t.next) if (t.deadline < best) best = t.deadline;
    return best;
  }
}
