/**
 * A deterministic stand-in for a photograph, RGB 8-bit: smooth lighting gradients, shapes with
 * soft (anti-aliased) edges, fabric-like stripes of several frequencies and orientations, fine
 * grain, all band-limited like a camera image. Super-resolution tests need real texture: on a
 * flat or purely random image every upscaler scores the same.
 */
export function photoLikeImage(width: number, height: number, seed = 1): Buffer {
  let state = seed >>> 0 || 1;
  const random = () => {
    // xorshift32: same sequence on every machine.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
  const shapes = Array.from({ length: 14 }, () => ({
    kind: random() < 0.5 ? 'disc' : 'box',
    cx: random() * width,
    cy: random() * height,
    r: (0.06 + random() * 0.18) * Math.min(width, height),
    angle: random() * Math.PI,
    colour: [random() * 255, random() * 255, random() * 255],
    // Stripes inside the shape: period in pixels (6–20), direction.
    period: 6 + random() * 14,
    dir: random() * Math.PI,
  }));
  const out = Buffer.alloc(width * height * 3);
  // Value noise of four octaves (cells of 32, 16, 8 and 4 pixels), halving in amplitude: the
  // 1/f texture of natural surfaces.
  const octaves = [32, 16, 8, 4].map((cell, k) => {
    const gw = Math.ceil(width / cell) + 2;
    const gh = Math.ceil(height / cell) + 2;
    const grid = Float32Array.from({ length: gw * gh }, () => random() - 0.5);
    return { cell, gw, grid, amp: 36 / 2 ** k };
  });
  const texture = (x: number, y: number): number => {
    let sum = 0;
    for (const { cell, gw, grid, amp } of octaves) {
      const fx = x / cell;
      const fy = y / cell;
      const ix = Math.floor(fx);
      const iy = Math.floor(fy);
      // Smoothstep interpolation between lattice values.
      const sx = (fx - ix) * (fx - ix) * (3 - 2 * (fx - ix));
      const sy = (fy - iy) * (fy - iy) * (3 - 2 * (fy - iy));
      const at = (gx: number, gy: number) => grid[gy * gw + gx];
      const top = at(ix, iy) * (1 - sx) + at(ix + 1, iy) * sx;
      const bottom = at(ix, iy + 1) * (1 - sx) + at(ix + 1, iy + 1) * sx;
      sum += amp * (top * (1 - sy) + bottom * sy);
    }
    return sum;
  };
  const grain = new Float32Array(width * height);
  for (let i = 0; i < grain.length; i++) grain[i] = random() - 0.5;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      // Sky-to-ground light with a warm vignette.
      const rgb = [60 + 120 * v + 40 * u, 80 + 90 * (1 - v), 150 - 80 * v + 30 * Math.sin(u * 3)];
      for (const s of shapes) {
        const dx = x - s.cx;
        const dy = y - s.cy;
        const ca = Math.cos(s.angle);
        const sa = Math.sin(s.angle);
        const rx = dx * ca + dy * sa;
        const ry = -dx * sa + dy * ca;
        const dist =
          s.kind === 'disc'
            ? Math.hypot(dx, dy) - s.r
            : Math.max(Math.abs(rx) - s.r, Math.abs(ry) - s.r * 0.6);
        // Coverage over about a pixel: an anti-aliased edge.
        const cover = Math.min(1, Math.max(0, 0.5 - dist / 1.2));
        if (cover <= 0) continue;
        const t = (x * Math.cos(s.dir) + y * Math.sin(s.dir)) / s.period;
        const stripe = 0.75 + 0.25 * Math.sin(2 * Math.PI * t);
        for (let c = 0; c < 3; c++) rgb[c] = rgb[c] * (1 - cover) + s.colour[c] * stripe * cover;
      }
      const g = texture(x, y) + 4 * grain[y * width + x];
      const at = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[at + c] = Math.max(0, Math.min(255, Math.round(rgb[c] + g)));
    }
  }
  return out;
}

/** Peak signal-to-noise ratio of two same-sized 8-bit buffers, dB (Infinity when equal). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new RangeError(`sizes differ: ${a.length} vs ${b.length}`);
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    se += d * d;
  }
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}
