/*
 * renameat2(2) with its flags (Linux 3.15; ext4, xfs, btrfs, tmpfs and others):
 * - exchange(a, b), RENAME_EXCHANGE, swaps two names atomically. Restore puts a staged folder in
 *   place with it: there is no instant at which the destination is missing, where two renames
 *   (destination aside, staging in) leave one.
 * - noReplace(a, b), RENAME_NOREPLACE, renames only if b does not exist, in one step. rename(2)
 *   replaces an empty folder in its way, so two writers moving folders to one name would both
 *   succeed after checking it first.
 *
 * Both return nothing, or throw an Error whose code is the errno name (EEXIST where b exists for
 * noReplace; EINVAL when the file system does not support the flag, ENOSYS on a kernel without the
 * call): the caller then uses its fallback.
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
#include "napi-helpers.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define MAX_PATH_BYTES 4096

/* renameat2's failure with the flag it was called with, e.g. "renameat2(RENAME_EXCHANGE): Invalid argument". */
static napi_value throw_rename_errno(napi_env env, int err, const char *flag) {
  char what[64];
  snprintf(what, sizeof what, "renameat2(%s)", flag);
  return throw_errno(env, err, what);
}

/* A path argument into buf; false (with an exception) when it is not a string, too long or holds a NUL. */
static bool path_arg(napi_env env, napi_value value, char *buf) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok || len >= MAX_PATH_BYTES) {
    napi_throw_type_error(env, NULL, "renameat2: a path is not a string or is too long");
    return false;
  }
  napi_get_value_string_utf8(env, value, buf, MAX_PATH_BYTES, &len);
  if (strlen(buf) != len) {
    napi_throw_type_error(env, NULL, "renameat2: a path holds a NUL character");
    return false;
  }
  return true;
}

/* renameat2(a, b, flag) for a function of two path arguments. */
static napi_value rename_with(napi_env env, napi_callback_info info, unsigned int flag, const char *flag_name) {
  size_t argc = 2;
  napi_value args[2];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "renameat2: takes two paths");
    return NULL;
  }
  static char a[MAX_PATH_BYTES], b[MAX_PATH_BYTES];
  if (!path_arg(env, args[0], a) || !path_arg(env, args[1], b)) return NULL;
  /* The raw system call: glibc before 2.28 has no wrapper. */
  if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flag) != 0) return throw_rename_errno(env, errno, flag_name);
  return NULL;
}

static napi_value exchange(napi_env env, napi_callback_info info) {
  return rename_with(env, info, RENAME_EXCHANGE, "RENAME_EXCHANGE");
}

static napi_value no_replace(napi_env env, napi_callback_info info) {
  return rename_with(env, info, RENAME_NOREPLACE, "RENAME_NOREPLACE");
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "exchange", exchange, NULL) || !export_function(env, exports, "noReplace", no_replace, NULL)) return NULL;
  return exports;
}
