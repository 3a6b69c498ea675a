import type { ProgressReporter } from '../progress.js';
import type { Target } from '../targets/target.js';

/**
 * The share's operations as Debug lines (`-Debug` in PowerShell): each call with its path and how
 * long it took, so an operator can see where a slow or failing share spends its time. Without a
 * log the target is returned as it is.
 */
export function tracedTarget(target: Target, progress: ProgressReporter): Target {
  const log = progress.log?.bind(progress);
  if (!log) return target;
  return new Proxy(target, {
    get(t, key, receiver) {
      const value = Reflect.get(t, key, receiver) as unknown;
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...args: unknown[]) => {
        const started = Date.now();
        const what = `Share: ${key}(${args.filter((a) => typeof a === 'string').join(', ')})`;
        const result = (value as (...a: unknown[]) => unknown).apply(t, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (r) => {
            log('Debug', `${what} done in ${Date.now() - started} ms`);
            return r;
          },
          (e: unknown) => {
            log('Debug', `${what} failed after ${Date.now() - started} ms: ${(e as Error).message}`);
            throw e;
          },
        );
      };
    },
  });
}

/** Seconds with a tenth, for the Verbose lines. */
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
