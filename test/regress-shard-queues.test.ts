/**
 * Regression: a stack of fewer shards than its AF_XDP device has receive queues (`--shards 2` on
 * a 4-queue NIC, or `auto` capped by the CPUs) started without a word, while the XDP program
 * passes the frames of every queue without a shard's socket to the kernel (bpf_redirect_map on
 * the frame's rx_queue_index, XDP_PASS when the entry is empty): that share of the flows never
 * reached the stack. The start now says so, unless the RSS table only uses the shards' queues.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unservedQueues } from '../stack/shard/threads';

test('queues beyond the shards are named, with the ethtool commands that fix it', () => {
  const m = unservedQueues('eth1', 'ens5', 4, 2, null);
  assert.ok(m !== null);
  assert.match(m!, /device 'eth1': 4 receive queues but 2 shard\(s\)/);
  assert.match(m!, /queues 2\.\.3 go to the kernel/);
  assert.match(m!, /ethtool -L ens5 combined 2/);
  assert.match(m!, /ethtool -X ens5 equal 2/);
  // An RSS table that still spreads over all four queues: the same.
  assert.ok(unservedQueues('eth1', 'ens5', 4, 2, [0, 1, 2, 3, 0, 1, 2, 3]) !== null);
});

test('no warning when every queue has its shard, or RSS uses the shards\' queues only', () => {
  assert.is(unservedQueues('eth1', 'ens5', 2, 2, null), null);
  assert.is(unservedQueues('eth1', 'ens5', 1, 1, null), null);
  assert.is(unservedQueues('eth1', 'ens5', 4, 2, [0, 1, 0, 1, 0, 1]), null, 'ethtool -X equal 2 done');
});

test.run();
