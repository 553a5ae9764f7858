import { AppConfig } from '@app/config';
import { SlotRecordingRedis } from '@app/testing';
import { WorkerStatusRepository, type WorkerBeat } from './worker-status.repository';

/** A beat (one script), a removal (MULTI) and a listing (pipeline) each stay in one cluster slot. */
describe('worker records on Redis Cluster', () => {
  it('keep a worker hash and the worker index in one slot', async () => {
    const fake = new SlotRecordingRedis({ multi: [], pipeline: {} });
    const repo = new WorkerStatusRepository(
      fake.asRedis(),
      AppConfig.fromEnv({ API_KEYS: 'k', REDIS_PREFIX: 'ams' }),
    );
    (fake as unknown as { zrevrangebyscore: () => Promise<string[]> }).zrevrangebyscore = () =>
      Promise.resolve(['w1', 'gpu-box-7', 'w3']);
    const beat = {
      worker_id: 'gpu-box-7',
      worker_type: ['gpu_heavy'],
      status: 'idle',
      current_task_id: null,
      current_task_ids: [],
      gpu_utilization: 0,
      memory_usage: 0,
      tasks_completed: 0,
      last_heartbeat: new Date().toISOString(),
      backend: 'wasm',
      device: 'cpu',
      gpus: [],
      heartbeat_interval: 10,
      started_at: new Date().toISOString(),
      models: [],
    } satisfies WorkerBeat;
    await repo.beat(beat);
    await repo.beat({ ...beat, worker_id: 'w1' });
    await repo.remove('w3');
    await repo.list();
    expect(fake.calls.map((c) => c.name)).toEqual([
      'workerBeat',
      'workerBeat',
      'multi',
      'pipeline',
    ]);
    expect(fake.crossSlot()).toEqual([]);
  });
});
