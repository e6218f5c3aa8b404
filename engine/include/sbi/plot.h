/* Plots as self-contained SVG text: corner (pair) plots of posteriors
 * overlaid, curves with shaded bands (coverage, loss curves), rank
 * histograms (SBC), MCMC traces and the predictive plot of a 1-D data
 * series. Deterministic: the same inputs give the same bytes (fixed number
 * formats, no time, no random ids, no element ids at all, so several plots
 * can share one HTML page). Each function returns SBI_OK and stores the
 * text in *svg (caller frees with sbi_free), or an SBI_E* code. */
#ifndef SBI_PLOT_H
#define SBI_PLOT_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/mat.h"

/* The colour of series i (cycles through 8 colours readable by
 * colour-blind viewers), as "#rrggbb". */
const char *sbi_plot_colour(size_t i);

/* Corner plot of np posteriors over the same d parameters (each an
 * n_k x d matrix of samples, borrowed): marginal histograms on the
 * diagonal, below it the 50% and 90% highest-density contours of a
 * smoothed 2-D histogram (or a thinned scatter), one colour per posterior. */
typedef struct sbi_plot_corner_opts {
	const char *const *labels; /* d parameter names (borrowed), or NULL: theta[1].. */
	const char *const *names;  /* np legend entries (borrowed), or NULL: no legend */
	size_t bins;               /* diagonal histogram bins; 0: 30 */
	size_t grid;               /* 2-D histogram cells per axis; 0: 40 */
	int scatter;               /* 1: points below the diagonal instead of contours */
	const double *lower, *upper; /* d axis limits each (borrowed), or NULL: the 0.5%..99.5% quantiles */
	double panel;              /* panel size in px; 0: 130 */
} sbi_plot_corner_opts;

int sbi_plot_corner(const sbi_mat *const *post, size_t np, const sbi_plot_corner_opts *o, char **svg,
    sbi_err *err);

/* A line of n points with an optional band lo..hi around it. */
typedef struct sbi_plot_series {
	const double *x, *y;   /* n values each (borrowed); x NULL: 1..n */
	const double *lo, *hi; /* the band (borrowed), or NULL */
	size_t n;
	const char *name;      /* legend entry (borrowed), or NULL */
	int points;            /* 1: also mark each point */
} sbi_plot_series;

typedef struct sbi_plot_curve_opts {
	const char *title, *xlabel, *ylabel; /* borrowed, or NULL */
	int diagonal;                        /* 1: draw y = x dashed (coverage) */
	double xmin, xmax, ymin, ymax;       /* NaN: from the data */
	double width, height;                /* px; 0: 420 x 300 */
} sbi_plot_curve_opts;

/* Curves of ns series in one frame (coverage: nominal level against
 * empirical coverage with the binomial band and the diagonal; loss
 * curves: epochs against training and validation loss). */
int sbi_plot_curve(const sbi_plot_series *s, size_t ns, const sbi_plot_curve_opts *o, char **svg, sbi_err *err);

/* Rank histograms (SBC) of the d columns of ranks (n x d, values
 * 0..max_rank, borrowed) in `bins` bins (0: 20, at most max_rank + 1),
 * with the 99% band of a uniform count per bin. */
int sbi_plot_ranks(const sbi_mat *ranks, double max_rank, size_t bins, const char *const *labels, char **svg,
    sbi_err *err);

/* MCMC traces: nc chains (each iterations x d, borrowed), one panel per
 * parameter, one colour per chain; at most 1000 points per chain drawn. */
int sbi_plot_trace(const sbi_mat *const *chains, size_t nc, const char *const *labels, char **svg, sbi_err *err);

/* Predictive plot of a 1-D data series: pred holds draws x n predicted
 * series (borrowed); obs n observed values (borrowed) or NULL; x the n grid
 * values or NULL (1..n). Draws the 90% and 50% bands, the median and the
 * observation as points. */
typedef struct sbi_plot_predictive_opts {
	const double *x;                     /* borrowed, or NULL */
	const char *title, *xlabel, *ylabel; /* borrowed, or NULL */
} sbi_plot_predictive_opts;

int sbi_plot_predictive(const double *obs, const sbi_mat *pred, const sbi_plot_predictive_opts *o, char **svg,
    sbi_err *err);

#endif
