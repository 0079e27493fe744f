/*
 * `oombench history`: a metric per commit over a folder of results files,
 * and the first commit where it regressed. See docs/scale-out.md.
 */
#ifndef OOMB_CMD_HISTORY_H
#define OOMB_CMD_HISTORY_H

/* The subcommand; argv[0] is "history". Reads every results file given (or
 * every *.json of a folder; untrusted), groups them by the revision they
 * record, orders the commits by commit time (else creation time), compares
 * each with the one before by oomb_verdict_compare and prints each run x
 * metric's first regression. Returns 0 (none), 1 (a regression), 2 usage or
 * input error, 3 internal error. */
int oomb_cmd_history(int argc, char **argv);

#endif
