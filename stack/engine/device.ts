/** A device as the engine sees it: its frame pool, MAC, MTU, output queue and the driver's ownership hooks. */
import type { Burst } from '../../driver/types';
import type { IpAddr } from '../../protocols/ip/addr';
import type { FramePool } from '../../umem/pool';
import type { Counters } from '../counters';

export interface DeviceSpec {
  name: string;
  pool: FramePool;
  mac: Uint8Array;
  mtu: number;
  /** Called when the stack starts/stops owning a MAC on a VLAN (-1 = untagged): fills XDP maps. */
  ownMac?(mac: Uint8Array, vlan: number, add: boolean): void;
  /**
   * Called when the stack starts/stops owning an address (either family) on a VLAN (-1 =
   * untagged): the XDP program redirects its traffic (for IPv6 also its solicited-node group).
   */
  own?(addr: IpAddr, vlan: number, add: boolean): void;
}

export interface Device extends DeviceSpec {
  index: number;
  /** Frames waiting to be handed to the driver. */
  out: Burst;
  /** A Buffer over the whole frame pool, for copies without per-packet views. */
  buf: Buffer;
  counters: Counters;
}
