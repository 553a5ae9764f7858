import { randomUUID } from 'node:crypto';
import {
  allPartitionPrefixes,
  groupKey,
  newTaskId,
  PARTITION_COUNT,
  PARTITION_TAGS,
  partitionOf,
  partitionPrefix,
  projectPartitionPrefix,
  slotOf,
  taskPartitionPrefix,
} from './redis-partitions';

describe('task data partitions', () => {
  it('gives partition i a tag whose slot lies in the i-th 256-slot range', () => {
    expect(PARTITION_TAGS).toHaveLength(PARTITION_COUNT);
    PARTITION_TAGS.forEach((tag, i) => expect(Math.floor(slotOf(`x:{${tag}}:y`) / 256)).toBe(i));
  });

  it('keeps the layout stored data depends on (tags and the partition of an id never change)', () => {
    expect(PARTITION_TAGS.slice(0, 4)).toEqual(['t0.23', 't1.103', 't2.72', 't3.121']);
    expect([partitionOf('detective_series_001'), partitionOf('p1'), partitionOf('')]).toEqual([
      52, 58, 5,
    ]);
  });

  it("draws task ids in their project's partition, so the id alone finds the keys", () => {
    for (const project of ['detective_series_001', 'p1', 'Ünïcode', 'x'.repeat(200)]) {
      for (let i = 0; i < 20; i++) {
        const id = newTaskId(project);
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(taskPartitionPrefix('ams', id)).toBe(projectPartitionPrefix('ams', project));
      }
    }
  });

  it('spreads projects over the partitions', () => {
    const counts = new Array<number>(PARTITION_COUNT).fill(0);
    for (let i = 0; i < 64_000; i++) counts[partitionOf(randomUUID())] += 1;
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('names keys under the prefix, the hash tag right after it', () => {
    expect(partitionPrefix('ams', 0)).toBe('ams:{t0.23}');
    expect(allPartitionPrefixes('ams')).toHaveLength(PARTITION_COUNT);
    expect(new Set(allPartitionPrefixes('ams').map((p) => slotOf(`${p}:k`))).size).toBe(
      PARTITION_COUNT,
    );
    expect(groupKey('ams', 'workers', 'w1')).toBe('ams:{workers}:w1');
    expect(slotOf(groupKey('ams', 'workers', 'w1'))).toBe(
      slotOf(groupKey('ams', 'workers', 'active')),
    );
  });
});
