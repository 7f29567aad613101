/**
 * Regression: one request (or config) could give a link tens of thousands of addresses, or a VS
 * tens of thousands of VIPs: each was checked against all the others (10,000 addresses in one
 * `vs.add` held the stack for 17.6 s, the 1 MiB control line allows about 55,000). A link may now
 * have at most MAX_LINK_ADDRESSES addresses and a VS MAX_VIPS VIPs: more is a clear error naming
 * the field, in a config file, on the control socket and in the library (one validator).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createStack } from '../stack/stack';
import { validateConfig } from '../stack/control/config';
import { MAX_LINK_ADDRESSES, MAX_VIPS } from '../stack/control/validate';
import type { StackConfig } from '../stack/control/config';

const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/8`;
const vip = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;

function config(addresses: string[], vips: string[]): StackConfig {
  return {
    name: 'counts', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses }], vips }],
  } as StackConfig;
}

test('a config file: one address more than a link may have, or one VIP more than a VS may have, is refused by its path', () => {
  const many = Array.from({ length: MAX_LINK_ADDRESSES + 1 }, (_, i) => addr(i + 1));
  assert.throws(() => validateConfig(config(many, []), 'c.json'),
    (e: Error) => /virtualServers\[0\]\.links\[0\]\.addresses: at most 1024 addresses per link, got 1025/.test(e.message));
  const vips = Array.from({ length: MAX_VIPS + 1 }, (_, i) => vip(i + 1));
  assert.throws(() => validateConfig(config(['10.0.0.1/8'], vips), 'c.json'),
    (e: Error) => /vips\[4096\]: virtual server 'a' has 4096 VIPs, the most one may have/.test(e.message));
  // At the limits: taken.
  validateConfig(config(many.slice(0, MAX_LINK_ADDRESSES), vips.slice(0, MAX_VIPS)), 'c.json');
});

test('at run time: the address or VIP past the limit is a clear error; removing one makes room', () => {
  const stack = createStack(config(Array.from({ length: MAX_LINK_ADDRESSES }, (_, i) => addr(i + 1)), []), { log: () => {} });
  try {
    const a = stack.vs('a');
    assert.throws(() => a.addAddress('11.0.0.1/8'), /link 'm0\.10' has 1024 addresses, the most one may have/);
    a.removeAddress(addr(1));
    a.addAddress('11.0.0.1/8');
    for (let i = 1; i <= MAX_VIPS; i++) a.addVip(vip(i));
    assert.throws(() => a.addVip('203.0.113.1'), /has 4096 VIPs, the most one may have/);
  } finally {
    stack.close();
  }
});

test.run();
