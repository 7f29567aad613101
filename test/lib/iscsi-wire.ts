/**
 * Test side of iSCSI: an initiator-side PDU encoder and a parser for what the target sends,
 * written from RFC 7143 section 11 independently of examples/iscsi/pdu.ts (only the CRC32C, which
 * has its own RFC test vectors, is shared), plus a small RAM-backed fake ScsiTarget.
 */
import { crc32c } from '../../examples/iscsi/crc32c';
import { ScsiCommand, ScsiResult, ScsiTarget } from '../../examples/iscsi/scsi/types';

export const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
export const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
export function p32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}
function le32(v: number): Uint8Array { return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24); }

export interface WireOpts { hd?: boolean; dd?: boolean }

/** Encodes one PDU: BHS (+ AHS) + header digest + data + zero padding + data digest (RFC 7143 11.2). */
export function encode(bhs: Uint8Array, data: Uint8Array = new Uint8Array(0), o: WireOpts = {}, ahs?: Uint8Array): Uint8Array {
  const h = new Uint8Array(48 + (ahs ? ahs.length : 0));
  h.set(bhs.subarray(0, 48));
  h[4] = ahs ? ahs.length / 4 : 0;
  h[5] = (data.length >>> 16) & 0xff; h[6] = (data.length >>> 8) & 0xff; h[7] = data.length & 0xff;
  if (ahs) h.set(ahs, 48);
  const parts: Uint8Array[] = [h];
  if (o.hd) parts.push(le32(crc32c(h)));
  if (data.length) {
    const pad = new Uint8Array((4 - (data.length % 4)) % 4);
    parts.push(data, pad);
    if (o.dd) parts.push(le32(crc32c(pad, crc32c(data))));
  }
  return Uint8Array.from(Buffer.concat(parts));
}

/** A BHS with opcode, flags and common fields. */
export function bhs(op: number, flags: number, f: { imm?: boolean; itt?: number; ttt?: number; cmdSN?: number; expStatSN?: number; lun?: Uint8Array } = {}): Uint8Array {
  const h = new Uint8Array(48);
  h[0] = op | (f.imm ? 0x40 : 0);
  h[1] = flags;
  if (f.lun) h.set(f.lun, 8);
  p32(h, 16, f.itt ?? 0);
  p32(h, 20, f.ttt ?? 0xffffffff);
  p32(h, 24, f.cmdSN ?? 0);
  p32(h, 28, f.expStatSN ?? 0);
  return h;
}

export const lunField = (n: number) => { const l = new Uint8Array(8); l[1] = n; return l; };

export function text(pairs: Array<[string, string]>): Uint8Array {
  return Uint8Array.from(Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join('')));
}
export function parseKeys(d: Uint8Array): Map<string, string> {
  const m = new Map<string, string>();
  for (const s of Buffer.from(d).toString('utf8').split('\0')) {
    if (!s) continue;
    const i = s.indexOf('=');
    m.set(s.slice(0, i), s.slice(i + 1));
  }
  return m;
}

export interface TPdu { bhs: Uint8Array; data: Uint8Array; op: number; flags: number; itt: number; ttt: number; statSN: number; expCmdSN: number; maxCmdSN: number }

/** Parses the target's output stream; throws on a bad digest or non-zero padding. */
export class TargetParser {
  private buf = Buffer.alloc(0);
  readonly pdus: TPdu[] = [];
  hd = false;
  dd = false;

