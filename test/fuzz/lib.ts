/**
 * Fuzzing support: a seeded PRNG, byte-level mutators (bit flips, byte and length-field edits,
 * truncation, extension, splices, insertions, deletions, checksum repair so mutated frames get past
 * the checksum checks), a byte minimizer for failures found by mutation, and the target runner
 * (structured generation with fast-check, which shrinks, plus mutation of a corpus).
 */
import * as fc from 'fast-check';
import { fold, pseudoSum4, sum16 } from '../../protocols/checksum';
import { Drop } from '../../protocols/drop';

/** xorshift128+-like PRNG (32-bit state words), reproducible from a seed. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 0x9e3779b9;
    this.b = Math.imul(seed ^ 0x85ebca6b, 0xc2b2ae35) | 0 || 1;
    this.c = 0x27d4eb2f ^ seed;
    this.d = 0x165667b1;
    for (let i = 0; i < 16; i++) this.u32();
  }
  /** Uniform u32. */
  u32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 4294967296;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const INTERESTING8 = [0, 1, 2, 4, 5, 6, 7, 8, 0x0f, 0x10, 0x3f, 0x40, 0x45, 0x46, 0x4f, 0x50, 0x7f, 0x80, 0xf0, 0xfe, 0xff];
const INTERESTING16 = [0, 1, 7, 8, 19, 20, 21, 27, 28, 40, 60, 64, 68, 88, 512, 536, 576, 1280, 1452, 1460, 1480, 1500, 1514,
  0x7fff, 0x8000, 0xfffe, 0xffff, 0x0800, 0x0806, 0x8100, 0x88a8, 0x86dd, 0x2000, 0x4000, 0x1fff, 0x3fff];

/**
 * Where the length and offset fields of an Ethernet/IPv4/L4 frame are, found leniently (no
 * checks): the mutator edits these on purpose, and repairs the checksums afterwards.
 */
export interface Layout {
  l3: number; // -1 when not IPv4
  ihl: number;
  l4: number;
  proto: number;
  l4Len: number;
}

export function layoutOf(b: Uint8Array, len: number): Layout {
  const r: Layout = { l3: -1, ihl: 0, l4: -1, proto: 0, l4Len: 0 };
  if (len < 14) return r;
  let p = 12;
  let type = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  for (let k = 0; k < 2 && (type === 0x8100 || type === 0x88a8) && p + 4 <= len; k++) {
    type = (b[p + 2]! << 8) | b[p + 3]!;
    p += 4;
  }
  if (type !== 0x0800 || p + 20 > len) return r;
  r.l3 = p;
  r.ihl = (b[p]! & 15) * 4;
  if (r.ihl < 20) return r;
  const total = (b[p + 2]! << 8) | b[p + 3]!;
  r.proto = b[p + 9]!;
  r.l4 = p + r.ihl;
  r.l4Len = Math.min(total, len - p) - r.ihl;
  if (r.l4 > len || r.l4Len < 0) r.l4 = -1;
  return r;
}

/** Recomputes the IPv4 header checksum and the ICMP/UDP/TCP checksum where the layout allows. */
export function fixChecksums(b: Uint8Array, len: number): void {
  const L = layoutOf(b, len);
  if (L.l3 < 0 || L.ihl < 20 || L.l3 + L.ihl > len) return;
  b[L.l3 + 10] = 0; b[L.l3 + 11] = 0;
  const c = fold(sum16(b, L.l3, L.ihl));
  b[L.l3 + 10] = c >>> 8; b[L.l3 + 11] = c & 0xff;
  if (L.l4 < 0) return;
  const ff = (b[L.l3 + 6]! << 8) | b[L.l3 + 7]!;
  if ((ff & 0x3fff) !== 0) return; // a fragment: the L4 checksum covers the reassembled datagram
  const n = L.l4Len;
  const src = ((b[L.l3 + 12]! << 24) | (b[L.l3 + 13]! << 16) | (b[L.l3 + 14]! << 8) | b[L.l3 + 15]!) >>> 0;
  const dst = ((b[L.l3 + 16]! << 24) | (b[L.l3 + 17]! << 16) | (b[L.l3 + 18]! << 8) | b[L.l3 + 19]!) >>> 0;
  const o = L.l4;
  if (L.proto === 1 && n >= 8) {
    b[o + 2] = 0; b[o + 3] = 0;
    const k = fold(sum16(b, o, n));
    b[o + 2] = k >>> 8; b[o + 3] = k & 0xff;
  } else if (L.proto === 17 && n >= 8) {
    const ul = (b[o + 4]! << 8) | b[o + 5]!;
    if (ul < 8 || ul > n) return;
    b[o + 6] = 0; b[o + 7] = 0;
    let k = fold(sum16(b, o, ul, pseudoSum4(src, dst, 17, ul)));
    if (k === 0) k = 0xffff;
    b[o + 6] = k >>> 8; b[o + 7] = k & 0xff;
  } else if (L.proto === 6 && n >= 20) {
    b[o + 16] = 0; b[o + 17] = 0;
    const k = fold(sum16(b, o, n, pseudoSum4(src, dst, 6, n)));
    b[o + 16] = k >>> 8; b[o + 17] = k & 0xff;
  }
}

