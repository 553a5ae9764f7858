import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, Worker, type JobsOptions } from 'bullmq';
import { projectPartitionPrefix } from '@app/redis';
import { QueueName, toBullPriority } from '@app/tasks';
import { PrivateRedisServer, TEST_API_KEY } from '@app/testing';
import { TestService } from '../apps/api/test/support/service.harness';
import { TaskEvents } from '../apps/worker/src/runtime/task-events';
import { closeService, type BenchPart, type BenchRow, fmt, runConcurrent, sleep } from './common';
import { CountingRedisProxy } from './counting-redis.proxy';
import { RedisWritesHook } from './redis-writes.hook';
import { LoadClient } from './load-client';
import { BENCH_NOOP_PROGRESS_NOTE, BENCH_NOOP_TASK, BenchNoopModule } from './noop.task';
import { JOB_OPTS } from './overhead.bench';
import { ScriptNames, STAGES, type KeyRoles, type Stage } from './redis-cost.stages';
import {
  byStage,
  labelOf,
  stageOf,
  perTask,
  total,
  TrafficRecorder,
  windowOf,
  type TrafficWindow,
} from './redis-traffic.recorder';

// Every client made from here on registers its scripts' names (EVALSHA carries only a hash).
ScriptNames.install();

/** The one project of our tasks (its partition holds their keys and their outbox stream). */
const PROJECT = 'bench_cost';
const TASKS = Number(process.env.BENCH_REDIS_COST_TASKS ?? 1000);
const WARMUP_TASKS = 20;
const SEQUENTIAL_TASKS = 200;
/** Pause after each task of the one-at-a-time run. */
const SEQUENTIAL_GAP_MS = 20;
const PROGRESS_TASKS = 200;
/** HTTP submits (ours) or Queue.add calls (plain) in flight. */
const SUBMIT_CONCURRENCY = 8;
/** Jobs a worker runs at once, ours and plain alike. */
const WORKER_CONCURRENCY = 8;
/**
 * The quiet window that measures the idle timers: 30 s is a whole number of periods of every
 * one of them (relay sweep 5 s, relay claim 10 s, heartbeat 10 s, reconciler 15 s, BullMQ's
 * 5 s blocking wait and 30 s stalled check), so each is counted a whole number of times.
 */
const IDLE_MS = Number(process.env.BENCH_REDIS_COST_IDLE_MS ?? 30_000);

/** One side of the comparison: something that turns submits into completed jobs. */
interface CostSubject extends KeyRoles {
  readonly name: string;
  /** Tasks carry a callback_url: their webhook is relayed and delivered too. */
  readonly webhooks: boolean;
  start(redisUrl: string): Promise<void>;
  submit(note?: string): Promise<void>;
  /** Throws unless every submitted task completed (and, with webhooks, was delivered). */
  check(): void;
  stop(): Promise<void>;
}

/** Our service: the API (HTTP submit) and a worker in this process, like the overhead bench. */
class OurService implements CostSubject {
  private svc?: TestService;
  private client?: LoadClient;
  private receiver?: http.Server;
  private body: (note?: string) => string = () => '';
  private submitted = 0;
  private completed = 0;
  private failed = 0;
  private delivered = 0;

  constructor(
    readonly name: string,
    readonly webhooks: boolean,
  ) {}

  queueOf(key: string): 'tasks' | 'webhooks' | undefined {
    if (key.includes(':bull:{webhooks}')) return 'webhooks';
    return key.includes(':bull:{') ? 'tasks' : undefined;
  }

  inTaskPartition(key: string): boolean {
    return (
      !!this.svc &&
      key.startsWith(`${projectPartitionPrefix(this.svc.config.redis.prefix, PROJECT)}:`)
    );
  }

