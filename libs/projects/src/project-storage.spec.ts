import { MEDIA_KINDS } from './media-kind';
import { isKeyInProject, mediaOutputKey } from './project-storage';

describe('project storage keys', () => {
  const id = '0b6f3c1e-8a0c-4d55-9d3e-5b6a8e2f9c10';

  it('builds the seed layout', () => {
    expect(mediaOutputKey('detective_series_001', 'image', id, 'jpg')).toBe(
      `projects/detective_series_001/image/${id}/output.jpg`,
    );
  });

  it('names the folder after the media kind', () => {
    for (const kind of MEDIA_KINDS) {
      expect(mediaOutputKey('p1', kind, id, 'bin')).toBe(`projects/p1/${kind}/${id}/output.bin`);
    }
  });

  it.each([
    ['../etc', 'image', id, 'jpg'],
    ['p1', 'image', '../../x', 'jpg'],
    ['p1', 'image', id, 'jp/g'],
    ['p/1', 'image', id, 'jpg'],
  ])('refuses unsafe parts %s %s %s %s', (p, k, t, e) => {
    expect(() => mediaOutputKey(p, k as never, t, e)).toThrow();
  });

  it('keeps keys inside their project', () => {
    expect(isKeyInProject('p1', `projects/p1/image/${id}/output.jpg`)).toBe(true);
    expect(isKeyInProject('p1', `projects/p2/image/${id}/output.jpg`)).toBe(false);
    expect(isKeyInProject('p1', 'projects/p1/../p2/x')).toBe(false);
    expect(isKeyInProject('p1', 'projects/p1//x')).toBe(false);
    expect(isKeyInProject('p1', 'projects/p1x/a')).toBe(false);
  });
});
