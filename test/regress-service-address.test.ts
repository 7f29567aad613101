/**
 * An address or VIP a running service listens on cannot be removed (found while adding VIPs):
 * before, `address del` / `vip del` went through, the service stayed on an address its VS no
 * longer had, and `show config` wrote a configuration `xdpstack run` refused ("not an address of
 * virtual server"). Now the removal is refused with the service named, and the running
 * configuration stays one the validator accepts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack } from '../stack/stack';
import { StackConfig, validateConfig } from '../stack/control/config';

function config(): StackConfig {
  return {
    name: 'svcaddr',
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [{
      name: 'a',
      links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24', '10.1.1.2/24', 'fd00:1::1/64'] }],
      vips: ['198.51.100.10', '2001:db8::10'],
      decap: { from: ['10.1.1.100/32'] },
    }],
    services: [
      { type: 'udp-echo', vs: 'a', port: 7, address: '10.1.1.1' },
      { type: 'udp-echo', vs: 'a', port: 8, address: '198.51.100.10' },
      { type: 'udp-echo', vs: 'a', port: 9, address: '2001:db8::10' },
    ],
  } as StackConfig;
}

test('address del and vip del of an address a service listens on are refused, naming the service', () => {
  const st = createStack(config(), { log: () => undefined });
  try {
    const vs = st.vs('a');
    assert.throws(() => vs.removeAddress('10.1.1.1/24'), /address 10\.1\.1\.1 is where service 'udp-echo' \(port 7\) listens/);
    assert.throws(() => vs.removeVip('198.51.100.10'), /VIP 198\.51\.100\.10 is where service 'udp-echo' \(port 8\) listens/);
    assert.throws(() => vs.removeVip('2001:DB8::10'), /VIP 2001:db8::10 is where service/);
    // Addresses no service listens on go as before.
    vs.removeAddress('10.1.1.2/24');
    vs.removeAddress('fd00:1::1/64');
    const running = st.runningConfig();
    assert.equal(running.virtualServers[0]!.vips, ['198.51.100.10', '2001:db8::10']);
    assert.equal(running.virtualServers[0]!.links[0]!.addresses, ['10.1.1.1/24']);
    validateConfig(JSON.parse(JSON.stringify(running)));
  } finally {
    st.close();
  }
});

test('a service on the wildcard address does not pin any address', () => {
  const cfg = config();
  cfg.services = [{ type: 'udp-echo', vs: 'a', port: 7 }];
  const st = createStack(cfg, { log: () => undefined });
  try {
    st.vs('a').removeAddress('10.1.1.1/24');
    st.vs('a').removeVip('198.51.100.10');
    validateConfig(JSON.parse(JSON.stringify(st.runningConfig())));
  } finally {
    st.close();
  }
});

test.run();