  async start(redisUrl: string): Promise<void> {
    let callbackUrl: string | undefined;
    if (this.webhooks) {
      const receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          this.delivered += 1;
          res.writeHead(200).end('ok');
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      this.receiver = receiver;
      callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    }
    const svc = await new TestService({
      env: {
        REDIS_URL: redisUrl,
        WORKER_QUEUES: QueueName.CpuIntensive,
        WORKER_CONCURRENCY_CPU_INTENSIVE: String(WORKER_CONCURRENCY),
        QUEUE_MAX_SIZE: '10000000',
        // The per-key limit stays on (its script is part of a submit), never reached.
        RATE_LIMIT_SUBMIT: '1000000',
        // The deployment's default (test configs beat every second).
        WORKER_HEARTBEAT_INTERVAL: '10',
        LOG_LEVEL: 'warn',
      },
      extraDefinitions: [BENCH_NOOP_TASK],
      extraWorkerModules: [BenchNoopModule],
    }).start();
    this.svc = svc;
    svc.worker!.get(TaskEvents).on((event) => {
      if (event.type === 'completed') this.completed += 1;
      else if (event.type !== 'started') this.failed += 1;
    });
    this.client = new LoadClient(
      `${svc.http.baseUrl}/tasks/submit`,
      { 'x-api-key': TEST_API_KEY },
      SUBMIT_CONCURRENCY,
    );
    this.body = (note) =>
      JSON.stringify({
        project_id: PROJECT,
        task_type: BENCH_NOOP_TASK.type,
        task_data: note ? { note } : {},
        ...(callbackUrl ? { callback_url: callbackUrl } : {}),
      });
  }

