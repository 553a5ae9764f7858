/** Queues from the seed: heavy GPU work, medium GPU work, CPU-bound work. */
export enum QueueName {
  GpuHeavy = 'gpu_heavy',
  GpuMedium = 'gpu_medium',
  CpuIntensive = 'cpu_intensive',
}

export const ALL_QUEUES: readonly QueueName[] = [
  QueueName.GpuHeavy,
  QueueName.GpuMedium,
  QueueName.CpuIntensive,
];

export function isQueueName(value: string): value is QueueName {
  return (ALL_QUEUES as readonly string[]).includes(value);
}

/** API priority: 1 = high, 2 = normal, 3 = low. */
export type TaskPriority = 1 | 2 | 3;

/**
 * BullMQ runs lower numbers first and a job without priority before every prioritized one, so
 * every job gets an explicit priority. The API's 1/2/3 map onto BullMQ's 1/2/3; equal priority
 * stays FIFO.
 */
export function toBullPriority(priority: TaskPriority): number {
  return priority;
}
