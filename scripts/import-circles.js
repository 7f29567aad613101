#!/usr/bin/env node
// Lists import circles among the TypeScript sources: node scripts/import-circles.js [--types] [DIR...]
// (default DIRs: stack protocols driver umem). Static `import`/`export ... from` edges count;
// type-only imports (`import type`, erased by tsc) count only with --types; dynamic `import()`
// and `require()` inside functions are lazy and do not count. Exit code 1 when a circle exists.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const withTypes = args.includes('--types');
const dirs = args.filter((a) => !a.startsWith('--'));
const roots = (dirs.length ? dirs : ['stack', 'protocols', 'driver', 'umem']).map((d) => path.resolve(root, d));

function walk(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'node_modules' && e.name !== 'native') out.push(...walk(p)); }
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function resolve(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base + '.ts', path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
  return null;
}

/** Runtime (and, with --types, type-only) import edges of one file. */
function edges(file) {
  // Comments out, so an example in a comment is not an import.
  const src = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out = new Set();
  const re = /^\s*(import|export)\s+(type\s+)?([\s\S]*?)\s*from\s*['"]([^'"]+)['"]/gm;
  let m;
  while ((m = re.exec(src))) {
    const typeOnly = !!m[2] || /^\{\s*(type\s+[\w$]+\s*(as\s+[\w$]+\s*)?,?\s*)+\}$/.test(m[3]);
    if (typeOnly && !withTypes) continue;
    const to = resolve(file, m[4]);
    if (to) out.add(to);
  }
  const side = /^\s*import\s+['"]([^'"]+)['"]/gm;
  while ((m = side.exec(src))) { const to = resolve(file, m[1]); if (to) out.add(to); }
  return out;
}

const files = roots.flatMap(walk);
const graph = new Map(files.map((f) => [f, [...edges(f)]]));

// Tarjan's strongly connected components: every component of more than one file is a circle.
let index = 0;
const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], sccs = [];
function strong(v) {
  idx.set(v, index); low.set(v, index); index++;
  stack.push(v); onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const c = [];
    let w;
    do { w = stack.pop(); onStack.delete(w); c.push(w); } while (w !== v);
    if (c.length > 1 || (graph.get(v) ?? []).includes(v)) sccs.push(c);
  }
}
for (const f of files) if (!idx.has(f)) strong(f);

const rel = (f) => path.relative(root, f);
if (!sccs.length) {
  console.log(`no import circles among ${files.length} files${withTypes ? ' (type-only imports included)' : ''}`);
  process.exit(0);
}
for (const c of sccs) console.log(`circle: ${c.map(rel).sort().join(' <-> ')}`);
process.exit(1);
