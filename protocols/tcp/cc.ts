/**
 * Congestion control (byte-based cwnd): NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438),
 * selected per connection. The connection drives loss recovery (fast retransmit, NewReno
 * partial ACKs, RFC 6675 SACK recovery); these objects only set cwnd and ssthresh.
 */
import type { CongestionControlName } from './types';

export interface CongestionControl {
  readonly name: CongestionControlName;
  /** Bytes. */
  cwnd: number;
  ssthresh: number;
  /** New data acknowledged outside loss recovery. `srttUs` 0 when unknown. */
  onAck(acked: number, now: number, srttUs: number, mss: number): void;
  /** Loss detected by duplicate ACKs / SACK: sets ssthresh and cwnd for recovery. */
  onLoss(now: number, flight: number, mss: number): void;
  /** Retransmission timeout: ssthresh from the flight, cwnd = 1 segment (loss window). */
  onRto(now: number, flight: number, mss: number): void;
  /** Recovery ended (full ACK): cwnd from ssthresh. */
  onRecoveryEnd(flight: number, mss: number): void;
}

/** Slow start with appropriate byte counting, L = 2 SMSS (RFC 3465). */
function slowStart(cc: { cwnd: number }, acked: number, mss: number): void {
  cc.cwnd += Math.min(acked, 2 * mss);
}

export class NewReno implements CongestionControl {
  readonly name = 'newreno' as const;
  cwnd: number;
  ssthresh = 0x7fffffff;
  private acc = 0;

  constructor(initialCwnd: number) {
    this.cwnd = initialCwnd;
  }

  onAck(acked: number, _now: number, _srtt: number, mss: number): void {
    if (this.cwnd < this.ssthresh) { slowStart(this, acked, mss); return; }
    // Congestion avoidance: one SMSS per cwnd of acknowledged bytes.
    this.acc += acked;
    if (this.acc >= this.cwnd) { this.acc -= this.cwnd; this.cwnd += mss; }
  }

  onLoss(_now: number, flight: number, mss: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
    this.cwnd = this.ssthresh;
    this.acc = 0;
  }

  onRto(_now: number, flight: number, mss: number): void {
    this.ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
    this.cwnd = mss;
    this.acc = 0;
  }

  onRecoveryEnd(flight: number, mss: number): void {
    // RFC 6582 3.2 step 3, option 1 guarded against a burst.
    this.cwnd = Math.min(this.ssthresh, Math.max(flight, mss) + mss);
  }
}

const BETA = 0.7;
const C = 0.4;
const ALPHA = (3 * (1 - BETA)) / (1 + BETA);

/** CUBIC (RFC 9438) with fast convergence and the Reno-friendly region; windows in segments internally. */
export class Cubic implements CongestionControl {
  readonly name = 'cubic' as const;
  cwnd: number;
  ssthresh = 0x7fffffff;
  /** Window before the last reduction (segments). */
  wMax = 0;
  private k = 0;
  private epochStart = -1;
  private wEst = 0;
  private cwndEpoch = 0;

  constructor(initialCwnd: number) {
    this.cwnd = initialCwnd;
  }

  onAck(acked: number, now: number, srttUs: number, mss: number): void {
    if (this.cwnd < this.ssthresh) { slowStart(this, acked, mss); return; }
    const cw = this.cwnd / mss;
    if (this.epochStart < 0) {
      this.epochStart = now;
      this.cwndEpoch = cw;
      this.wEst = cw;
      if (this.wMax <= cw) { this.wMax = cw; this.k = 0; }
      else this.k = Math.cbrt((this.wMax - cw) / C);
    }
    const t = (now - this.epochStart) / 1e6;
    const rtt = srttUs > 0 ? srttUs / 1e6 : 0.1;
    const ackedSeg = acked / mss;
    // Reno-friendly estimate (RFC 9438 4.3).
    this.wEst += ALPHA * (ackedSeg / cw);
    const wT = C * Math.pow(t - this.k, 3) + this.wMax;
    if (wT < this.wEst) {
      this.cwnd = Math.max(this.cwnd, Math.floor(this.wEst * mss));
      return;
    }
    let target = C * Math.pow(t + rtt - this.k, 3) + this.wMax;
    if (target < cw) target = cw;
    else if (target > 1.5 * cw) target = 1.5 * cw;
    this.cwnd = Math.floor((cw + ((target - cw) / cw) * ackedSeg) * mss);
  }

  private reduce(mss: number): void {
    const cw = this.cwnd / mss;
    this.epochStart = -1;
    // Fast convergence (RFC 9438 4.7).
    this.wMax = cw < this.wMax ? (cw * (1 + BETA)) / 2 : cw;
    this.ssthresh = Math.max(Math.floor(this.cwnd * BETA), 2 * mss);
  }

  onLoss(_now: number, _flight: number, mss: number): void {
    this.reduce(mss);
    this.cwnd = this.ssthresh;
  }

  onRto(_now: number, _flight: number, mss: number): void {
    this.reduce(mss);
    this.cwnd = mss;
  }

  onRecoveryEnd(_flight: number, _mss: number): void {
    this.cwnd = this.ssthresh;
  }
}

export function createCc(name: CongestionControlName, initialCwnd: number): CongestionControl {
  if (name === 'newreno') return new NewReno(initialCwnd);
  if (name === 'cubic') return new Cubic(initialCwnd);
  throw new Error(`unknown congestion control '${name as string}' (newreno or cubic)`);
}
