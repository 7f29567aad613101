/**
 * The Block Limits this target reports (SBC-3 Block Limits VPD page) and enforces: a command
 * beyond them answers INVALID FIELD IN CDB (or INVALID FIELD IN PARAMETER LIST for UNMAP).
 */

export interface Limits {
  /** MAXIMUM TRANSFER LENGTH (blocks) for reads, writes, verifies and PRE-FETCH: 8 MiB. */
  maxTransferBlocks: number;
  /** OPTIMAL TRANSFER LENGTH (blocks): 1 MiB. */
  optimalTransferBlocks: number;
  /** MAXIMUM COMPARE AND WRITE LENGTH (blocks; the CDB field is one byte). */
  maxCompareAndWrite: number;
  /** MAXIMUM UNMAP LBA COUNT (blocks per UNMAP command): 32 MiB. */
  maxUnmapBlocks: number;
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
  maxUnmapDescriptors: number;
  /**
   * MAXIMUM WRITE SAME LENGTH (blocks): 8 MiB, as much as one READ or WRITE may move (libiscsi's
   * WriteSame16.Unmap writes then reads back MAXIMUM WRITE SAME LENGTH blocks when it is ≥ 65536).
   */
  maxWriteSameBlocks: number;
}

/** The most one READ or WRITE moves (bytes); the iSCSI layer refuses longer writes before collecting their data. */
export const MAX_TRANSFER_BYTES = 8 << 20;

const cache = new Map<number, Limits>();

export function limits(blockSize: number): Limits {
  let l = cache.get(blockSize);
  if (!l) {
    l = {
      maxTransferBlocks: MAX_TRANSFER_BYTES / blockSize,
      optimalTransferBlocks: (1 << 20) / blockSize,
      maxCompareAndWrite: 255,
      maxUnmapBlocks: (32 << 20) / blockSize,
      maxUnmapDescriptors: 256,
      maxWriteSameBlocks: MAX_TRANSFER_BYTES / blockSize,
    };
    cache.set(blockSize, l);
  }
  return l;
}