/**
 * Mutates `src` into a new array: 1..4 stacked edits, then (usually) checksum repair.
 * `other` supplies the second half of splices.
 */
export function mutate(rng: Rng, src: Uint8Array, other: Uint8Array, maxLen = 2048, fix = 0.75): Uint8Array {
  let b = new Uint8Array(Math.min(maxLen, Math.max(src.length, 1) + 64));
  b.set(src.subarray(0, Math.min(src.length, b.length)));
  let len = Math.min(src.length, b.length);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const op = rng.int(13);
    switch (op) {
      case 0: case 1: { // bit flips
        if (!len) break;
        const n = 1 + rng.int(3);
        for (let i = 0; i < n; i++) b[rng.int(len)] ^= 1 << rng.int(8);
        break;
      }
      case 2: // random byte
        if (len) b[rng.int(len)] = rng.u32() & 0xff;
        break;
      case 3: // interesting byte
        if (len) b[rng.int(len)] = rng.pick(INTERESTING8);
        break;
      case 4: case 5: { // length/offset field edit (IPv4 IHL/total length/flags+offset, UDP length, TCP offset, options)
        const L = layoutOf(b, len);
        if (L.l3 < 0) {
          if (len >= 2) { const p = rng.int(len - 1); const v = rng.pick(INTERESTING16); b[p] = v >>> 8; b[p + 1] = v & 0xff; }
          break;
        }
        const which = rng.int(8);
        if (which === 0) b[L.l3] = 0x40 | (rng.int(16)); // IHL
        else if (which === 1) { const v = rng.chance(0.5) ? rng.pick(INTERESTING16) : (len - L.l3 + rng.int(9) - 4) & 0xffff; b[L.l3 + 2] = v >>> 8; b[L.l3 + 3] = v & 0xff; }
        else if (which === 2) { const v = (rng.int(8) << 13) | (rng.chance(0.5) ? rng.int(16) : rng.int(0x2000)); b[L.l3 + 6] = v >>> 8; b[L.l3 + 7] = v & 0xff; }
        else if (which === 3) b[L.l3 + 9] = rng.pick([1, 6, 17, 0, 2, 255]);
        else if (L.l4 >= 0 && L.l4 + 8 <= len) {
          if (L.proto === 17) { const v = rng.chance(0.5) ? rng.pick(INTERESTING16) : (L.l4Len + rng.int(9) - 4) & 0xffff; b[L.l4 + 4] = v >>> 8; b[L.l4 + 5] = v & 0xff; }
          else if (L.proto === 6 && L.l4 + 20 <= len) {
            if (which < 6) b[L.l4 + 12] = rng.int(16) << 4;
            else { // an option byte (kind or length)
              const optEnd = L.l4 + Math.min(60, len - L.l4);
              if (optEnd > L.l4 + 20) b[L.l4 + 20 + rng.int(optEnd - L.l4 - 20)] = rng.pick(INTERESTING8);
            }
          } else if (L.proto === 1) b[L.l4 + rng.int(8)] = rng.pick(INTERESTING8);
        }
        break;
      }
      case 6: // truncate
        len = rng.int(len + 1);
        break;
      case 7: { // extend with random or zero bytes
        const n = 1 + rng.int(40);
        const z = rng.chance(0.5);
        for (let i = 0; i < n && len < b.length; i++) b[len++] = z ? 0 : rng.u32() & 0xff;
        break;
      }
      case 8: { // splice: our prefix + other's suffix
        const cut = rng.int(len + 1);
        const from = rng.int(other.length + 1);
        const n = Math.min(other.length - from, b.length - cut);
        b.set(other.subarray(from, from + n), cut);
        len = cut + n;
        break;
      }
      case 9: { // insert bytes
        if (len >= b.length) break;
        const p = rng.int(len + 1);
        const n = Math.min(1 + rng.int(8), b.length - len);
        b.copyWithin(p + n, p, len);
        for (let i = 0; i < n; i++) b[p + i] = rng.u32() & 0xff;
        len += n;
        break;
      }
      case 10: { // delete bytes
        if (!len) break;
        const p = rng.int(len);
        const n = Math.min(1 + rng.int(8), len - p);
        b.copyWithin(p, p + n, len);
        len -= n;
        break;
      }
      case 11: { // 16/32-bit interesting value anywhere
        if (len < 4) break;
        const p = rng.int(len - 3);
        const v = rng.chance(0.5) ? rng.pick(INTERESTING16) : rng.u32();
        if (rng.chance(0.5)) { b[p] = v >>> 8; b[p + 1] = v & 0xff; }
        else { b[p] = v >>> 24; b[p + 1] = v >>> 16; b[p + 2] = v >>> 8; b[p + 3] = v & 0xff; }
        break;
      }
      default: { // copy a block within the input
        if (len < 2) break;
        const from = rng.int(len), to = rng.int(len);
        const n = 1 + rng.int(Math.min(16, len - Math.max(from, to)));
        b.copyWithin(to, from, from + n);
      }
    }
  }
  if (rng.chance(fix)) fixChecksums(b, len);
  if (b.length !== len) b = b.slice(0, len);
  return b;
}

