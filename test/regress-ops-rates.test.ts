/**
 * `show counters --interval`: CurrEstab in each VS's TCP counters is a gauge (RFC 1213 tcpCurrEstab:
 * "the number of TCP connections for which the current state is either ESTABLISHED or
 * CLOSE-WAIT"), so a rates line shows it as it is, like the other gauges, not its change per second.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, createServer } from '../stack/api/net';
import { computeRates } from '../stack/cli/rates';
import { stackWorld } from './lib/stack-peer';

type Tcp = Record<string, number>;
interface CountersData { vs: { vs: string; tcp: Tcp }[] }

const ms = (n: number) => n * 1000;

test('show counters --interval: tcp.currEstab is the gauge, the other TCP counters are rates', async () => {
  const w = stackWorld();
  try {
    createServer(w.a.ctx(), (s) => s.resume()).listen(80);
    const open = (n: number) => Array.from({ length: n }, () => { const c = connect(w.b.ctx(), 80, '10.1.1.1'); c.resume(); return c; });
    const tcpOf = (d: unknown) => (d as CountersData).vs.find((r) => r.vs === 'a')!.tcp;
    open(2);
    assert.ok(await w.run(() => tcpOf(w.stack.show('counters')).currEstab === 2, ms(1000)));
    const prev = w.stack.show('counters');
    open(3);
    assert.ok(await w.run(() => tcpOf(w.stack.show('counters')).currEstab === 5, ms(1000)));
    const cur = w.stack.show('counters');
    const r = tcpOf(computeRates('counters', prev, cur, 2));
    assert.is(r.passiveOpens, 1.5, '3 passive opens in 2 s');
    assert.is(r.currEstab, 5, 'connections established now, not (5 - 2) / 2');
    // Fewer connections than before is not a counter reset either.
    const r2 = tcpOf(computeRates('counters', cur, prev, 2));
    assert.is(r2.currEstab, 2);
  } finally {
    w.stack.close();
  }
});

test.run();
