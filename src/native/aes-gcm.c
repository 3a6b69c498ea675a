/*
 * AES-256-GCM over caller-owned memory, through the OpenSSL that Node itself links and exports.
 *
 * Node's Cipher and Decipher allocate a fresh, zero-filled buffer for every update (a backup's
 * chunks are encrypted 64 KiB at a time for the same reason). A restore
 * decrypts a chunk per MiB of its file, so that is 270 MiB of new, zeroed memory for a 501 MiB
 * corpus, and on a VM fresh pages are dear: the zeroing alone was a fifth of a restore's page
 * faults. Here the plaintext goes into a buffer the caller hands in and may reuse. It is the same
 * library and the same algorithm; only where the bytes land differs.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16

static int buffer_arg(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return 0;
  return napi_get_buffer_info(env, value, (void **)data, length) == napi_ok;
}

/*
 * open(key, nonce, aad, slices, tag, out) -> bytes written, or -1 when the chunk is not authentic.
 *   slices: an array of Buffers, the ciphertext in order; out: room for all of it.
 * On -1 the bytes in `out` must not be used.
 */
static napi_value open_chunk(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  uint8_t *key, *nonce, *aad, *tag, *out;
  size_t key_len, nonce_len, aad_len, tag_len, out_len;
  uint32_t slice_count = 0;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6 || !buffer_arg(env, argv[0], &key, &key_len) ||
      key_len != KEY_BYTES || !buffer_arg(env, argv[1], &nonce, &nonce_len) || nonce_len != NONCE_BYTES ||
      !buffer_arg(env, argv[2], &aad, &aad_len) || napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &slice_count) != napi_ok || !buffer_arg(env, argv[4], &tag, &tag_len) ||
      tag_len != TAG_BYTES || !buffer_arg(env, argv[5], &out, &out_len) || aad_len > INT32_MAX) {
    napi_throw_type_error(env, NULL, "open(key[32], nonce[12], aad, slices[], tag[16], out)");
    return NULL;
  }

  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
           EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1;
  int n = 0;
  if (ok && aad_len > 0) ok = EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
  size_t written = 0;
  for (uint32_t i = 0; ok && i < slice_count; i++) {
    napi_value item;
    uint8_t *slice;
    size_t slice_len;
    if (napi_get_element(env, argv[3], i, &item) != napi_ok || !buffer_arg(env, item, &slice, &slice_len) ||
        slice_len > out_len - written || slice_len > INT32_MAX) {
      EVP_CIPHER_CTX_free(ctx);
      napi_throw_range_error(env, NULL, "the slices do not fit in out");
      return NULL;
    }
    ok = EVP_DecryptUpdate(ctx, out + written, &n, slice, (int)slice_len) == 1;
    written += (size_t)n;
  }
  if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1;
  /* GCM's final writes nothing; it only checks the tag. */
  if (ok) ok = EVP_DecryptFinal_ex(ctx, out + written, &n) == 1;
  EVP_CIPHER_CTX_free(ctx);

  napi_value result;
  napi_create_double(env, ok ? (double)written : -1, &result);
  return result;
}

/*
 * seal(key, nonce, aad, slices, out) -> undefined
 *   Encrypts the slices, in order, into `out` and appends the 16-byte tag: `out` must be exactly
 *   their total length + 16.
 */
static napi_value seal_chunk(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint8_t *key, *nonce, *aad, *out;
  size_t key_len, nonce_len, aad_len, out_len;
  uint32_t slice_count = 0;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 || !buffer_arg(env, argv[0], &key, &key_len) ||
      key_len != KEY_BYTES || !buffer_arg(env, argv[1], &nonce, &nonce_len) || nonce_len != NONCE_BYTES ||
      !buffer_arg(env, argv[2], &aad, &aad_len) || napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &slice_count) != napi_ok || !buffer_arg(env, argv[4], &out, &out_len) ||
      out_len < TAG_BYTES || aad_len > INT32_MAX) {
    napi_throw_type_error(env, NULL, "seal(key[32], nonce[12], aad, slices[], out)");
    return NULL;
  }
  size_t room = out_len - TAG_BYTES;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
           EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1;
  int n = 0;
  if (ok && aad_len > 0) ok = EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
  size_t written = 0;
  for (uint32_t i = 0; ok && i < slice_count; i++) {
    napi_value item;
    uint8_t *slice;
    size_t slice_len;
    if (napi_get_element(env, argv[3], i, &item) != napi_ok || !buffer_arg(env, item, &slice, &slice_len) ||
        slice_len > room - written || slice_len > INT32_MAX) {
      EVP_CIPHER_CTX_free(ctx);
      napi_throw_range_error(env, NULL, "the slices do not fit in out");
      return NULL;
    }
    ok = EVP_EncryptUpdate(ctx, out + written, &n, slice, (int)slice_len) == 1;
    written += (size_t)n;
  }
  if (ok) ok = EVP_EncryptFinal_ex(ctx, out + written, &n) == 1 && n == 0 && written == room;
  if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, out + room) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) napi_throw_error(env, NULL, written == room ? "AES-256-GCM encryption failed" : "out is not the slices' length + 16");
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_chunk, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "open", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal_chunk, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "seal", fn) != napi_ok) return NULL;
  return exports;
}
