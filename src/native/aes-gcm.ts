import { loadAddon, nativeDisabled } from './addon.js';

/**
 * AES-256-GCM decryption into memory the caller owns (see aes-gcm.c for why). Returns the bytes
 * written to `out`, or -1 when the chunk is not authentic (then `out` holds nothing usable).
 */
export type OpenInto = (key: Buffer, nonce: Buffer, aad: Buffer, slices: Buffer[], tag: Buffer, out: Buffer) => number;

/** AES-256-GCM encryption of the slices into `out`, which must be their length + 16: the tag goes last. */
export type SealInto = (key: Buffer, nonce: Buffer, aad: Buffer, slices: Buffer[], out: Buffer) => void;

interface Addon {
  open: OpenInto;
  seal: SealInto;
}

let addon: Addon | null | undefined;

/** Undefined when the addon was not compiled or AZSBACKUP_NATIVE=off: then Node's Cipher and Decipher do the work. */
export function gcmAddon(): Addon | undefined {
  if (nativeDisabled()) return undefined;
  addon ??= loadAddon<Addon>('aes_gcm') ?? null;
  return addon ?? undefined;
}
