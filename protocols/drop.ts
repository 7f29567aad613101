/**
 * Reasons a received frame is dropped. Every drop in the stack is counted under one of these;
 * wire input never throws. Parsers return `Drop.None` (0) when the input is acceptable.
 * Add new reasons at the end (the numbers index counter arrays).
 */
export const enum Drop {
  None = 0,
  // link layer
  EthTruncated,
  EthUnknownType,
  VlanTruncated,
  VlanNoLink, // no link of any VS on this device + VLAN
  NotForUs, // unicast to a MAC we do not own
  // ARP
  ArpTruncated,
  ArpBadHardware,
  ArpBadProtocol,
  ArpBadOp,
  ArpNotOurAddress,
  ArpQueueFull,
  // IPv4
  Ipv4Truncated,
  Ipv4BadVersion,
  Ipv4BadHeaderLength,
  Ipv4BadTotalLength,
  Ipv4BadChecksum,
  Ipv4BadSource,
  Ipv4NotOurAddress,
  Ipv4TtlExpired,
  Ipv4UnknownProtocol,
  Ipv4FragmentInvalid,
  Ipv4ReassemblyTimeout,
  Ipv4ReassemblyOverflow,
  Ipv4ReassemblyOverlap,
  Ipv4NoRoute,
  // ICMP
  IcmpTruncated,
  IcmpBadChecksum,
  IcmpUnknownType,
  IcmpRateLimited,
  // UDP
  UdpTruncated,
  UdpBadLength,
  UdpBadChecksum,
  UdpNoSocket,
  UdpSocketQueueFull,
  // resources
  NoFrame, // frame pool exhausted
  TxRingFull,
  NeighborUnreachable,
  // IPv6 (reserved for the IPv6 issue)
  Ipv6Truncated,
  Ipv6BadVersion,
  // TCP (reserved for the TCP issue)
  TcpTruncated,
  TcpBadChecksum,
  TcpBadOffset,
  TcpNoSocket,
  // IPv4 reassembly (appended)
  Ipv4FragmentDuplicate, // exact duplicate of a fragment already held: only the copy is dropped
  TcpListenOverflow, // accept queue full
  // TCP connection-level (appended)
  TcpOutOfWindow, // sequence not acceptable (RFC 9293 3.10.7.4); an ACK is sent
  TcpPaws, // timestamp older than TS.Recent (RFC 7323 PAWS)
  TcpBadAck, // ACK for data not sent, or too old (RFC 5961 5.2), or unacceptable in SYN states
  TcpNoAck, // synchronized state, ACK bit off; or LISTEN, neither SYN, ACK nor RST (RFC 9293 3.10.7.2)
  TcpChallenged, // in-window RST or SYN answered with a challenge ACK (RFC 5961)
  TcpBadCookie, // ACK to a listener with an invalid or expired SYN cookie
  TcpBadFlags, // invalid flag combination (e.g. SYN+RST, SYN+FIN, no flags)
  TcpClosed, // segment for a connection already closed
  TxTooBig, // a frame larger than its link's MTU was not sent
  ArpBadSender, // ARP reply to us from 0.0.0.0 or from our own address: nothing to learn; ARP from a sender address no host may hold (multicast, loopback, 240/4, 0/8, a subnet broadcast)
  InternalError, // the stack's own code threw while handling the frame: freed, counted, logged once
  // ICMP errors validated against live state (RFC 5927 4)
  IcmpNoFlow, // an ICMP error quoting no live connection or socket of ours: nothing changes
  IcmpOutOfWindow, // an ICMP error quoting a TCP sequence number outside SND.UNA..SND.NXT (RFC 5927 4.1)
  // limits (stack/limits.ts)
  TcpConnectionLimit, // SYN or cookie ACK refused: the VS's or the stack's connection limit is reached
  TcpReorderMemory, // out-of-order segment not kept: the stack's reorder memory limit is reached
  NeighborTableFull, // frame to a neighbor the link's full neighbor table has no room for
  // IPv6 (RFC 8200) and its control protocols (appended)
  Ipv6ExtTruncated, // an extension header runs past the payload, or the first fragment lacks the header chain (RFC 8200 4.5)
  Ipv6ExtChainTooLong, // more extension headers than the bounded walk takes (IPV6_MAX_EXT_HEADERS)
  Ipv6HbhNotFirst, // Hop-by-Hop Options header not right after the IPv6 header (RFC 8200 4.3): Param Problem code 1
  Ipv6BadOption, // an option TLV runs past the end of its extension header
  Ipv6UnknownOption, // an unrecognized option whose action bits say discard (RFC 8200 4.2)
  Ipv6RoutingType0, // Routing header type 0 with Segments Left > 0 (RFC 5095 3): Param Problem code 0
  Ipv6RoutingUnknown, // Routing header of a type we do not implement with Segments Left > 0 (RFC 8200 4.4)
  Ipv6UnknownNextHeader, // upper-layer protocol nobody handles: Param Problem code 1 (RFC 8200 4)
  Ipv6BadSource, // source multicast, loopback or IPv4-mapped (RFC 4291)
  Ipv6NotOurAddress,
  Ipv6NoRoute,
  Ipv6FragmentInvalid, // fragment malformed or inconsistent (RFC 8200 4.5): length not a multiple of 8, beyond 65535, ...
  Ipv6FragmentDuplicate, // exact duplicate of a fragment already held
  Ipv6FragOverlap, // overlapping fragments: the whole datagram is discarded and its later fragments too (RFC 5722)
  Ipv6ReassemblyTimeout,
  Ipv6ReassemblyOverflow, // reassembly datagram, memory or fragment-count limit
  Icmpv6Truncated,
  Icmpv6BadChecksum,
  Icmpv6UnknownType, // unknown informational message, silently discarded (RFC 4443 2.4(b))
  Icmpv6RateLimited,
  NdpBadHopLimit, // NDP message with a hop limit other than 255 (RFC 4861 6.1, 7.1)
  NdpInvalid, // NDP message failing the other checks of RFC 4861 6.1 / 7.1 / 8.1
  MldInvalid, // MLD message failing the checks of RFC 3810 5 (e.g. query from a non link-local source)
  // IPv6 in the engine
  Udp6ZeroChecksum, // UDP over IPv6 with checksum 0 (mandatory over IPv6: RFC 8200 8.1)
  Ipv6AddressTentative, // to an address still tentative (DAD running) or found duplicate (RFC 4862 5.4)
  NdpRouterAdvert, // Router Advertisement: counted and ignored (servers are configured statically)
  NdpQueueFull, // frame dropped from the queue of an IPv6 neighbor still being resolved (as arp-queue-full for IPv4)
  NdpNoEntry, // Neighbor Advertisement for no neighbor entry (or an INCOMPLETE one, without its address): ignored (RFC 4861 7.2.5)
  // Shards
  ShardRingFull, // a frame for a flow of another shard: that shard's ring was full
  ShardNotForwardable, // a datagram for another shard that cannot be handed over (its VS or link gone there, or too long)
  ShardFlowTaken, // a segment that would open a connection whose flow slot a shard without its listener holds (or a third shard took meanwhile)
  // Ping (echo sockets)
  IcmpEchoNoSocket, // an ICMP or ICMPv6 Echo Reply whose identifier no ping of its VS waits for
  // Decapsulation (IPIP RFC 2003, IPv6 tunnels RFC 2473) for the VIPs of a VS
  DecapSourceRefused, // encapsulated, from an outer source not in the VS's decap.from (or the VS takes none)
  DecapNotVip, // decapsulated, but the inner destination is not a VIP of the VS
  DecapNested, // encapsulated inside an encapsulated packet: one level only
  DecapFragmented, // an outer packet reassembled from fragments (RFC 2003 5.1, RFC 2473 7) longer than a frame holds: not taken
  DecapBadInner, // the inner packet is shorter than its header or not of the version the outer header names
  DecapLinkScoped, // decapsulated Neighbor Discovery or MLD (RFC 4861 7.1, RFC 3810), or from a link-local source (RFC 4291 2.5.6, RFC 3927 2.7): link-scoped, never taken from a tunnel
  // Link and network layer conformance
  LinkAddrGroup, // ARP sender hardware address or NDP link-layer address option that is a group (broadcast/multicast) MAC: no host's, never learned (RFC 1812 3.3.2)
  Ipv4BadOption, // IPv4 option malformed (length beyond the header, below 2, bad pointer): Parameter Problem (RFC 1122 3.2.1.8, 3.2.2.5)
  Ipv4SourceRoute, // IPv4 loose or strict source route option: discarded (RFC 7126 4.3.4/4.4.4; Linux accept_source_route=0)
  Count,
}

