/*
 * One folder of the backup's walk in one call: the names in it, sorted bytewise, each with what
 * lstat says of it, taken with fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) below the handle the walk
 * holds on the folder (so, as the /proc/self/fd/N/name paths of the TypeScript way, a folder
 * replaced by a symbolic link meanwhile is never followed).
 *
 * In a fresh process the walk runs before the JIT has caught up, and Node's lstatSync() then costs
 * far more than the system call: path validation, and a BigIntStats with ~20 BigInts and four Date
 * objects per file. An unchanged backup lstats every file of the tree (2,610 in the bench corpus).
 *
 * readFolder(fd) returns an ArrayBuffer (native byte order):
 *   float64 count, then count records of RECORD_SLOTS 8-byte slots, then the names' bytes.
 *   slot 0 errno of the fstatat (0: the others hold), 1 st_mode, 2 st_uid, 3 st_gid, 4 st_nlink,
 *   5 st_size, 6 name offset, 7 name length (float64 each); 8 mtime and 9 ctime in nanoseconds
 *   (int64), 10 st_ino, 11 st_dev, 12 st_rdev (uint64); 13 1 when both times fit 64 bits of
 *   nanoseconds (float64; 0: the caller asks lstat instead); 14 and 15 offset and length of the
 *   entry's extended attributes (float64; length 0: none), after the names: for each attribute
 *   uint32 name length, the name, uint32 value length, the value (little-endian). POSIX ACLs are
 *   the attributes system.posix_acl_access and system.posix_acl_default. Asked for with
 *   listxattrat(2) below the walk's handle where the kernel has it, and read (when there are any)
 *   with llistxattr and lgetxattr through /proc/self/fd/<fd>/<name>: below the handle too, the
 *   entry itself never followed. An attribute that cannot be read (a file system without them)
 *   is left out.
 * It throws an Error whose code is the errno name when the folder cannot be read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/limits.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "napi-helpers.h"

#define RECORD_SLOTS 16

typedef struct {
  char *name;
  size_t length;
} entry;

static int by_bytes(const void *a, const void *b) {
  /* strcmp compares as unsigned char, and a name that is a prefix of another comes first. */
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static void put_f64(unsigned char *slot, double v) { memcpy(slot, &v, 8); }
static void put_i64(unsigned char *slot, int64_t v) { memcpy(slot, &v, 8); }
static void put_u64(unsigned char *slot, uint64_t v) { memcpy(slot, &v, 8); }

/* Nanoseconds of a timespec in *out; false when they do not fit 64 bits. */
static bool nanoseconds(struct timespec t, int64_t *out) {
  int64_t ns;
  if (__builtin_mul_overflow((int64_t)t.tv_sec, (int64_t)1000000000, &ns)) return false;
  if (__builtin_add_overflow(ns, (int64_t)t.tv_nsec, &ns)) return false;
  *out = ns;
  return true;
}

/* The names in the folder open at `fd` (. and .. left out), in *names; -errno on failure. */
static int read_names(int fd, entry **names, size_t *count) {
  int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return -errno;
  DIR *dir = fdopendir(own);
  if (!dir) {
    int err = errno;
    close(own);
    return -err;
  }
  size_t n = 0, capacity = 64;
  entry *list = malloc(capacity * sizeof(entry));
  if (!list) {
    closedir(dir);
    return -ENOMEM;
  }
  for (;;) {
    errno = 0;
    struct dirent *d = readdir(dir);
    if (!d) break;
    if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) continue;
    if (n == capacity) {
      entry *grown = realloc(list, (capacity *= 2) * sizeof(entry));
      if (!grown) {
        errno = ENOMEM;
        break;
      }
      list = grown;
    }
    size_t length = strlen(d->d_name);
    list[n].name = malloc(length + 1);
    if (!list[n].name) {
      errno = ENOMEM;
      break;
    }
    memcpy(list[n].name, d->d_name, length + 1);
    list[n++].length = length;
  }
  int err = errno;
  closedir(dir);
  if (err) {
    for (size_t i = 0; i < n; i++) free(list[i].name);
    free(list);
    return -err;
  }
  qsort(list, n, sizeof(entry), by_bytes);
  *names = list;
  *count = n;
  return 0;
}


typedef struct {
  unsigned char *bytes;
  size_t length, capacity;
} growing;

static bool grow_by(growing *g, size_t more) {
  if (g->length + more <= g->capacity) return true;
  size_t capacity = g->capacity ? g->capacity : 4096;
  while (capacity < g->length + more) capacity *= 2;
  unsigned char *bigger = realloc(g->bytes, capacity);
  if (!bigger) return false;
  g->bytes = bigger;
  g->capacity = capacity;
  return true;
}

