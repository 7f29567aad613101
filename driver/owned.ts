/**
 * What the XDP program's ownership maps hold, kept in user space: the keys an owned address puts
 * in the maps and how many owners each key has.
 *
 * Map kinds (driver/bpf/xdpstack_maps.h; the native `mapUpdate` kind numbers):
 *   0 owned_macs  MAC (6 bytes) on a VLAN: set/cleared as told (the engine counts the links on a MAC)
 *   1 owned_ip4   IPv4 address (4 bytes, network order) on a VLAN: ARP for it
 *   2 owned_ip6   IPv6 unicast address (16 bytes) on a VLAN: packets to it, NDP for it
 *   3 owned_snm   solicited-node group of an IPv6 address (its last 4 bytes: 0xff and the address's
 *                 low 24 bits, RFC 4291 section 2.7.1) on a VLAN: NS/NA sent to the group
 * Kinds 1..3 are counted per (kind, VLAN, key): two links may own the same address, and addresses
 * with the same low 24 bits share one solicited-node group; a key leaves the map with its last owner.
 */
import { IpAddr, isMulticast6, isUnspecified, addrToString } from '../protocols/ip/addr';

export type MapKind = 0 | 1 | 2 | 3;
export const KIND_MAC = 0;
export const KIND_IP4 = 1;
export const KIND_IP6 = 2;
export const KIND_SNM = 3;

export interface MapKey { kind: MapKind; key: Uint8Array }

export interface OwnedEntry extends MapKey { vlan: number; refs: number }

/** The map keys of owning `addr` (IPv4: its ARP key; IPv6: the address and its solicited-node group). */
export function ownKeys(addr: IpAddr): MapKey[] {
  if (typeof addr === 'number') {
    // A u32, or the same bits as an int32 (`addr | 0`, as some engine tables key them).
    if (!Number.isInteger(addr) || addr < -0x80000000 || addr > 0xffffffff) throw new RangeError(`afxdp: not an IPv4 address: ${addr}`);
    addr >>>= 0;
    if (addr === 0) throw new RangeError('afxdp: cannot own the unspecified address 0.0.0.0');
    return [{ kind: KIND_IP4, key: Uint8Array.of(addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff) }];
  }
  // Only unicast addresses are owned: the program handles the groups itself (ff02::1 for NDP).
  if (isUnspecified(addr) || isMulticast6(addr)) throw new RangeError(`afxdp: cannot own ${addrToString(addr)} (not a unicast address)`);
  const b = addr.bytes();
  return [{ kind: KIND_IP6, key: b }, { kind: KIND_SNM, key: Uint8Array.of(0xff, b[13]!, b[14]!, b[15]!) }];
}

function checkVlan(vlan: number): void {
  if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095) throw new RangeError(`afxdp: bad VLAN id ${vlan} (0 = untagged, 1..4095)`);
}

/** The owned entries of one device's program, with their owner counts. */
export class OwnedTable {
  private readonly m = new Map<string, OwnedEntry>();
  private readonly perKind = [0, 0, 0, 0];

  private static id(kind: MapKind, vlan: number, key: Uint8Array): string {
    return `${kind}/${vlan}/${key.join('.')}`;
  }

  /**
   * One more owner of (kind, vlan, key); MACs are set, not counted. Returns true when the key is
   * new (the map must get it).
   */
  acquire(kind: MapKind, key: Uint8Array, vlan: number): boolean {
    checkVlan(vlan);
    const id = OwnedTable.id(kind, vlan, key);
    const e = this.m.get(id);
    if (e) {
      if (kind !== KIND_MAC) e.refs++;
      return false;
    }
    this.m.set(id, { kind, key: Uint8Array.from(key), vlan, refs: 1 });
    this.perKind[kind]!++;
    return true;
  }

  /** One owner less; returns true when it was the last (the map must drop the key). */
  release(kind: MapKind, key: Uint8Array, vlan: number): boolean {
    checkVlan(vlan);
    const id = OwnedTable.id(kind, vlan, key);
    const e = this.m.get(id);
    if (!e) return false;
    if (--e.refs > 0) return false;
    this.m.delete(id);
    this.perKind[kind]!--;
    return true;
  }

  /** Owners of (kind, vlan, key); 0 when not in the map. */
  refs(kind: MapKind, key: Uint8Array, vlan: number): number {
    return this.m.get(OwnedTable.id(kind, vlan, key))?.refs ?? 0;
  }

  /** The keys the maps hold (to fill the maps of a program attached again). */
  entries(): IterableIterator<OwnedEntry> {
    return this.m.values();
  }

  /** Keys of one kind in the maps. */
  count(kind: MapKind): number {
    return this.perKind[kind]!;
  }

  get size(): number {
    return this.m.size;
  }
}
