/*
 * Gzipped IDX reader, Fashion-MNIST loader and the seeded epoch order
 * (see mnist.h).
 */
#include "mnist.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "util.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

/* Fashion-MNIST's training set: mean and standard deviation of the pixels
 * scaled to [0, 1]. Normalising with them gives the training inputs mean 0
 * and standard deviation 1. */
#define FMNIST_MEAN 0.2860
#define FMNIST_STD 0.3530

/* Largest pixel count accepted (bytes of one file's data), far above
 * MNIST-like sets, low enough that sizes never overflow. */
#define IDX_MAX_BYTES ((int64_t)1 << 36)

#define READ_CHUNK (1u << 20)

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads up to len bytes; returns the count read (short at the end of the
 * data) or -1 on a read or decompression error, with err set. A stream
 * that ends early (a cut gzip file) counts as the end of the data. */
static int64_t read_some(gzFile f, const char *path, void *buf, int64_t len, char *err,
                         size_t err_len, int *status)
{
    int64_t got = 0;
    unsigned char *p = buf;
    while (got < len) {
        int64_t want = len - got;
        unsigned n = want > (int64_t)READ_CHUNK ? READ_CHUNK : (unsigned)want;
        int r = gzread(f, p + got, n);
        if (r > 0) {
            got += r;
            continue;
        }
        if (r == 0)
            break;
        int zerr = Z_OK;
        const char *zmsg = gzerror(f, &zerr);
        if (zerr == Z_BUF_ERROR) /* unexpected end of the compressed stream */
            break;
        if (zerr == Z_ERRNO) {
            oomb_errf(err, err_len, "%s: read error: %s", path, strerror(errno));
            *status = OOMB_ERR_IO;
        } else {
            oomb_errf(err, err_len, "%s: corrupt gzip data: %s", path, zmsg ? zmsg : "?");
            *status = OOMB_ERR_PARSE;
        }
        return -1;
    }
    return got;
}

/* After the data: the file must end here. */
static int expect_end(gzFile f, const char *path, char *err, size_t err_len)
{
    unsigned char extra[4096];
    int64_t total = 0;
    int status = OOMB_OK;
    for (;;) {
        int64_t r = read_some(f, path, extra, (int64_t)sizeof extra, err, err_len, &status);
        if (r < 0)
            return status;
        if (r == 0)
            break;
        total += r;
    }
    if (total > 0) {
        oomb_errf(err, err_len, "%s: %lld trailing bytes after the data", path, (long long)total);
        return OOMB_ERR_PARSE;
    }
    return OOMB_OK;
}

static gzFile open_gz(const char *path, char *err, size_t err_len)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        oomb_errf(err, err_len, "%s: cannot open: %s", path,
                  errno ? strerror(errno) : "out of memory");
    return f;
}

/* Reads an IDX header of `words` big-endian 32-bit words, the first being
 * the magic number, which must be `magic` (`what` names the file type). */
static int read_header(gzFile f, const char *path, uint32_t magic, const char *what, uint32_t *h,
                       int words, char *err, size_t err_len)
{
    unsigned char raw[16];
    int status = OOMB_OK;
    int64_t want = 4 * (int64_t)words;
    int64_t got = read_some(f, path, raw, want, err, err_len, &status);
    if (got < 0)
        return status;
    if (got >= 4 && be32(raw) != magic) {
        oomb_errf(err, err_len, "%s: not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
                  what, (unsigned)be32(raw), (unsigned)magic);
        return OOMB_ERR_PARSE;
    }
    if (got != want) {
        oomb_errf(err, err_len, "%s: truncated: expected %lld bytes of header, got %lld", path,
                  (long long)want, (long long)got);
        return OOMB_ERR_PARSE;
    }
    for (int i = 0; i < words; i++)
        h[i] = be32(raw + 4 * i);
    return OOMB_OK;
}