/**
 * Shrinks a failing byte input: removes chunks (halving the chunk size), then lowers bytes to
 * zero, keeping each change that still fails. Bounded work.
 */
export function minimize(input: Uint8Array, fails: (b: Uint8Array) => boolean, budget = 4000): Uint8Array {
  let cur = input;
  let tries = 0;
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1 && tries < budget; chunk >>= 1) {
    for (let p = 0; p + chunk <= cur.length && tries < budget;) {
      const cand = new Uint8Array(cur.length - chunk);
      cand.set(cur.subarray(0, p));
      cand.set(cur.subarray(p + chunk), p);
      tries++;
      if (fails(cand)) cur = cand;
      else p += chunk;
    }
  }
  for (let p = 0; p < cur.length && tries < budget; p++) {
    if (cur[p] === 0) continue;
    const cand = cur.slice();
    cand[p] = 0;
    tries++;
    if (fails(cand)) cur = cand;
  }
  return cur;
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** The arbitraries of a fragmentation plan (see `fragPlan`), to spread into a target's record. */
export const fragPlanFields = {
  payload: fc.integer({ min: 1, max: 3000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 7 + n) & 0xff)),
  cuts: fc.array(fc.integer({ min: 1, max: 375 }), { maxLength: 12 }),
  order: fc.array(fc.nat(), { maxLength: 16 }),
  dups: fc.array(fc.nat(), { maxLength: 3 }),
};

/**
 * Splits `payload` at the cuts (times 8, so every piece but the last is a multiple of 8 long),
 * shuffles the pieces by `order` and inserts the exact duplicates named by `dups`: the pieces as
 * [start, end) and the delivery sequence of their indexes; null when there are fewer than two.
 */
export function fragPlan(x: { payload: Uint8Array; cuts: number[]; order: number[]; dups: number[] }): { pieces: [number, number][]; seq: number[] } | null {
  const bounds = [...new Set(x.cuts.map((c) => c * 8).filter((c) => c < x.payload.length))].sort((a, b) => a - b);
  const pieces: [number, number][] = [];
  let prev = 0;
  for (const c of [...bounds, x.payload.length]) { if (c > prev) pieces.push([prev, c]); prev = c; }
  if (pieces.length < 2) return null;
  const idx = pieces.map((_, i) => i);
  for (let i = 0; i < x.order.length; i++) { const a = i % idx.length, b = x.order[i]! % idx.length; [idx[a], idx[b]] = [idx[b]!, idx[a]!]; }
  const seq = [...idx];
  for (const d of x.dups) seq.splice(d % (seq.length + 1), 0, idx[d % idx.length]!);
  return { pieces, seq };
}

/** Where `fenced` places the input in its two buffers (the fuzz targets' offsets are relative to it). */
export const PAD = 64;
const CAP = 4096 + 2 * PAD;
const bufA = new Uint8Array(CAP).fill(0x00);
const bufB = new Uint8Array(CAP).fill(0xa5);

