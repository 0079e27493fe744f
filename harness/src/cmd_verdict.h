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

/* `run --compare`: compare the results file(s) just written (n_paths > 1:
 * the repetitions of `run --repeat`, judged together as the head's runs)
 * against the baselines in baseline_dir (NULL: "baselines") with default
 * tolerances; `normalize` as `compare --normalize` (run --calibrate).
 * Returns the exit status of `oombench compare`: 0, 1 (a regression), 2
 * (unreadable file) or 3. */
int oomb_compare_after_run(const char *const *results_paths, int n_paths, const char *baseline_dir,
                           int color, int normalize);

#endif
