/* Reading and writing matrices as CSV and NumPy .npy files.
 *
 * .npy (version 1.0): magic "\x93NUMPY", version bytes 1 0, u16 header
 * length, an ASCII dict {'descr': '<f8', 'fortran_order': False,
 * 'shape': (r, c), } padded with spaces to a multiple of 64 bytes and ended
 * by '\n', then r*c little-endian doubles in row-major order. */
#ifndef SBI_IO_H
#define SBI_IO_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/mat.h"

/* Reads a CSV of numbers: an optional header line (detected when its first
 * field is not a number), then rows of equal length. *names (may be NULL)
 * receives the header fields (caller frees each and the array with sbi_free)
 * and *nnames their count (0 without a header). Errors name the file, line
 * and column. */
int sbi_csv_read(const char *path, sbi_mat **out, char ***names, size_t *nnames, sbi_err *err);

/* Writes m as CSV with a header line of names (ncol of them), atomically.
 * Numbers are printed with %.17g so they read back exactly. */
int sbi_csv_write(const char *path, const sbi_mat *m, const char *const *names, sbi_err *err);

/* Reads a .npy file of float64 or float32 (C order, 1-D or 2-D; a 1-D
 * array becomes one row). */
int sbi_npy_read(const char *path, sbi_mat **out, sbi_err *err);

/* Writes m as a 2-D float64 .npy file, atomically. */
int sbi_npy_write(const char *path, const sbi_mat *m, sbi_err *err);

#endif
