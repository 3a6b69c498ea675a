/*
 * Removes a file or folder tree below a root without following a symbolic link, even one swapped
 * in while it runs. Path-based removal (rm -r, Node's fs.rm) resolves each path again for every
 * entry: whoever can write to a mounted share could replace a folder being emptied with a link to
 * a folder of this machine between two steps, and the next unlink would land there. Here every
 * step is relative to a folder opened with O_NOFOLLOW (openat, unlinkat), so a folder replaced by
 * a link is either the folder already opened (wherever it now lies on the share) or removed as the
 * link it has become.
 *
 * removeBeneath(root, segments) -> Promise<void>. The root (the operator's own choice) may be a
 * link; segments name the entry below it, which may be a file, a link (removed itself) or a
 * folder (removed with everything in it). Nothing there, or a file on the way: resolves, as
 * fs.rm(force) does. The folder that held the entry is fsynced, so the removal reaches the disk
 * before whatever the caller does next. Rejects with an Error whose code is the errno name: ELOOP
 * where a folder on the way is a link, with `segment` its index.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Deeper than any tree of ours: a share writer's endless nesting must not exhaust descriptors. */
#define MAX_DEPTH 64
/* Passes over one folder: entries another writer keeps adding must not keep us here forever. */
#define MAX_PASSES 16
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *root;
  char **segments;
  uint32_t count;
  int error;
  int64_t link_at; /* the segment that is a link, or -1 */
} removal;

static int remove_entry(int dirfd, const char *name, int depth);

/* Empties the folder open at fd, and closes fd. */
static int remove_contents(int fd, int depth) {
  DIR *dir = fdopendir(fd);
  if (!dir) {
    int err = errno;
    close(fd);
    return err;
  }
  int result = 0;
  /* Removing entries while reading the folder may make readdir skip some: read it again until a pass removes nothing. */
  for (int pass = 0;; pass++) {
    if (pass == MAX_PASSES) {
      result = ENOTEMPTY;
      break;
    }
    int removed = 0;
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(dir)) != NULL) {
      if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
      result = remove_entry(dirfd(dir), entry->d_name, depth);
      if (result != 0) break;
      removed++;
      errno = 0;
    }
    if (result == 0 && errno != 0) result = errno;
    if (result != 0 || removed == 0) break;
    rewinddir(dir);
  }
  closedir(dir);
  return result;
}

/* Removes the entry `name` of the folder open at dirfd: a file or link as itself, a folder with its contents. */
static int remove_entry(int dirfd, const char *name, int depth) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  if (depth >= MAX_DEPTH) return ELOOP;
  int fd = openat(dirfd, name, DIR_FLAGS);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return 0;
    /* No longer a folder (a link or a file put in its place since): removed as what it is now. */
    if (err == ELOOP || err == ENOTDIR) return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : errno;
    return err;
  }
  int result = remove_contents(fd, depth + 1);
  if (result != 0) return result;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
  /* The folder was moved away while it emptied and something else took its name: that goes too. */
  if (errno == ENOTDIR) return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : errno;
  return errno;
}

static void execute(napi_env env, void *data) {
  (void)env;
  removal *r = data;
  r->link_at = -1;
  int fd = open(r->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    r->error = errno;
    return;
  }
  for (uint32_t i = 0; i + 1 < r->count; i++) {
    int next = openat(fd, r->segments[i], DIR_FLAGS);
    int err = errno;
    close(fd);
    if (next >= 0) {
      fd = next;
      continue;
    }
    /* Nothing there, or a file on the way: nothing to remove. */
    if (err == ENOENT || err == ENOTDIR) return;
    if (err == ELOOP) r->link_at = i;
    r->error = err;
    return;
  }
  r->error = remove_entry(fd, r->segments[r->count - 1], 0);
  if (r->error == 0) fsync(fd); /* best effort, as for a folder that is gone */
  close(fd);
}

static void release(removal *r) {
  free(r->root);
  for (uint32_t i = 0; i < r->count; i++) free(r->segments[i]);
  free(r->segments);
  free(r);
}

static void complete(napi_env env, napi_status status, void *data) {
  removal *r = data;
  if (status == napi_ok && r->error == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, r->deferred, undefined);
  } else {
    int err = status == napi_ok ? r->error : ECANCELED;
    const char *name = strerrorname_np(err);
    char text[256];
    snprintf(text, sizeof text, "removal below the share's root: %s", strerror(err));
    napi_value code, message, error, at;
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_create_int64(env, r->link_at, &at);
    napi_set_named_property(env, error, "segment", at);
    napi_reject_deferred(env, r->deferred, error);
  }
  napi_delete_async_work(env, r->work);
  release(r);
}

/* A string argument, copied; NULL (with an exception) when it is not one or holds a NUL. */
static char *string_arg(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "removeBeneath(root, segments): a path is not a string");
    return NULL;
  }
  char *copy = malloc(len + 1);
  if (!copy) {
    napi_throw_error(env, "ENOMEM", "removeBeneath: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, copy, len + 1, &len);
  if (strlen(copy) != len) {
    free(copy);
    napi_throw_type_error(env, NULL, "removeBeneath(root, segments): a path holds a NUL character");
    return NULL;
  }
  return copy;
}

static napi_value remove_beneath(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  bool is_array = false;
  uint32_t count = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2 ||
      napi_is_array(env, args[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, args[1], &count) != napi_ok ||
      count == 0) {
    napi_throw_type_error(env, NULL, "removeBeneath(root, segments) takes a path and a non-empty array of names");
    return NULL;
  }
  removal *r = calloc(1, sizeof *r);
  if (!r || !(r->segments = calloc(count, sizeof *r->segments))) {
    free(r);
    napi_throw_error(env, "ENOMEM", "removeBeneath: out of memory");
    return NULL;
  }
  if (!(r->root = string_arg(env, args[0]))) {
    release(r);
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value segment;
    if (napi_get_element(env, args[1], i, &segment) != napi_ok || !(r->segments[i] = string_arg(env, segment))) {
      release(r);
      return NULL;
    }
    r->count = i + 1;
    const char *s = r->segments[i];
    if (s[0] == '\0' || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
      release(r);
      napi_throw_type_error(env, NULL, "removeBeneath(root, segments): a segment is empty, '.', '..' or holds '/'");
      return NULL;
    }
  }
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "removeBeneath", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "removeBeneath", NAPI_AUTO_LENGTH, remove_beneath, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "removeBeneath", fn) != napi_ok) return NULL;
  return exports;
}
