import { Logger } from '@nestjs/common';
import { AppConfig, type TfjsBackendChoice } from '@app/config';
import { GpuService } from './gpu.service';
import { TfjsBackendError } from './tfjs-backend.selection';

function configWith(backend: TfjsBackendChoice): AppConfig {
  return AppConfig.fromEnv({ API_KEYS: 'test-key', TFJS_BACKEND: backend });
}

describe('GpuService', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });
  afterAll(() => {
    Logger.overrideLogger(new Logger());
  });

  it('resolves auto to wasm here (tfjs-node is not installed) and describes it', async () => {
    const gpu = new GpuService(configWith('auto'));
    await gpu.onModuleInit();

    expect(gpu.backendName).toBe('wasm');
    expect(gpu.tf.getBackend()).toBe('wasm');
    const description = gpu.describe();
    expect(description).toMatchObject({ backend: 'wasm', device: 'cpu' });
    expect(description.wasm_threads).toBeGreaterThanOrEqual(1);
    expect(gpu.memory().wasmHeapBytes).toBeGreaterThan(0);
  });

  it('starts once however many modules call init', async () => {
    const a = new GpuService(configWith('auto'));
    const b = new GpuService(configWith('auto'));
    const [sa, sb] = await Promise.all([a.init(), b.init(), a.init()]);
    expect(sa).toBe(sb);
    expect(a.backendName).toBe('wasm');
  });

  it('runs on the cpu backend when TFJS_BACKEND=cpu', async () => {
    const gpu = new GpuService(configWith('cpu'));
    await gpu.init();
    expect(gpu.backendName).toBe('cpu');
    expect(gpu.tf.getBackend()).toBe('cpu');
    const sum = gpu.tf.tidy(() => gpu.tf.add(gpu.tf.scalar(2), gpu.tf.scalar(3)).dataSync()[0]);
    expect(sum).toBe(5);
  });

  it.each(['tensorflow-gpu', 'tensorflow'] as const)(
    'fails naming TFJS_BACKEND when %s cannot load',
    async (choice) => {
      const gpu = new GpuService(configWith(choice));
      const failure = gpu.init();
      await expect(failure).rejects.toBeInstanceOf(TfjsBackendError);
      await expect(failure).rejects.toThrow(`TFJS_BACKEND=${choice}`);
      expect(() => gpu.backendName).toThrow(/not initialized/);
    },
  );

  it('switches back to wasm for auto after another choice ran', async () => {
    const gpu = new GpuService(configWith('auto'));
    await gpu.init();
    expect(gpu.tf.getBackend()).toBe('wasm');
  });

  it('returns the tensor count to its baseline after a scope, even when it throws', async () => {
    const gpu = new GpuService(configWith('auto'));
    await gpu.init();
    const { tf } = gpu;
    const baseline = gpu.tensorCount();

    const value = await gpu.scoped('test', async (scope) => {
      const weights = scope.keep(tf.randomNormal([16, 16]));
      await new Promise((resolve) => setImmediate(resolve));
      const out = scope.tidy(() => tf.sum(tf.matMul(tf.ones([4, 16]), weights)));
      const v = (await out.data())[0];
      out.dispose();
      expect(gpu.tensorCount()).toBe(baseline + 1);
      return v;
    });
    expect(typeof value).toBe('number');
    expect(gpu.tensorCount()).toBe(baseline);

    await expect(
      gpu.scoped('failing', async (scope) => {
        scope.keep([tf.zeros([8]), tf.ones([8])]);
        await Promise.resolve();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(gpu.tensorCount()).toBe(baseline);
  });

  it('reports tensors that outlive their scope', async () => {
    const gpu = new GpuService(configWith('auto'));
    await gpu.init();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    let leaked: ReturnType<typeof gpu.tf.zeros> | undefined;
    await gpu.scoped('leaky', () => {
      leaked = gpu.tf.zeros([2]);
    });
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('leaky: 1 tensor(s)'));
    leaked?.dispose();
    warn.mockRestore();
  });
});
