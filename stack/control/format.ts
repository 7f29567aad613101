/**
 * The text views of `xdpstack show` (aligned tables, as `ip` and `ss` print theirs) for the data the
 * control socket answers: one place for the CLI and for programs that print a stack's state.
 */
/** A `{ total, reasons }` drops value (the one shape of drops in every view). */
export function isDrops(v: unknown): v is { total: number; reasons: Record<string, number> } {
  return typeof v === 'object' && v !== null && typeof (v as { total?: unknown }).total === 'number' &&
    typeof (v as { reasons?: unknown }).reasons === 'object' && (v as { reasons?: unknown }).reasons !== null;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  // Drops in a table: the total (the reasons have their own section, see dropReasonRows).
  if (isDrops(v)) return String(v.total);
  if (Array.isArray(v)) return v.length ? v.map(cell).join(',') : '-';
  if (typeof v === 'object') {
    const e = Object.entries(v as Record<string, unknown>);
    return e.length ? e.map(([k, x]) => `${k}=${cell(x)}`).join(' ') : '-';
  }
  return String(v);
}

/** Formats rows as aligned columns with a header (numbers right-aligned). */
export function formatTable(rows: Record<string, unknown>[], columns?: string[]): string[] {
  if (!rows.length) return ['(none)'];
  const cols = columns ?? Object.keys(rows[0]!);
  const text = rows.map((r) => cols.map((c) => cell(r[c])));
  const numeric = cols.map((c) => rows.every((r) => typeof r[c] === 'number' || isDrops(r[c]) || r[c] === null || r[c] === undefined));
  const w = cols.map((c, i) => Math.max(c.length, ...text.map((t) => t[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 && !numeric[i] ? v : numeric[i] ? v.padStart(w[i]!) : v.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...text.map(line)];
}

const POOL_COLUMNS = ['device', 'total', 'free', 'kernel', 'tx', 'held', 'queued'];

/** `show counters`: one row per (device, VS or link, reason) that dropped something; a driver's reasons as driver:REASON. */
function dropReasonRows(d: { devices: Record<string, unknown>[]; vs: Record<string, unknown>[]; links: Record<string, unknown>[] }): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const add = (where: string, v: unknown, prefix = '') => {
    if (!isDrops(v)) return;
    for (const [reason, count] of Object.entries(v.reasons)) rows.push({ where, reason: `${prefix}${reason}`, count });
  };
  for (const r of d.devices) { add(`device ${r.device}`, r.drops); add(`device ${r.device}`, r.driverDrops, 'driver:'); }
  for (const r of d.vs) add(`vs ${r.vs}`, r.drops);
  for (const r of d.links) add(`link ${r.vs}/${r.link}`, r.drops);
  return rows;
}

/** Columns of the TCP counters table (`show counters`), in the order of Linux's `Tcp:` and `TcpExt:` MIBs. */
const TCP_COUNTER_COLUMNS = ['activeOpens', 'passiveOpens', 'attemptFails', 'estabResets', 'currEstab', 'outRsts', 'inRsts',
  'retransSegs', 'timeouts', 'syncookiesSent', 'syncookiesRecv', 'syncookiesFailed', 'ofoQueue'];

/** The `ss -i` style line under a connection or listener row of `show connections` (empty for UDP). */
function connectionDetail(r: Record<string, unknown>): string {
  if (r.proto !== 'tcp') return '';
  if (r.state === 'LISTEN') {
    const x = [`synq:${r.synQueue}/${r.synQueueMax}`, `acceptq:${r.acceptQueue}/${r.acceptQueueMax}`];
    if (r.syncookiesSent) x.push(`syncookies_sent:${r.syncookiesSent}`);
    if (r.acceptOverflows) x.push(`overflows:${r.acceptOverflows}`);
    return x.join(' ');
  }
  const x: string[] = [];
  if (r.timestamps) x.push('ts');
  if (r.sack) x.push('sack');
  x.push(String(r.cc));
  if (r.sndWscale !== null) x.push(`wscale:${r.sndWscale},${r.rcvWscale}`);
  x.push(`rto:${r.rtoMs}`);
  if (r.backoff) x.push(`backoff:${r.backoff}`);
  if (r.rttMs !== null) x.push(`rtt:${r.rttMs}/${r.rttvarMs}`);
  x.push(`mss:${r.mss}`, `advmss:${r.advmss}`, `cwnd:${r.cwnd}`);
  if (r.ssthresh !== null) x.push(`ssthresh:${r.ssthresh}`);
  x.push(`bytes_sent:${r.bytesSent}`);
  if (r.bytesRetrans) x.push(`bytes_retrans:${r.bytesRetrans}`);
  x.push(`bytes_acked:${r.bytesAcked}`, `bytes_received:${r.bytesReceived}`, `segs_out:${r.segsOut}`, `segs_in:${r.segsIn}`);
  if (r.notsent) x.push(`notsent:${r.notsent}`);
  x.push(`snd_wnd:${r.sndWnd}`, `rcv_wnd:${r.rcvWnd}`);
  if (r.retrans) x.push(`retrans:${r.retrans}`);
  if (r.timeouts) x.push(`timeouts:${r.timeouts}`);
  return x.join(' ');
}

/** `show connections` as `ss -tuani` prints it: one line per socket, the TCP figures on the line under it. */
function formatConnections(rows: Record<string, unknown>[]): string[] {
  if (!rows.length) return ['(none)'];
  const sharded = rows.some((r) => typeof r.shard === 'number');
  const cols = [...(sharded ? ['shard'] : []), 'vs', 'proto', 'state', 'recv-q', 'send-q', 'local', 'remote'];
  const table = formatTable(rows.map((r) => ({ ...r, 'recv-q': r.recvQ, 'send-q': r.sendQ, remote: r.remote ?? '*:*' })), cols);
  const out = [table[0]!];
  rows.forEach((r, i) => {
    out.push(table[i + 1]!);
    const d = connectionDetail(r);
    if (d) out.push(`\t ${d}`);
  });
  return out;
}

/**
 * `show vips`: one row per virtual server; its load balancers' prefixes (none: nothing encapsulated
 * is taken), the overhead marked '(default)' when not configured, the decapsulation drops' total
 * and, under it, each reason that occurred.
 */
function formatVips(rows: Record<string, unknown>[]): string[] {
  const table = rows.map((r) => ({
    vs: r.vs, vips: r.vips, from: Array.isArray(r.from) && r.from.length === 0 ? 'none' : r.from,
    overhead: r.overheadDefault === true ? `${r.overhead} (default)` : r.overhead,
    decapsulated: r.decapsulated, refusedSource: r.refusedSource, refusedVip: r.refusedVip, drops: r.drops,
  }));
  const out = formatTable(table);
  const why: Record<string, unknown>[] = [];
  for (const r of rows) if (isDrops(r.drops)) for (const [reason, count] of Object.entries(r.drops.reasons)) why.push({ vs: r.vs, reason, count });
  if (why.length) out.push('', 'Drops by reason:', ...formatTable(why).map((l) => `  ${l}`));
  return out;
}

/** Readable text for `show KIND` data. */
export function formatShow(kind: string, data: unknown): string[] {
  if (kind === 'connections' && Array.isArray(data) && !(data.length && (data[0] as { data?: unknown }).data !== undefined)) {
    return formatConnections(data as Record<string, unknown>[]);
  }
  if (kind === 'counters') {
    const d = data as { devices: Record<string, unknown>[]; vs: Record<string, unknown>[]; links: Record<string, unknown>[]; pool?: Record<string, unknown>[]; shards?: Record<string, unknown>[] };
    const cols = ['rxPackets', 'rxBytes', 'txPackets', 'txBytes', 'drops'];
    const out: string[] = [];
    if (d.devices.length) out.push('Devices:', ...formatTable(d.devices, ['device', 'driver', 'state', 'losses', ...cols, 'driverDrops']).map((l) => `  ${l}`), '');
    out.push('Virtual servers:', ...formatTable(d.vs, ['vs', ...cols]).map((l) => `  ${l}`), '');
    out.push('Links:', ...formatTable(d.links, ['vs', 'link', ...cols]).map((l) => `  ${l}`));
    const tcp = d.vs.filter((r) => r.tcp).map((r) => ({ vs: r.vs, ...(r.tcp as Record<string, unknown>) }));
    if (tcp.length) out.push('', 'TCP:', ...formatTable(tcp, ['vs', ...TCP_COUNTER_COLUMNS]).map((l) => `  ${l}`));
    if (d.pool?.length) out.push('', 'Frame pool:', ...formatTable(d.pool, d.pool[0]!.shard !== undefined ? ['shard', ...POOL_COLUMNS] : POOL_COLUMNS).map((l) => `  ${l}`));
    const why = dropReasonRows(d);
    if (why.length) out.push('', 'Drops by reason:', ...formatTable(why).map((l) => `  ${l}`));
    if (d.shards?.length) {
      // Frames handed to another shard (its flow's owner) and taken from the others.
      const rows = d.shards.map((r) => ({ ...r, forwarded: (r.forwarded as number[]).reduce((a, b) => a + b, 0) }));
      out.push('', 'Shards:', ...formatTable(rows, ['shard', 'tcpConnections', 'passiveOpens', 'activeOpens', 'forwarded', 'forwardedIn', 'neighborShared', 'ringFull', 'heldBack']).map((l) => `  ${l}`));
    }
    return out;
  }
  if (Array.isArray(data) && data.length && (data[0] as { data?: unknown }).data !== undefined && typeof (data[0] as { shard?: unknown }).shard === 'number') {
    // Per shard (show --per-shard): each shard's own answer.
    return (data as { shard: number; data: unknown }[]).flatMap((p, i) => [...(i ? [''] : []), `Shard ${p.shard}:`, ...formatShow(kind, p.data).map((l) => `  ${l}`)]);
  }
  if (kind === 'pool') return formatTable(data as Record<string, unknown>[], POOL_COLUMNS);
  if (kind === 'vips') return formatVips(data as Record<string, unknown>[]);
  return formatTable(data as Record<string, unknown>[]);
}
