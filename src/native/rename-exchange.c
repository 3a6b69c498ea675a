/*
 * Swaps two names atomically with renameat2(RENAME_EXCHANGE) (Linux 3.15; ext4, xfs, btrfs, tmpfs
 * and others). Restore puts a staged folder in place with it: there is no instant at which the
 * destination is missing, where two renames (destination aside, staging in) leave one.
 *
 * exchange(a, b) returns nothing, or throws an Error whose code is the errno name (EINVAL when the
 * file system does not support the flag, ENOSYS on a kernel without the call): the caller then
 * uses its journalled two-rename way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define MAX_PATH_BYTES 4096

static napi_value throw_errno(napi_env env, int err) {
  char message[256];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "renameat2(RENAME_EXCHANGE): %s", strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", message);
  return NULL;
}

/* A path argument into buf; false (with an exception) when it is not a string, too long or holds a NUL. */
static bool path_arg(napi_env env, napi_value value, char *buf) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok || len >= MAX_PATH_BYTES) {
    napi_throw_type_error(env, NULL, "exchange(a, b): a path is not a string or is too long");
    return false;
  }
  napi_get_value_string_utf8(env, value, buf, MAX_PATH_BYTES, &len);
  if (strlen(buf) != len) {
    napi_throw_type_error(env, NULL, "exchange(a, b): a path holds a NUL character");
    return false;
  }
  return true;
}

static napi_value exchange(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "exchange(a, b) takes two paths");
    return NULL;
  }
  static char a[MAX_PATH_BYTES], b[MAX_PATH_BYTES];
  if (!path_arg(env, args[0], a) || !path_arg(env, args[1], b)) return NULL;
  /* The raw system call: glibc before 2.28 has no wrapper. */
  if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0) return throw_errno(env, errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "exchange", NAPI_AUTO_LENGTH, exchange, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "exchange", fn) != napi_ok) return NULL;
  return exports;
}
