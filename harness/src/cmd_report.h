/*
 * `oombench report`: reads results files and writes charts (gnuplot, run as
 * a separate process), index.html and summary.md into a folder. See
 * docs/report.md.
 */
#ifndef OOMB_CMD_REPORT_H
#define OOMB_CMD_REPORT_H

/* The subcommand; argv[0] is "report". Returns the process exit status: 0
 * written (also when gnuplot is missing: the charts are then skipped with one
 * line on stderr), 2 usage or input error, 3 a file could not be written or
 * gnuplot failed on a script. */
int oomb_cmd_report(int argc, char **argv);

/* `oombench run --report DIR`: the report of one fresh results file. Same
 * exit statuses as oomb_cmd_report. */
int oomb_report_after_run(const char *results_path, const char *out_dir, int quiet);

#endif