static bool put_u32le(growing *g, uint32_t v) {
  if (!grow_by(g, 4)) return false;
  for (int k = 0; k < 4; k++) g->bytes[g->length++] = (unsigned char)(v >> (8 * k));
  return true;
}

static bool put_bytes(growing *g, const void *p, size_t n) {
  if (!grow_by(g, n)) return false;
  memcpy(g->bytes + g->length, p, n);
  g->length += n;
  return true;
}

/*
 * The extended attributes of `path` appended to *out as the module comment says; false only when
 * memory ran out. A list or value that grew between the two calls (ERANGE) is read again.
 */
static bool read_xattrs(const char *path, growing *out) {
  char *names = NULL;
  ssize_t size = 0;
  for (int attempt = 0; attempt < 4; attempt++) {
    size = llistxattr(path, NULL, 0);
    if (size <= 0) return true;
    char *grown = realloc(names, (size_t)size);
    if (!grown) {
      free(names);
      return false;
    }
    names = grown;
    size = llistxattr(path, names, (size_t)size);
    if (size >= 0 || errno != ERANGE) break;
  }
  bool ok = true;
  unsigned char *value = NULL;
  for (ssize_t at = 0; ok && size > 0 && at < size; at += (ssize_t)strlen(names + at) + 1) {
    const char *name = names + at;
    /* Left out of every archive: an SELinux label belongs to the policy of the machine that
       restores (restorecon sets it), and on such a machine every file has one. */
    if (strcmp(name, "security.selinux") == 0) continue;
    ssize_t length = -1;
    for (int attempt = 0; attempt < 4; attempt++) {
      length = lgetxattr(path, name, NULL, 0);
      if (length < 0) break;
      unsigned char *grown = realloc(value, length > 0 ? (size_t)length : 1);
      if (!grown) {
        ok = false;
        break;
      }
      value = grown;
      length = lgetxattr(path, name, value, (size_t)length);
      if (length >= 0 || errno != ERANGE) break;
    }
    if (!ok || length < 0) continue;
    size_t name_length = strlen(name);
    ok = put_u32le(out, (uint32_t)name_length) && put_bytes(out, name, name_length) && put_u32le(out, (uint32_t)length) &&
         put_bytes(out, value, (size_t)length);
  }
  free(value);
  free(names);
  return ok;
}

#ifndef SYS_listxattrat
#define SYS_listxattrat 465 /* Linux 6.13, the same number on every architecture */
#endif

/*
 * Whether the entry `name` of the folder open at `fd` has extended attributes, asked below the
 * handle: listxattrat(2) where the kernel has it (a third of the cost of a path through
 * /proc/self/fd, which every entry of every backup pays), else llistxattr of `proc_path`.
 */
static bool has_xattrs(int fd, const char *name, const char *proc_path) {
  static int listxattrat_works = -1;
  if (listxattrat_works != 0) {
    long size = syscall(SYS_listxattrat, fd, name, AT_SYMLINK_NOFOLLOW, NULL, 0);
    /* ENOSYS: an older kernel; EPERM: a seccomp filter that does not know the call. */
    if (size >= 0 || (errno != ENOSYS && errno != EPERM)) {
      listxattrat_works = 1;
      return size > 0;
    }
    listxattrat_works = 0;
  }
  return llistxattr(proc_path, NULL, 0) > 0;
}

/* An open descriptor argument; false (with a TypeError saying `usage`) when it is not one. */
static bool fd_arg(napi_env env, napi_value value, int32_t *fd, const char *usage) {
  if (napi_get_value_int32(env, value, fd) == napi_ok && *fd >= 0) return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

/* A path argument into buf (PATH_MAX bytes); false (with a TypeError saying `usage`) when it is not a
   string, is too long or holds a NUL. */
static bool path_arg(napi_env env, napi_value value, char *buf, const char *usage) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, buf, PATH_MAX, &length) == napi_ok && length < PATH_MAX - 1 && strlen(buf) == length)
    return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

