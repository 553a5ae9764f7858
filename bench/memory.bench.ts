import v8 from 'node:v8';
import vm from 'node:vm';
import { GpuService } from '@app/gpu';
import { createRedisClient, projectPartitionPrefix } from '@app/redis';
import { QueueName } from '@app/tasks';
import { TestService } from '../apps/api/test/support/service.harness';
import { closeService, type BenchPart, type BenchRow, fmt, sleep } from './common';

const COUNT = Number(process.env.BENCH_MEMORY_COUNT ?? 200);
const WARMUP = 10;
const SIZE = Number(process.env.BENCH_MEMORY_SIZE ?? 256);

/** A full GC (so RSS is compared at rest), without needing --expose-gc on the command line. */
function fullGc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** Worker RSS and tfjs tensor count before and after COUNT image tasks through the real service. */
export async function memoryBench(): Promise<BenchPart> {
  const svc = await new TestService({
    env: {
      WORKER_QUEUES: QueueName.GpuMedium,
      QUEUE_MAX_SIZE: '100000',
      // The per-key limit stays on (its Redis round trip is part of a submit), just never reached.
      RATE_LIMIT_SUBMIT: '1000000',
      LOG_LEVEL: 'warn',
    },
  }).start();
  const redis = createRedisClient(svc.config, 'bench');
  const prefix = svc.config.redis.prefix;
  const index = `${projectPartitionPrefix(prefix, 'bench_memory')}:tasks:by_project:bench_memory`;
  const gpu = svc.worker!.get(GpuService, { strict: false });
  let submitted = 0;
  const batch = async (n: number, timeoutMs: number) => {
    for (let i = 0; i < n; i++) {
      const res = await svc.http.post('/tasks/submit', {
        project_id: 'bench_memory',
        task_type: 'generate_image',
        task_data: {
          character_description: `Detective in 1920s noir style, take ${submitted}`,
          pose: 'standing_confident',
          lighting: 'dramatic_shadow',
          width: SIZE,
          height: SIZE,
          seed: submitted,
        },
      });
      if (res.status !== 201) throw new Error(`submit answered ${res.status}`);
      submitted++;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [done, failed] = await Promise.all([
        redis.zcard(`${index}:status:completed`),
        redis.zcard(`${index}:status:failed`),
      ]);
      if (failed > 0) throw new Error(`${failed} image task(s) failed`);
      if (done >= submitted) return;
      if (Date.now() > deadline) throw new Error(`image tasks: ${done}/${submitted} after timeout`);
      await sleep(100);
    }
  };
  const snapshot = async () => {
    await sleep(500); // let the last run's bookkeeping settle
    fullGc();
    return { rss: process.memoryUsage().rss, tensors: gpu.memory().numTensors };
  };
  try {
    await batch(WARMUP, 120_000);
    const before = await snapshot();
    const t0 = performance.now();
    await batch(COUNT, 420_000);
    const seconds = (performance.now() - t0) / 1000;
    const after = await snapshot();
    const growthMb = (after.rss - before.rss) / 2 ** 20;
    const mb = (b: number) => `${fmt(b / 2 ** 20, 0)} MB`;
    const rows: BenchRow[] = [
      {
        part: 'memory',
        metric: `${COUNT} image tasks ${SIZE}×${SIZE} (${gpu.backendName}), ${fmt(seconds, 1)} s`,
        value: `${fmt(COUNT / seconds)} tasks/s`,
      },
      {
        part: 'memory',
        metric: 'tfjs tensors before → after',
        value: `${before.tensors} → ${after.tensors}`,
        target: 'back to baseline',
        met: after.tensors <= before.tensors,
      },
      {
        part: 'memory',
        metric: 'RSS before → after (growth)',
        value: `${mb(before.rss)} → ${mb(after.rss)} (${growthMb >= 0 ? '+' : ''}${fmt(growthMb, 1)} MB)`,
        target: '< 50 MB',
        met: growthMb < 50,
      },
    ];
    return {
      rows,
      notes: [
        `memory: RSS of the one process running API + worker (so an upper bound of the worker's), after a full GC, measured after ${WARMUP} warm-up tasks and again after ${COUNT} more; ${SIZE}×${SIZE} JPEGs to keep the run short (BENCH_MEMORY_SIZE=1024 for default images).`,
      ],
    };
  } finally {
    redis.disconnect();
    await closeService(svc);
  }
}
