/**
 * What a stack (a single one, or a stack of shards in its main thread) keeps for its metrics: the
 * exposition, built on first use (a stack nobody scrapes never loads prom-client), and the HTTP
 * endpoints it serves, closed with the stack.
 */
import type { Logger } from './log';
import type { MetricsEndpoint, MetricsSnapshot, StackMetrics } from './metrics';

export class MetricsHost {
  private view: StackMetrics | null = null;
  private readonly endpoints = new Set<MetricsEndpoint>();

  /** `closed()` tells whether the stack has stopped; `closedError` is what a call then rejects with. */
  constructor(
    private readonly name: string,
    private readonly snapshot: () => MetricsSnapshot | Promise<MetricsSnapshot>,
    private readonly logger: Logger,
    private readonly closed: () => boolean,
    private readonly closedError: string,
  ) {}

  /** The Prometheus text exposition as of now. */
  text(): Promise<string> {
    return this.source().text();
  }

  private source(): StackMetrics {
    if (!this.view) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { StackMetrics: M } = require('./metrics') as typeof import('./metrics');
      this.view = new M(this.name, this.snapshot);
    }
    return this.view;
  }

  /** Serves the metrics over HTTP at `listen` ("127.0.0.1:9464", "[::1]:9464"), at /metrics. */
  async serve(listen: string | undefined): Promise<MetricsEndpoint> {
    if (this.closed()) throw new Error(this.closedError);
    if (listen === undefined) throw new Error(`metrics: no address to listen on (config 'metrics': { "listen": "127.0.0.1:9464" }, or serveMetrics(ADDRESS))`);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { MetricsEndpoint: E } = require('./metrics') as typeof import('./metrics');
    const ep = await E.listen(this.source(), listen);
    if (this.closed()) { await ep.close(); throw new Error(this.closedError); }
    this.endpoints.add(ep);
    this.logger.info('metrics.listen', { url: ep.url });
    return ep;
  }

  /** Closes every endpoint (the stack is closing). */
  close(): Promise<unknown> {
    const eps = [...this.endpoints];
    this.endpoints.clear();
    return Promise.allSettled(eps.map((ep) => ep.close()));
  }
}
