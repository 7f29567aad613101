/** Every fuzz target, in the order the long run takes them. */
import type { Target } from './lib';
import { ethernetTarget, arpTarget, ipv4Target, reassemblyTarget, icmpTarget, udpTarget, tcpTarget } from './parsers';
import { pcapTarget, configTarget, controlTarget } from './files';
import { engineTarget } from './engine';
import { ipv6Target, icmpv6Target, reassembly6Target } from './parsers6';

export function allTargets(): Target<unknown>[] {
  return [ethernetTarget, arpTarget, ipv4Target, reassemblyTarget, icmpTarget, udpTarget, tcpTarget,
    ipv6Target, icmpv6Target, reassembly6Target,
    pcapTarget, configTarget, controlTarget, engineTarget] as Target<unknown>[];
}
