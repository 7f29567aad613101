/**
 * The drivers of one shard: queue `shard` of each configured device. The main thread attached the
 * device (AF_XDP: the XDP program and its maps) and passes what a queue needs (`ShardDeviceInfo`).
 */
import type { Driver, LogFn } from '../../driver/types';
import { createMemoryLink } from '../../driver/memory';
import type { DeviceConfig } from '../control/config';
import type { RssInfo } from './rss';
import type { AfxdpProgramRef } from '../../driver/afxdp';

export interface ShardDeviceInfo {
  /** The main thread keeps the device's ownership maps (shard 0 reports what its engine owns). */
  ownsInMain: boolean;
  /** AF_XDP: the interface and the program the main thread attached (its XSKMAP has one entry per queue). */
  ifname?: string;
  program?: AfxdpProgramRef;
  /** The device's RSS when it is usable for steering (driver/rss.ts). */
  rss?: RssInfo;
}

export function openShardDriver(d: DeviceConfig, shard: number, info: ShardDeviceInfo | undefined, log: LogFn): Driver {
  switch (d.driver) {
    case 'afxdp': {
      if (!info?.program) throw new Error(`device '${d.name}': the main thread did not attach it`);
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { openAfxdp } = require('../../driver/afxdp') as typeof import('../../driver/afxdp');
      return openAfxdp({
        ifname: info.ifname ?? d.ifname ?? d.name, queue: shard, frameSize: d.frameSize, frameCount: d.frameCount,
        zeroCopy: d.zeroCopy, busyPoll: d.busyPoll, ringSize: d.ringSize, log, program: info.program,
      });
    }
    case 'memory':
      // A queue with nothing on the other end (a shard's memory device carries no traffic: the
      // main thread's tests of the threaded group use it for everything but packets).
      return createMemoryLink({ nameA: d.name, macA: d.mac, mtu: d.mtu, frameSize: d.frameSize, frameCount: d.frameCount, seed: (d.seed ?? 1) + shard }).a;
    default:
      throw new Error(`device '${d.name}': a ${d.driver} device cannot be shared by shards (afxdp and memory devices can)`);
  }
}
