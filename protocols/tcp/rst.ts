/** RST replies for segments that match no connection (RFC 9293 section 3.10.7.1). */
import { TcpSegmentIn, TcpSegmentOut, TH_ACK, TH_FIN, TH_RST, TH_SYN } from './types';

/**
 * Fills `out` with the RST answering `seg`, or returns false when none must be sent (the
 * segment is itself a RST). With ACK: <SEQ=SEG.ACK><CTL=RST>; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Ports are swapped from the segment.
 */
export function rstFor(seg: TcpSegmentIn, out: TcpSegmentOut): boolean {
  if (seg.flags & TH_RST) return false;
  out.reset();
  out.srcPort = seg.dstPort;
  out.dstPort = seg.srcPort;
  if (seg.flags & TH_ACK) {
    out.seq = seg.ack;
    out.flags = TH_RST;
  } else {
    const len = seg.payloadLen + (seg.flags & TH_SYN ? 1 : 0) + (seg.flags & TH_FIN ? 1 : 0);
    out.seq = 0;
    out.ack = (seg.seq + len) >>> 0;
    out.flags = TH_RST | TH_ACK;
  }
  return true;
}