  async submit(note?: string): Promise<void> {
    this.submitted += 1;
    const res = await this.client!.post(this.body(note));
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${res.body}`);
  }

  check(): void {
    if (this.failed > 0 || this.completed !== this.submitted) {
      throw new Error(
        `${this.name}: ${this.completed} of ${this.submitted} completed, ${this.failed} other ends`,
      );
    }
    if (this.webhooks && this.delivered !== this.submitted) {
      throw new Error(`${this.name}: ${this.delivered} of ${this.submitted} webhooks delivered`);
    }
  }

  async stop(): Promise<void> {
    this.client?.close();
    if (this.svc) await closeService(this.svc);
    await new Promise<void>((resolve) =>
      this.receiver ? this.receiver.close(() => resolve()) : resolve(),
    );
  }
}

/** Plain BullMQ: Queue.add and a no-op Worker, as in the overhead bench. */
class PlainBullmq implements CostSubject {
  readonly webhooks = false;
  private readonly prefix = `bench-plain-${randomBytes(4).toString('hex')}`;
  private queue?: Queue;
  private worker?: Worker;
  private submitted = 0;
  private completed = 0;
  private failed = 0;

  constructor(
    readonly name: string,
    private readonly opts: JobsOptions,
  ) {}

  queueOf(key: string): 'tasks' | undefined {
    return key.startsWith(`${this.prefix}:noop:`) ? 'tasks' : undefined;
  }

  inTaskPartition(): boolean {
    return false;
  }

  async start(redisUrl: string): Promise<void> {
    this.queue = new Queue('noop', { connection: { url: redisUrl }, prefix: this.prefix });
    this.worker = new Worker('noop', () => Promise.resolve({}), {
      connection: { url: redisUrl, maxRetriesPerRequest: null },
      prefix: this.prefix,
      concurrency: WORKER_CONCURRENCY,
    });
    this.worker.on('completed', () => (this.completed += 1));
    this.worker.on('failed', () => (this.failed += 1));
    await this.worker.waitUntilReady();
    await this.queue.waitUntilReady();
  }

  async submit(): Promise<void> {
    await this.queue!.add('noop', { i: this.submitted++ }, this.opts);
  }

  check(): void {
    if (this.failed > 0 || this.completed !== this.submitted) {
      throw new Error(`${this.name}: ${this.completed} of ${this.submitted} completed`);
    }
  }

  async stop(): Promise<void> {
    await this.worker?.close();
    await this.queue?.close();
  }
}

interface Measured {
  subject: CostSubject;
  idle: TrafficWindow;
  run: TrafficWindow;
  /** The run per task, idle timers taken out. */
  task: TrafficWindow;
  /** One task at a time (each submitted when the previous one finished), per task. */
  sequential: TrafficWindow;
  /** Tasks that report progress once, per task (ours without callback only). */
  progress?: TrafficWindow;
}

/**
 * Submits `count` tasks and waits until their jobs (and webhook jobs) have finished: SUBMIT_
 * CONCURRENCY in flight, or `oneByOne`, each submitted when the previous one has finished.
 */
async function batch(
  subject: CostSubject,
  recorder: TrafficRecorder,
  count: number,
  { note, oneByOne = false }: { note?: string; oneByOne?: boolean } = {},
): Promise<void> {
  const finished = () => recorder.scriptRuns('complete', 'moveToFinished');
  const delivered = () => recorder.scriptRuns('webhook delivery', 'moveToFinished');
  const [jobs0, hooks0] = [finished(), delivered()];
  const until = async (n: number) => {
    const deadline = Date.now() + 180_000;
    while (finished() < jobs0 + n || (subject.webhooks && delivered() < hooks0 + n)) {
      if (Date.now() > deadline) throw new Error(`${subject.name}: jobs did not finish`);
      await sleep(1);
    }
  };
  if (oneByOne) {
    for (let i = 1; i <= count; i++) {
      await subject.submit(note);
      await until(i);
      // Into an idle queue, as when tasks come apart (with no gap, plain BullMQ's worker would
      // still be fetching when the next job comes, and save a blocking wait that ours cannot).
      await sleep(SEQUENTIAL_GAP_MS);
    }
  } else {
    await runConcurrent(count, SUBMIT_CONCURRENCY, () => subject.submit(note));
    await until(count);
  }
  // The last replies, the trailing heartbeat of the last run.
  await recorder.quiet(1000);
}

/**
 * On a redis-server of its own, behind the counting proxy: boot, warm-up (scripts loaded, the
 * relay's groups made), a quiet window for the idle timers, TASKS tasks, then SEQUENTIAL_TASKS
 * one at a time (and, `withProgress`, PROGRESS_TASKS that report progress once).
 */
async function measure(subject: CostSubject, withProgress = false): Promise<Measured> {
  const server = new PrivateRedisServer();
  await server.start();
  const recorder = new TrafficRecorder(subject);
  const proxy = new CountingRedisProxy({ host: '127.0.0.1', port: server.port }, recorder);
  await proxy.start();
  RedisWritesHook.watch({ port: proxy.port, onWrite: recorder.requestWrite });
  try {
    await recorder.open(server.url);
    await subject.start(proxy.url);
    await batch(subject, recorder, WARMUP_TASKS);
    await recorder.quiet(2000);
    const m0 = await recorder.mark();
    await sleep(IDLE_MS);
    const m1 = await recorder.mark();
    await batch(subject, recorder, TASKS);
    const m2 = await recorder.mark();
    await batch(subject, recorder, SEQUENTIAL_TASKS, { oneByOne: true });
    const m3 = await recorder.mark();
    const idle = windowOf(m0, m1);
    const run = windowOf(m1, m2);
    let progress: TrafficWindow | undefined;
    if (withProgress) {
      await batch(subject, recorder, PROGRESS_TASKS, { note: BENCH_NOOP_PROGRESS_NOTE });
      progress = perTask(windowOf(m3, await recorder.mark()), idle, PROGRESS_TASKS);
    }
    subject.check();
    return {
      subject,
      idle,
      run,
      task: perTask(run, idle, TASKS),
      sequential: perTask(windowOf(m2, m3), idle, SEQUENTIAL_TASKS),
      progress,
    };
  } finally {
    await subject.stop();
    RedisWritesHook.watch(undefined);
    await recorder.close();
    await proxy.stop();
    await server.stop();
  }
}

/** Commands Redis executed (commandstats), commands sent and round trips: one figure each. */
function triple(w: TrafficWindow, digits = 1): string {
  return `${fmt(total(w.stats), digits)} executed / ${fmt(total(w.sent), digits)} sent / ${fmt(total(w.writes), digits)} round trips`;
}

/** A stage's executed (MONITOR) / sent / round trips, per task. */
function stageTriple(w: TrafficWindow, stage: Stage): string {
  const e = byStage(w.executed).get(stage) ?? 0;
  const s = byStage(w.sent).get(stage) ?? 0;
  const r = w.writes.get(stage) ?? 0;
  return `${fmt(e, 1)} / ${fmt(s)} / ${fmt(r)}`;
}

function top(map: Map<string, number>, n: number, name: (k: string) => string, digits = 2): string {
  return [...map]
    .filter(([, v]) => v >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${name(k)} ${fmt(v, digits)}`)
    .join(', ');
}

const ratio = (a: number, b: number) => `${fmt(a / b)}×`;

/** A label with its stage when the label alone is ambiguous (BullMQ scripts of both queues). */
const labelWithStage = (key: string) =>
  /moveTo|add\w*Job/.test(labelOf(key)) ? `${labelOf(key)} [${stageOf(key)}]` : labelOf(key);

