/** Regression: the error for an unknown control request lists every request the socket serves, icmp.echo included. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMemoryLink } from '../driver/memory';
import { createStack } from '../stack/stack';
import { handleRequest, REQUESTS } from '../stack/control/control';

test("unknown request: the list names 'trace' and 'icmp.echo', which the socket serves", () => {
  const link = createMemoryLink({ frameCount: 64 });
  const stack = createStack({ name: 'reqs', devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [] }, { drivers: { m0: link.a }, log: () => {} });
  try {
    assert.ok(REQUESTS.includes('icmp.echo'));
    assert.throws(() => handleRequest(stack, { cmd: 'icmp.ech' }), (e: unknown) => /\bicmp\.echo\b/.test((e as Error).message) && /\btrace\b/.test((e as Error).message));
  } finally {
    stack.close();
  }
});

test.run();
