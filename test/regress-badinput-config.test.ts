/**
 * Regression (bad config files):
 *  - a trailing comma, a single-quoted string and other mistakes for which V8 names no position
 *    were reported as `not valid JSON: Unexpected token ']', ..."emory"},\n ]\n}" is not valid
 *    JSON` (no line or column, and the message ran over several lines); now every syntax error is
 *    `not valid JSON at line L, column C: REASON` on one line;
 *  - a file starting with a UTF-8 byte order mark was refused (`Unexpected token '﻿'`); now read;
 * *  - a directory given as the config said `cannot read: EISDIR`; now it says what that means;
 *  - a file with 300,000 problems printed all of them in one message; now the first 25 and a count
 *    (ConfigError.problems keeps them all);
 *  - an unknown key that is a typo of an allowed one (`adresses`) now gets a suggestion.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig, validateConfig } from '../stack/control/config';
import { findJsonError, lineColumn } from '../stack/control/json-error';
import { main } from '../stack/cli/cli';
import { prng } from './lib/prng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-badcfg-'));
test.after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const GOOD = {
  name: 'ok', devices: [{ name: 'm0', driver: 'memory' }],
  virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }], routes: [{ dst: 'default', via: '10.1.1.254' }] }],
};

function loadText(name: string, text: string | Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  try {
    loadConfig(f);
  } catch (e) {
    assert.instance(e, ConfigError);
    return (e as Error).message;
  }
  return 'accepted';
}

test('JSON syntax errors: line, column and a reason, on one line', () => {
  const cases: [string, RegExp][] = [
    ['{\n "devices": [\n  {"name": "m0", "driver": "memory"},\n ]\n}', /at line 4, column 2: a comma before '\]' \(JSON allows no trailing comma\)/],
    ['{"name": "x",}', /at line 1, column 14: a comma before '\}'/],
    ["{'name': 'x'}", /at line 1, column 2: expected a property name in double quotes, found '''/],
    ['{"name": \'x\'}', /at line 1, column 10: expected a value, found ''': JSON strings take double quotes/],
    ['{"name": "x"', /at line 1, column 13: expected ',' or '\}', found the end of the file/],
    ['', /at line 1, column 1: expected a value, found the end of the file/],
    ['{"a": 1} {"b": 2}', /at line 1, column 10: '\{' after the end of the JSON value/],
    ['{"a": "x\ty"}', /at line 1, column 9: a control character \(U\+0009\) inside a string/],
    ['{"a": tru}', /at line 1, column 7: expected a value, found 't'/],
    ['{"a": 01}', /at line 1, column 8: expected ',' or '\}', found '1'/],
    ['{"a": "\\x"}', /bad escape \\x in a string/],
    ['{\n\n  "a" 1}', /at line 3, column 7: expected ':' after a property name, found '1'/],
    ['{"a": "unterminated', /at line 1, column 7: a string is not closed/],
  ];
  for (const [text, re] of cases) {
    const m = loadText('syntax.json', text);
    assert.match(m, /syntax\.json: \(file\): not valid JSON at line \d+, column \d+: /, `${JSON.stringify(text)} -> ${m}`);
    assert.match(m, re, `${JSON.stringify(text)} -> ${m}`);
    assert.not.match(m, /\n/, 'one line');
  }
});

test('the locator agrees with JSON.parse on mutated configs (bounded), and never recurses', () => {
  const r = prng(0xbad1);
  const rnd = { int: (n: number) => Math.floor(r() * n) };
  const base = JSON.stringify(GOOD, null, 2);
  const alphabet = '{}[]",:\\ \n\t0123456789-.eEtrufalsn\'x\u00e9';
  let bad = 0;
  for (let k = 0; k < 3000; k++) {
    let t = base;
    const edits = 1 + rnd.int(3);
    for (let e = 0; e < edits; e++) {
      const at = rnd.int(t.length + 1);
      const op = rnd.int(3);
      const ch = alphabet[rnd.int(alphabet.length)]!;
      t = op === 0 ? t.slice(0, at) + ch + t.slice(at) : op === 1 ? t.slice(0, at) + t.slice(at + 1) : t.slice(0, at) + ch + t.slice(at + 1);
    }
    let parses = true;
    try { JSON.parse(t); } catch { parses = false; }
    const found = findJsonError(t);
    assert.is(found === null, parses, `${JSON.stringify(t)}: JSON.parse ${parses ? 'accepts' : 'refuses'} it, the locator says ${JSON.stringify(found)}`);
    if (found) {
      bad++;
      assert.ok(found.offset >= 0 && found.offset <= t.length);
    }
  }
  assert.ok(bad > 1000, `most mutations break the JSON (${bad})`);
  // Nesting far deeper than any call stack: an answer, no RangeError.
  const deep = '['.repeat(200_000) + ']'.repeat(199_999);
  assert.equal(findJsonError(deep)?.reason, "expected ',' or ']', found the end of the file");
  assert.equal(lineColumn('ab\ncd', 4), { line: 2, column: 2 });
});

test('a byte order mark is read; a directory or a missing file says what it is', () => {
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(GOOD))]);
  assert.is(loadText('bom.json', bom), 'accepted');
  const dir = path.join(tmp, 'adir.json');
  fs.mkdirSync(dir);
  assert.throws(() => loadConfig(dir), /adir\.json: \(file\): cannot read: EISDIR \(a directory, not a file\)/);
  assert.throws(() => loadConfig(path.join(tmp, 'missing.json')), /missing\.json: \(file\): cannot read: ENOENT \(no such file or directory\)/);
  assert.throws(() => loadConfig(''), /a config file path must be a non-empty string, got an empty one/);
});

test('many problems: the message lists 25 and counts the rest; problems keeps them all', () => {
  const c = structuredClone(GOOD) as { virtualServers: unknown[] };
  c.virtualServers = Array.from({ length: 40 }, (_, i) => ({ name: `bad name ${i}`, links: [] }));
  try {
    validateConfig(c, 'many.json');
    assert.unreachable('accepted');
  } catch (e) {
    const ce = e as ConfigError;
    assert.is(ce.problems.length, 40);
    assert.match(ce.message, /^many\.json: 40 problems:\n/);
    assert.is(ce.message.split('\n').length, 1 + 25 + 1);
    assert.match(ce.message, /\n {2}\.\.\. and 15 more$/);
  }
});

test('an unknown key that is a typo of an allowed one gets a suggestion (file and CLI alike)', async () => {
  const c = structuredClone(GOOD) as Record<string, unknown> & { virtualServers: Record<string, unknown>[] };
  (c.virtualServers[0]!.links as Record<string, unknown>[])[0] = { device: 'm0', vlna: 10, adresses: ['10.1.1.1/24'] };
  c.servces = [];
  c.zzzz = 1;
  const f = path.join(tmp, 'typo.json');
  fs.writeFileSync(f, JSON.stringify(c));
  const err: string[] = [];
  const code = await main(['run', f, '--no-control'], { out: () => {}, err: (l) => err.push(l) });
  assert.is(code, 1);
  const text = err.join('\n');
  assert.match(text, /servces: unknown key 'servces' \(allowed: [^)]*\): did you mean 'services'\?/);
  assert.match(text, /links\[0\]\.vlna: unknown key 'vlna' \(allowed: [^)]*\): did you mean 'vlan'\?/);
  assert.match(text, /links\[0\]\.adresses: unknown key 'adresses' \(allowed: [^)]*\): did you mean 'addresses'\?/);
  assert.match(text, /zzzz: unknown key 'zzzz' \(allowed: [^)]*\)$/m, 'no suggestion when nothing is close');
  assert.not.match(text, /\n\s+at /, 'no stack trace');
});

test.run();