static napi_value read_folder(napi_env env, napi_callback_info info) {
  const char *usage = "readFolder(fd) takes an open folder's descriptor";
  napi_value args[1];
  int32_t fd = -1;
  if (!args_of(env, info, 1, args, usage) || !fd_arg(env, args[0], &fd, usage)) return NULL;
  entry *names = NULL;
  size_t n = 0;
  int err = read_names(fd, &names, &n);
  if (err < 0) return throw_errno(env, -err, "scandir");
  size_t name_bytes = 0;
  for (size_t i = 0; i < n; i++) name_bytes += names[i].length;
  /* Every lstat and attribute first: the result's size depends on the attributes. */
  struct stat *stats = malloc((n ? n : 1) * sizeof(struct stat));
  int *errors = malloc((n ? n : 1) * sizeof(int));
  size_t *xattr_at = malloc((n ? n : 1) * 2 * sizeof(size_t));
  growing xattrs = {0};
  bool ok = stats && errors && xattr_at;
  char path[64 + 256];
  for (size_t i = 0; ok && i < n; i++) {
    errors[i] = fstatat(fd, names[i].name, &stats[i], AT_SYMLINK_NOFOLLOW) != 0 ? errno : 0;
    xattr_at[2 * i] = xattrs.length;
    mode_t type = stats[i].st_mode & S_IFMT;
    if (errors[i] == 0 && (type == S_IFREG || type == S_IFDIR || type == S_IFLNK) &&
        snprintf(path, sizeof path, "/proc/self/fd/%d/%s", fd, names[i].name) < (int)sizeof path &&
        has_xattrs(fd, names[i].name, path))
      ok = read_xattrs(path, &xattrs);
    xattr_at[2 * i + 1] = xattrs.length - xattr_at[2 * i];
  }
  size_t names_at = 8 + n * RECORD_SLOTS * 8;
  size_t xattrs_at = names_at + name_bytes;
  void *data = NULL;
  napi_value result;
  if (!ok || napi_create_arraybuffer(env, xattrs_at + xattrs.length, &data, &result) != napi_ok) {
    for (size_t i = 0; i < n; i++) free(names[i].name);
    free(names);
    free(stats);
    free(errors);
    free(xattr_at);
    free(xattrs.bytes);
    if (!ok) return throw_errno(env, ENOMEM, "readFolder");
    return NULL;
  }
  unsigned char *out = data;
  put_f64(out, (double)n);
  size_t name_at = names_at;
  for (size_t i = 0; i < n; i++) {
    unsigned char *r = out + 8 + i * RECORD_SLOTS * 8;
    memset(r, 0, RECORD_SLOTS * 8);
    struct stat st = stats[i];
    int64_t mtime = 0, ctime = 0;
    if (errors[i] != 0) {
      put_f64(r, (double)errors[i]);
    } else {
      put_f64(r + 8 * 1, (double)st.st_mode);
      put_f64(r + 8 * 2, (double)st.st_uid);
      put_f64(r + 8 * 3, (double)st.st_gid);
      put_f64(r + 8 * 4, (double)st.st_nlink);
      put_f64(r + 8 * 5, (double)st.st_size);
      bool exact = nanoseconds(st.st_mtim, &mtime) && nanoseconds(st.st_ctim, &ctime);
      put_i64(r + 8 * 8, mtime);
      put_i64(r + 8 * 9, ctime);
      put_u64(r + 8 * 10, (uint64_t)st.st_ino);
      put_u64(r + 8 * 11, (uint64_t)st.st_dev);
      put_u64(r + 8 * 12, (uint64_t)st.st_rdev);
      put_f64(r + 8 * 13, exact ? 1 : 0);
      put_f64(r + 8 * 14, (double)(xattrs_at + xattr_at[2 * i]));
      put_f64(r + 8 * 15, (double)xattr_at[2 * i + 1]);
    }
    put_f64(r + 8 * 6, (double)name_at);
    put_f64(r + 8 * 7, (double)names[i].length);
    memcpy(out + name_at, names[i].name, names[i].length);
    name_at += names[i].length;
    free(names[i].name);
  }
  if (xattrs.length) memcpy(out + xattrs_at, xattrs.bytes, xattrs.length);
  free(stats);
  free(errors);
  free(xattr_at);
  free(xattrs.bytes);
  free(names);
  return result;
}

/* readXattrs(path): the extended attributes of `path` itself (never followed), packed as above. */
static napi_value read_path_xattrs(napi_env env, napi_callback_info info) {
  const char *usage = "readXattrs(path) takes a path";
  napi_value args[1];
  char path[PATH_MAX];
  if (!args_of(env, info, 1, args, usage) || !path_arg(env, args[0], path, usage)) return NULL;
  growing xattrs = {0};
  if (!read_xattrs(path, &xattrs)) {
    free(xattrs.bytes);
    return throw_errno(env, ENOMEM, "readXattrs");
  }
  void *data = NULL;
  napi_value result;
  napi_status status = napi_create_arraybuffer(env, xattrs.length, &data, &result);
  if (status == napi_ok && xattrs.length) memcpy(data, xattrs.bytes, xattrs.length);
  free(xattrs.bytes);
  return status == napi_ok ? result : NULL;
}

