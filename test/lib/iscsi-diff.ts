/**
 * The side-by-side verdict of iscsi-test-cu runs: the reference target (tgtd) against ours, test by
 * test. The rule (issue 10, proof): our target passes every test that tgt passes. A test tgt
 * passes is a failure for us when we fail it, when the run never reached it (missing), or when it
 * stopped without a verdict (incomplete); a test tgt passes and we skip is a failure as well unless
 * skips are allowed (a skip means the test did not run: the feature it needs was not offered).
 */
import type { TestResult, TestVerdict } from './iscsi-tools';

export interface SideBySide {
  /** tgt passes, ours fails / has no verdict / never reached it: each a failure. */
  regressions: { name: string; ours: TestVerdict | 'missing'; incomplete?: boolean; messages: string[] }[];
  /** tgt passes, ours skips (a failure unless skips are allowed). */
  skippedByUs: { name: string; messages: string[] }[];
  /** tgt fails or skips, ours passes. */
  oursOnly: string[];
  /** Both fail. */
  bothFail: string[];
  /** Tests ours ran that tgt's run did not report. */
  notInReference: string[];
  /** Verdict counts per side. */
  counts: { tgt: Record<TestVerdict, number>; ours: Record<TestVerdict, number> };
  /** No regression, and no skip where tgt passes unless `allowSkips`. */
  ok: boolean;
}

/** A verdict as recorded (messages may be left out of passes). */
export type Verdict = Pick<TestResult, 'name' | 'result' | 'incomplete'> & { messages?: string[] };

function tally(rs: readonly Verdict[]): Record<TestVerdict, number> {
  const c = { pass: 0, fail: 0, skip: 0 };
  for (const r of rs) c[r.result]++;
  return c;
}

/** Compares two runs of the same selector, test by test. */
export function sideBySide(tgt: readonly Verdict[], ours: readonly Verdict[], opts: { allowSkips?: boolean } = {}): SideBySide {
  const o = new Map(ours.map((r) => [r.name, r]));
  const t = new Map(tgt.map((r) => [r.name, r]));
  const out: SideBySide = {
    regressions: [], skippedByUs: [], oursOnly: [], bothFail: [], notInReference: [],
    counts: { tgt: tally(tgt), ours: tally(ours) }, ok: false,
  };
  for (const ref of tgt) {
    const mine = o.get(ref.name);
    if (ref.result === 'pass') {
      if (!mine) out.regressions.push({ name: ref.name, ours: 'missing', messages: [] });
      else if (mine.result === 'fail') {
        const reg: SideBySide['regressions'][number] = { name: ref.name, ours: 'fail', messages: mine.messages ?? [] };
        if (mine.incomplete) reg.incomplete = true;
        out.regressions.push(reg);
      } else if (mine.result === 'skip') out.skippedByUs.push({ name: ref.name, messages: mine.messages ?? [] });
    } else if (mine?.result === 'pass') {
      out.oursOnly.push(ref.name);
    } else if (ref.result === 'fail' && mine?.result === 'fail') {
      out.bothFail.push(ref.name);
    }
  }
  for (const r of ours) if (!t.has(r.name)) out.notInReference.push(r.name);
  out.ok = out.regressions.length === 0 && (opts.allowSkips === true || out.skippedByUs.length === 0);
  return out;
}

/** Names with a given verdict, sorted. */
export function namesWith(rs: readonly Verdict[], v: TestVerdict): string[] {
  return rs.filter((r) => r.result === v).map((r) => r.name).sort();
}

/** Markdown lines of one side-by-side family (for the result file and the README). */
export function sideBySideMarkdown(family: string, d: SideBySide, allowSkips: boolean): string[] {
  const c = d.counts;
  const lines = [
    `### ${family}`,
    '',
    '| target | pass | fail | skip | total |',
    '|---|---:|---:|---:|---:|',
    `| tgtd | ${c.tgt.pass} | ${c.tgt.fail} | ${c.tgt.skip} | ${c.tgt.pass + c.tgt.fail + c.tgt.skip} |`,
    `| xdpstack | ${c.ours.pass} | ${c.ours.fail} | ${c.ours.skip} | ${c.ours.pass + c.ours.fail + c.ours.skip} |`,
    '',
    `Verdict: **${d.ok ? 'pass' : 'FAIL'}** (${d.regressions.length} regression(s)${d.skippedByUs.length ? `, ${d.skippedByUs.length} skipped where tgt passes${allowSkips ? ' (allowed)' : ''}` : ''}).`,
    '',
  ];
  const list = (title: string, names: string[]) => {
    if (!names.length) return;
    lines.push(`${title}:`, '', ...names.map((n) => `- ${n}`), '');
  };
  list('tgt passes, xdpstack fails (regressions)', d.regressions.map((r) => `${r.name} (${r.ours}${r.incomplete ? ', no verdict' : ''})${r.messages[0] ? `: ${r.messages[0]}` : ''}`));
  list('tgt passes, xdpstack skips', d.skippedByUs.map((r) => `${r.name}${r.messages[0] ? `: ${r.messages[0]}` : ''}`));
  list('xdpstack passes, tgt does not', d.oursOnly);
  list('both fail', d.bothFail);
  list('not in tgt\'s run', d.notInReference);
  return lines;
}
