/*
 * The content-defined chunker's scan (src/repository/cdc.ts, findCutTs), in C because the loop
 * runs over every byte of a backup: the TypeScript version ran at 150-300 MB/s on the 2-core
 * build VM, below the zstd and AES-GCM stages it feeds. Both must find the same cuts, byte for
 * byte (test/repository.chunker.test.ts holds them to it); cdc.ts documents the algorithm.
 *
 * findCut(gear: Uint32Array(256), plan: Int32Array [min, normal, max, maskSmall, maskLarge],
 *         buf: Buffer, from: number, to: number, state: Int32Array [length, hash]) -> cut or -1
 */
#include <node_api.h>
#include <stdint.h>

#define WINDOW 32

static int typed_arg(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
  return type == want;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static napi_value find_cut(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], result;
  void *gear_p, *plan_p, *buf_p, *state_p;
  size_t gear_len, plan_len, buf_len, state_len;
  int64_t from, to;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6 ||
      !typed_arg(env, argv[0], napi_uint32_array, &gear_p, &gear_len) || gear_len != 256 ||
      !typed_arg(env, argv[1], napi_int32_array, &plan_p, &plan_len) || plan_len != 5 ||
      !typed_arg(env, argv[2], napi_uint8_array, &buf_p, &buf_len) ||
      napi_get_value_int64(env, argv[3], &from) != napi_ok || napi_get_value_int64(env, argv[4], &to) != napi_ok ||
      !typed_arg(env, argv[5], napi_int32_array, &state_p, &state_len) || state_len != 2 ||
      from < 0 || to < from || (uint64_t)to > buf_len) {
    napi_throw_type_error(env, "EINVAL", "findCut(gear, plan, buf, from, to, state): bad arguments");
    return NULL;
  }
  const uint32_t *gear = gear_p;
  const int32_t *plan = plan_p;
  const uint8_t *buf = buf_p;
  int32_t *state = state_p;
  const int64_t base = from - state[0];
  const uint32_t small = (uint32_t)plan[3], large = (uint32_t)plan[4];
  uint32_t h = (uint32_t)state[1];
  int64_t cut = -1;
  int64_t i = max64(from, base + plan[0] - WINDOW);
  int64_t end = min64(to, base + plan[0] - 1);
  for (; i < end; i++) h = (h << 1) + gear[buf[i]];
  end = min64(to, base + plan[1]);
  for (; i < end; i++) {
    h = (h << 1) + gear[buf[i]];
    if (!(h & small)) { cut = i + 1; goto done; }
  }
  end = min64(to, base + plan[2] - 1);
  for (; i < end; i++) {
    h = (h << 1) + gear[buf[i]];
    if (!(h & large)) { cut = i + 1; goto done; }
  }
  if (i < to && i == base + plan[2] - 1) cut = i + 1;
done:
  state[0] = (int32_t)((cut < 0 ? to : cut) - base);
  state[1] = (int32_t)h;
  if (napi_create_int64(env, cut, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "findCut", NAPI_AUTO_LENGTH, find_cut, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "findCut", fn) != napi_ok) return NULL;
  return exports;
}