  push(bufs: readonly Uint8Array[]): void {
    this.buf = Buffer.concat([this.buf, ...bufs.map((b) => Buffer.from(b.buffer, b.byteOffset, b.length))]);
    for (;;) {
      if (this.buf.length < 48) return;
      const dsl = (this.buf[5] << 16) | (this.buf[6] << 8) | this.buf[7];
      const ahs = this.buf[4] * 4;
      const hl = 48 + ahs + (this.hd ? 4 : 0);
      const pad = (4 - (dsl % 4)) % 4;
      const total = hl + dsl + pad + (this.dd && dsl ? 4 : 0);
      if (this.buf.length < total) return;
      const b = Uint8Array.from(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
      if (this.hd && crc32c(b, 0, 0, 48 + ahs) !== (b[48 + ahs] | (b[49 + ahs] << 8) | (b[50 + ahs] << 16) | (b[51 + ahs] << 24)) >>> 0) throw new Error('bad header digest from target');
      const data = b.subarray(hl, hl + dsl);
      for (let i = 0; i < pad; i++) if (b[hl + dsl + i] !== 0) throw new Error('non-zero padding from target');
      if (this.dd && dsl) {
        const o = hl + dsl + pad;
        if (crc32c(b, 0, hl, o) !== (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0) throw new Error('bad data digest from target');
      }
      const h = b.subarray(0, 48);
      this.pdus.push({ bhs: h, data, op: h[0] & 0x3f, flags: h[1], itt: u32(h, 16), ttt: u32(h, 20), statSN: u32(h, 24), expCmdSN: u32(h, 28), maxCmdSN: u32(h, 32) });
    }
  }

  /** PDUs received since the last take(). */
  take(): TPdu[] { return this.pdus.splice(0); }
  get pending(): number { return this.buf.length; }
}

/** A RAM LUN set: READ(10), WRITE(10), TEST UNIT READY, INQUIRY; anything else ILLEGAL REQUEST. */
export class FakeScsi implements ScsiTarget {
  readonly luns = [0];
  readonly block = 512;
  readonly disk: Uint8Array;
  readonly log: string[] = [];
  /** When set, completions wait here until released. */
  deferred: Array<() => void> | null = null;
  readonly commands: ScsiCommand[] = [];
  /** dataOut views seen (to check zero-copy). */
  readonly seenDataOut: Uint8Array[][] = [];

  constructor(blocks = 256) { this.disk = new Uint8Array(blocks * this.block); }

  execute(cmd: ScsiCommand, done: (r: ScsiResult) => void): void {
    this.commands.push(cmd);
    this.seenDataOut.push([...cmd.dataOut]);
    const r = this.run(cmd);
    if (this.deferred) this.deferred.push(() => done(r)); else done(r);
  }

  private sense(key: number, asc: number, ascq: number): ScsiResult {
    const s = new Uint8Array(18); s[0] = 0x70; s[2] = key; s[7] = 10; s[12] = asc; s[13] = ascq;
    return { status: 0x02, sense: s };
  }

  private run(cmd: ScsiCommand): ScsiResult {
    if (cmd.lun !== 0) return this.sense(0x05, 0x25, 0x00);
    const c = cmd.cdb;
    switch (c[0]) {
      case 0x00: return { status: 0 };
      case 0x12: {
        const d = new Uint8Array(36); d[2] = 6; d[3] = 2; d[4] = 31;
        d.set(Buffer.from('TESTVEND'), 8);
        const alloc = u16(c, 3);
        return { status: 0, dataIn: [d.subarray(0, Math.min(alloc, 36))] };
      }
      case 0x28: case 0x2a: {
        const lba = u32(c, 2);
        const n = u16(c, 7);
        if ((lba + n) * this.block > this.disk.length) return this.sense(0x05, 0x21, 0x00);
        const bytes = n * this.block;
        if (c[0] === 0x28) return { status: 0, dataIn: [this.disk.subarray(lba * this.block, lba * this.block + bytes)] };
        let off = lba * this.block;
        let left = Math.min(bytes, cmd.expectedLength);
        for (const d of cmd.dataOut) {
          const t = Math.min(left, d.length);
          this.disk.set(d.subarray(0, t), off);
          off += t; left -= t;
        }
        return { status: 0, transferLength: bytes };
      }
      default: return this.sense(0x05, 0x20, 0x00);
    }
  }

  lunReset(lun: number, nexus: string): void { this.log.push(`lunReset ${lun} ${nexus}`); }
  targetReset(nexus: string): void { this.log.push(`targetReset ${nexus}`); }
  nexusLost(nexus: string): void { this.log.push(`nexusLost ${nexus}`); }
  flush(): Promise<void> { return Promise.resolve(); }
  close(): void { /* nothing */ }
}

export function read10(lba: number, blocks: number): Uint8Array {
  const c = new Uint8Array(16); c[0] = 0x28; p32(c, 2, lba); c[7] = blocks >>> 8; c[8] = blocks & 0xff; return c;
}
export function write10(lba: number, blocks: number): Uint8Array {
  const c = read10(lba, blocks); c[0] = 0x2a; return c;
}
export function pattern(n: number, seed: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return p;
}
