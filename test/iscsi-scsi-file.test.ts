/**
 * SCSI layer of the iSCSI target over the file backend: the LUN is a sparse file, data survives
 * close and reopen, an acknowledged write survives a kill -9 of the process (it is in the
 * kernel's page cache when GOOD is sent), UNMAP reads back zeros, FUA and SYNCHRONIZE CACHE
 * complete, COMPARE AND WRITE waits for the writes before it, and a closed target answers NOT READY.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { ScsiStatus, TaskAttr } from '../examples/iscsi/scsi/types';
import { run, data, parseSense, cdb, clearUa, pattern, unmapList } from './lib/scsi';

const BS = 512;
const SIZE = 16 << 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scsi-file-'));
let n = 0;
const fresh = () => path.join(dir, `lun${n++}.img`);

async function open(file: string, size = SIZE) {
  const t = createScsiTarget({ iqn: 'iqn.2024-01.org.example:file', luns: [{ lun: 0, size, file }] });
  await clearUa(t);
  return t;
}

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a new LUN file is created sparse with the LUN size; a larger existing file keeps its size', async () => {
  const f = fresh();
  const t = await open(f);
  const st = fs.statSync(f);
  assert.is(st.size, SIZE);
  assert.ok(st.blocks * 512 < SIZE / 4, `sparse: ${st.blocks * 512} bytes allocated`);
  t.close();
  const big = fresh();
  fs.writeFileSync(big, '');
  fs.truncateSync(big, SIZE * 2);
  const t2 = await open(big);
  assert.is(fs.statSync(big).size, SIZE * 2);
  const rc = data(await run(t2, { cdb: cdb.readCapacity10() }));
  assert.is(rc.readUInt32BE(0), SIZE / BS - 1, 'capacity from the spec');
  t2.close();
});

test('data written is read back, and again after close and reopen', async () => {
  const f = fresh();
  const t = await open(f);
  const p = pattern(64 * BS, 11);
  assert.is((await run(t, { cdb: cdb.write16(1000, 64), data: p, split: 1448 })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.write10(SIZE / BS - 1, 1, 0x08), data: p.subarray(0, BS) })).status, ScsiStatus.Good, 'FUA');
  assert.equal(data(await run(t, { cdb: cdb.read16(1000, 64) })), Buffer.from(p));
  await t.flush();
  t.close();
  const t2 = await open(f);
  assert.equal(data(await run(t2, { cdb: cdb.read16(1000, 64) })), Buffer.from(p));
  assert.equal(data(await run(t2, { cdb: cdb.read10(SIZE / BS - 1, 1, 0x08) })), Buffer.from(p.subarray(0, BS)), 'FUA read');
  const onDisk = fs.readFileSync(f).subarray(1000 * BS, 1064 * BS);
  assert.equal(onDisk, Buffer.from(p), 'the bytes are in the file at LBA * 512');
  t2.close();
});

test('an acknowledged write survives kill -9 of the target process', async () => {
  const f = fresh();
  const child = spawn(process.execPath, [path.join(__dirname, 'lib', 'scsi-kill-child.js'), f, String(SIZE), '32', '16'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Set<number>();
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('child too slow')); }, 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = /^GOOD (\d+)$/.exec(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (m) acked.add(Number(m[1]));
        // Kill right after the first acknowledgements: later writes may still be in flight.
        if (acked.size >= 8 && !child.killed) child.kill('SIGKILL');
      }
    });
    child.on('exit', (_code, signal) => { clearTimeout(timer); signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited ${_code}`)); });
  });
  assert.ok(acked.size >= 8, `${acked.size} writes acknowledged before the kill`);
  const img = fs.readFileSync(f);
  for (const i of acked) {
    assert.equal(img.subarray(i * 16 * BS, (i + 1) * 16 * BS), Buffer.from(pattern(16 * BS, i + 1)), `write ${i}`);
  }
});

test('UNMAP and WRITE SAME(UNMAP) on a file read back zeros; GET LBA STATUS reports them deallocated', async () => {
  const f = fresh();
  const t = await open(f);
  await run(t, { cdb: cdb.write10(0, 32), data: new Uint8Array(32 * BS).fill(0xee) });
  const l = unmapList([[4, 8]]);
  assert.is((await run(t, { cdb: cdb.unmap(l.length), data: l })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.writeSame16(20, 4, 0x08), data: new Uint8Array(BS) })).status, ScsiStatus.Good);
  const back = data(await run(t, { cdb: cdb.read10(0, 32) }));
  const zeroAt = (a: number, b: number) => back.subarray(a * BS, b * BS).every((x) => x === 0);
  const eeAt = (a: number, b: number) => back.subarray(a * BS, b * BS).every((x) => x === 0xee);
  assert.ok(eeAt(0, 4) && zeroAt(4, 12) && eeAt(12, 20) && zeroAt(20, 24) && eeAt(24, 32));
  const st = data(await run(t, { cdb: cdb.getLbaStatus(4, 64) }));
  assert.equal([Number(st.readBigUInt64BE(8)), st.readUInt32BE(16), st[20] & 0xf], [4, 8, 1]);
  t.close();
});

test('SYNCHRONIZE CACHE, PRE-FETCH (CONDITION MET once read into the page cache) and write-through on a file', async () => {
  const f = fresh();
  const t = await open(f);
  await run(t, { cdb: cdb.write10(0, 8), data: new Uint8Array(8 * BS).fill(1) });
  assert.is((await run(t, { cdb: cdb.syncCache10(0, 0) })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.syncCache16(0, 8, 0x02) })).status, ScsiStatus.Good, 'IMMED');
  assert.is((await run(t, { cdb: cdb.preFetch10(0, 8) })).status, ScsiStatus.ConditionMet);
  await t.flush();
  t.close();
});

test('COMPARE AND WRITE runs after the writes before it (and ORDERED tasks wait for earlier ones)', async () => {
  const f = fresh();
  const t = await open(f);
  const a = new Uint8Array(4 * BS).fill(0x41);
  const w = run(t, { cdb: cdb.write10(100, 4), data: a });
  const buf = new Uint8Array(8 * BS);
  buf.fill(0x41, 0, 4 * BS);
  buf.fill(0x42, 4 * BS);
  const caw = run(t, { cdb: cdb.compareAndWrite(100, 4), data: buf });
  const ordered = run(t, { cdb: cdb.read10(100, 4), attr: TaskAttr.Ordered });
  const [rw, rc, ro] = await Promise.all([w, caw, ordered]);
  assert.is(rw.status, ScsiStatus.Good);
  assert.is(rc.status, ScsiStatus.Good, 'the compare saw the write');
  assert.ok(data(ro).every((x) => x === 0x42), 'the ORDERED read saw the COMPARE AND WRITE');
  t.close();
});

test('a closed target answers NOT READY and closes the file once in-flight I/O ends', async () => {
  const f = fresh();
  const t = await open(f);
  const pending = run(t, { cdb: cdb.write10(0, 8), data: new Uint8Array(8 * BS).fill(9) });
  t.close();
  assert.is((await pending).status, ScsiStatus.Good, 'the write already started completes');
  const r = await run(t, { cdb: cdb.read10(0, 1) });
  assert.is(r.status, ScsiStatus.CheckCondition);
  const s = parseSense(r.sense);
  assert.equal([s.key, s.asc], [0x2, 0x04]);
  assert.ok(fs.readFileSync(f).subarray(0, 8 * BS).every((x) => x === 9));
});

test('growing a file LUN extends the file sparsely; the old data stays', async () => {
  const f = fresh();
  const t = await open(f, 1 << 20);
  const p = pattern(BS, 41);
  await run(t, { cdb: cdb.write10(2047, 1), data: p });
  t.resize(0, 4 << 20);
  assert.is(fs.statSync(f).size, 4 << 20);
  await clearUa(t);
  assert.equal(data(await run(t, { cdb: cdb.read10(2047, 1) })), Buffer.from(p));
  assert.ok(data(await run(t, { cdb: cdb.read10(2048, 8) })).every((b) => b === 0));
  assert.is((await run(t, { cdb: cdb.write10(8191, 1), data: p })).status, ScsiStatus.Good);
  t.close();
});

test.run();
