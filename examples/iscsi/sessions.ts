/**
 * The sessions of one portal (one VS): TSIH allocation, session reinstatement by initiator name +
 * ISID (RFC 7143 6.3.5 / 7.1.3: a login with TSIH 0 and the ISID of a live session replaces it),
 * lookup by target for task management across sessions, and the portal's counters (every drop or
 * protocol error is counted with a reason).
 */

/** What the table needs of a live session (IscsiConnection implements it). */
export interface SessionMember {
  readonly initiatorName: string;
  /** The ISID as 12 hex digits. */
  readonly isid: string;
  /** Lower-case IQN for Normal sessions, '' for Discovery sessions. */
  readonly targetName: string;
  readonly tsih: number;
  /** Ends the session at once: its tasks are aborted unanswered and the connection closes. */
  terminate(reason: string): void;
  /**
   * Third-party task abort (CLEAR TASK SET, LOGICAL UNIT RESET, TARGET RESET): lun null = all. The
   * aborted tasks, to wait until they can have no further effect.
   */
  abortTasks(lun: number | null, reason: string): Settling[];
}

/** A task that can say when it can have no further effect (done, or its running command returned). */
export interface Settling {
  whenSettled(fn: () => void): void;
}

/**
 * Calls `fn` once every task of `tasks` has settled (at once when none is left running). RFC 7143
 * 4.2.3 / SAM-5: a task management function completes only when the tasks it aborts can have no
 * further effect, so a write still running in a backend answers before the TMF response does.
 */
export function whenAllSettled(tasks: readonly Settling[], fn: () => void): void {
  let n = tasks.length;
  if (n === 0) { fn(); return; }
  for (const t of tasks) t.whenSettled(() => { if (--n === 0) fn(); });
}

export class SessionTable {
  /** Counters by reason, portal-wide. */
  readonly counters = new Map<string, number>();
  private readonly byTsih = new Map<number, SessionMember>();
  private nextTsih = 1;

  /** Counts one event. */
  count(reason: string, n = 1): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + n);
  }

  get size(): number { return this.byTsih.size; }

  /** A free TSIH (RFC 7143 11.12.6: non-zero, unique among the target's live sessions). */
  allocateTsih(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih === 0xffff ? 1 : this.nextTsih + 1;
      if (!this.byTsih.has(t)) return t;
    }
    return 0;
  }

  /**
   * Registers a session that just completed login. A live session with the same initiator name,
   * ISID and target is reinstated: terminated first (RFC 7143 6.3.5 session reinstatement).
   */
  add(m: SessionMember): void {
    for (const old of [...this.byTsih.values()]) {
      if (old !== m && old.initiatorName === m.initiatorName && old.isid === m.isid && old.targetName === m.targetName) {
        this.count('session-reinstated');
        old.terminate('reinstated');
        this.byTsih.delete(old.tsih);
      }
    }
    this.byTsih.set(m.tsih, m);
  }

  remove(m: SessionMember): void {
    if (this.byTsih.get(m.tsih) === m) this.byTsih.delete(m.tsih);
  }

  get(tsih: number): SessionMember | undefined { return this.byTsih.get(tsih); }

  /** Live Normal sessions to one target. */
  forTarget(iqn: string): SessionMember[] {
    return [...this.byTsih.values()].filter((s) => s.targetName === iqn);
  }

  all(): SessionMember[] { return [...this.byTsih.values()]; }
}
