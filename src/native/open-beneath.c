/*
 * Folders below a share's root held open, and the steps of a write or a rename made relative to
 * them. The local target checks a path's folders with lstat and then used the path again: whoever
 * may write to a mounted share could swap a checked folder for a symbolic link in between, and
 * mkdir -p, the temporary file of a write, or a rename then reached a folder of this machine. Here
 * each folder is opened with O_NOFOLLOW from the one before it (made with mkdirat when asked), and
 * files are created, renamed, linked and removed relative to the folder held, so a folder swapped
 * afterwards leads nowhere: the steps stay in the folder that was opened, wherever it now lies on
 * the share.
 *
 * Every function returns a promise (the calls may wait on a network mount) and rejects with an
 * Error whose code is the errno name; openFolder's also carries `segment`, the index of the name
 * it failed at (ELOOP: that folder is a link), or -1.
 *   openFolder(root, segments, folderMode) -> fd of root/segments... (the root itself may be a
 *     link, it is the operator's choice). folderMode, when not 0: missing folders are made with it
 *     (less the umask), and the folder holding each new one is fsynced so a crash cannot lose it
 *     (best effort: network mounts may refuse).
 *   createFile(dirfd, name, mode) -> fd of a new file, open for writing; EEXIST if name exists.
 *   createDirectFile(dirfd, name, mode) -> the same, opened with O_DIRECT (a restore's large files,
 *     src/providers/direct-file.ts); EINVAL where the file system cannot.
 *   kindAt(dirfd, name) -> 'directory', 'other' (a file or a link, never followed), or null.
 *   renameAt(fromfd, from, tofd, to, noReplace) -> renameat, or renameat2(RENAME_NOREPLACE):
 *     EEXIST if `to` exists; EINVAL or ENOSYS where the file system or kernel cannot.
 *   linkAt(fromfd, from, tofd, to) -> linkat without following `from`.
 *   unlinkAt(dirfd, name) -> removes a file or link; nothing there is no error.
 *   removeTreeAt(dirfd, name) -> removes a file, a link (itself) or a folder with everything in it;
 *     nothing there is no error. Path-based removal (rm -r, fs.rm) resolves each path again for
 *     every entry, so a folder being emptied and swapped for a link between two steps would send
 *     the next unlinks out of the share; here each folder is opened with O_NOFOLLOW from the one
 *     before it and emptied from that descriptor: one swapped afterwards is either the folder
 *     already opened (wherever it now lies on the share) or removed as the link it has become.
 * Descriptors returned belong to the caller, who closes them (fs.close).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "napi-helpers.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
/* Deeper than any tree of ours: a share writer's endless nesting must not exhaust descriptors. */
#define MAX_DEPTH 64
/* Passes over one folder: entries another writer keeps adding must not keep a removal there forever. */
#define MAX_PASSES 16
#define FILE_FLAGS (O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC)

typedef enum { OPEN_FOLDER, CREATE_FILE, CREATE_DIRECT_FILE, KIND_AT, RENAME_AT, LINK_AT, UNLINK_AT, REMOVE_TREE_AT } op_kind;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  op_kind kind;
  char **names; /* openFolder: root then the segments; else the one or two names */
  uint32_t count;
  int fd[2];
  int flag; /* folder mode (0: make none), file mode or noReplace */
  int error;
  int64_t segment; /* openFolder: the segment it failed at, or -1 */
  int result;      /* a descriptor, or kindAt's 0 missing, 1 directory, 2 other */
} op;

/* The error of an openat(O_DIRECTORY | O_NOFOLLOW) that failed: some kernels say ENOTDIR for a link. */
static int folder_error(int dirfd, const char *name, int err) {
  struct stat st;
  if (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) return ELOOP;
  return err;
}

/* The folder `name` of the folder open at fd, opened without following a link; made first (with `mode`) when missing and `mode` is not 0. */
static int open_or_make(int fd, const char *name, int mode) {
  int next = openat(fd, name, DIR_FLAGS);
  if (next >= 0 || errno != ENOENT || !mode) return next;
  if (mkdirat(fd, name, (mode_t)mode) == 0) fsync(fd); /* best effort, as syncDirectory: some network mounts refuse it */
  else if (errno != EEXIST) return -1;          /* EEXIST: another writer made it meanwhile */
  return openat(fd, name, DIR_FLAGS);
}

