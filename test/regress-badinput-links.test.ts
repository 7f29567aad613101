/**
 * Regression: `vs.add` with many links in one request (4094 VLANs, well inside the control
 * socket's 1 MiB line) stopped the stack for 7 s: the validator built the facts of every link of
 * the VS (each with its MAC formatted) for each link added, twice, so N links cost N² of them.
 * The running state now answers "is this link name taken" by name. Counted here, not timed: the
 * facts of all links are not built per link added any more; and the request still succeeds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack } from '../stack/stack';

test('adding N links does not build every link\'s facts N times', () => {
  const stack = createStack({ name: 'links', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [] }, { log: () => {} });
  try {
    const state = stack.engine.state;
    const real = state.links.bind(state);
    let built = 0;
    state.links = (vs: string) => { const r = real(vs); built += r.length; return r; };
    const N = 1500;
    const links = Array.from({ length: N }, (_, i) => ({ device: 'm0', vlan: 1 + i, addresses: [`10.${(i >> 8) & 255}.${i & 255}.1/24`] }));
    const t0 = Date.now();
    stack.createVs('many', links);
    const ms = Date.now() - t0;
    assert.is(stack.vs('many').raw.links.length, N);
    assert.ok(built < 4 * N, `link facts built while adding ${N} links: ${built} (N² would be ${N * N})`);
    // A duplicate name is still found (by name, in the running state and within the request).
    assert.throws(() => stack.vs('many').addLink({ device: 'm0', vlan: 1, name: 'm0.2' }), /duplicate link name 'm0\.2' in virtual server 'many'/);
    assert.throws(() => stack.createVs('dup', [{ device: 'm0', vlan: 4000, name: 'x' }, { device: 'm0', vlan: 4001, name: 'x' }]), /duplicate link name 'x'/);
    assert.ok(ms < 60_000, `${ms} ms`);
  } finally {
    stack.close();
  }
});

test.run();
