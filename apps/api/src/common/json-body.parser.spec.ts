import { jsonDepthExceeds } from './json-body.parser';

const depth = (text: string, limit: number) => jsonDepthExceeds(Buffer.from(text), limit);

describe('jsonDepthExceeds', () => {
  it('counts nesting of objects and arrays', () => {
    expect(depth('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(depth('{"a":[{"b":[1]}]}', 3)).toBe(true);
    expect(depth('[[[]]]', 3)).toBe(false);
    expect(depth('[[[[]]]]', 3)).toBe(true);
    expect(depth('1', 0)).toBe(false);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(depth('{"a":"[[[[{{{{"}', 1)).toBe(false);
    expect(depth('{"a":"x\\"[[[[","b":1}', 1)).toBe(false);
    expect(depth('{"a":"\\\\","b":[[1]]}', 2)).toBe(true);
  });

  it('siblings do not add up', () => {
    expect(depth('[[1],[2],[3],{"a":1}]', 2)).toBe(false);
    expect(depth('[[1],[2],[3],{"a":{}}]', 2)).toBe(true);
  });
});
