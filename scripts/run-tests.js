#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) in its own Node process, so native
// state (XDP attachments, namespaces) of one file cannot leak into another, then prints the
// totals as a plain closing line: "N passed, N failed".
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const testDir = path.join(root, 'dist', 'test');
const filter = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

let files = walk(testDir);
if (filter.length) files = files.filter((f) => filter.some((s) => f.includes(s)));

let passed = 0, failed = 0, skipped = 0;
const failures = [];
const t0 = Date.now();
for (const f of files) {
  const rel = path.relative(root, f);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--enable-source-maps', f], {
    cwd: root, encoding: 'utf8', timeout: 5 * 60 * 1000, env: process.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = (r.stdout || '') + (r.stderr || '');
  const total = /Total:\s+(\d+)/.exec(out);
  const pass = /Passed:\s+(\d+)/.exec(out);
  const skip = /Skipped:\s+(\d+)/.exec(out);
  let p = 0, fl = 0, s = 0;
  if (total && pass) {
    p = Number(pass[1]); s = skip ? Number(skip[1]) : 0;
    fl = Number(total[1]) - p - s;
  }
  if (r.status !== 0 && fl === 0) fl = 1; // crashed, timed out or failed outside a test
  passed += p; failed += fl; skipped += s;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const mark = fl ? 'FAIL' : 'ok  ';
  console.log(`${mark} ${rel}  (${p} passed${fl ? `, ${fl} failed` : ''}${s ? `, ${s} skipped` : ''}, ${secs}s)`);
  if (fl || process.env.VERBOSE) {
    console.log(out.split('\n').map((l) => '     | ' + l).join('\n'));
    if (r.error) console.log(`     | runner: ${r.error.message}`);
    if (fl) failures.push(rel);
  }
}
console.log(`\n${files.length} test files in ${((Date.now() - t0) / 1000).toFixed(1)}s` +
  (failures.length ? `; failing: ${failures.join(', ')}` : ''));
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed || files.length === 0 ? 1 : 0);
