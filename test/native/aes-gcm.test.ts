import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gcmAddon } from '../../src/native/aes-gcm.js';

const key = randomBytes(32);
const nonce = randomBytes(12);
const aad = Buffer.from('header');
const plain = randomBytes(70_000);

function nodeSeal(): { ciphertext: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plain), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

describe('the aes_gcm addon', () => {
  const addon = gcmAddon()!;

  it('is compiled here', () => {
    expect(addon).toBeDefined();
  });

  it("opens what Node's Cipher sealed, from any slicing, and seals the same bytes", () => {
    const { ciphertext, tag } = nodeSeal();
    const out = Buffer.alloc(plain.length);
    const slices = [ciphertext.subarray(0, 1), ciphertext.subarray(1, 40_000), ciphertext.subarray(40_000)];
    expect(addon.open(key, nonce, aad, slices, tag, out)).toBe(plain.length);
    expect(out.equals(plain)).toBe(true);
    const sealed = Buffer.alloc(plain.length + 16);
    addon.seal(key, nonce, aad, [plain.subarray(0, 5), plain.subarray(5)], sealed);
    expect(sealed.equals(Buffer.concat([ciphertext, tag]))).toBe(true);
  });

  it('says -1 for a changed byte, a changed header or a wrong tag', () => {
    const { ciphertext, tag } = nodeSeal();
    const out = Buffer.alloc(plain.length);
    const flipped = Buffer.from(ciphertext);
    flipped[12_345]! ^= 1;
    expect(addon.open(key, nonce, aad, [flipped], tag, out)).toBe(-1);
    expect(addon.open(key, nonce, Buffer.from('Header'), [ciphertext], tag, out)).toBe(-1);
    expect(addon.open(key, nonce, aad, [ciphertext], Buffer.alloc(16), out)).toBe(-1);
  });

  it('refuses arguments that do not fit, writing nothing past the buffer given', () => {
    const { ciphertext, tag } = nodeSeal();
    const out = Buffer.alloc(plain.length - 1);
    expect(() => addon.open(key, nonce, aad, [ciphertext], tag, out)).toThrow(RangeError);
    expect(() => addon.open(key.subarray(1), nonce, aad, [ciphertext], tag, Buffer.alloc(plain.length))).toThrow(TypeError);
    expect(() => addon.open(key, nonce, aad, [ciphertext], tag.subarray(1), Buffer.alloc(plain.length))).toThrow(TypeError);
    expect(() => addon.seal(key, nonce, aad, [plain], Buffer.alloc(plain.length))).toThrow(RangeError);
    expect(() => addon.seal(key, nonce, aad, [plain], Buffer.alloc(plain.length + 17))).toThrow(RangeError);
  });
});
