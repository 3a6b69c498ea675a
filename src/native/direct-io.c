/*
 * What a restore needs to write a large file straight to disk, past the page cache, and to make
 * what it restored durable before it goes into place (src/providers/direct-file.ts):
 *   alignedBuffer(bytes) -> a Buffer whose memory starts on a 4096-byte boundary, as O_DIRECT
 *     requires of the memory it writes from (Node's allocators promise 8 or 16). Freed with the
 *     Buffer.
 *   setTimes(fd, atimeSeconds, atimeNanoseconds, mtimeSeconds, mtimeNanoseconds) -> futimens to
 *     the nanosecond (fs.futimes takes seconds as a double, which cannot hold a nanosecond count
 *     of today's times). atimeNanoseconds -1: the access time becomes now, as GNU tar sets it.
 *   syncFileSystem(fd) -> a promise: syncfs(2) on the file system holding fd, every file's data
 *     and every folder's entries on disk, in one journal commit where the file system can.
 * Errors carry `code`, the errno name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "napi-helpers.h"

#define ALIGNMENT 4096
/* No caller needs more; a larger request is a mistake, not something to allocate. */
#define MAX_ALIGNED_BYTES (64 * 1024 * 1024)

static bool int64_arg(napi_env env, napi_value value, int64_t *out, const char *usage) {
  if (napi_get_value_int64(env, value, out) == napi_ok) return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value aligned_buffer(napi_env env, napi_callback_info info) {
  const char *usage = "alignedBuffer(bytes) takes a positive multiple of 4096 up to 64 MiB";
  napi_value args[1];
  int64_t bytes = 0;
  if (!args_of(env, info, 1, args, usage) || !int64_arg(env, args[0], &bytes, usage)) return NULL;
  if (bytes <= 0 || bytes > MAX_ALIGNED_BYTES || bytes % ALIGNMENT != 0) {
    napi_throw_range_error(env, NULL, usage);
    return NULL;
  }
  void *memory = NULL;
  int err = posix_memalign(&memory, ALIGNMENT, (size_t)bytes);
  if (err) return throw_errno(env, err, "alignedBuffer");
  napi_value buffer;
  if (napi_create_external_buffer(env, (size_t)bytes, memory, free_aligned, NULL, &buffer) != napi_ok) {
    free(memory);
    return throw_errno(env, ENOMEM, "alignedBuffer");
  }
  return buffer;
}

static napi_value set_times(napi_env env, napi_callback_info info) {
  const char *usage = "setTimes(fd, atimeSeconds, atimeNanoseconds, mtimeSeconds, mtimeNanoseconds) takes five integers";
  napi_value args[5];
  int64_t v[5];
  if (!args_of(env, info, 5, args, usage)) return NULL;
  for (int i = 0; i < 5; i++)
    if (!int64_arg(env, args[i], &v[i], usage)) return NULL;
  if (v[0] < 0 || v[0] > 0x7fffffff || v[2] < -1 || v[2] > 999999999 || v[4] < 0 || v[4] > 999999999) {
    napi_throw_range_error(env, NULL, usage);
    return NULL;
  }
  struct timespec times[2] = {
      {.tv_sec = (time_t)v[1], .tv_nsec = v[2] < 0 ? UTIME_NOW : (long)v[2]},
      {.tv_sec = (time_t)v[3], .tv_nsec = (long)v[4]},
  };
  if (futimens((int)v[0], times) != 0) return throw_errno(env, errno, "setTimes");
  return NULL;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int error;
} sync_op;

static void sync_execute(napi_env env, void *data) {
  (void)env;
  sync_op *o = data;
  if (syncfs(o->fd) != 0) o->error = errno;
}

static void sync_complete(napi_env env, napi_status status, void *data) {
  sync_op *o = data;
  if (status == napi_ok && o->error == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, o->deferred, undefined);
  } else {
    int err = status == napi_ok ? o->error : ECANCELED;
    const char *name = strerrorname_np(err);
    char text[256];
    snprintf(text, sizeof text, "syncfs: %s", strerror(err));
    napi_value code, message, error;
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, o->deferred, error);
  }
  napi_delete_async_work(env, o->work);
  free(o);
}

static napi_value sync_file_system(napi_env env, napi_callback_info info) {
  const char *usage = "syncFileSystem(fd) takes an open descriptor";
  napi_value args[1];
  int64_t fd = -1;
  if (!args_of(env, info, 1, args, usage) || !int64_arg(env, args[0], &fd, usage)) return NULL;
  if (fd < 0 || fd > 0x7fffffff) {
    napi_throw_range_error(env, NULL, usage);
    return NULL;
  }
  sync_op *o = calloc(1, sizeof *o);
  if (!o) return throw_errno(env, ENOMEM, "syncFileSystem");
  o->fd = (int)fd;
  return queue_work(env, "syncFileSystem", sync_execute, sync_complete, o, &o->work, &o->deferred);
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "alignedBuffer", aligned_buffer, NULL) || !export_function(env, exports, "setTimes", set_times, NULL) ||
      !export_function(env, exports, "syncFileSystem", sync_file_system, NULL))
    return NULL;
  return exports;
}
