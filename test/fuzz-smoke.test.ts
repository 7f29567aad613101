/**
 * A short fuzz run of every target inside `npm test` (the long run is `npm run fuzz`): fixed seeds,
 * so a failure reproduces, plus one random seed per run, printed when it fails. The fixed seeds
 * reach no known bug; one the issue lists for other work (ICMP/PMTU validation, control-plane
 * validation), reached by the random seed, is printed rather than failed: the long run reports it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runTarget, Target } from './fuzz/lib';
import { allTargets } from './fuzz/targets';
import { engineTarget } from './fuzz/engine';

/** Executions per target and seed (the engine target is slower: fewer). */
const RUNS = Number(process.env.FUZZ_SMOKE_RUNS ?? 5000);
const FIXED_SEEDS = [1, 20261202];
const RANDOM_SEED = (Math.random() * 0x7fffffff) | 0;

for (const t of allTargets() as Target<unknown>[]) {
  const runs = t.name === 'engine' ? Math.round(RUNS / 2) : RUNS;
  for (const seed of [...FIXED_SEEDS, RANDOM_SEED]) {
    test(`fuzz ${t.name}: ${runs} executions, seed ${seed}`, async () => {
      if (t.name === 'engine') engineTarget.resetState(seed);
      const st = await runTarget(t, { runs, seed, stopOnFirst: true });
      t.close?.();
      const f = st.findings[0];
      if (f && f.known) {
        // A bug the issue lists for other work: shown, not failed here (the long run reports it too).
        console.log(`note: ${t.name} (seed ${seed}) reached a known bug: ${f.known}\n  ${f.message.split('\n')[0]}\n  repro: ${f.repro}`);
        return;
      }
      assert.ok(!f, f && `${t.name} (seed ${seed}): ${f.message}\n  repro: ${f.repro} (FUZZ_SEED=${seed})\n  input: ${f.input.slice(0, 400)}`);
      assert.is(st.execs, runs);
    });
  }
}

test.run();
