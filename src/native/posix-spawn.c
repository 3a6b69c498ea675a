/*
 * Starts a program with posix_spawn(3) instead of fork(2).
 *
 * libuv 1.46 (Node 20) starts every child with fork(). fork() write-protects all of the parent's
 * private memory, so afterwards the parent takes a page fault for every page it writes again,
 * even though the child exec'd long ago. On this kind of paravirtualised VM each fault costs
 * about 25 microseconds. The later a child starts, the more it costs: a three-role backup starts
 * its third tar at ~140 MiB of RSS and took 2.4 s and ~39 000 faults with fork(), 2.0 s and
 * ~23 000 without (one role saves only ~1 000). glibc's posix_spawn uses clone(CLONE_VM |
 * CLONE_VFORK): no page tables are copied and nothing is write-protected.
 *
 * What libuv does for a child is done here too: every signal back to its default disposition and
 * an empty signal mask in the child, and optionally a new session. Its stdio are pipes of 1 MiB,
 * where libuv gives socket pairs: a socket wakes its reader for every 32 KiB it carries, a pipe
 * once per write, and a restore writes tar 500 MiB (waking a process costs an interrupt to the
 * other vCPU on this kind of VM). Nothing here needs a socket's half-close: the parent only writes
 * to stdin and only reads stdout and stderr, and closing its end is the end of input. The parent
 * learns of the exit through a pidfd polled on Node's own event loop, and reaps only its own pid,
 * as libuv does for its children.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include "napi-helpers.h"

#define MAX_ARGS 4096
#define MAX_STRING 65536
#define PIPE_BYTES (1024 * 1024)

typedef struct {
  uv_poll_t poll; /* first, so the handle is the watch */
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  pid_t pid;
  int pidfd;
} exit_watch;

/* A JS array of strings as a NULL-terminated char* array; NULL (with an exception) on bad input. */
static char **string_array(napi_env env, napi_value array, const char *what) {
  uint32_t n = 0;
  bool is_array = false;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok ||
      n > MAX_ARGS) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  char **out = calloc(n + 1, sizeof(char *));
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    size_t len = 0;
    if (napi_get_element(env, array, i, &item) != napi_ok ||
        napi_get_value_string_utf8(env, item, NULL, 0, &len) != napi_ok || len > MAX_STRING) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      napi_throw_type_error(env, NULL, what);
      return NULL;
    }
    out[i] = malloc(len + 1);
    napi_get_value_string_utf8(env, item, out[i], len + 1, &len);
    if (strlen(out[i]) != len) { /* an embedded NUL would silently cut the argument */
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      napi_throw_type_error(env, NULL, what);
      return NULL;
    }
  }
  return out;
}

static void free_strings(char **strings) {
  if (!strings) return;
  for (char **s = strings; *s; s++) free(*s);
  free(strings);
}

static void on_watch_closed(uv_handle_t *handle) {
  exit_watch *w = (exit_watch *)handle;
  close(w->pidfd);
  free(w);
}

static void on_pidfd_readable(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  exit_watch *w = (exit_watch *)handle;
  int wstatus = 0;
  pid_t r;
  do r = waitpid(w->pid, &wstatus, WNOHANG);
  while (r == -1 && errno == EINTR);
  if (r == 0) return; /* not a zombie yet */
  uv_poll_stop(handle);

  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, recv, argv[2];
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_global(env, &recv);
  napi_get_null(env, &argv[0]);
  napi_get_null(env, &argv[1]);
  if (r == w->pid && WIFEXITED(wstatus)) napi_create_int32(env, WEXITSTATUS(wstatus), &argv[0]);
  else if (r == w->pid && WIFSIGNALED(wstatus)) napi_create_int32(env, WTERMSIG(wstatus), &argv[1]);
  /* r == -1: someone else reaped it; both stay null and the caller reports an unknown end. */
  if (napi_make_callback(env, w->context, recv, callback, 2, argv, NULL) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)handle, on_watch_closed);
}

/*
 * spawn(file, argv, envp, pipes, newSession, onExit) -> [pid, fd0, fd1, fd2]
 *   file: the program's path (no PATH search here); argv and envp: arrays of strings;
 *   pipes: [stdin, stdout, stderr] booleans, true for a pipe, false for /dev/null;
 *   onExit(exitCode | null, signalNumber | null), called once on the event loop.
 * The returned fds are the parent's ends (-1 where /dev/null), non-blocking is left to the caller.
 * Throws an Error whose code is the errno name (ENOENT, EACCES...) when the program cannot start.
 */
