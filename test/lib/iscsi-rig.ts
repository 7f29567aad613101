/**
 * A sans-IO rig for IscsiConnection tests: a portal with fake SCSI targets, a fake ConnHost that
 * parses what the target sends, and initiator-side helpers (login, SCSI commands, Data-Out).
 */
import { IscsiConnection, ConnOptions, Portal, SessionTable } from '../../examples/iscsi/session';
import { TargetSpec } from '../../examples/iscsi/scsi/types';
import type { Hold } from '../../examples/iscsi/pdu';
import { FakeScsi, TargetParser, TPdu, WireOpts, bhs, encode, lunField, p32, parseKeys, text, u32 } from './iscsi-wire';

export const IQN = 'iqn.2024-01.test.xdpstack:disk1';
export const IQN2 = 'iqn.2024-01.test.xdpstack:disk2';
export const INI = 'iqn.2024-01.test.xdpstack:initiator';

export function makePortal(targets: Array<{ iqn: string; chap?: { user: string; secret: string } }> = [{ iqn: IQN }]) {
  const scsi = new Map<string, FakeScsi>();
  const map = new Map<string, { spec: TargetSpec; scsi: FakeScsi }>();
  for (const t of targets) {
    const s = new FakeScsi();
    scsi.set(t.iqn, s);
    map.set(t.iqn, { spec: { iqn: t.iqn, luns: [{ lun: 0, size: s.disk.length }], chap: t.chap }, scsi: s });
  }
  const portal: Portal = { targets: map, sessions: new SessionTable() };
  return { portal, scsi };
}

export class Rig {
  readonly parser = new TargetParser();
  closedByTarget = 0;
  /** host.send calls. */
  sends = 0;
  readonly conn: IscsiConnection;
  now = 0;
  wire: WireOpts = {};
  cmdSN = 1000;
  itt = 1;
  readonly logs: string[] = [];
  /** What the fake transport reports as sent but not yet taken (ConnHost.backlog). */
  backlog = 0;

  constructor(readonly portal: Portal, opts: ConnOptions = {}, local = { address: '10.0.0.1', port: 3260 }) {
    this.conn = new IscsiConnection(portal, {
      send: (bufs) => { this.sends++; this.parser.push(bufs); },
      close: () => { this.closedByTarget++; },
      log: (m) => this.logs.push(m),
      backlog: () => this.backlog,
    }, local, this.now, { nopInterval: 0, initialStatSN: 5000, ...opts });
  }

  /** Sends raw bytes (one chunk). */
  raw(b: Uint8Array, hold?: Hold): void { this.conn.input(b, this.now, hold); }
  /** Sends a PDU, digests as negotiated. */
  send(h: Uint8Array, data?: Uint8Array, hold?: Hold): void { this.raw(encode(h, data, this.wire), hold); }
  take(): TPdu[] { return this.parser.take(); }
  one(): TPdu {
    const p = this.take();
    if (p.length !== 1) throw new Error(`expected one PDU, got ${p.length}: ${p.map((x) => x.op.toString(16)).join(',')}`);
    return p[0];
  }

  static loginBhs(flags: number, o: { isid?: Uint8Array; tsih?: number; itt?: number; cmdSN?: number; vmin?: number; cid?: number } = {}): Uint8Array {
    const h = bhs(0x03, flags, { imm: true, itt: o.itt ?? 0, cmdSN: o.cmdSN ?? 1000 });
    h[2] = 0; h[3] = o.vmin ?? 0;
    h.set(o.isid ?? Uint8Array.of(0x80, 0x12, 0x34, 0x56, 0x00, 0x01), 8);
    h[14] = (o.tsih ?? 0) >> 8; h[15] = (o.tsih ?? 0) & 0xff;
    h[20] = (o.cid ?? 1) >> 8; h[21] = (o.cid ?? 1) & 0xff;
    return h;
  }

