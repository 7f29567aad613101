/**
 * Child process for the kill -9 durability test (test/iscsi-scsi-file.test.ts): opens a file LUN,
 * issues WRITE(10)s of pattern data concurrently and prints "GOOD <i>" as each completes with GOOD
 * status; then idles until the parent kills it with SIGKILL.
 * argv: <file> <size> <writes> <blocks per write>
 */
import { createScsiTarget } from '../../examples/iscsi/scsi/target';
import { run, cdb, clearUa, pattern } from './scsi';

async function main(): Promise<void> {
  const [file, size, writes, per] = process.argv.slice(2);
  const t = createScsiTarget({ iqn: 'iqn.2024-01.org.example:kill', luns: [{ lun: 0, size: Number(size), file }] });
  await clearUa(t);
  const n = Number(writes), k = Number(per);
  for (let i = 0; i < n; i++) {
    void run(t, { cdb: cdb.write10(i * k, k), data: pattern(k * 512, i + 1) }).then((r) => {
      if (r.status === 0) process.stdout.write(`GOOD ${i}\n`);
    });
  }
  // Stay alive (bounded: the parent kills within seconds; give up after 20 s anyway).
  setTimeout(() => process.exit(3), 20_000);
}

void main();
