import { loadAddon, nativeDisabled } from './addon.js';

/**
 * AES-256-GCM decryption into memory the caller owns (see aes-gcm.c for why). Returns the bytes
 * written to `out`, or -1 when the chunk is not authentic (then `out` holds nothing usable).
 */
export type OpenInto = (key: Buffer, nonce: Buffer, aad: Buffer, slices: Buffer[], tag: Buffer, out: Buffer) => number;

let addon: { open: OpenInto } | null | undefined;

/** Undefined when the addon was not compiled or AZSBACKUP_NATIVE=off: then Node's Decipher does the work. */
export function gcmOpenInto(): OpenInto | undefined {
  if (nativeDisabled()) return undefined;
  addon ??= loadAddon<{ open: OpenInto }>('aes_gcm') ?? null;
  return addon?.open;
}
