import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * A Prometheus registry of one app instance. Never prom-client's global registry: the API and a
 * worker may live in one process (npm start, e2e tests), and each must expose only its own series
 * without "metric already registered" clashes.
 */
export class AppMetricsRegistry extends Registry {
  constructor(app: string, defaultMetrics = true) {
    super();
    this.setDefaultLabels({ app });
    if (defaultMetrics) collectDefaultMetrics({ register: this });
  }
}
