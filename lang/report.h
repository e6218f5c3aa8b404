/* The HTML report of a run (report.c; docs/report.md): one self-contained
 * file, OUTDIR/report.html, made from OUTDIR alone (run.json and the
 * output files it lists), so `sbirun report OUTDIR` gives the same bytes
 * as the run did. */
#ifndef SBI_REPORT_H
#define SBI_REPORT_H

#include "sbi/err.h"

/* Writes out_dir/report.html from out_dir/run.json and the outputs. */
int sbi_report_write(const char *out_dir, sbi_err *err);

#endif