/** Each script's executed commands (itself and what it runs) per run, over a whole run window. */
function perRun(w: TrafficWindow): string {
  return [...w.sent]
    .filter(([k, n]) => labelOf(k).startsWith('evalsha ') && n >= 10)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([k, n]) =>
        `${labelWithStage(k).slice('evalsha '.length)} ${fmt((w.executed.get(k) ?? 0) / n, 1)}`,
    )
    .join(', ');
}

/** Per second of a window, by label. */
function rates(w: TrafficWindow): Map<string, number> {
  return new Map([...w.sent].map(([k, v]) => [k, v / w.seconds]));
}

/** Redis commands and round trips per task, ours against plain BullMQ (issue 15). */
export async function redisCostBench(): Promise<BenchPart> {
  const plain = await measure(new PlainBullmq('plain BullMQ', JOB_OPTS));
  const plainPrio = await measure(
    new PlainBullmq('plain BullMQ, prioritized', { ...JOB_OPTS, priority: toBullPriority(2) }),
  );
  const bare = await measure(new OurService('ours, no callback', false), true);
  const hooks = await measure(new OurService('ours, with callback', true));

  const rows: BenchRow[] = [];
  const row = (metric: string, value: string, target?: string, met?: boolean) =>
    rows.push({ part: 'redis-cost', metric, value, target, met });
  const versus = (m: Measured, w: (x: Measured) => TrafficWindow, how: string) => {
    const [t, p, pp] = [w(m), w(plain), w(plainPrio)];
    const r = total(t.stats) / total(p.stats);
    row(
      `${m.subject.name} ÷ plain BullMQ, commands executed per task (${how})`,
      `${fmt(r)}× (÷ prioritized plain ${ratio(total(t.stats), total(pp.stats))}; sent ${ratio(total(t.sent), total(p.sent))}, round trips ${ratio(total(t.writes), total(p.writes))})`,
      '≤ 2×',
      r <= 2,
    );
  };
  const main = `${TASKS}, ${SUBMIT_CONCURRENCY} in flight`;
  const seq = `${SEQUENTIAL_TASKS} one at a time`;
  for (const m of [plain, plainPrio, bare, hooks]) {
    row(`${m.subject.name}, per task (${main})`, triple(m.task));
  }
  versus(bare, (m) => m.task, main);
  versus(hooks, (m) => m.task, main);
  for (const m of [plain, plainPrio, bare, hooks]) {
    row(`${m.subject.name}, per task (${seq})`, triple(m.sequential));
  }
  versus(bare, (m) => m.sequential, seq);
  versus(hooks, (m) => m.sequential, seq);
  const shown: readonly Stage[] = [
    'submit',
    'claim',
    'complete',
    'webhook relay',
    'webhook delivery',
    'heartbeats',
    'background',
  ];
  for (const stage of STAGES) {
    // Progress has a row of its own (a no-op reports none); timers are left out of per task.
    const stray = [bare, hooks, plain].some(
      (m) => Math.abs(byStage(m.task.executed).get(stage) ?? 0) >= 0.05,
    );
    if (!shown.includes(stage) && !(stray && stage !== 'progress' && stage !== 'timers')) continue;
    for (const [how, w] of [
      [main, (m: Measured) => m.task],
      [seq, (m: Measured) => m.sequential],
    ] as const) {
      row(
        `per task, ${stage} (${how}): executed / sent / round trips`,
        `ours ${stageTriple(w(bare), stage)}; with callback ${stageTriple(w(hooks), stage)}; plain ${stageTriple(w(plain), stage)}`,
      );
    }
  }
  row(
    'one progress report (REPORT_PROGRESS): executed / sent / round trips',
    bare.progress ? stageTriple(bare.progress, 'progress') : 'n/a',
  );
  for (const m of [hooks, plainPrio]) {
    row(`${m.subject.name}: commands executed per script run`, perRun(m.run));
  }
  for (const m of [hooks, plain]) {
    row(
      `${m.subject.name}: top commands sent per task (${main})`,
      top(m.task.sent, 12, labelWithStage),
    );
    row(
      `${m.subject.name}: top commands sent per task (${seq})`,
      top(m.sequential.sent, 14, labelWithStage),
    );
    row(
      `${m.subject.name}: top commands executed per task (commandstats, ${main})`,
      top(m.task.stats, 12, (k) => k),
    );
  }
  const idleRate = (m: Measured) =>
    `${fmt(total(m.idle.stats) / m.idle.seconds)} executed/s, ${fmt(total(m.idle.sent) / m.idle.seconds)} sent/s, ${fmt(total(m.idle.writes) / m.idle.seconds)} round trips/s`;
  row('idle service, ours with callback (not in the per-task figures)', idleRate(hooks));
  row(
    'idle service, ours with callback: sent/s by command',
    top(rates(hooks.idle), 9, (k) => `${labelOf(k)} [${stageOf(k)}]`),
  );
  row('idle, plain BullMQ (not in the per-job figures)', idleRate(plain));
  row(
    `bytes to / from Redis per task (${main})`,
    [bare, hooks, plain]
      .map((m) => `${m.subject.name} ${fmt(m.task.bytesUp, 0)} / ${fmt(m.task.bytesDown, 0)}`)
      .join('; '),
  );
  const agreement = [plain, plainPrio, bare, hooks]
    .map(
      (m) =>
        `${m.subject.name} executed ${fmt(total(m.run.stats), 0)} / ${fmt(total(m.run.executed), 0)}, sent ${fmt(total(m.run.sent), 0)} / ${fmt(m.run.written, 0)}, in ${fmt(m.run.seconds, 1)} s`,
    )
    .join('; ');
  return {
    rows,
    notes: [
      `redis-cost: ${TASKS} no-op tasks (bench_noop, one project) submitted over HTTP by ${SUBMIT_CONCURRENCY} keep-alive lanes to the API and run by a worker of concurrency ${WORKER_CONCURRENCY} in the same process (TestService), then ${SEQUENTIAL_TASKS} one at a time (each submitted ${SEQUENTIAL_GAP_MS} ms after the previous one finished: tasks that come apart, where nothing is batched and the workers wait idle in between); plain BullMQ: the same Queue.add calls (${SUBMIT_CONCURRENCY} in flight, then one at a time) and a no-op Worker of the same concurrency, with our jobs' options (JOB_OPTS; "prioritized" adds the priority our jobs carry). Each side on a redis-server of its own (PrivateRedisServer), so INFO commandstats counts nothing but this bench. "Executed" is the sum of INFO commandstats calls deltas: Redis counts each command a Lua script runs too (an EVALSHA whose script runs 12 commands is 13). "Sent" are the commands the apps wrote, parsed by a TCP proxy between them and Redis; "round trips" their request writes (each write call of their sockets to the proxy: ioredis writes a command, a pipeline or a MULTI block per call and waits for its answer), counted in the process, as the proxy's reads merge writes that arrive while this process is busy.`,
      `redis-cost: before the runs the service is warmed up (${WARMUP_TASKS} tasks: scripts loaded, the relay's groups made), left until nothing but timers sends for 2 s, then measured for ${IDLE_MS / 1000} s of quiet (a whole number of periods of every timer: relay sweep of the 64 outbox streams every 5 s, their XAUTOCLAIM every 10 s, heartbeat 10 s, reconciler 15 s, BullMQ's blocking wait 5 s and stalled check 30 s). Commands that timers send whether or not there are tasks ("timers": the sweep's reads of the 63 streams of partitions without tasks, XAUTOCLAIM, the reconciler's lock and its SSCAN of the 64 active-project sets, BullMQ's stalled checks) are left out of the per-task figures exactly as counted in each run (by MONITOR, with the commands their scripts run; commandstats less those); of every other command the idle rate × the run's seconds is subtracted (an idle worker's blocking wait, a timer heartbeat, the sweep's read of the tasks' own stream). What timers do more because tasks exist (the reconciler reading pending tasks, the cancel watcher reading running ones, heartbeats on runs' starts and ends) stays in, under "background" and "heartbeats". Nothing shared is reset: commandstats is read before and after (the observer's own INFO and ECHO are taken out).`,
      `redis-cost: stages by caller: each command is attributed from what it is and which keys it names (a script by its SHA-1, named from the defineCommand calls of this process; BullMQ keys by queue: the task queue or the webhooks queue), and the commands a script runs to that script, from MONITOR (it lists them right after the script). Per-stage executed figures are MONITOR's, the totals commandstats'. Main runs, executed by commandstats / by MONITOR, sent by the proxy / in the counted writes: ${agreement}.`,
      'redis-cost: a no-op task reports no progress: the runner\'s own 0.95 "uploading_result" milestone is skipped when the claim wrote progress less than 200 ms before. The progress figure comes from 200 more tasks whose processor reports once.',
    ],
  };
}
