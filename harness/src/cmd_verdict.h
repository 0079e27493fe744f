/*
 * The verdict subcommands of the `oombench` CLI: compare, baseline and ab
 * (cmd_verdict.c), and the comparison `run --compare` does after a run.
 * Each returns the process exit status: 0 no regression, 1 a regression,
 * 2 usage or input error, 3 internal error.
 */
#ifndef OOMB_CMD_VERDICT_H
#define OOMB_CMD_VERDICT_H

int oomb_cmd_compare(int argc, char **argv);
int oomb_cmd_baseline(int argc, char **argv);
int oomb_cmd_ab(int argc, char **argv);

/* `run --compare`: compare the results file just written against the
 * baselines in baseline_dir (NULL: "baselines") with default tolerances. */
int oomb_compare_after_run(const char *results_path, const char *baseline_dir, int color);

#endif
