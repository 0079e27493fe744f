/*
 * `oombench merge`: results files of `run --shard I/N` into one. See
 * docs/scale-out.md.
 */
#ifndef OOMB_CMD_MERGE_H
#define OOMB_CMD_MERGE_H

/* The subcommand; argv[0] is "merge". Reads every file (untrusted), refuses
 * files of different builds, device classes or scenario versions, missing or
 * repeated shards, a run or a configuration in two files (exit 2, naming the
 * files, nothing written); else writes the merged file atomically with its
 * runs in the unsharded order and its checks evaluated again. Returns 0, 1
 * (a check or a run failed), 2 or 3 (internal error, a write failed). */
int oomb_cmd_merge(int argc, char **argv);

#endif
