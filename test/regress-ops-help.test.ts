/**
 * `xdpstack help help`: 'help' is a command the usage names ("xdpstack help <command>"), so asking
 * for its help prints the usage (as `git help help` or `ip help` do), not "unknown command 'help'
 * (did you mean 'help'?)"; in a command's table too (`xdpstack lab help help`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../stack/cli/cli';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('help help: the usage, exit 0, no "did you mean" for the word itself', async () => {
  const top = await cli(['help']);
  assert.is(top.code, 0);
  const r = await cli(['help', 'help']);
  assert.is(r.code, 0, r.err);
  assert.not.match(r.err, /did you mean 'help'/);
  assert.is(r.out, top.out, 'the usage that lists the commands and says how to use help');
  const lab = await cli(['lab', 'help', 'help']);
  assert.is(lab.code, 0, lab.err);
  assert.is(lab.out, (await cli(['lab', 'help'])).out);
  // A real unknown command is still refused with a hint.
  const bad = await cli(['help', 'hepl']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /unknown command 'hepl' \(did you mean 'help'\?\)/);
});

test.run();
