{
  "targets": [
    {
      "target_name": "malloc_tuning",
      "sources": ["malloc-tuning.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "aes_gcm",
      "sources": ["aes-gcm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "posix_spawn",
      "sources": ["posix-spawn.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "rename_exchange",
      "sources": ["rename-exchange.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "content_cut",
      "sources": ["content-cut.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "shared_copy",
      "sources": ["shared-copy.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "open_beneath",
      "sources": ["open-beneath.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "direct_io",
      "sources": ["direct-io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "folder_stat",
      "sources": ["folder-stat.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
