import { afterAll, beforeAll, describe } from 'vitest';

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

/** `body` as two describes: with our addons, and as if none had compiled. Both must pass alike. */
export function describeWithAndWithoutAddons(title: string, body: () => void): void {
  describe.each([
    { addons: 'with our addons', native: true },
    { addons: 'without them (AZSBACKUP_NATIVE=off)', native: false },
  ])(`${title}, $addons`, ({ native }) => {
    useNativeAddons(native);
    body();
  });
}
