import { expect } from 'vitest';
import { AzsError } from '../../src/errors.js';

/** The AzsError `fn` throws; fails the test when it throws nothing or something else. */
export function thrown(fn: () => unknown): AzsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AzsError);
    return e as AzsError;
  }
  throw new Error('expected an AzsError, but nothing was thrown');
}

/** The AzsError `p` rejects with; fails the test when it resolves or rejects with something else. */
export async function rejected(p: Promise<unknown>): Promise<AzsError> {
  const outcome = await p.then(
    () => ({ resolved: true as const }),
    (e: unknown) => ({ resolved: false as const, e }),
  );
  if (outcome.resolved) throw new Error('expected an AzsError, but the promise resolved');
  expect(outcome.e).toBeInstanceOf(AzsError);
  return outcome.e as AzsError;
}