static void open_folder(op *o) {
  int fd = open(o->names[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    o->error = errno;
    return;
  }
  for (uint32_t i = 1; i < o->count; i++) {
    int next = open_or_make(fd, o->names[i], o->flag);
    if (next < 0) {
      o->error = folder_error(fd, o->names[i], errno);
      o->segment = i - 1;
      close(fd);
      return;
    }
    close(fd);
    fd = next;
  }
  o->result = fd;
}

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
  op *o = data;
  struct stat st;
  int done = 0;
  switch (o->kind) {
    case OPEN_FOLDER:
      open_folder(o);
      return;
    case CREATE_FILE:
      done = o->result = openat(o->fd[0], o->names[0], FILE_FLAGS, (mode_t)o->flag);
      break;
    case CREATE_DIRECT_FILE:
      done = o->result = openat(o->fd[0], o->names[0], FILE_FLAGS | O_DIRECT, (mode_t)o->flag);
      break;
    case KIND_AT:
      done = fstatat(o->fd[0], o->names[0], &st, AT_SYMLINK_NOFOLLOW);
      if (done == 0) o->result = S_ISDIR(st.st_mode) ? 1 : 2;
      else if (errno == ENOENT) return; /* result 0: missing */
      break;
    case RENAME_AT:
      /* The raw system call: glibc before 2.28 has no renameat2 wrapper. */
      done = o->flag ? syscall(SYS_renameat2, o->fd[0], o->names[0], o->fd[1], o->names[1], RENAME_NOREPLACE)
                     : renameat(o->fd[0], o->names[0], o->fd[1], o->names[1]);
      break;
    case LINK_AT:
      done = linkat(o->fd[0], o->names[0], o->fd[1], o->names[1], 0);
      break;
    case UNLINK_AT:
      done = unlinkat(o->fd[0], o->names[0], 0);
      if (done != 0 && errno == ENOENT) return;
      break;
    case REMOVE_TREE_AT:
      o->error = remove_entry(o->fd[0], o->names[0], 0);
      return;
  }
  if (done < 0) o->error = errno;
}

static void release(op *o) {
  for (uint32_t i = 0; i < o->count; i++) free(o->names[i]);
  free(o->names);
  free(o);
}

static void complete(napi_env env, napi_status status, void *data) {
  op *o = data;
  if (status == napi_ok && o->error == 0) {
    napi_value value;
    if (o->kind == OPEN_FOLDER || o->kind == CREATE_FILE || o->kind == CREATE_DIRECT_FILE) napi_create_int32(env, o->result, &value);
    else if (o->kind == KIND_AT && o->result != 0) napi_create_string_utf8(env, o->result == 1 ? "directory" : "other", NAPI_AUTO_LENGTH, &value);
    else if (o->kind == KIND_AT) napi_get_null(env, &value);
    else napi_get_undefined(env, &value);
    napi_resolve_deferred(env, o->deferred, value);
  } else {
    /* A descriptor opened for a promise no one will see resolved must not leak. */
    if (o->error == 0 && (o->kind == OPEN_FOLDER || o->kind == CREATE_FILE || o->kind == CREATE_DIRECT_FILE) && o->result >= 0) close(o->result);
    int err = status == napi_ok ? o->error : ECANCELED;
    const char *name = strerrorname_np(err);
    char text[256];
    snprintf(text, sizeof text, "below the share's root: %s", strerror(err));
    napi_value code, message, error, at;
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_create_int64(env, o->segment, &at);
    napi_set_named_property(env, error, "segment", at);
    napi_reject_deferred(env, o->deferred, error);
  }
  napi_delete_async_work(env, o->work);
  release(o);
}

/* A string argument, copied; NULL (with an exception) when it is not one or holds a NUL. */
static char *string_arg(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "open-beneath: a path or name is not a string");
    return NULL;
  }
  char *copy = malloc(len + 1);
  if (!copy) {
    napi_throw_error(env, "ENOMEM", "open-beneath: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, copy, len + 1, &len);
  if (strlen(copy) != len) {
    free(copy);
    napi_throw_type_error(env, NULL, "open-beneath: a path or name holds a NUL character");
    return NULL;
  }
  return copy;
}

/* A name of one entry: anything else would let a step leave the folder held. */
static char *name_arg(napi_env env, napi_value value) {
  char *s = string_arg(env, value);
  if (s && (s[0] == '\0' || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)) {
    free(s);
    napi_throw_type_error(env, NULL, "open-beneath: a name is empty, '.', '..' or holds '/'");
    return NULL;
  }
  return s;
}

static bool int_arg(napi_env env, napi_value value, int *out) {
  if (napi_get_value_int32(env, value, out) == napi_ok) return true;
  napi_throw_type_error(env, NULL, "open-beneath: a descriptor or mode is not a number");
  return false;
}

static op *new_op(napi_env env, op_kind kind, uint32_t names) {
  op *o = calloc(1, sizeof *o);
  if (!o || !(o->names = calloc(names, sizeof *o->names))) {
    free(o);
    napi_throw_error(env, "ENOMEM", "open-beneath: out of memory");
    return NULL;
  }
  o->kind = kind;
  o->segment = -1;
  o->result = -1;
  if (kind == KIND_AT) o->result = 0;
  return o;
}

/* Queues `o`: its promise, or NULL (o released) when an argument was refused. */
static napi_value queue(napi_env env, op *o, bool ok) {
  if (!ok) {
    release(o);
    return NULL;
  }
  return queue_work(env, "openBeneath", execute, complete, o, &o->work, &o->deferred);
}

/* Reads names args[at], args[at + 2]... (every `step`) into o->names, counting them. */
static bool names_from(napi_env env, op *o, napi_value *args, size_t at, size_t step, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    if (!(o->names[i] = name_arg(env, args[at + i * step]))) return false;
    o->count = i + 1;
  }
  return true;
}