static uint32_t get_u32le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One attribute of a packed list (read_xattrs): its name and value, and where the next one starts. */
typedef struct {
  const unsigned char *name, *value;
  uint32_t name_length, value_length;
} packed_xattr;

static size_t next_xattr(const growing *list, size_t at, packed_xattr *x) {
  x->name_length = get_u32le(list->bytes + at);
  x->name = list->bytes + at + 4;
  x->value_length = get_u32le(x->name + x->name_length);
  x->value = x->name + x->name_length + 4;
  return at + 8 + x->name_length + x->value_length;
}

static bool has_xattr_named(const growing *list, const packed_xattr *wanted) {
  packed_xattr x;
  for (size_t at = 0; at + 4 <= list->length;) {
    at = next_xattr(list, at, &x);
    if (x.name_length == wanted->name_length && memcmp(x.name, wanted->name, x.name_length) == 0) return true;
  }
  return false;
}

/*
 * copyXattrs(from, to): `to` (never followed) takes the extended attributes of `from`: each is
 * set, and each of its own that `from` lacks is removed. For the root of a mount point, whose
 * contents a restore swaps: the staged folder's attributes (its ACL) become the mount point's.
 */
static napi_value copy_xattrs(napi_env env, napi_callback_info info) {
  const char *usage = "copyXattrs(from, to) takes two paths";
  napi_value args[2];
  char from[PATH_MAX], to[PATH_MAX];
  if (!args_of(env, info, 2, args, usage) || !path_arg(env, args[0], from, usage) || !path_arg(env, args[1], to, usage))
    return NULL;
  growing wanted = {0}, present = {0};
  if (!read_xattrs(from, &wanted) || !read_xattrs(to, &present)) {
    free(wanted.bytes);
    free(present.bytes);
    return throw_errno(env, ENOMEM, "copyXattrs");
  }
  int err = 0;
  char name[XATTR_NAME_MAX + 1];
  packed_xattr x;
  /* Its own that `from` lacks go first, then each of `from`'s is set. */
  for (size_t at = 0; !err && at + 4 <= present.length;) {
    at = next_xattr(&present, at, &x);
    if (x.name_length > XATTR_NAME_MAX || has_xattr_named(&wanted, &x)) continue;
    memcpy(name, x.name, x.name_length);
    name[x.name_length] = 0;
    if (lremovexattr(to, name) != 0 && errno != ENODATA) err = errno;
  }
  for (size_t at = 0; !err && at + 4 <= wanted.length;) {
    at = next_xattr(&wanted, at, &x);
    if (x.name_length > XATTR_NAME_MAX) continue;
    memcpy(name, x.name, x.name_length);
    name[x.name_length] = 0;
    if (lsetxattr(to, name, x.value, x.value_length, 0) != 0) err = errno;
  }
  free(wanted.bytes);
  free(present.bytes);
  if (err) return throw_errno(env, err, "copyXattrs");
  return NULL;
}

/*
 * writeBackPages(fd): starts writing back every dirty page of the open file (sync_file_range with
 * SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE), waiting only for pages already on their
 * way. A page handed to writeback is clean and write-protected in every mapping, so the next write
 * through a mapping faults and moves the file's ctime: read after this, a file whose ctime is
 * later found unchanged was not written since, through a mapping either. true when done; false
 * where the file system cannot (the caller then trusts the ctime less).
 */
static napi_value write_back_pages(napi_env env, napi_callback_info info) {
  const char *usage = "writeBackPages(fd) takes an open file's descriptor";
  napi_value args[1];
  int32_t fd = -1;
  if (!args_of(env, info, 1, args, usage) || !fd_arg(env, args[0], &fd, usage)) return NULL;
  bool done = sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE) == 0;
  napi_value result;
  napi_get_boolean(env, done, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "readFolder", NAPI_AUTO_LENGTH, read_folder, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readFolder", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "readXattrs", NAPI_AUTO_LENGTH, read_path_xattrs, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readXattrs", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "copyXattrs", NAPI_AUTO_LENGTH, copy_xattrs, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "copyXattrs", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "writeBackPages", NAPI_AUTO_LENGTH, write_back_pages, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeBackPages", fn) != napi_ok) return NULL;
  return exports;
}
