/* Directories, whole-file reads and atomic writes (see fsutil.h). */
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbi/alloc.h"
#include "sbi/fsutil.h"

int
sbi_fs_mkdirs(const char *path, sbi_err *err)
{
	char *p = sbi_strdup(path);
	if (p == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			int e = errno;
			sbi_free(p);
			return sbi_err_set(err, SBI_EIO, "cannot create directory %s: %s", path, strerror(e));
		}
		*s = c;
		if (c == '\0')
			break;
	}
	sbi_free(p);
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return sbi_err_set(err, SBI_EIO, "%s exists and is not a directory", path);
	return SBI_OK;
}

int
sbi_fs_open_regular(const char *path, FILE **f, sbi_err *err)
{
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return sbi_err_set(err, e == ENOENT ? SBI_ENOTFOUND : SBI_EIO, "cannot open %s: %s",
		    path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return sbi_err_set(err, SBI_EIO, "cannot read %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return sbi_err_set(err, SBI_EINVAL, "cannot read %s: it is not a regular file (%s)", path,
		    S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
		    : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if ((*f = fdopen(fd, "rb")) == NULL) {
		int e = errno;
		close(fd);
		return sbi_err_set(err, SBI_ENOMEM, "cannot open %s: %s", path, strerror(e));
	}
	return SBI_OK;
}

int
sbi_fs_read_all(const char *path, char **data, size_t *n, sbi_err *err)
{
	FILE *f;
	int rc = sbi_fs_open_regular(path, &f, err);
	if (rc != SBI_OK)
		return rc;
	size_t cap = 4096, len = 0;
	char *buf = sbi_malloc(cap);
	while (buf) {
		len += fread(buf + len, 1, cap - len - 1, f);
		if (len < cap - 1)
			break;
		char *nb = sbi_realloc(buf, cap * 2);
		if (nb == NULL) {
			sbi_free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int bad = ferror(f);
	fclose(f);
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory reading %s", path);
	if (bad) {
		sbi_free(buf);
		return sbi_err_set(err, SBI_EIO, "error reading %s", path);
	}
	buf[len] = '\0';
	*data = buf;
	*n = len;
	return SBI_OK;
}

int
sbi_fs_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/'));
}

int
sbi_fs_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

char *
sbi_path_join(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *p = sbi_malloc(na + nb + 2);
	if (p == NULL)
		return NULL;
	memcpy(p, a, na);
	p[na] = '/';
	memcpy(p + na + 1, b, nb + 1);
	return p;
}

int
sbi_awriter_open(sbi_awriter *w, const char *dir, sbi_err *err)
{
	w->f = NULL;
	w->sync = 1;
	w->tmp = sbi_path_join(dir, ".tmp-XXXXXX");
	if (w->tmp == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	int fd = mkstemp(w->tmp);
	/* mkstemp creates 0600; give the file the mode open(2) would (umask). */
	mode_t mask = umask(0);
	umask(mask);
	if (fd >= 0)
		fchmod(fd, 0666 & ~mask);
	if (fd < 0 || (w->f = fdopen(fd, "wb")) == NULL) {
		int e = errno;
		if (fd >= 0) {
			close(fd);
			unlink(w->tmp);
		}
		sbi_free(w->tmp);
		w->tmp = NULL;
		return sbi_err_set(err, SBI_EIO, "cannot write in %s: %s", dir, strerror(e));
	}
	return SBI_OK;
}

int
sbi_awriter_write(sbi_awriter *w, const void *p, size_t n, sbi_err *err)
{
	if (n && fwrite(p, 1, n, w->f) != n)
		return sbi_err_set(err, SBI_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
	return SBI_OK;
}

static void
sync_parent_dir(const char *path)
{
	char *p = sbi_strdup(path);
	if (p == NULL)
		return;
	int fd = open(dirname(p), O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	sbi_free(p);
}

int
sbi_awriter_commit(sbi_awriter *w, const char *path, sbi_err *err)
{
	int rc = SBI_OK;
	if (fflush(w->f) != 0 || (w->sync && fsync(fileno(w->f)) != 0))
		rc = sbi_err_set(err, SBI_EIO, "cannot write %s: %s", path, strerror(errno));
	if (fclose(w->f) != 0 && rc == SBI_OK)
		rc = sbi_err_set(err, SBI_EIO, "cannot write %s: %s", path, strerror(errno));
	w->f = NULL;
	if (rc == SBI_OK && rename(w->tmp, path) != 0)
		rc = sbi_err_set(err, SBI_EIO, "cannot rename to %s: %s", path, strerror(errno));
	if (rc != SBI_OK)
		unlink(w->tmp);
	else if (w->sync)
		sync_parent_dir(path);
	sbi_free(w->tmp);
	w->tmp = NULL;
	return rc;
}

void
sbi_awriter_abort(sbi_awriter *w)
{
	if (w->f)
		fclose(w->f);
	if (w->tmp) {
		unlink(w->tmp);
		sbi_free(w->tmp);
	}
	w->f = NULL;
	w->tmp = NULL;
}

int
sbi_fs_write_atomic(const char *path, const void *p, size_t n, sbi_err *err)
{
	char *d = sbi_strdup(path);
	if (d == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	sbi_awriter w;
	int rc = sbi_awriter_open(&w, dirname(d), err);
	sbi_free(d);
	if (rc != SBI_OK)
		return rc;
	if ((rc = sbi_awriter_write(&w, p, n, err)) != SBI_OK) {
		sbi_awriter_abort(&w);
		return rc;
	}
	return sbi_awriter_commit(&w, path, err);
}

static int
remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(p);
	return 0;
}

void
sbi_fs_remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
