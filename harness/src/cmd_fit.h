/*
 * `oombench fit`: the largest batch that fits the budget, per strategy and
 * mode, found with real runs (doubling, then bisection) and verified by an
 * `ok` run at that batch and an `oom` run one sample above. See README
 * ("What fits").
 */
#ifndef OOMB_CMD_FIT_H
#define OOMB_CMD_FIT_H

/* The subcommand; argv[0] is "fit". Writes the table to stdout (stderr with
 * --json -) and every run it made to one results file in --out. Returns 0
 * (searched; every strategy ended with an answer), 1 (a run crashed, timed
 * out or failed where the search needed an answer), 2 (usage or input
 * error; nothing written) or 3 (internal error). */
int oomb_cmd_fit(int argc, char **argv);

/* `oombench plan`; argv[0] is "plan": fit's search made of dry runs on the
 * counting backend, plus each strategy's peak per tag at the scenario's
 * batch sizes. Writes the table to stdout (stderr with --json -) and every
 * dry run to one results file in --out. Returns 0, 1 (a dry run failed
 * where the search needed it), 2 (usage or input error) or 3 (internal). */
int oomb_cmd_plan(int argc, char **argv);

#endif