static int read_pixels(gzFile f, const char *path, float *x, int64_t total, char *err,
                       size_t err_len)
{
    float lut[256];
    for (int p = 0; p < 256; p++)
        lut[p] = (float)(((double)p / 255.0 - FMNIST_MEAN) / FMNIST_STD);
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf) {
        oomb_errf(err, err_len, "%s: out of memory", path);
        return OOMB_ERR_OOM;
    }
    int64_t done = 0;
    int status = OOMB_OK;
    while (done < total) {
        int64_t want = total - done < (int64_t)READ_CHUNK ? total - done : (int64_t)READ_CHUNK;
        int64_t got = read_some(f, path, buf, want, err, err_len, &status);
        if (got < 0)
            break;
        for (int64_t i = 0; i < got; i++)
            x[done + i] = lut[buf[i]];
        done += got;
        if (got < want) {
            oomb_errf(err, err_len, "%s: truncated: expected %lld bytes of pixels, got %lld", path,
                      (long long)total, (long long)done);
            status = OOMB_ERR_PARSE;
            break;
        }
    }
    free(buf);
    return status;
}

static int read_labels(gzFile f, const char *path, int32_t *y, int64_t n, char *err, size_t err_len)
{
    unsigned char *buf = malloc((size_t)n);
    if (!buf) {
        oomb_errf(err, err_len, "%s: out of memory", path);
        return OOMB_ERR_OOM;
    }
    int status = OOMB_OK;
    int64_t got = read_some(f, path, buf, n, err, err_len, &status);
    if (got >= 0 && got < n) {
        oomb_errf(err, err_len, "%s: truncated: expected %lld bytes of labels, got %lld", path,
                  (long long)n, (long long)got);
        status = OOMB_ERR_PARSE;
    }
    for (int64_t i = 0; status == OOMB_OK && i < n; i++) {
        if (buf[i] >= OOMB_FASHION_MNIST_CLASSES) {
            oomb_errf(err, err_len, "%s: label %u of sample %lld is out of range [0, %d)", path,
                      (unsigned)buf[i], (long long)i, OOMB_FASHION_MNIST_CLASSES);
            status = OOMB_ERR_PARSE;
            break;
        }
        y[i] = buf[i];
    }
    free(buf);
    return status;
}

int oomb_dataset_load_idx(const char *images_gz, const char *labels_gz, struct oomb_dataset *out,
                          char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    gzFile fi = NULL, fl = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    int rc = OOMB_OK;
    uint32_t hi[4] = {0}, hl[2] = {0}; /* read_header fills them on success */

    fi = open_gz(images_gz, err, err_len);
    if (!fi) {
        rc = OOMB_ERR_IO;
        goto done;
    }
    fl = open_gz(labels_gz, err, err_len);
    if (!fl) {
        rc = OOMB_ERR_IO;
        goto done;
    }
    gzbuffer(fi, 1u << 17);

    rc = read_header(fi, images_gz, IDX_MAGIC_IMAGES, "image", hi, 4, err, err_len);
    if (rc != OOMB_OK)
        goto done;
    rc = read_header(fl, labels_gz, IDX_MAGIC_LABELS, "label", hl, 2, err, err_len);
    if (rc != OOMB_OK)
        goto done;

    int64_t n = hi[1], rows = hi[2], cols = hi[3];
    if (n < 1 || rows < 1 || cols < 1 || n * rows * cols > IDX_MAX_BYTES) {
        oomb_errf(err, err_len, "%s: unusable dimensions %lld x %lld x %lld", images_gz,
                  (long long)n, (long long)rows, (long long)cols);
        rc = OOMB_ERR_PARSE;
        goto done;
    }
    if ((int64_t)hl[1] != n) {
        oomb_errf(err, err_len, "%s holds %lld images but %s holds %lld labels", images_gz,
                  (long long)n, labels_gz, (long long)hl[1]);
        rc = OOMB_ERR_PARSE;
        goto done;
    }

    int64_t features = rows * cols;
    x = malloc((size_t)(n * features) * sizeof *x);
    y = malloc((size_t)n * sizeof *y);
    if (!x || !y) {
        oomb_errf(err, err_len, "%s: out of memory for %lld samples", images_gz, (long long)n);
        rc = OOMB_ERR_OOM;
        goto done;
    }
    rc = read_pixels(fi, images_gz, x, n * features, err, err_len);
    if (rc == OOMB_OK)
        rc = expect_end(fi, images_gz, err, err_len);
    if (rc == OOMB_OK)
        rc = read_labels(fl, labels_gz, y, n, err, err_len);
    if (rc == OOMB_OK)
        rc = expect_end(fl, labels_gz, err, err_len);
    if (rc != OOMB_OK)
        goto done;

    out->n = n;
    out->features = features;
    out->classes = OOMB_FASHION_MNIST_CLASSES;
    out->x = x;
    out->y = y;
    x = NULL;
    y = NULL;
done:
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    free(x);
    free(y);
    return rc;
}

