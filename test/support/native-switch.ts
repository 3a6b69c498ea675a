import { afterAll, beforeAll } from 'vitest';

/**
 * For the enclosing describe: run with our addons (`native`) or as if none had compiled
 * (AZSBACKUP_NATIVE=off), so one suite holds both paths to the same behaviour.
 */
export function useNativeAddons(native: boolean): void {
  let restore: () => void = () => {};
  beforeAll(() => {
    restore = setNativeAddons(native);
  });
  afterAll(() => restore());
}

/** Switches now; returns what puts the previous setting back. */
export function setNativeAddons(native: boolean): () => void {
  const saved = process.env.AZSBACKUP_NATIVE;
  if (native) delete process.env.AZSBACKUP_NATIVE;
  else process.env.AZSBACKUP_NATIVE = 'off';
  return () => {
    if (saved === undefined) delete process.env.AZSBACKUP_NATIVE;
    else process.env.AZSBACKUP_NATIVE = saved;
  };
}
