/**
 * One view of a group of shards: `show` answers of every shard merged into the answer a single
 * stack would give. Configuration (links, addresses, routes, rules) is the same in every shard;
 * what shards count on their own (packets, drops, TCP counters, sockets, connections, limits in use)
 * is summed; neighbor tables are joined; frame pools (one per shard and device) and the rows of
 * `show connections` are listed per shard (a `shard` field).
 */

type Row = Record<string, unknown>;

function isPlain(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Adds the numbers of `b` into `a`, recursing into plain objects (drop maps); other fields keep `a`'s. */
export function sumInto(a: Row, b: Row, keep: readonly string[] = []): Row {
  for (const [k, v] of Object.entries(b)) {
    if (keep.includes(k)) { if (!(k in a)) a[k] = v; continue; }
    const cur = a[k];
    if (typeof v === 'number') a[k] = (typeof cur === 'number' ? cur : 0) + v;
    else if (isPlain(v)) a[k] = sumInto(isPlain(cur) ? cur : {}, v);
    else if (!(k in a)) a[k] = v;
  }
  return a;
}

/** Rows of every part joined by `key`; rows with the same key summed (fields in `keep` are not). */
function sumRows(parts: Row[][], key: (r: Row) => string, keep: readonly string[]): Row[] {
  const out = new Map<string, Row>();
  for (const rows of parts) {
    for (const r of rows) {
      const k = key(r);
      const cur = out.get(k);
      if (cur) sumInto(cur, r, keep);
      else out.set(k, sumInto({}, r, keep));
    }
  }
  return [...out.values()];
}

/** Fields that identify or describe a row rather than count something. */
const VS_KEEP = ['name', 'id', 'links', 'addresses', 'routes'];
const DEVICE_KEEP = ['device', 'driver', 'state', 'xdp'];
const LIMIT_KEEP = ['vs', 'scope', 'limit'];

/** Merges the `show KIND` answers of every shard (in shard order) into one. */
export function mergeShow(kind: string, parts: unknown[]): unknown {
  // Connections live in the shard that owns their flow: every shard's rows, each with its shard.
  if (kind === 'connections') return (parts as Row[][]).flatMap((rows, shard) => rows.map((r) => ({ shard, ...r })));
  if (parts.length === 1) return parts[0];
  switch (kind) {
    case 'links':
    case 'addresses':
    case 'routes':
    case 'rules':
      return parts[0];
    case 'vs':
      return sumRows(parts as Row[][], (r) => String(r.name), VS_KEEP);
    case 'neighbors': {
      // A neighbor one shard resolved is known (shards share the answers); one still resolving
      // elsewhere shows the queue of the shard that has one.
      const out = new Map<string, Row>();
      for (const rows of parts as Row[][]) {
        for (const r of rows) {
          const k = `${r.vs}|${r.link}|${r.address}`;
          const cur = out.get(k);
          if (!cur) out.set(k, { ...r });
          else {
            if (cur.mac === null && r.mac !== null) { cur.mac = r.mac; cur.state = r.state; }
            cur.queued = Number(cur.queued) + Number(r.queued);
          }
        }
      }
      return [...out.values()];
    }
    case 'pool':
      return (parts as Row[][]).flatMap((rows, shard) => rows.map((r) => ({ shard, ...r })));
    case 'vips':
      return sumRows(parts as Row[][], (r) => String(r.vs), ['vs', 'vips', 'from', 'overhead', 'overheadDefault']);
    case 'limits':
      return sumRows(parts as Row[][], (r) => `${r.vs}|${r.scope}|${r.limit}`, LIMIT_KEEP);
    case 'counters': {
      const ps = parts as { devices: Row[]; vs: Row[]; links: Row[]; pool: Row[]; shards?: Row[] }[];
      return {
        devices: sumRows(ps.map((p) => p.devices), (r) => String(r.device), DEVICE_KEEP),
        vs: sumRows(ps.map((p) => p.vs), (r) => String(r.vs), ['vs']),
        links: sumRows(ps.map((p) => p.links), (r) => `${r.vs}|${r.link}`, ['vs', 'link']),
        pool: ps.flatMap((p, shard) => p.pool.map((r) => ({ shard, ...r }))),
        shards: ps.flatMap((p) => p.shards ?? []),
      };
    }
    default:
      return parts[0];
  }
}

/**
 * Merges the answers of every shard to a request all of them execute (control.ts
 * ALL_SHARD_REQUESTS): `counters.clear` clears the same tables in each (shard 0's answer says
 * which); `neighbor.flush` answers each entry once, however many shards had it.
 */
export function mergeAnswers(cmd: string, parts: unknown[]): unknown {
  if (cmd === 'neighbor.flush') {
    const seen = new Map<string, Row>();
    for (const p of parts as { flushed: Row[] }[]) {
      for (const r of p.flushed) {
        const k = `${r.vs}|${r.link}|${r.address}`;
        if (!seen.has(k)) seen.set(k, r);
      }
    }
    return { flushed: [...seen.values()] };
  }
  return parts[0];
}