const char *oomb_fashion_mnist_dir(void)
{
    const char *env = getenv(OOMB_FASHION_MNIST_ENV);
    return env && *env ? env : OOMB_FASHION_MNIST_DEFAULT_DIR;
}

static const char *const fmnist_files[4] = {
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
};

int oomb_fashion_mnist_load(const char *dir, struct oomb_dataset *train, struct oomb_dataset *test,
                            char *err, size_t err_len)
{
    if (train)
        memset(train, 0, sizeof *train);
    if (test)
        memset(test, 0, sizeof *test);
    if (!dir)
        dir = oomb_fashion_mnist_dir();
    char path[4][PATH_MAX];
    for (int i = 0; i < 4; i++) {
        if (snprintf(path[i], sizeof path[i], "%s/%s", dir, fmnist_files[i]) >=
            (int)sizeof path[i]) {
            oomb_errf(err, err_len, "%s: path too long", dir);
            return OOMB_ERR_IO;
        }
        if ((i < 2 && !train) || (i >= 2 && !test))
            continue;
        struct stat st;
        if (stat(path[i], &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
            oomb_errf(err, err_len,
                      "Fashion-MNIST not found at %s: install the Debian package "
                      "dataset-fashion-mnist (scripts/setup.sh does); missing %s",
                      dir, fmnist_files[i]);
            return OOMB_ERR_IO;
        }
    }
    int rc = OOMB_OK;
    if (train)
        rc = oomb_dataset_load_idx(path[0], path[1], train, err, err_len);
    if (rc == OOMB_OK && test)
        rc = oomb_dataset_load_idx(path[2], path[3], test, err, err_len);
    if (rc != OOMB_OK && train)
        oomb_dataset_free(train);
    return rc;
}

void oomb_dataset_free(struct oomb_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------- epoch order ---- */

#define FEISTEL_ROUNDS 8

int64_t oomb_dataset_sample_index(uint64_t seed, int64_t n, int64_t global_index)
{
    if (n < 1 || global_index < 0)
        return -1;
    if (n == 1)
        return 0;
    uint64_t epoch = (uint64_t)(global_index / n);
    uint64_t pos = (uint64_t)(global_index % n);

    /* Half width h: the smallest with 4^h >= n. */
    int h = 1;
    while (h < 32 && ((uint64_t)1 << (2 * h)) < (uint64_t)n)
        h++;
    uint64_t mask = ((uint64_t)1 << h) - 1;

    uint64_t ekey = oomb_splitmix64(oomb_splitmix64(seed ^ 0x73687566666c6521ULL) + epoch);
    uint64_t rk[FEISTEL_ROUNDS];
    for (int r = 0; r < FEISTEL_ROUNDS; r++)
        rk[r] = oomb_splitmix64(ekey + (uint64_t)r);

    uint64_t v = pos;
    do {
        uint64_t left = v >> h, right = v & mask;
        for (int r = 0; r < FEISTEL_ROUNDS; r++) {
            uint64_t f = oomb_splitmix64(rk[r] ^ right) & mask;
            uint64_t t = left ^ f;
            left = right;
            right = t;
        }
        v = (left << h) | right;
    } while (v >= (uint64_t)n);
    return (int64_t)v;
}

void oomb_dataset_copy(const struct oomb_dataset *d, const int64_t *idx, int64_t count, float *x,
                       int32_t *y)
{
    for (int64_t i = 0; i < count; i++) {
        int64_t s = idx[i];
        memcpy(x + i * d->features, d->x + s * d->features, (size_t)d->features * sizeof *x);
        y[i] = d->y[s];
    }
}

/* ------------------------------------------------- data set files ---- */

#define DS_MAGIC "OOMBDS1"
#define DS_HEADER 32 /* magic (8) + n, features, classes (8 each) */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

int oomb_dataset_save(const struct oomb_dataset *d, const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        oomb_errf(err, err_len, "%s: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    unsigned char h[DS_HEADER] = {0};
    memcpy(h, DS_MAGIC, 8);
    const int64_t v[3] = {d->n, d->features, d->classes};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 8; b++)
            h[8 + 8 * i + b] = (unsigned char)((uint64_t)v[i] >> (8 * b));
    int bad = write_all(fd, h, sizeof h) ||
              write_all(fd, d->x, (size_t)(d->n * d->features) * sizeof *d->x) ||
              write_all(fd, d->y, (size_t)d->n * sizeof *d->y);
    if (close(fd) != 0)
        bad = 1;
    if (bad) {
        oomb_errf(err, err_len, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return OOMB_ERR_IO;
    }
    return OOMB_OK;
}

int oomb_dataset_file_open(const char *path, struct oomb_dataset_file *f, char *err,
                           size_t err_len)
{
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        oomb_errf(err, err_len, "%s: %s", path, strerror(errno));
        return OOMB_ERR_IO;
    }
    unsigned char h[DS_HEADER];
    struct stat st;
    if (fstat(f->fd, &st) != 0 || pread_all(f->fd, h, sizeof h, 0) != 0) {
        oomb_errf(err, err_len, "%s: cannot read its header", path);
        oomb_dataset_file_close(f);
        return OOMB_ERR_IO;
    }
    int64_t v[3];
    for (int i = 0; i < 3; i++) {
        uint64_t x = 0;
        for (int b = 0; b < 8; b++)
            x |= (uint64_t)h[8 + 8 * i + b] << (8 * b);
        v[i] = (int64_t)x;
    }
    int64_t n = v[0], F = v[1];
    if (memcmp(h, DS_MAGIC, 8) != 0 || n < 1 || F < 1 || v[2] < 1 || n > IDX_MAX_BYTES ||
        F > IDX_MAX_BYTES || n > IDX_MAX_BYTES / F ||
        (int64_t)st.st_size != DS_HEADER + n * F * 4 + n * 4) {
        oomb_errf(err, err_len, "%s: not a data set file of the size its header says", path);
        oomb_dataset_file_close(f);
        return OOMB_ERR_PARSE;
    }
    f->n = n;
    f->features = F;
    f->classes = v[2];
    return OOMB_OK;
}

int oomb_dataset_file_load(const struct oomb_dataset_file *f, struct oomb_dataset *out)
{
    memset(out, 0, sizeof *out);
    size_t xb = (size_t)(f->n * f->features) * sizeof(float), yb = (size_t)f->n * sizeof(int32_t);
    out->x = malloc(xb);
    out->y = malloc(yb);
    if (!out->x || !out->y) {
        oomb_dataset_free(out);
        return OOMB_ERR_OOM;
    }
    if (pread_all(f->fd, out->x, xb, DS_HEADER) != 0 ||
        pread_all(f->fd, out->y, yb, (off_t)(DS_HEADER + xb)) != 0) {
        oomb_dataset_free(out);
        return OOMB_ERR_IO;
    }
    out->n = f->n;
    out->features = f->features;
    out->classes = f->classes;
    return OOMB_OK;
}

int oomb_dataset_file_read(const struct oomb_dataset_file *f, const int64_t *idx, int64_t count,
                           float *x, int32_t *y)
{
    const size_t row = (size_t)f->features * sizeof(float);
    const off_t ybase = (off_t)(DS_HEADER + (size_t)(f->n * f->features) * sizeof(float));
    for (int64_t i = 0; i < count; i++) {
        int64_t s = idx[i];
        if (s < 0 || s >= f->n)
            return OOMB_ERR_INVALID;
        if (pread_all(f->fd, x + i * f->features, row, (off_t)(DS_HEADER + (size_t)s * row)) != 0 ||
            pread_all(f->fd, y + i, sizeof *y, ybase + (off_t)s * (off_t)sizeof *y) != 0)
            return OOMB_ERR_IO;
    }
    return OOMB_OK;
}

void oomb_dataset_file_close(struct oomb_dataset_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}
