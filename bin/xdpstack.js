#!/usr/bin/env node
'use strict';
// Entry point of the `xdpstack` command; the CLI itself is compiled to dist/stack/cli/cli.js.
let cli;
try {
  cli = require('../dist/stack/cli/cli.js');
  // Service types of the examples shipped with the package (the config may name them).
  cli.loadServiceModule(require.resolve('../dist/examples/iscsi/index.js'));
} catch (e) {
  if (e && e.code === 'MODULE_NOT_FOUND' && /dist[\\/]stack[\\/]cli[\\/]cli/.test(e.message)) {
    const checkout = require('node:fs').existsSync(require('node:path').join(__dirname, '..', 'scripts', 'setup.sh'));
    process.stderr.write(checkout
      ? 'xdpstack: not built yet: run `npm run setup` (or `npx tsc -p tsconfig.json`)\n'
      // An installed package: a tarball ships dist/; a git install builds it in `prepare`.
      : 'xdpstack: the package was installed without its build (dist/ missing): were its install scripts skipped?\n' +
        '  (npm --ignore-scripts, or npm\'s allowScripts policy: allow xdpstack, then install it again)\n');
    process.exit(1);
  }
  throw e;
}
cli.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
