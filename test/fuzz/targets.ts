/** Every fuzz target, in the order the long run takes them. */
import type { Target } from './lib';
import { ethernetTarget, arpTarget, ipv4Target, reassemblyTarget, icmpTarget, udpTarget, tcpTarget } from './parsers';
import { pcapTarget, configTarget, controlTarget } from './files';
import { engineTarget } from './engine';

export function allTargets(): Target<unknown>[] {
  return [ethernetTarget, arpTarget, ipv4Target, reassemblyTarget, icmpTarget, udpTarget, tcpTarget,
    pcapTarget, configTarget, controlTarget, engineTarget] as Target<unknown>[];
}