/**
 * Runs `parse` over `input` placed at PAD in two buffers with different surroundings and checks
 * that results (return value and snapshot) agree. Returns the result of the first run.
 */
export function fenced<R>(input: Uint8Array, run: (b: Uint8Array, off: number, len: number) => R, snap: (r: R) => string): R {
  const n = Math.min(input.length, 4096);
  bufA.set(input.subarray(0, n), PAD);
  bufB.set(input.subarray(0, n), PAD);
  const ra = run(bufA, PAD, n);
  const sa = snap(ra);
  const rb = run(bufB, PAD, n);
  const sb = snap(rb);
  bufA.fill(0x00, PAD, PAD + n);
  bufB.fill(0xa5, PAD, PAD + n);
  if (sa !== sb) throw new Violation(`result depends on bytes outside the input: ${sa} vs ${sb}`);
  return ra;
}

/** A parser invariant: a Violation when `cond` fails. */
export function expect(cond: boolean, msg: string): void {
  if (!cond) throw new Violation(msg);
}

/** The drop reason is None or one of the parser's own family. */
export function inFamily(d: number, family: readonly Drop[]): void {
  if (d !== Drop.None && !family.includes(d)) throw new Violation(`unexpected drop reason ${d}`);
}

/** An invariant broken by an input; `known` marks bugs already reported in the issue (fixed elsewhere). */
export class Violation extends Error {
  constructor(message: string, readonly known = '') {
    super(message);
    this.name = 'Violation';
  }
}

export interface Target<S = unknown> {
  name: string;
  /** Structured inputs (fast-check shrinks them). */
  arb: fc.Arbitrary<S>;
  /** Runs one structured input; throws on a broken invariant. */
  execStructured(s: S): void;
  /** The seed corpus for mutation. */
  corpus(): Uint8Array[];
  /** Runs one byte input; throws on a broken invariant. */
  execBytes(b: Uint8Array): void;
  /** Largest mutated input. */
  maxLen?: number;
  /** Share of structured runs (the rest are mutations). */
  structuredShare?: number;
  /** Optional: turns a structured input into bytes to add to the mutation corpus. */
  toBytes?(s: S): Uint8Array | null;
  /** Called every `checkEvery` runs and at the end: heavier invariants (memory). */
  periodic?(): void;
  /** Clean-up (sockets, timers). */
  close?(): void;
  /** A line about what the run reached (printed at the end). */
  summary?(): string;
  /** Whether a failing byte input is shrunk (not for stateful targets, where a rerun differs). */
  minimize?: boolean;
  /** Executions between turns of the event loop (stream events of the engine target need them). */
  chunk?: number;
}

export interface Finding {
  target: string;
  kind: 'structured' | 'mutation' | 'periodic';
  message: string;
  known: string;
  /** fast-check seed/path, or mutation seed and iteration. */
  repro: string;
  /** Minimal input (hex for bytes; JSON for structured). */
  input: string;
  count: number;
}

export interface RunStats {
  target: string;
  structured: number;
  mutations: number;
  execs: number;
  ms: number;
  perSec: number;
  findings: Finding[];
  summary?: string;
}

export interface RunOptions {
  runs: number;
  seed: number;
  /** Stop at the first finding (smoke tests); else record and continue (long runs). */
  stopOnFirst?: boolean;
  /** Progress callback every ~`progressEvery` executions. */
  progress?: (done: number, total: number) => void;
  progressEvery?: number;
  /** Size of the fast-check chunks (a failure ends a chunk; the next chunk goes on with a new seed). */
  chunk?: number;
}

function signature(message: string): string {
  // Findings are the same when they differ only in numbers, quoted text or the bytes shown.
  return message.replace(/"[^"\n]*"/g, 'S').replace(/\([0-9]+ bytes\): [0-9a-f]+/g, '(N bytes)').replace(/\d+/g, 'N').slice(0, 160);
}

function errMessage(e: unknown): { msg: string; known: string } {
  if (e instanceof Violation) return { msg: e.message, known: e.known };
  if (e instanceof Error) return { msg: `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 5).join('\n')}`, known: '' };
  return { msg: String(e), known: '' };
}

