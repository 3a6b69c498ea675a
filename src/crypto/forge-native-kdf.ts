import { createHash, hash, pbkdf2Sync } from 'node:crypto';
import forge from 'node-forge';

/**
 * node-forge derives PKCS#12 keys in JavaScript: the PKCS#12 KDF for the MAC (RFC 7292 B.2) and
 * PBKDF2 whenever the PRF is given as a digest object, which is how its PBES2 code calls it. At
 * the 20 000 iterations our .pfx files use, opening one took about 220 ms of a restore's start.
 * These replacements compute the same bytes with Node's native hashes and leave the rest of forge
 * (ASN.1, bag parsing, ciphers) as it is; anything they do not cover goes to forge's own code.
 * test/crypto/forge-native-kdf.test.ts holds them to forge's outputs.
 */

type Md = { algorithm: string; digestLength: number; blockLength: number };

const NATIVE_DIGESTS = new Set(['sha1', 'sha256', 'sha384', 'sha512']);

function nativeDigest(md: unknown): Md | undefined {
  const m = md as Partial<Md> | null | undefined;
  return m && typeof m === 'object' && typeof m.algorithm === 'string' && NATIVE_DIGESTS.has(m.algorithm) ? (m as Md) : undefined;
}

/** forge passes passwords as JS strings and reads them byte-wise; only Latin-1 maps one to one. */
const isLatin1 = (s: string): boolean => !/[^\u0000-\u00ff]/.test(s);

/** Bytes of `src` repeated to exactly `length` bytes. */
function repeated(src: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = src[i % src.length]!;
  return out;
}

/** RFC 7292 appendix B.2, exactly as forge's pki.pbe.generatePkcs12Key computes it. */
export function pkcs12Kdf(password: string | null | undefined, salt: Buffer, id: number, iterations: number, n: number, md: Md): Buffer {
  if (!(iterations >= 1)) throw new Error('PKCS#12 key derivation iteration count must be >= 1.');
  const u = md.digestLength;
  const v = md.blockLength;
  // The password as a BMPString (UTF-16 big-endian code units) with a two-byte terminator.
  const pass = Buffer.alloc(password == null ? 0 : password.length * 2 + 2);
  for (let i = 0; password != null && i < password.length; i++) pass.writeUInt16BE(password.charCodeAt(i), 2 * i);
  const diversifier = Buffer.alloc(v, id);
  const input = Buffer.concat([
    salt.length ? repeated(salt, v * Math.ceil(salt.length / v)) : Buffer.alloc(0),
    pass.length ? repeated(pass, v * Math.ceil(pass.length / v)) : Buffer.alloc(0),
  ]);
  const blocks: Buffer[] = [];
  for (let produced = 0; produced < n; produced += u) {
    let a = createHash(md.algorithm).update(diversifier).update(input).digest();
    // The one-shot hash: a Hash object per round cost more than twice as much.
    for (let round = 1; round < iterations; round++) a = hash(md.algorithm, a, 'buffer');
    blocks.push(a);
    // Each v-byte block of the input becomes (block + B + 1) mod 2^(8v), B being `a` repeated.
    const b = repeated(a, v);
    for (let at = 0; at < input.length; at += v) {
      let carry = 1;
      for (let l = v - 1; l >= 0; l--) {
        const sum = input[at + l]! + b[l]! + carry;
        input[at + l] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, n);
}

/**
 * How a password becomes PBKDF2's bytes in a .pfx (PBES2): UTF-8, as OpenSSL and Windows do.
 * forge itself takes a JavaScript string's code units as bytes (Latin-1), so .pfx files made by
 * AzsBackup before this used that for passwords beyond ASCII; readPfxFile tries it second.
 */
let pbes2Encoding: 'utf8' | 'latin1' = 'utf8';

/** Runs `fn` with forge's own Latin-1 reading of PBES2 passwords (for .pfx files made that way). */
export function withLatin1Pbes2<T>(fn: () => T): T {
  pbes2Encoding = 'latin1';
  try {
    return fn();
  } finally {
    pbes2Encoding = 'utf8';
  }
}

let installed = false;

/** Routes forge's PKCS#12 KDF and PBKDF2 through Node's native crypto; idempotent. */
export function useNativeKdf(): void {
  if (installed) return;
  installed = true;
  const pki = forge.pki as unknown as { pbe: { generatePkcs12Key: (...a: unknown[]) => forge.util.ByteStringBuffer } };
  const p12 = forge.pkcs12 as unknown as { generateKey: (...a: unknown[]) => forge.util.ByteStringBuffer };
  const pkcs5 = forge.pkcs5 as unknown as { pbkdf2: (...a: unknown[]) => unknown };
  const forgeKdf = pki.pbe.generatePkcs12Key;
  const forgePbkdf2 = pkcs5.pbkdf2;

  const kdf = (password: unknown, salt: unknown, id: unknown, iter: unknown, n: unknown, md?: unknown): forge.util.ByteStringBuffer => {
    const digest = md === undefined || md === null ? (forge.md.sha1.create() as unknown as Md) : nativeDigest(md);
    const s = salt as forge.util.ByteStringBuffer;
    if (!digest || (password != null && typeof password !== 'string') || typeof s?.bytes !== 'function') {
      return forgeKdf(password, salt, id, iter, n, md);
    }
    const key = pkcs12Kdf(
      password as string | null | undefined,
      Buffer.from(s.bytes(), 'binary'),
      id as number,
      iter as number,
      n as number,
      digest,
    );
    return forge.util.createBuffer(key.toString('binary'));
  };
  pki.pbe.generatePkcs12Key = kdf;
  // pkcs12.js keeps its own reference, taken when it loaded, for the MAC key.
  p12.generateKey = kdf;

  pkcs5.pbkdf2 = (p: unknown, s: unknown, c: unknown, dkLen: unknown, md?: unknown, callback?: unknown): unknown => {
    const digest = nativeDigest(md);
    if (digest && callback === undefined && typeof p === 'string' && typeof s === 'string' && (pbes2Encoding === 'utf8' || isLatin1(p))) {
      const password = Buffer.from(p, pbes2Encoding === 'utf8' ? 'utf8' : 'binary');
      return pbkdf2Sync(password, Buffer.from(s, 'binary'), c as number, dkLen as number, digest.algorithm).toString('binary');
    }
    return forgePbkdf2(p, s, c, dkLen, md, callback);
  };
}
