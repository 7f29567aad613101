#!/usr/bin/env node
'use strict';
// package.json "prepare" (npm runs it before `npm pack`/`publish` and, with devDependencies
// installed, for a git install): builds what the package ships (tsconfig.build.json, incremental)
// and removes compiled files whose source was moved or removed, so none ends up in the tarball.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  process.stderr.write('xdpstack: the build (prepare) needs the devDependencies (typescript): npm install without --omit=dev\n');
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

function prune(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { prune(p); continue; }
    const m = /^(.*?)(\.d\.ts|\.js)(\.map)?$/.exec(e.name);
    if (!m) continue;
    const src = path.join(root, path.relative(dist, dir), `${m[1]}.ts`);
    if (!fs.existsSync(src)) fs.rmSync(p);
  }
  if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
}
for (const d of ['driver', 'umem', 'protocols', 'stack', 'examples']) {
  if (fs.existsSync(path.join(dist, d))) prune(path.join(dist, d));
}
