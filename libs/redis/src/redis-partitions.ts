import { randomUUID } from 'node:crypto';
import keySlot from 'cluster-key-slot';

/**
 * Partitions of the task data (seed 001: "horizontal partitioning by project_id"). A project's
 * record, its tasks, their progress, its indexes and idempotency keys, and the partition's
 * active-project set and webhook outbox all carry the hash tag of the project's partition, so
 * every script touches keys of one Redis Cluster slot, and a project's listing is one slot.
 *
 * The count and the tags are part of the data layout: a task id encodes its partition (see
 * `newTaskId`), so changing either makes stored tasks unreachable. Never change them.
 */
export const PARTITION_COUNT = 64;

const CLUSTER_SLOTS = 16384;
const SLOTS_PER_PARTITION = CLUSTER_SLOTS / PARTITION_COUNT;

/**
 * The hash tag of each partition: partition i's tag hashes to a slot in
 * [i·256, (i+1)·256), so the partitions spread evenly over any cluster whose nodes hold
 * contiguous slot ranges (what `redis-cli --cluster create` makes). Derived, not random: the
 * smallest n for which `t<i>.<n>` lands in that range.
 */
export const PARTITION_TAGS: readonly string[] = Object.freeze(
  Array.from({ length: PARTITION_COUNT }, (_, i) => {
    for (let n = 0; ; n++) {
      const tag = `t${i}.${n}`;
      if (Math.floor(keySlot(tag) / SLOTS_PER_PARTITION) === i) return tag;
    }
  }),
);

/** The Redis Cluster slot of a key (CRC16 of its hash tag, or of the whole key without one). */
export function slotOf(key: string): number {
  return keySlot(key);
}

/** 32-bit FNV-1a of the UTF-8 bytes: cheap, stable, well spread for short ids. */
function fnv1a(value: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(value, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The partition (0…PARTITION_COUNT-1) of a project id, or of a task id. */
export function partitionOf(id: string): number {
  return fnv1a(id) % PARTITION_COUNT;
}

/** `<prefix>:{<tag>}`: every key of the partition starts with it (scripts build keys on it). */
export function partitionPrefix(prefix: string, partition: number): string {
  return `${prefix}:{${PARTITION_TAGS[partition]}}`;
}

/** The key prefix of a project's partition. */
export function projectPartitionPrefix(prefix: string, projectId: string): string {
  return partitionPrefix(prefix, partitionOf(projectId));
}

/** The key prefix of a task's partition: the one of its project (newTaskId made it so). */
export function taskPartitionPrefix(prefix: string, taskId: string): string {
  return partitionPrefix(prefix, partitionOf(taskId));
}

/** Every partition's key prefix, partition 0 first. */
export function allPartitionPrefixes(prefix: string): string[] {
  return Array.from({ length: PARTITION_COUNT }, (_, i) => partitionPrefix(prefix, i));
}

/**
 * A random UUID v4 that falls in the project's partition, so that the task's keys can be found
 * from its id alone (GET /tasks/{id}) with no lookup: ids are drawn until one does (64 draws
 * on average, a few microseconds).
 */
export function newTaskId(projectId: string): string {
  const want = partitionOf(projectId);
  for (;;) {
    const id = randomUUID();
    if (partitionOf(id) === want) return id;
  }
}

/**
 * `<prefix>:{<group>}:<parts>`: keys outside the task partitions that a script or a transaction
 * uses together (a worker's hash and the worker index) share the group's hash tag.
 */
export function groupKey(prefix: string, group: string, ...parts: Array<string | number>): string {
  return [`${prefix}:{${group}}`, ...parts].join(':');
}
