/** Paths the worker answers on WORKER_HEALTH_PORT (k8s probes and the Prometheus scrape). */
export const WORKER_HEALTH_PATHS = {
  live: '/health/live',
  ready: '/health/ready',
  health: '/health',
  metrics: '/metrics',
} as const;
