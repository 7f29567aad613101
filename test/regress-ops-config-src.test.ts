/**
 * `show config` after an address is deleted that a static route used as its source (`src`): the
 * running configuration must stay one `xdpstack run` accepts. As Linux does on `ip addr del`
 * (fib_sync_down_addr: routes whose preferred source is the address are flushed), the routes that
 * named the address as `src` go with it; the others stay.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack } from '../stack/stack';
import { StackConfig, validateConfig } from '../stack/control/config';

type Row = Record<string, unknown>;

function config(): StackConfig {
  return {
    name: 'src',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{
      name: 'a',
      links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', '10.2.2.1/24', 'fd00:1::1/64', 'fd00:2::1/64'] }],
      routes: [
        { dst: 'default', via: '10.1.1.254', src: '10.1.1.1', metric: 7 },
        { dst: '10.9.0.0/16', via: '10.2.2.254', src: '10.2.2.1', table: 100 },
        { dst: '10.8.0.0/16', via: '10.2.2.254' },
        { dst: 'fd00:9::/48', via: 'fd00:2::fe', src: 'fd00:1::1' },
      ],
    }],
  } as StackConfig;
}

test('address del: routes with that src go; show config stays loadable and builds the same routes', () => {
  const st = createStack(config(), { log: () => undefined });
  try {
    st.vs('a').removeAddress('10.1.1.1/24');
    st.vs('a').removeAddress('fd00:1::1/64');
    const routes = (st.show('routes') as Row[]).filter((r) => r.proto === 'static').map((r) => `${r.table} ${r.dst} ${r.via} ${r.src ?? '-'}`);
    assert.equal(routes.sort(), ['100 10.9.0.0/16 10.2.2.254 10.2.2.1', '254 10.8.0.0/16 10.2.2.254 -'].sort(),
      'the routes whose source was a deleted address are gone, the others stay');
    const running = st.runningConfig();
    let again;
    try {
      again = createStack(validateConfig(structuredClone(running), 'show config'), { log: () => undefined });
    } catch (e) {
      assert.unreachable(`show config is not accepted back: ${(e as Error).message}`);
    }
    try {
      assert.equal(again!.show('routes'), st.show('routes'));
    } finally {
      again!.close();
    }
  } finally {
    st.close();
  }
});

test.run();