export const DROP_NAMES: readonly string[] = [
  'none',
  'eth-truncated', 'eth-unknown-type', 'vlan-truncated', 'vlan-no-link', 'not-for-us',
  'arp-truncated', 'arp-bad-hardware', 'arp-bad-protocol', 'arp-bad-op', 'arp-not-our-address', 'arp-queue-full',
  'ipv4-truncated', 'ipv4-bad-version', 'ipv4-bad-header-length', 'ipv4-bad-total-length', 'ipv4-bad-checksum',
  'ipv4-bad-source', 'ipv4-not-our-address', 'ipv4-ttl-expired', 'ipv4-unknown-protocol', 'ipv4-fragment-invalid',
  'ipv4-reassembly-timeout', 'ipv4-reassembly-overflow', 'ipv4-reassembly-overlap', 'ipv4-no-route',
  'icmp-truncated', 'icmp-bad-checksum', 'icmp-unknown-type', 'icmp-rate-limited',
  'udp-truncated', 'udp-bad-length', 'udp-bad-checksum', 'udp-no-socket', 'udp-socket-queue-full',
  'no-frame', 'tx-ring-full', 'neighbor-unreachable',
  'ipv6-truncated', 'ipv6-bad-version',
  'tcp-truncated', 'tcp-bad-checksum', 'tcp-bad-offset', 'tcp-no-socket',
  'ipv4-fragment-duplicate',
  'tcp-listen-overflow',
  'tcp-out-of-window', 'tcp-paws', 'tcp-bad-ack', 'tcp-no-ack', 'tcp-challenged', 'tcp-bad-cookie', 'tcp-bad-flags',
  'tcp-closed',
  'tx-too-big',
  'arp-bad-sender',
  'internal-error',
  'icmp-no-flow', 'icmp-out-of-window',
  'tcp-connection-limit', 'tcp-reorder-memory', 'neighbor-table-full',
  'ipv6-ext-truncated', 'ipv6-ext-chain-too-long', 'ipv6-hbh-not-first', 'ipv6-bad-option', 'ipv6-unknown-option',
  'ipv6-routing-type0', 'ipv6-routing-unknown', 'ipv6-unknown-next-header', 'ipv6-bad-source', 'ipv6-not-our-address',
  'ipv6-no-route', 'ipv6-fragment-invalid', 'ipv6-fragment-duplicate', 'ipv6-frag-overlap', 'ipv6-reassembly-timeout',
  'ipv6-reassembly-overflow',
  'icmpv6-truncated', 'icmpv6-bad-checksum', 'icmpv6-unknown-type', 'icmpv6-rate-limited',
  'ndp-bad-hop-limit', 'ndp-invalid', 'mld-invalid',
  'udp6-zero-checksum', 'ipv6-address-tentative', 'ndp-router-advert', 'ndp-queue-full', 'ndp-no-entry',
  'shard-ring-full', 'shard-not-forwardable', 'shard-flow-taken',
  'icmp-echo-no-socket',
  'decap-source-refused', 'decap-not-vip', 'decap-nested', 'decap-fragmented', 'decap-bad-inner',
  'decap-link-scoped',
  'link-addr-group', 'ipv4-bad-option', 'ipv4-source-route',
];

export function dropName(d: Drop): string {
  return DROP_NAMES[d] ?? `drop-${d}`;
}
