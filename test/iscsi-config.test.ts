// The iscsi service's config: the same validator checks config files, the control socket and the
// API; every problem names its field. RFC 7143 4.2.7 for names, sizes as a storage admin writes them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, validateConfig } from '../stack/control/config';
import { serviceTypes } from '../stack/control/services';
import { parseSize } from '../examples/iscsi/config';
import '../examples/iscsi/index';

function cfg(svc: Record<string, unknown>): any {
  return {
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] },
      { name: 'b', links: [{ device: 'm0', vlan: 20, addresses: ['10.1.1.1/24'] }] },
    ],
    services: [{ type: 'iscsi', vs: 'a', targets: [{ iqn: 'iqn.2026-12.org.example:disk1', luns: [{ lun: 0, size: '64MiB' }] }], ...svc }],
  };
}

function problems(c: unknown): string {
  try { validateConfig(c, 't.json'); } catch (e) { assert.instance(e, ConfigError); return (e as Error).message; }
  return '';
}

test('the iscsi type is registered and a minimal service validates (port 3260 by default)', () => {
  assert.ok(serviceTypes().includes('iscsi'));
  assert.is(problems(cfg({})), '');
  assert.is(problems(cfg({ port: 3261, nopInterval: 5, nopTimeout: 5 })), '');
  assert.is(problems(cfg({ maxHeldChunks: 0 })), '');
  assert.is(problems(cfg({ maxHeldChunks: 256 })), '');
  assert.match(problems(cfg({ maxHeldChunks: -1 })), /maxHeldChunks/);
  assert.match(problems(cfg({ maxHeldChunks: 'lots' })), /maxHeldChunks/);
});

test('sizes: bytes or a unit, a multiple of the block size, at least 16 blocks', () => {
  assert.is(parseSize('64MiB'), 64 * 2 ** 20);
  assert.is(parseSize('1 GiB'), 2 ** 30);
  assert.is(parseSize('4096'), 4096);
  assert.is(parseSize(8192), 8192);
  assert.is(parseSize('12 parsecs'), undefined);
  assert.is(parseSize(-1), undefined);
  assert.is(parseSize(1.5), undefined);
  assert.match(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: 1000 }] }] })), /luns\[0\]\.size: 1000 is not a multiple of the block size 512/);
  assert.match(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: 4096, blockSize: 4096 }] }] })), /less than 16 blocks/);
  assert.match(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '1 zillion' }] }] })), /is not a size/);
  assert.match(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '64MiB', blockSize: 520 }] }] })), /blockSize: must be one of 512, 4096/);
  assert.match(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '8TiB' }] }] })), /more than a RAM LUN can hold/);
  assert.is(problems(cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '8TiB', file: '/var/tmp/x.img' }] }] })), '');
});

test('names per RFC 7143 4.2.7: iqn./eui./naa. forms, lower case, unique in a service', () => {
  for (const iqn of ['iqn.2026-12.org.example', 'iqn.2001-04.com.example:storage:diskarrays-sn-a8675309', 'eui.02004567a425678d', 'naa.52004567ba64678d']) {
    assert.is(problems(cfg({ targets: [{ iqn, luns: [{ lun: 0, size: '1MiB' }] }] })), '', iqn);
  }
  for (const iqn of ['IQN.2026-12.org.example', 'iqn.2026-13.org.example', 'iqn.org.example', 'eui.123', 'disk1', `iqn.2026-12.org.example:${'x'.repeat(230)}`]) {
    assert.match(problems(cfg({ targets: [{ iqn, luns: [{ lun: 0, size: '1MiB' }] }] })), /targets\[0\]\.iqn: /, iqn);
  }
  const two = { iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '1MiB' }] };
  assert.match(problems(cfg({ targets: [two, two] })), /targets\[1\]\.iqn: .* is already the name of/);
});

test('LUNs: numbers unique in a target, a file backs one LUN, unknown keys named', () => {
  const t = (luns: unknown[]) => cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns }] });
  assert.match(problems(t([{ lun: 0, size: '1MiB' }, { lun: 0, size: '1MiB' }])), /luns\[1\]\.lun: LUN 0 is already defined/);
  assert.match(problems(t([{ lun: 0, size: '1MiB', file: '/tmp/a' }, { lun: 1, size: '1MiB', file: '/tmp/a' }])), /luns\[1\]\.file: \/tmp\/a already backs another LUN/);
  assert.match(problems(t([{ lun: 0, size: '1MiB', file: 'relative.img' }])), /luns\[0\]\.file: .*absolute path/);
  assert.match(problems(t([{ lun: 300, size: '1MiB' }])), /luns\[0\]\.lun: must be 0\.\.255/);
  assert.match(problems(t([{ lun: 0, size: '1MiB', sise: 1 }])), /luns\[0\]\.sise: unknown key/);
  assert.match(problems(t([])), /luns: must name at least one LUN/);
  assert.match(problems(cfg({ targets: [] })), /targets: must name at least one target/);
  assert.match(problems(cfg({ targets: undefined })), /targets: is required/);
  assert.match(problems(cfg({ portal: 1 })), /services\[0\]\.portal: unknown key/);
});

test('CHAP: a user and a secret of at least 12 characters (RFC 7143 12.1.3)', () => {
  const t = (chap: unknown) => cfg({ targets: [{ iqn: 'iqn.2026-12.org.example:d', luns: [{ lun: 0, size: '1MiB' }], chap }] });
  assert.is(problems(t({ user: 'alice', secret: 'twelve-chars' })), '');
  assert.match(problems(t({ user: 'alice', secret: 'short' })), /chap\.secret: .*at least 12/);
  assert.match(problems(t({ secret: 'twelve-chars' })), /chap\.user: is required/);
});

test('the port is checked against the other TCP services of the VS, not UDP ones', () => {
  const c = cfg({ port: 7 });
  c.services.push({ type: 'udp-echo', vs: 'a', port: 7 });
  assert.is(problems(c), '');
  c.services.push({ type: 'tcp-echo', vs: 'a', port: 7 });
  assert.match(problems(c), /services\[2\]\.port: port 7 of virtual server 'a' is already used by services\[0\]/);
  const d = cfg({});
  d.services.push({ type: 'tcp-echo', vs: 'a', port: 3260 });
  assert.match(problems(d), /port 3260 of virtual server 'a' is already used/);
  const e = cfg({});
  e.services.push({ ...e.services[0], vs: 'b' });
  assert.is(problems(e), '', 'the same IQN and port in another VS is another portal');
});

test.run();
