/*
 * The small N-API glue the addons here share, in one place: each addon is its own compilation unit
 * (binding.gyp), so these are static inline, included after _GNU_SOURCE and the system headers.
 */
#ifndef AZS_NAPI_HELPERS_H
#define AZS_NAPI_HELPERS_H

#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Throws an Error whose code is err's name (ENOENT, ...) and whose message is "<what>: <strerror>"; returns NULL. */
static inline napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[256];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", message);
  return NULL;
}

/* The call's arguments, exactly `count` of them, into args; false (with a TypeError saying `usage`) otherwise. */
static inline bool args_of(napi_env env, napi_callback_info info, size_t count, napi_value *args, const char *usage) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) == napi_ok && argc == count) return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

/* exports[name] = fn (with `data` as its callback data); false when N-API refused. */
static inline bool export_function(napi_env env, napi_value exports, const char *name, napi_callback fn, void *data) {
  napi_value value;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, data, &value) == napi_ok &&
         napi_set_named_property(env, exports, name, value) == napi_ok;
}

/*
 * Runs `execute(data)` on libuv's threads and `complete` back on the JS thread; returns the promise
 * `complete` settles through *deferred. The async work is `complete`'s to delete.
 */
static inline napi_value queue_work(napi_env env, const char *name, napi_async_execute_callback execute,
                                    napi_async_complete_callback complete, void *data, napi_async_work *work,
                                    napi_deferred *deferred) {
  napi_value promise, resource;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

#endif