/** Runs `opts.runs` executions of a target: a share by fast-check, the rest by mutation. */
export async function runTarget<S>(t: Target<S>, opts: RunOptions): Promise<RunStats> {
  const t0 = Date.now();
  const findings = new Map<string, Finding>();
  const add = (f: Omit<Finding, 'count'>): void => {
    const k = signature(f.message);
    const old = findings.get(k);
    if (old) old.count++;
    else findings.set(k, { ...f, count: 1 });
  };
  const share = process.env.FUZZ_STRUCTURED !== undefined ? Number(process.env.FUZZ_STRUCTURED) : t.structuredShare ?? 0.2;
  const nStruct = Math.round(opts.runs * share);
  const nMut = opts.runs - nStruct;
  const chunk = t.chunk ?? opts.chunk ?? 20000;
  const pe = opts.progressEvery ?? 1_000_000;
  let done = 0;
  let nextProgress = pe;
  const checkEvery = 4096;
  const corpus = t.corpus().filter((b) => b.length > 0);
  const stop = () => opts.stopOnFirst === true && findings.size > 0;
  const tick = async (n: number) => {
    done += n;
    if (done >= nextProgress) {
      nextProgress += pe;
      opts.progress?.(done, opts.runs);
    }
    // Let timers and stream events of the engine and control targets run.
    await new Promise<void>((r) => setImmediate(r));
  };
  const periodic = (repro: string) => {
    if (!t.periodic) return;
    try { t.periodic(); } catch (e) {
      const { msg, known } = errMessage(e);
      add({ target: t.name, kind: 'periodic', message: msg, known, repro, input: '' });
    }
  };

  // Structured generation with shrinking, in chunks with derived seeds.
  let s = 0;
  for (let c = 0; s < nStruct && !stop(); c++) {
    const n = Math.min(chunk, nStruct - s);
    const seed = (opts.seed + c * 7919) | 0;
    let k = 0;
    const r = fc.check(fc.property(t.arb, (x) => {
      if (++k % checkEvery === 0) periodic(`seed ${seed}`);
      if (t.toBytes && corpus.length < 4096 && (k & 255) === 0) {
        const b = t.toBytes(x);
        if (b && b.length) corpus.push(b);
      }
      t.execStructured(x);
    }), { numRuns: n, seed, endOnFailure: false, markInterruptAsFailure: false });
    s += r.numRuns;
    if (r.failed) {
      const { msg, known } = errMessage(r.errorInstance);
      let input = '';
      try { input = fc.stringify(r.counterexample); } catch { input = '(unprintable)'; }
      add({ target: t.name, kind: 'structured', message: msg, known, repro: `fast-check seed ${seed} path "${r.counterexamplePath}"`, input });
      if (r.numRuns === 0) s += 1; // never loop on a chunk that fails at once
    }
    await tick(r.numRuns || 1);
  }

  // Byte-level mutation of the corpus.
  const rng = new Rng(opts.seed ^ 0x5bd1e995);
  const maxLen = t.maxLen ?? 2048;
  let m = 0;
  if (corpus.length === 0) corpus.push(new Uint8Array(64));
  while (m < nMut && !stop()) {
    const n = Math.min(chunk, nMut - m);
    const iterSeed = rng.u32();
    const r2 = new Rng(iterSeed);
    for (let i = 0; i < n; i++) {
      const base = corpus[r2.int(corpus.length)]!;
      const input = mutate(r2, base, corpus[r2.int(corpus.length)]!, maxLen);
      try {
        t.execBytes(input);
      } catch (e) {
        const { msg, known } = errMessage(e);
        const sig = signature(msg);
        let minimal = input;
        if (!findings.has(sig) && t.minimize !== false) {
          minimal = minimize(input, (cand) => {
            try { t.execBytes(cand); return false; } catch (e2) { return signature(errMessage(e2).msg) === sig; }
          });
        }
        add({ target: t.name, kind: 'mutation', message: msg, known, repro: `mutation seed ${iterSeed} iteration ${i}`, input: hex(minimal) });
        if (stop()) { m += i + 1; break; }
      }
      if ((i + 1) % checkEvery === 0) periodic(`mutation seed ${iterSeed}`);
    }
    if (stop()) break;
    m += n;
    await tick(n);
  }
  periodic('end');
  const ms = Date.now() - t0;
  const execs = s + m;
  return { target: t.name, structured: s, mutations: m, execs, ms, perSec: Math.round(execs / Math.max(ms, 1) * 1000), findings: [...findings.values()], summary: t.summary?.() };
}
