import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Loads one of our compiled addons (src/native/binding.gyp) by target name, from src/native/
 * (sources) and from dist/<folder>/ (the build) alike; undefined when it was not compiled
 * (npm ci --ignore-scripts, no compiler), in which case every caller keeps a slower way.
 */
export function loadAddon<T>(target: string, file: string = addonPath(target)): T | undefined {
  try {
    return createRequire(import.meta.url)(file) as T;
  } catch {
    return undefined;
  }
}

/**
 * AZSBACKUP_NATIVE=off runs the data path as if no addon had compiled (Node's spawn, Node's
 * crypto): a way around a suspected addon problem, and how the tests hold both paths to one result.
 */
export function nativeDisabled(): boolean {
  return process.env.AZSBACKUP_NATIVE === 'off';
}

export function addonPath(target: string): string {
  return fileURLToPath(new URL(`../../src/native/build/Release/${target}.node`, import.meta.url));
}