static napi_value spawn(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, pipes, newSession, onExit)");
    return NULL;
  }
  napi_valuetype type;
  napi_typeof(env, args[5], &type);
  if (type != napi_function) {
    napi_throw_type_error(env, NULL, "onExit must be a function");
    return NULL;
  }
  bool new_session = false;
  napi_get_value_bool(env, args[4], &new_session);
  bool pipes[3] = {false, false, false};
  for (uint32_t i = 0; i < 3; i++) {
    napi_value v;
    if (napi_get_element(env, args[3], i, &v) == napi_ok) napi_get_value_bool(env, v, &pipes[i]);
  }

  char **file = NULL, **argv = NULL, **envp = NULL;
  napi_value file_array;
  napi_create_array_with_length(env, 1, &file_array);
  napi_set_element(env, file_array, 0, args[0]);
  file = string_array(env, file_array, "file must be a string");
  if (file) argv = string_array(env, args[1], "argv must be an array of strings");
  if (argv) envp = string_array(env, args[2], "envp must be an array of strings");
  if (!envp) {
    free_strings(file);
    free_strings(argv);
    return NULL;
  }

  int parent_fd[3] = {-1, -1, -1}, child_fd[3] = {-1, -1, -1};
  int err = 0;
  for (int i = 0; i < 3 && !err; i++) {
    if (!pipes[i]) continue;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) {
      err = errno;
      break;
    }
    /* A larger pipe: fewer, larger writes, and far fewer wake-ups of the side that waits. A user
       past its pipe-buffer quota keeps the default 64 KiB: slower, same bytes. */
    fcntl(ends[0], F_SETPIPE_SZ, PIPE_BYTES);
    parent_fd[i] = i == 0 ? ends[1] : ends[0];
    child_fd[i] = i == 0 ? ends[0] : ends[1];
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t all, none;
  pid_t pid = -1;
  if (!err) {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < 3; i++) {
      /* dup2 onto 0-2 clears close-on-exec there; every other fd of ours is close-on-exec. */
      if (pipes[i]) posix_spawn_file_actions_adddup2(&actions, child_fd[i], i);
      else posix_spawn_file_actions_addopen(&actions, i, "/dev/null", O_RDWR, 0);
    }
    /* Fds opened by other code without close-on-exec must not leak into the program. */
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (new_session) flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);
    err = posix_spawn(&pid, file[0], &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  for (int i = 0; i < 3; i++)
    if (child_fd[i] >= 0) close(child_fd[i]);
  free_strings(file);
  free_strings(argv);
  free_strings(envp);
  if (err) {
    for (int i = 0; i < 3; i++)
      if (parent_fd[i] >= 0) close(parent_fd[i]);
    return throw_errno(env, err, "posix_spawn");
  }

  exit_watch *w = calloc(1, sizeof *w);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  uv_loop_t *loop = NULL;
  napi_value resource_name;
  napi_create_string_utf8(env, "AzsBackupProgram", NAPI_AUTO_LENGTH, &resource_name);
  if (!w || pidfd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, pidfd) != 0) {
    /* Cannot watch it: do not leave an unwatched child running. */
    int e = pidfd < 0 ? errno : ENOMEM;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (pidfd >= 0) close(pidfd);
    free(w);
    for (int i = 0; i < 3; i++)
      if (parent_fd[i] >= 0) close(parent_fd[i]);
    return throw_errno(env, e, "pidfd_open");
  }
  w->env = env;
  w->pid = pid;
  w->pidfd = pidfd;
  napi_value resource;
  napi_create_object(env, &resource);
  napi_create_reference(env, args[5], 1, &w->callback);
  napi_async_init(env, resource, resource_name, &w->context);
  uv_poll_start(&w->poll, UV_READABLE, on_pidfd_readable);

  napi_value result, v;
  napi_create_array_with_length(env, 4, &result);
  napi_create_int32(env, pid, &v);
  napi_set_element(env, result, 0, v);
  for (int i = 0; i < 3; i++) {
    napi_create_int32(env, parent_fd[i], &v);
    napi_set_element(env, result, (uint32_t)i + 1, v);
  }
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, spawn, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "spawn", fn) != napi_ok) return NULL;
  return exports;
}