static napi_value open_folder_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  bool is_array = false;
  int mode = 0;
  uint32_t count = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 3 || napi_is_array(env, args[1], &is_array) != napi_ok ||
      !is_array || napi_get_array_length(env, args[1], &count) != napi_ok || napi_get_value_int32(env, args[2], &mode) != napi_ok ||
      mode < 0 || mode > 07777) {
    napi_throw_type_error(env, NULL, "openFolder(root, segments, folderMode) takes a path, an array of names and a mode (0: make none)");
    return NULL;
  }
  op *o = new_op(env, OPEN_FOLDER, count + 1);
  if (!o) return NULL;
  o->flag = mode;
  bool ok = (o->names[0] = string_arg(env, args[0])) != NULL;
  if (ok) o->count = 1;
  for (uint32_t i = 0; ok && i < count; i++) {
    napi_value segment;
    ok = napi_get_element(env, args[1], i, &segment) == napi_ok && (o->names[i + 1] = name_arg(env, segment)) != NULL;
    if (ok) o->count = i + 2;
  }
  return queue(env, o, ok);
}

/* The functions that act on names in folders held open: which op, how many arguments, and whether two names. */
typedef struct {
  const char *name;
  op_kind kind;
  size_t argc;
  bool two_names;
} step_spec;

static const step_spec STEPS[] = {
    {"createFile", CREATE_FILE, 3, false},   /* (dirfd, name, mode) */
    {"createDirectFile", CREATE_DIRECT_FILE, 3, false}, /* (dirfd, name, mode) */
    {"kindAt", KIND_AT, 2, false},           /* (dirfd, name) */
    {"unlinkAt", UNLINK_AT, 2, false},       /* (dirfd, name) */
    {"removeTreeAt", REMOVE_TREE_AT, 2, false}, /* (dirfd, name) */
    {"renameAt", RENAME_AT, 5, true},        /* (fromfd, from, tofd, to, noReplace) */
    {"linkAt", LINK_AT, 4, true},            /* (fromfd, from, tofd, to) */
};

/* One of STEPS, as its callback data says: f(fd, name[, number]) or f(fromfd, from, tofd, to[, flag]). */
static napi_value step_js(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, args, NULL, &data) != napi_ok) return NULL;
  const step_spec *spec = data;
  bool flag = false;
  if (argc != spec->argc || (spec->two_names && argc == 5 && napi_get_value_bool(env, args[4], &flag) != napi_ok)) {
    napi_throw_type_error(env, NULL, "open-beneath: wrong arguments");
    return NULL;
  }
  op *o = new_op(env, spec->kind, spec->two_names ? 2 : 1);
  if (!o) return NULL;
  bool ok;
  if (spec->two_names) {
    o->flag = flag;
    ok = int_arg(env, args[0], &o->fd[0]) && int_arg(env, args[2], &o->fd[1]) && names_from(env, o, args, 1, 2, 2);
  } else {
    ok = int_arg(env, args[0], &o->fd[0]) && names_from(env, o, args, 1, 1, 1) && (argc < 3 || int_arg(env, args[2], &o->flag));
  }
  return queue(env, o, ok);
}

NAPI_MODULE_INIT() {
  if (!export_function(env, exports, "openFolder", open_folder_js, NULL)) return NULL;
  for (size_t i = 0; i < sizeof STEPS / sizeof STEPS[0]; i++)
    if (!export_function(env, exports, STEPS[i].name, step_js, (void *)&STEPS[i])) return NULL;
  return exports;
}