  /** One Login Request; returns the response and its keys. */
  loginStep(flags: number, pairs: Array<[string, string]>, o: { isid?: Uint8Array; tsih?: number; vmin?: number } = {}): { rsp: TPdu; keys: Map<string, string>; status: number } {
    this.raw(encode(Rig.loginBhs(flags, { ...o, cmdSN: this.cmdSN, itt: 0x77 }), text(pairs)));
    const rsp = this.one();
    return { rsp, keys: parseKeys(rsp.data), status: (rsp.bhs[36] << 8) | rsp.bhs[37] };
  }

  /** A Normal login in one operational PDU (CSG=1, NSG=3, T=1), as libiscsi does without CHAP. */
  login(extra: Array<[string, string]> = [], o: { isid?: Uint8Array; target?: string } = {}): { rsp: TPdu; keys: Map<string, string>; status: number } {
    const base: Array<[string, string]> = [
      ['InitiatorName', INI], ['TargetName', o.target ?? IQN], ['SessionType', 'Normal'],
      ['HeaderDigest', 'None'], ['DataDigest', 'None'],
    ];
    // Each key once per login (RFC 7143 6.2): `extra` replaces a base key of the same name.
    const pairs = [...base.filter(([k]) => !extra.some(([e]) => e === k)), ...extra];
    const r = this.loginStep(0x87, pairs, o);
    if (r.status === 0) {
      this.wire = { hd: r.keys.get('HeaderDigest') === 'CRC32C', dd: r.keys.get('DataDigest') === 'CRC32C' };
      this.parser.hd = !!this.wire.hd;
      this.parser.dd = !!this.wire.dd;
    }
    return r;
  }

  /** A SCSI Command PDU (RFC 7143 11.3). */
  cmd(o: { cdb: Uint8Array; E: number; r?: boolean; w?: boolean; f?: boolean; imm?: boolean; itt?: number; cmdSN?: number; lun?: number; data?: Uint8Array }, hold?: Hold): number {
    const itt = o.itt ?? this.itt++;
    const sn = o.cmdSN ?? (o.imm ? this.cmdSN : this.cmdSN++);
    const h = bhs(0x01, ((o.f ?? true) ? 0x80 : 0) | (o.r ? 0x40 : 0) | (o.w ? 0x20 : 0) | 1, { imm: o.imm, itt, cmdSN: sn, lun: lunField(o.lun ?? 0) });
    p32(h, 20, o.E);
    h.set(o.cdb, 32);
    this.send(h, o.data, hold);
    return itt;
  }

  /** A SCSI Data-Out PDU (RFC 7143 11.7). */
  dataOut(itt: number, ttt: number, dataSN: number, off: number, data: Uint8Array, final: boolean, hold?: Hold): void {
    const h = bhs(0x05, final ? 0x80 : 0, { itt, ttt, lun: lunField(0) });
    p32(h, 24, 0);
    p32(h, 36, dataSN);
    p32(h, 40, off);
    this.send(h, data, hold);
  }

  /** A Task Management Function Request (RFC 7143 11.5), immediate; its response. */
  tmf(fn: number, o: { ref?: number; refCmdSN?: number; lun?: number; itt?: number } = {}): TPdu {
    this.sendTmf(fn, o);
    return this.one();
  }

  /** Sends a Task Management Function Request without waiting for its response. */
  sendTmf(fn: number, o: { ref?: number; refCmdSN?: number; lun?: number; itt?: number } = {}): void {
    const h = bhs(0x02, 0x80 | fn, { imm: true, itt: o.itt ?? 900, ttt: o.ref ?? 0xffffffff, cmdSN: this.cmdSN, lun: lunField(o.lun ?? 0) });
    p32(h, 32, o.refCmdSN ?? 0);
    this.send(h);
  }
}

/** Sense key / ASC / ASCQ of a SCSI Response data segment (SenseLength + fixed format sense). */
export function senseOf(p: TPdu): [number, number, number] {
  const len = (p.data[0] << 8) | p.data[1];
  const s = p.data.subarray(2, 2 + len);
  return [s[2] & 0x0f, s[12], s[13]];
}

export { u32 };
