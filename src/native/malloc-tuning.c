/*
 * Sets glibc's mmap threshold, trim threshold and top pad for the whole process (the values and
 * why: allocator.ts).
 *
 * A stream allocates and frees buffers in bursts when V8 collects. Which of them glibc maps on
 * their own, and how much freed memory it keeps at the heap's top, decides both how often pages
 * fault in again (dear on a paravirtualised VM) and how much of what was freed stays in the peak
 * RSS. The environment variables (MALLOC_TOP_PAD_, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_)
 * would do the same, but a process cannot set those for itself once it runs; mallopt(3) can.
 */
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static int64_t arg_int64(napi_env env, napi_value value, int *ok) {
  int64_t n = 0;
  if (napi_get_value_int64(env, value, &n) != napi_ok || n < 0 || n > 0x7fffffff) *ok = 0;
  return n;
}

/* tune(mmapThreshold, trimThreshold, topPad): true when glibc took all three. */
static napi_value tune(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_value result;
  int ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 3;
  int64_t mmap_threshold = ok ? arg_int64(env, argv[0], &ok) : 0;
  int64_t trim_threshold = ok ? arg_int64(env, argv[1], &ok) : 0;
  int64_t top_pad = ok ? arg_int64(env, argv[2], &ok) : 0;
  if (!ok) {
    napi_throw_type_error(env, NULL, "tune(mmapThreshold, trimThreshold, topPad) takes three byte counts below 2 GiB");
    return NULL;
  }
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1 &&
       mallopt(M_TOP_PAD, (int)top_pad) == 1;
#else
  ok = 0;
#endif
  napi_get_boolean(env, ok, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "tune", NAPI_AUTO_LENGTH, tune, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "tune", fn) != napi_ok) return NULL;
  return exports;
}
