import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PATH_METADATA } from '@nestjs/common/constants';
import { parse, parseAllDocuments } from 'yaml';
import { EnvSchema } from '@app/config';
import type { TaskQueueService } from '@app/tasks';
import { WORKER_HEALTH_PATHS } from '../../../worker/src/health/worker-health.paths';
import { SHUTDOWN_EXIT_MARGIN_MS } from '../../../worker/src/runtime/worker-shutdown.service';
import { ApiMetrics, QUEUE_STATES } from '../metrics/api-metrics.service';
import { METRICS_PATH } from '../metrics/api-metrics.module';
import { API_PREFIX } from '../setup-app';
import { HealthController } from './health.controller';

const ROOT = path.resolve(__dirname, '../../../..');
const DOCKER = path.join(ROOT, 'docker');
const read = (file: string) => readFileSync(path.join(DOCKER, file), 'utf8');
const version: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

type Manifest = { kind: string; metadata: { name: string }; spec: any; data?: any };

function manifests(): Manifest[] {
  const dir = path.join(DOCKER, 'k8s');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((doc) => {
        expect(doc.errors).toEqual([]);
        return doc.toJS() as Manifest;
      }),
    );
}

function find(kind: string, name: string): Manifest {
  const m = manifests().find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in docker/k8s`);
  return m;
}

/** The API's health routes as Nest will mount them, read from the controller's metadata. */
function apiHealthPath(method: 'live' | 'ready'): string {
  const base = Reflect.getMetadata(PATH_METADATA, HealthController) as string;
  const route = Reflect.getMetadata(PATH_METADATA, HealthController.prototype[method]) as string;
  return `/${API_PREFIX}/${base}/${route}`;
}

function containerPort(container: any, name: string): number {
  return container.ports.find((p: any) => p.name === name).containerPort;
}

function envValue(container: any, name: string): string | undefined {
  return container.env?.find((e: any) => e.name === name)?.value;
}

function dockerfile(app: 'api' | 'worker') {
  const text = read(`Dockerfile.${app}`);
  return {
    expose: Number(/^EXPOSE (\d+)/m.exec(text)?.[1]),
    cmd: /^CMD (.+)$/m.exec(text)?.[1] ?? '',
    healthcheck: /^HEALTHCHECK .+$/m.exec(text)?.[0] ?? '',
  };
}

describe('deployment files', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true });
  const defaults = new EnvSchema();

  it('parses every manifest', () => {
    const kinds = manifests().map((m) => `${m.kind}/${m.metadata.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Deployment/ams-api',
        'Service/ams-api',
        'PodDisruptionBudget/ams-api',
        'Deployment/ams-worker',
        'PodDisruptionBudget/ams-worker',
        'ScaledObject/ams-worker',
        'ConfigMap/ams-config',
      ]),
    );
  });

  it('probes the API on the routes and port it serves', () => {
    const container = find('Deployment', 'ams-api').spec.template.spec.containers[0];
    expect(container.livenessProbe.httpGet.path).toBe(apiHealthPath('live'));
    expect(container.readinessProbe.httpGet.path).toBe(apiHealthPath('ready'));
    expect(apiHealthPath('ready')).toBe('/api/v1/health/ready');
    const port = containerPort(container, container.readinessProbe.httpGet.port);
    expect(port).toBe(Number(envValue(container, 'API_PORT')));
    expect(port).toBe(defaults.API_PORT);
    expect(port).toBe(dockerfile('api').expose);
    expect(dockerfile('api').healthcheck).toContain(apiHealthPath('live'));
  });

  it('probes the worker on its health port, and asks for a GPU', () => {
    const container = find('Deployment', 'ams-worker').spec.template.spec.containers[0];
    expect(container.livenessProbe.httpGet.path).toBe(WORKER_HEALTH_PATHS.live);
    expect(container.startupProbe.httpGet.path).toBe(WORKER_HEALTH_PATHS.live);
    expect(container.readinessProbe.httpGet.path).toBe(WORKER_HEALTH_PATHS.ready);
    const port = containerPort(container, container.readinessProbe.httpGet.port);
    expect(port).toBe(Number(envValue(container, 'WORKER_HEALTH_PORT')));
    expect(port).toBe(defaults.WORKER_HEALTH_PORT);
    expect(port).toBe(dockerfile('worker').expose);
    expect(dockerfile('worker').healthcheck).toContain(WORKER_HEALTH_PATHS.live);
    expect(container.resources.requests['nvidia.com/gpu']).toBe(1);
    expect(container.resources.limits['nvidia.com/gpu']).toBe(1);
  });

  it('sets only variables the service reads, and lets a stopping worker hand its tasks back', () => {
    const known = new Set(Object.keys(new EnvSchema()).concat(['API_KEY', 'WORKER_ID']));
    const names = [
      ...Object.keys(find('ConfigMap', 'ams-config').data),
      ...['ams-api', 'ams-worker'].flatMap((app) =>
        find('Deployment', app).spec.template.spec.containers[0].env.map((e: any) => e.name),
      ),
      ...Object.keys(compose.services.api.environment),
      ...Object.keys(compose.services.worker.environment),
    ];
    expect(names.filter((n) => !known.has(n))).toEqual([]);
    expect(find('ConfigMap', 'ams-config').data.ALLOW_PRIVATE_URLS).toBe('false');
    // SIGKILL must not come before the grace period and the hand-back bound have passed.
    const worker = find('Deployment', 'ams-worker').spec.template.spec;
    const grace = Number(envValue(worker.containers[0], 'SHUTDOWN_GRACE'));
    expect(worker.terminationGracePeriodSeconds).toBeGreaterThan(
      grace + SHUTDOWN_EXIT_MARGIN_MS / 1000,
    );
  });

  it('selects the Deployments’ pods from Services and PodDisruptionBudgets', () => {
    for (const app of ['ams-api', 'ams-worker']) {
      const labels = find('Deployment', app).spec.template.metadata.labels;
      expect(labels).toMatchObject(find('PodDisruptionBudget', app).spec.selector.matchLabels);
    }
    expect(find('Deployment', 'ams-api').spec.template.metadata.labels).toMatchObject(
      find('Service', 'ams-api').spec.selector,
    );
  });

  it('runs the images compose builds from the Dockerfiles', () => {
    for (const app of ['api', 'worker'] as const) {
      const service = compose.services[app];
      expect(service.build.dockerfile).toBe(`docker/Dockerfile.${app}`);
      expect(service.image).toBe(`ai-movie-task-service-${app}:${version}`);
      const k8s = find('Deployment', `ams-${app}`).spec.template.spec.containers[0];
      expect(k8s.image).toBe(service.image);
      expect(dockerfile(app).cmd).toBe(`["node", "dist/apps/${app}/main.js"]`);
    }
  });

  it('runs Redis with AOF and noeviction, the worker with a GPU, MinIO and Prometheus', () => {
    const redis = compose.services.redis.command.join(' ');
    expect(redis).toContain('--appendonly yes');
    expect(redis).toContain('--maxmemory-policy noeviction');
    const devices = compose.services.worker.deploy.resources.reservations.devices;
    expect(devices).toEqual([expect.objectContaining({ driver: 'nvidia', capabilities: ['gpu'] })]);
    expect(compose.services.worker.environment).toMatchObject({
      STORAGE_DRIVER: 's3',
      R2_ENDPOINT: 'http://minio:9000',
      WORKER_HEALTH_PORT: '8002',
    });
    expect(compose.services.minio.image).toMatch(/^minio\/minio/);
    expect(compose.services.prometheus.volumes[0]).toMatch(/^\.\/prometheus\.yml:/);
  });

  it('scrapes /metrics where each app serves it', () => {
    const prometheus = parse(read('prometheus.yml'));
    const job = (name: string) => prometheus.scrape_configs.find((j: any) => j.job_name === name);
    expect(job('api')).toMatchObject({ metrics_path: METRICS_PATH });
    expect(job('api').static_configs[0].targets).toEqual([`api:${defaults.API_PORT}`]);
    expect(job('worker')).toMatchObject({ metrics_path: WORKER_HEALTH_PATHS.metrics });
    expect(job('worker').static_configs[0].targets).toEqual([
      `worker:${defaults.WORKER_HEALTH_PORT}`,
    ]);
  });

  it('scales workers on a queue_depth series the API exports, not on a Redis list', () => {
    const scaled = find('ScaledObject', 'ams-worker').spec;
    expect(scaled.scaleTargetRef.name).toBe('ams-worker');
    expect(scaled.triggers).toHaveLength(1);
    const [trigger] = scaled.triggers;
    expect(trigger.type).toBe('prometheus');
    const metrics = new ApiMetrics({} as TaskQueueService);
    const metric = /\b([a-z_]+)\{/.exec(trigger.metadata.query)?.[1];
    expect(metric).toBe('queue_depth');
    expect(metrics.registry.getSingleMetric(metric!)).toBeDefined();
    const states = /state=~"([^"]+)"/.exec(trigger.metadata.query)![1].split('|');
    for (const s of states) expect(QUEUE_STATES).toContain(s);
    expect(states).toContain('prioritized');
  });
});
