import type { Target } from '../../src/targets/target.js';

/**
 * `target`, with `action` run (once, awaited) just before the first call of `method` whose first
 * argument `when` accepts: how a test lands another machine's command (a prune, a re-wrap) at
 * exactly the moment of this machine's command it means to race.
 */
export function actingBefore<M extends 'read' | 'rename' | 'write' | 'delete' | 'list' | 'listTree'>(
  target: Target,
  method: M,
  when: (first: string) => boolean,
  action: () => Promise<unknown>,
): Target {
  let acted = false;
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (prop !== method) return typeof value === 'function' ? value.bind(t) : value;
      return async (first: string, ...rest: unknown[]) => {
        if (!acted && when(first)) {
          acted = true;
          await action();
        }
        return (value as (...args: unknown[]) => unknown).apply(t, [first, ...rest]);
      };
    },
  });
}
