/*
 * Data: the Fashion-MNIST reader (the installed set and malformed files),
 * the seeded epoch order, parameter and buffer initialisation of every layer
 * kind, and the held-out synthetic samples.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "mnist.h"
#include "test_helpers.h"

/* ------------------------------------------------------------ helpers -- */

static void skip_without_fashion_mnist(void)
{
    struct stat st;
    if (stat(OOMB_FASHION_MNIST_DEFAULT_DIR, &st) != 0)
        cr_skip_test("Fashion-MNIST is not installed at " OOMB_FASHION_MNIST_DEFAULT_DIR
                     " (Debian package dataset-fashion-mnist, installed by scripts/setup.sh)");
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes bytes gzipped to dir/name, the path into buf. */
static void write_gz(const char *dir, const char *name, const void *data, size_t len, char *buf,
                     size_t buf_len)
{
    snprintf(buf, buf_len, "%s/%s", dir, name);
    gzFile f = gzopen(buf, "wb");
    cr_assert_not_null(f, "gzopen %s", buf);
    if (len > 0)
        cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(f), Z_OK);
}

/* An IDX image file of n images rows x cols: header, then `pixels` bytes
 * (n*rows*cols for a well-formed file) of value (i % 256). */
static void write_images(const char *dir, const char *name, uint32_t magic, uint32_t n,
                         uint32_t rows, uint32_t cols, size_t pixels, char *buf, size_t buf_len)
{
    size_t len = 16 + pixels;
    unsigned char *d = malloc(len);
    cr_assert_not_null(d);
    put_be32(d, magic);
    put_be32(d + 4, n);
    put_be32(d + 8, rows);
    put_be32(d + 12, cols);
    for (size_t i = 0; i < pixels; i++)
        d[16 + i] = (unsigned char)(i % 256);
    write_gz(dir, name, d, len, buf, buf_len);
    free(d);
}

/* An IDX label file: header with `count`, then the n labels given. */
static void write_labels(const char *dir, const char *name, uint32_t magic, uint32_t count,
                         const unsigned char *labels, size_t n, char *buf, size_t buf_len)
{
    unsigned char d[8 + 256];
    cr_assert_leq(n, 256);
    put_be32(d, magic);
    put_be32(d + 4, count);
    memcpy(d + 8, labels, n);
    write_gz(dir, name, d, 8 + n, buf, buf_len);
}

static const unsigned char good_labels[5] = {0, 9, 3, 3, 7};

/* A temporary folder with a well-formed pair of 5 images of 2 x 3. */
static char tmp[PATH_MAX], img[PATH_MAX], lab[PATH_MAX];

static void setup_tmp(void)
{
    th_mkdtemp(tmp, sizeof tmp);
    write_images(tmp, "img.gz", 0x803, 5, 2, 3, 30, img, sizeof img);
    write_labels(tmp, "lab.gz", 0x801, 5, good_labels, 5, lab, sizeof lab);
}

static void teardown_tmp(void)
{
    th_rmtree(tmp);
}

/* Loads img/lab expecting failure `want`; the message must contain `text`
 * (and `file` when not NULL). */
static void expect_load_error(int want, const char *file, const char *text)
{
    struct oomb_dataset ds;
    char err[1024] = "";
    int rc = oomb_dataset_load_idx(img, lab, &ds, err, sizeof err);
    cr_assert_eq(rc, want, "status %d (want %d): %s", rc, want, err);
    cr_assert_not_null(strstr(err, text), "message lacks \"%s\": %s", text, err);
    if (file)
        cr_assert_not_null(strstr(err, file), "message does not name %s: %s", file, err);
    cr_assert_null(ds.x);
    cr_assert_null(ds.y);
    cr_assert_eq(ds.n, 0);
}

/* -------------------------------------------------------- real data ---- */

Test(fashion_mnist, loads_the_installed_set)
{
    skip_without_fashion_mnist();
    struct oomb_dataset train, test;
    char err[1024];
    int rc =
        oomb_fashion_mnist_load(OOMB_FASHION_MNIST_DEFAULT_DIR, &train, &test, err, sizeof err);
    cr_assert_eq(rc, OOMB_OK, "%s", err);
    cr_assert_eq(train.n, 60000);
    cr_assert_eq(test.n, 10000);
    cr_assert_eq(train.features, 784);
    cr_assert_eq(test.features, 784);
    cr_assert_eq(train.classes, 10);
    cr_assert_eq(test.classes, 10);

    int64_t hist_test[10] = {0}, hist_train[10] = {0};
    for (int64_t i = 0; i < test.n; i++) {
        cr_assert(test.y[i] >= 0 && test.y[i] < 10);
        hist_test[test.y[i]]++;
    }
    for (int64_t i = 0; i < train.n; i++) {
        cr_assert(train.y[i] >= 0 && train.y[i] < 10);
        hist_train[train.y[i]]++;
    }
    for (int c = 0; c < 10; c++) {
        cr_expect_eq(hist_test[c], 1000, "test class %d: %lld", c, (long long)hist_test[c]);
        cr_expect_eq(hist_train[c], 6000, "train class %d: %lld", c, (long long)hist_train[c]);
    }

    /* The normalisation constants are the training set's mean and std. */
    double sum = 0, sum2 = 0;
    int64_t total = train.n * train.features;
    for (int64_t i = 0; i < total; i++) {
        sum += train.x[i];
        sum2 += (double)train.x[i] * train.x[i];
    }
    double mean = sum / (double)total;
    double std = sqrt(sum2 / (double)total - mean * mean);
    /* Not rounding: the constants 0.2860 and 0.3530 are the published mean and std to 4
     * digits, so the normalised set's mean is within 0.00005 / 0.3530 = 1.4e-4 of 0 and
     * its std within 1.4e-4 relative of 1; the sums run in double over 47 million values
     * (error ~1e-9). 1e-3 leaves 7x. */
    cr_expect(fabs(mean) < 1e-3, "mean %.6f", mean);
    cr_expect(fabs(std - 1.0) < 1e-3, "std %.6f", std);

    /* Pixel 0 of image 0 is background (0) in Fashion-MNIST. A float of |v| < 3 after at
     * most 3 roundings: <= 3u x 3 = 5.4e-7 apart (u = 2^-24). */
    cr_expect_float_eq(train.x[0], (float)((0.0 - 0.2860) / 0.3530), 1e-6);

    oomb_dataset_free(&train);
    oomb_dataset_free(&test);
    cr_assert_null(train.x);
    cr_assert_eq(train.n, 0);
}

Test(fashion_mnist, default_dir_and_environment)
{
    unsetenv(OOMB_FASHION_MNIST_ENV);
    cr_assert_str_eq(oomb_fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist");
    setenv(OOMB_FASHION_MNIST_ENV, "/nonexistent/oombench-fmnist", 1);
    cr_assert_str_eq(oomb_fashion_mnist_dir(), "/nonexistent/oombench-fmnist");
    struct oomb_dataset train, test;
    char err[1024];
    cr_assert_eq(oomb_fashion_mnist_load(NULL, &train, &test, err, sizeof err), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, "/nonexistent/oombench-fmnist"), "%s", err);
    unsetenv(OOMB_FASHION_MNIST_ENV);
}

Test(fashion_mnist, missing_dir_names_the_package)
{
    struct oomb_dataset train, test;
    char err[1024];
    int rc =
        oomb_fashion_mnist_load("/nonexistent/oombench-fmnist", &train, &test, err, sizeof err);
    cr_assert_eq(rc, OOMB_ERR_IO, "%s", err);
    cr_assert_not_null(strstr(err, "Fashion-MNIST not found at /nonexistent/oombench-fmnist: "
                                   "install the Debian package dataset-fashion-mnist "
                                   "(scripts/setup.sh does)"),
                       "%s", err);
    cr_assert_null(train.x);
    cr_assert_null(test.x);
}

Test(fashion_mnist, missing_file_in_dir, .init = setup_tmp, .fini = teardown_tmp)
{
    char p[PATH_MAX];
    write_images(tmp, "train-images-idx3-ubyte.gz", 0x803, 5, 2, 3, 30, p, sizeof p);
    write_labels(tmp, "train-labels-idx1-ubyte.gz", 0x801, 5, good_labels, 5, p, sizeof p);
    write_images(tmp, "t10k-images-idx3-ubyte.gz", 0x803, 5, 2, 3, 30, p, sizeof p);
    struct oomb_dataset train, test;
    char err[1024];
    cr_assert_eq(oomb_fashion_mnist_load(tmp, &train, &test, err, sizeof err), OOMB_ERR_IO);
    cr_assert_not_null(strstr(err, "dataset-fashion-mnist"), "%s", err);
    cr_assert_not_null(strstr(err, "t10k-labels-idx1-ubyte.gz"), "%s", err);
    cr_assert_null(train.x);

    /* With the fourth file in place, a small set in the same layout loads. */
    write_labels(tmp, "t10k-labels-idx1-ubyte.gz", 0x801, 5, good_labels, 5, p, sizeof p);
    cr_assert_eq(oomb_fashion_mnist_load(tmp, &train, &test, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(train.n, 5);
    cr_assert_eq(test.features, 6);
    oomb_dataset_free(&train);
    oomb_dataset_free(&test);
}

/* ------------------------------------------------------- IDX reader ---- */

Test(idx, reads_a_small_pair, .init = setup_tmp, .fini = teardown_tmp)
{
    struct oomb_dataset ds;
    char err[1024];
    cr_assert_eq(oomb_dataset_load_idx(img, lab, &ds, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(ds.n, 5);
    cr_assert_eq(ds.features, 6);
    cr_assert_eq(ds.classes, 10);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ds.y[i], good_labels[i]);
    for (int i = 0; i < 30; i++) {
        float want = (float)(((double)i / 255.0 - 0.2860) / 0.3530);
        /* |want| < 3, the loader's float arithmetic: <= 3 roundings, 5.4e-7 */
        cr_assert_float_eq(ds.x[i], want, 1e-6, "pixel %d: %g vs %g", i, ds.x[i], want);
    }

    int64_t idx[3] = {4, 0, 2};
    float x[18];
    int32_t y[3];
    oomb_dataset_copy(&ds, idx, 3, x, y);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(y[k], ds.y[idx[k]]);
        cr_assert_eq(memcmp(x + 6 * k, ds.x + 6 * idx[k], 6 * sizeof(float)), 0);
    }
    oomb_dataset_free(&ds);
}

/* The decoded file the runs read (resident or streaming): the same samples
 * back, whole or by index, and a file whose size disagrees with its
 * header refused. */
Test(idx, data_set_file_round_trip, .init = setup_tmp, .fini = teardown_tmp)
{
    struct oomb_dataset ds, back;
    char err[1024], path[4096];
    cr_assert_eq(oomb_dataset_load_idx(img, lab, &ds, err, sizeof err), OOMB_OK, "%s", err);
    snprintf(path, sizeof path, "%s/set.ds", tmp);
    cr_assert_eq(oomb_dataset_save(&ds, path, err, sizeof err), OOMB_OK, "%s", err);
    struct oomb_dataset_file f;
    cr_assert_eq(oomb_dataset_file_open(path, &f, err, sizeof err), OOMB_OK, "%s", err);
    cr_assert_eq(f.n, 5);
    cr_assert_eq(f.features, 6);
    cr_assert_eq(f.classes, 10);
    cr_assert_eq(oomb_dataset_file_load(&f, &back), OOMB_OK);
    cr_assert_eq(memcmp(back.x, ds.x, 30 * sizeof(float)), 0);
    cr_assert_eq(memcmp(back.y, ds.y, 5 * sizeof(int32_t)), 0);
    int64_t idx[3] = {3, 3, 0};
    float x[18];
    int32_t y[3];
    cr_assert_eq(oomb_dataset_file_read(&f, idx, 3, x, y), OOMB_OK);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(y[k], ds.y[idx[k]]);
        cr_assert_eq(memcmp(x + 6 * k, ds.x + 6 * idx[k], 6 * sizeof(float)), 0);
    }
    idx[1] = 5;
    cr_assert_eq(oomb_dataset_file_read(&f, idx, 3, x, y), OOMB_ERR_INVALID);
    oomb_dataset_file_close(&f);
    cr_assert_eq(f.fd, -1);
    oomb_dataset_file_close(&f); /* twice is harmless */

    /* one byte short */
    cr_assert_eq(truncate(path, 32 + 30 * 4 + 5 * 4 - 1), 0);
    cr_assert_eq(oomb_dataset_file_open(path, &f, err, sizeof err), OOMB_ERR_PARSE);
    cr_assert(strstr(err, "set.ds") != NULL, "%s", err);
    cr_assert_eq(f.fd, -1);
    oomb_dataset_free(&ds);
    oomb_dataset_free(&back);
}

Test(idx, wrong_image_magic, .init = setup_tmp, .fini = teardown_tmp)
{
    write_images(tmp, "img.gz", 0x801, 5, 2, 3, 30, img, sizeof img);
    expect_load_error(OOMB_ERR_PARSE, img, "not an IDX image file (magic 0x00000801");
}

Test(idx, wrong_label_magic, .init = setup_tmp, .fini = teardown_tmp)
{
    write_labels(tmp, "lab.gz", 0x803, 5, good_labels, 5, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, lab, "not an IDX label file (magic 0x00000803");
}

Test(idx, truncated_pixels, .init = setup_tmp, .fini = teardown_tmp)
{
    write_images(tmp, "img.gz", 0x803, 5, 2, 3, 29, img, sizeof img);
    expect_load_error(OOMB_ERR_PARSE, img, "truncated: expected 30 bytes of pixels, got 29");
}

Test(idx, truncated_header, .init = setup_tmp, .fini = teardown_tmp)
{
    unsigned char h[6] = {0, 0, 8, 3, 0, 0};
    write_gz(tmp, "img.gz", h, sizeof h, img, sizeof img);
    expect_load_error(OOMB_ERR_PARSE, img, "truncated: expected 16 bytes of header, got 6");
}

Test(idx, cut_gzip_stream, .init = setup_tmp, .fini = teardown_tmp)
{
    /* A larger file whose compressed stream is cut in the middle. */
    write_images(tmp, "img.gz", 0x803, 5, 100, 100, 50000, img, sizeof img);
    struct stat st;
    cr_assert_eq(stat(img, &st), 0);
    cr_assert_eq(truncate(img, st.st_size / 2), 0);
    write_labels(tmp, "lab.gz", 0x801, 5, good_labels, 5, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, img, "truncated: expected 50000 bytes of pixels");
}

Test(idx, trailing_pixel_bytes, .init = setup_tmp, .fini = teardown_tmp)
{
    write_images(tmp, "img.gz", 0x803, 5, 2, 3, 33, img, sizeof img);
    expect_load_error(OOMB_ERR_PARSE, img, "3 trailing bytes after the data");
}

Test(idx, trailing_label_bytes, .init = setup_tmp, .fini = teardown_tmp)
{
    const unsigned char six[6] = {0, 1, 2, 3, 4, 5};
    write_labels(tmp, "lab.gz", 0x801, 5, six, 6, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, lab, "1 trailing bytes after the data");
}

Test(idx, missing_labels, .init = setup_tmp, .fini = teardown_tmp)
{
    write_labels(tmp, "lab.gz", 0x801, 5, good_labels, 4, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, lab, "truncated: expected 5 bytes of labels, got 4");
}

Test(idx, label_out_of_range, .init = setup_tmp, .fini = teardown_tmp)
{
    const unsigned char bad[5] = {0, 1, 10, 3, 4};
    write_labels(tmp, "lab.gz", 0x801, 5, bad, 5, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, lab, "label 10 of sample 2 is out of range [0, 10)");
}

Test(idx, count_mismatch, .init = setup_tmp, .fini = teardown_tmp)
{
    write_labels(tmp, "lab.gz", 0x801, 4, good_labels, 4, lab, sizeof lab);
    expect_load_error(OOMB_ERR_PARSE, img, "holds 5 images but");
    expect_load_error(OOMB_ERR_PARSE, lab, "holds 4 labels");
}

Test(idx, zero_dimension, .init = setup_tmp, .fini = teardown_tmp)
{
    write_images(tmp, "img.gz", 0x803, 5, 0, 3, 0, img, sizeof img);
    expect_load_error(OOMB_ERR_PARSE, img, "unusable dimensions 5 x 0 x 3");
}

Test(idx, missing_file, .init = setup_tmp, .fini = teardown_tmp)
{
    snprintf(lab, sizeof lab, "%s/absent.gz", tmp);
    expect_load_error(OOMB_ERR_IO, lab, "cannot open");
}

/* ------------------------------------------------------- epoch order --- */

/* Positions [epoch*n, (epoch+1)*n) must be a permutation of [0, n). */
static void check_permutation(uint64_t seed, int64_t n, int64_t epoch, int64_t *out)
{
    unsigned char *seen = calloc((size_t)n, 1);
    cr_assert_not_null(seen);
    for (int64_t i = 0; i < n; i++) {
        int64_t s = oomb_dataset_sample_index(seed, n, epoch * n + i);
        cr_assert(s >= 0 && s < n, "n %lld epoch %lld pos %lld: %lld", (long long)n,
                  (long long)epoch, (long long)i, (long long)s);
        cr_assert_eq(seen[s], 0, "n %lld epoch %lld: sample %lld twice", (long long)n,
                     (long long)epoch, (long long)s);
        seen[s] = 1;
        if (out)
            out[i] = s;
    }
    free(seen);
}

static int64_t count_diff(const int64_t *a, const int64_t *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

static void check_stream(int64_t n)
{
    int64_t *e0 = malloc((size_t)n * sizeof *e0), *e1 = malloc((size_t)n * sizeof *e1);
    int64_t *e2 = malloc((size_t)n * sizeof *e2), *o0 = malloc((size_t)n * sizeof *o0);
    int64_t *again = malloc((size_t)n * sizeof *again);
    cr_assert(e0 && e1 && e2 && o0 && again);
    check_permutation(7, n, 0, e0);
    check_permutation(7, n, 1, e1);
    check_permutation(7, n, 2, e2);
    check_permutation(8, n, 0, o0);
    check_permutation(7, n, 0, again);
    check_permutation(7, n, 1000000, NULL);
    cr_assert_eq(count_diff(e0, again, n), 0, "not reproducible");
    /* Different epochs and seeds: mostly different positions, as random
     * permutations (about 1 fixed point expected). */
    cr_assert_gt(count_diff(e0, e1, n), n * 9 / 10, "epochs 0 and 1 alike");
    cr_assert_gt(count_diff(e1, e2, n), n * 9 / 10, "epochs 1 and 2 alike");
    cr_assert_gt(count_diff(e0, o0, n), n * 9 / 10, "seeds 7 and 8 alike");
    /* Not the identity. */
    int64_t fixed = 0;
    for (int64_t i = 0; i < n; i++)
        fixed += e0[i] == i;
    cr_assert_lt(fixed, n / 10 + 2, "%lld fixed points", (long long)fixed);
    free(e0);
    free(e1);
    free(e2);
    free(o0);
    free(again);
}

Test(epoch_order, permutations_of_60000)
{
    check_stream(60000);
}

Test(epoch_order, permutations_of_small_odd_n)
{
    check_stream(101);
    check_permutation(3, 7, 0, NULL);
    check_permutation(3, 7, 5, NULL);
    check_permutation(3, 2, 0, NULL);
}

Test(epoch_order, edge_cases)
{
    cr_assert_eq(oomb_dataset_sample_index(1, 1, 0), 0);
    cr_assert_eq(oomb_dataset_sample_index(1, 1, 12345), 0);
    cr_assert_eq(oomb_dataset_sample_index(1, 0, 0), -1);
    cr_assert_eq(oomb_dataset_sample_index(1, 10, -1), -1);
    int64_t s = oomb_dataset_sample_index(1, 60000, INT64_MAX);
    cr_assert(s >= 0 && s < 60000);
    /* Large n (beyond 2^32) still lands in range. */
    int64_t big = ((int64_t)1 << 33) + 12345;
    for (int64_t i = 0; i < 100; i++) {
        int64_t v = oomb_dataset_sample_index(9, big, i * 977);
        cr_assert(v >= 0 && v < big);
    }
}

/* ------------------------------------------------- initialisation ------ */

static struct oomb_layer make_layer(enum oomb_layer_kind kind, int64_t in, int64_t out,
                                    int64_t n_params)
{
    struct oomb_layer L;
    memset(&L, 0, sizeof L);
    L.struct_size = sizeof L;
    L.kind = kind;
    L.in_features = in;
    L.out_features = out;
    L.n_params = n_params;
    return L;
}

/* Every value in [-bound, bound], and spread over it (not constant). */
static void check_uniform(const float *v, int64_t n, double bound)
{
    double lo = INFINITY, hi = -INFINITY;
    /* the generator scales by the bound in float: the bound's and the product's roundings,
     * <= 2u = 1.2e-7 relative (u = 2^-24); 1e-6 */
    for (int64_t i = 0; i < n; i++) {
        cr_assert(fabs(v[i]) <= bound * (1 + 1e-6), "value %lld: %g outside +-%g", (long long)i,
                  v[i], bound);
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    cr_assert_lt(lo, -0.5 * bound);
    cr_assert_gt(hi, 0.5 * bound);
}

/* LINEAR 12 -> 5 with bias, seed 42, layer 3: the values the initialisation
 * has always produced (results stay comparable with earlier ones). */
static const float linear_expected[65] = {
    -0x1.5da548p-6, -0x1.4bd628p-4, -0x1.060334p-4, 0x1.5446d2p-3,  -0x1.780964p-3, -0x1.d01d08p-3,
    -0x1.9b1d6p-3,  -0x1.2d93e2p-3, -0x1.e9bdcep-3, -0x1.e4f3e4p-3, 0x1.17a9d8p-3,  -0x1.9befeep-7,
    0x1.e5fdd4p-3,  0x1.d5c6d6p-3,  -0x1.a7319ep-3, -0x1.2cc4eap-8, -0x1.fe4e7p-9,  0x1.b6fc4ep-5,
    0x1.c4780ap-3,  -0x1.07bb0ap-4, 0x1.6dddf4p-3,  0x1.041b86p-3,  -0x1.c56d7ep-3, 0x1.a43538p-6,
    -0x1.1dfe34p-3, -0x1.0a3e64p-4, 0x1.14e72cp-2,  -0x1.40690ap-3, -0x1.660a6ep-3, -0x1.9ff414p-3,
    -0x1.0b134ep-4, 0x1.51b24ap-3,  -0x1.8f66b2p-3, 0x1.26c45ap-3,  -0x1.b089bcp-3, 0x1.410108p-3,
    0x1.6ae56cp-6,  -0x1.084236p-2, 0x1.268ca2p-2,  -0x1.1e83e8p-2, -0x1.1dca24p-3, -0x1.020036p-4,
    0x1.14a8e8p-2,  -0x1.b0cb8ep-4, 0x1.191302p-2,  -0x1.40d07cp-4, -0x1.1ba9f4p-3, 0x1.20f678p-3,
    0x1.0e24c2p-2,  0x1.da4cf8p-3,  0x1.1fb4dcp-2,  0x1.96e42ap-4,  0x1.e7facap-4,  0x1.8987d4p-3,
    0x1.412f3ep-5,  -0x1.cfe784p-6, -0x1.ddddf6p-3, -0x1.386952p-3, -0x1.f5b90ap-3, -0x1.105e1p-2,
    -0x1.cd8beep-5, 0x1.2fbd24p-3,  -0x1.7b6528p-4, -0x1.4ab7aep-4, -0x1.c2951ep-5,
};

Test(init, linear_one_row_unchanged)
{
    struct oomb_layer L = make_layer(OOMB_LAYER_LINEAR, 12, 5, 65);
    L.has_bias = 1;
    float w[65];
    for (int64_t rows = 0; rows <= 1; rows++) {
        L.attrs[0] = rows;
        oomb_data_init_params(42, 3, &L, w);
        for (int i = 0; i < 65; i++)
            cr_assert_eq(w[i], linear_expected[i], "rows %lld value %d: %a vs %a", (long long)rows,
                         i, w[i], linear_expected[i]);
    }
}

Test(init, linear_per_token_fan_in)
{
    /* 4 rows of 16 -> 4 rows of 8: W (8, 16), b (8), fan-in 16. */
    struct oomb_layer L = make_layer(OOMB_LAYER_LINEAR, 64, 32, 8 * 16 + 8);
    L.has_bias = 1;
    L.attrs[0] = 4;
    float w[136];
    oomb_data_init_params(5, 0, &L, w);
    check_uniform(w, 136, 1.0 / sqrt(16.0));
}

Test(init, conv2d_bound)
{
    /* C 3, 8x8, OC 4, K 3: W (4, 27), b (4). */
    struct oomb_layer L = make_layer(OOMB_LAYER_CONV2D, 3 * 64, 4 * 36, 4 * 27 + 4);
    L.has_bias = 1;
    int64_t a[7] = {3, 8, 8, 4, 3, 1, 0};
    memcpy(L.attrs, a, sizeof a);
    float w[112];
    oomb_data_init_params(5, 1, &L, w);
    check_uniform(w, 108, 1.0 / sqrt(27.0));
    check_uniform(w + 108, 4, 1.0 / sqrt(27.0));
    /* The bound is on C*K*K, not in_features: nothing near 1/sqrt(192)
     * would reach past 0.5/sqrt(27). */
}

Test(init, norms_are_identity)
{
    struct oomb_layer bn = make_layer(OOMB_LAYER_BATCHNORM, 6 * 4, 6 * 4, 12);
    bn.attrs[0] = 6;
    bn.attrs[1] = 4;
    bn.n_buffers = 12;
    struct oomb_layer ln = make_layer(OOMB_LAYER_LAYERNORM, 3 * 5, 3 * 5, 10);
    ln.attrs[0] = 3;
    ln.attrs[1] = 5;
    float p[12], b[12];
    memset(p, 0x7f, sizeof p);
    oomb_data_init_params(1, 2, &bn, p);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(p[i], i < 6 ? 1.0f : 0.0f, "bn param %d: %g", i, p[i]);
    memset(b, 0x7f, sizeof b);
    oomb_data_init_buffers(&bn, b);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(b[i], i < 6 ? 0.0f : 1.0f, "bn buffer %d: %g", i, b[i]);
    memset(p, 0x7f, sizeof p);
    oomb_data_init_params(1, 3, &ln, p);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(p[i], i < 5 ? 1.0f : 0.0f, "ln param %d: %g", i, p[i]);
}

Test(init, attention_bound)
{
    /* T 4, C 8, H 2: Wqkv (24, 8), bqkv (24), Wo (8, 8), bo (8). */
    int64_t C = 8, n = 3 * C * C + 3 * C + C * C + C;
    struct oomb_layer L = make_layer(OOMB_LAYER_ATTENTION, 4 * C, 4 * C, n);
    int64_t a[4] = {4, C, 2, 1};
    memcpy(L.attrs, a, sizeof a);
    float *w = malloc((size_t)n * sizeof *w);
    cr_assert_not_null(w);
    oomb_data_init_params(11, 4, &L, w);
    double bound = 1.0 / sqrt((double)C);
    check_uniform(w, 3 * C * C, bound);
    check_uniform(w + 3 * C * C + 3 * C, C * C, bound);
    for (int64_t i = 0; i < n; i++) /* as in check_uniform: 2 float roundings */
        cr_assert(fabs(w[i]) <= bound * (1 + 1e-6));
    free(w);
}

Test(init, parameterless_kinds_write_nothing)
{
    enum oomb_layer_kind kinds[] = {OOMB_LAYER_RELU, OOMB_LAYER_GELU, OOMB_LAYER_FLATTEN,
                                    OOMB_LAYER_MAXPOOL};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct oomb_layer L = make_layer(kinds[k], 16, 16, 0);
        float sentinel[2] = {42.0f, 42.0f};
        oomb_data_init_params(1, 0, &L, sentinel);
        oomb_data_init_buffers(&L, sentinel);
        cr_assert_eq(sentinel[0], 42.0f);
    }
}

Test(init, residual_body_in_order)
{
    /* body: linear 8->8, batch norm (8, 1), relu, linear 8->8 */
    struct oomb_layer l1 = make_layer(OOMB_LAYER_LINEAR, 8, 8, 72);
    l1.has_bias = 1;
    struct oomb_layer bn = make_layer(OOMB_LAYER_BATCHNORM, 8, 8, 16);
    bn.attrs[0] = 8;
    bn.attrs[1] = 1;
    bn.n_buffers = 16;
    struct oomb_layer act = make_layer(OOMB_LAYER_RELU, 8, 8, 0);
    struct oomb_layer l2 = l1;
    const struct oomb_layer *body[4] = {&l1, &bn, &act, &l2};
    struct oomb_layer res = make_layer(OOMB_LAYER_RESIDUAL, 8, 8, 72 + 16 + 72);
    res.n_buffers = 16;
    res.n_body = 4;
    res.body = body;

    float p[160], p2[160], b[16];
    oomb_data_init_params(3, 5, &res, p);
    check_uniform(p, 72, 1.0 / sqrt(8.0));
    for (int i = 0; i < 16; i++)
        cr_assert_eq(p[72 + i], i < 8 ? 1.0f : 0.0f);
    check_uniform(p + 88, 72, 1.0 / sqrt(8.0));
    /* The two identical linear layers get different values... */
    cr_assert_neq(memcmp(p, p + 88, 72 * sizeof(float)), 0);
    int same = 0;
    for (int i = 0; i < 72; i++)
        same += p[i] == p[88 + i];
    cr_assert_lt(same, 3);
    /* ... and differ from a plain layer at the residual's index. */
    float plain[72];
    oomb_data_init_params(3, 5, &l1, plain);
    cr_assert_neq(memcmp(p, plain, sizeof plain), 0);
    /* Deterministic, and keyed by the residual's index. */
    oomb_data_init_params(3, 5, &res, p2);
    cr_assert_eq(memcmp(p, p2, sizeof p), 0);
    oomb_data_init_params(3, 6, &res, p2);
    cr_assert_neq(memcmp(p, p2, 72 * sizeof(float)), 0);

    memset(b, 0x7f, sizeof b);
    oomb_data_init_buffers(&res, b);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(b[i], i < 8 ? 0.0f : 1.0f, "buffer %d: %g", i, b[i]);
}

/* -------------------------------------------------- synthetic data ----- */

Test(synthetic, eval_samples_are_held_out)
{
    struct oomb_data d;
    cr_assert_eq(oomb_data_init(&d, 17, 10, 4, OOMB_DATA_SEPARATION), OOMB_OK);
    enum { N = 64, F = 10 };
    float xt[N * F], xe[N * F], xe2[N * F];
    int32_t yt[N], ye[N], ye2[N];
    oomb_data_samples(&d, 0, N, xt, yt);
    oomb_data_eval_samples(&d, 0, N, xe, ye);
    /* No held-out sample equals any training sample. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            cr_assert_neq(memcmp(xe + i * F, xt + j * F, F * sizeof(float)), 0,
                          "eval %d equals train %d", i, j);
    /* The held-out set is part of the same stream at OOMB_DATA_EVAL_BASE. */
    oomb_data_samples(&d, OOMB_DATA_EVAL_BASE, N, xe2, ye2);
    cr_assert_eq(memcmp(xe, xe2, sizeof xe), 0);
    cr_assert_eq(memcmp(ye, ye2, sizeof ye), 0);
    /* Ranges compose: samples [5, 8) are the same taken alone. */
    oomb_data_eval_samples(&d, 5, 3, xe2, ye2);
    cr_assert_eq(memcmp(xe + 5 * F, xe2, 3 * F * sizeof(float)), 0);
    cr_assert_eq(memcmp(ye + 5, ye2, 3 * sizeof(int32_t)), 0);
    /* Same task: labels in range and more than one class. */
    int seen[4] = {0};
    for (int i = 0; i < N; i++) {
        cr_assert(ye[i] >= 0 && ye[i] < 4);
        seen[ye[i]] = 1;
    }
    cr_assert_gt(seen[0] + seen[1] + seen[2] + seen[3], 1);
    oomb_data_free(&d);
}

/* The teacher: each row constant over blocks of ceil(F / OOMB_DATA_BLOCKS)
 * features, mean 0, squared norm F; rows differ between classes and seeds. */
Test(synthetic, teacher_rows_are_standardised_blocks)
{
    enum { F = 3 * 32 * 32, K = 10 };
    struct oomb_data d, e;
    cr_assert_eq(oomb_data_init(&d, 5, F, K, 8.0), OOMB_OK);
    cr_assert_eq(oomb_data_init(&e, 6, F, K, 8.0), OOMB_OK);
    const int run = (F + OOMB_DATA_BLOCKS - 1) / OOMB_DATA_BLOCKS; /* 192: 6 rows of a channel */
    for (int c = 0; c < K; c++) {
        const float *t = d.teacher + (size_t)c * F;
        double sum = 0, sum2 = 0;
        for (int f = 0; f < F; f++) {
            sum += t[f];
            sum2 += (double)t[f] * t[f];
            if (f % run)
                cr_assert_eq(t[f], t[f - 1], "class %d feature %d: not constant in its block", c, f);
        }
        cr_expect_leq(fabs(sum), 1e-3, "class %d: mean %g", c, sum / F);
        cr_expect_leq(fabs(sum2 - F), 1e-3 * F, "class %d: squared norm %g", c, sum2);
        if (c > 0)
            cr_expect_neq(memcmp(t, t - F, F * sizeof(float)), 0, "classes %d and %d", c - 1, c);
    }
    cr_expect_neq(memcmp(d.teacher, e.teacher, F * sizeof(float)), 0, "seeds 5 and 6");
    cr_expect_float_eq(d.amplitude, 8.0 / sqrt(2.0 * F), 1e-12);
    oomb_data_free(&d);
    oomb_data_free(&e);
}

/* Labels are the teacher's arg-max of x (the nearest class centre), the same
 * for a sample however it is fetched; x is N(0, 1) noise plus a *
 * teacher[c] for a uniformly drawn c. */
Test(synthetic, labels_are_the_teachers_argmax)
{
    enum { F = 64, K = 5, N = 4000 };
    struct oomb_data d;
    cr_assert_eq(oomb_data_init(&d, 23, F, K, 8.0), OOMB_OK);
    float *x = malloc(sizeof(float) * N * F), *x2 = malloc(sizeof(float) * F);
    int32_t *y = malloc(sizeof(int32_t) * N), y2;
    cr_assert(x && x2 && y);
    oomb_data_samples(&d, 1000, N, x, y);
    int hist[K] = {0};
    double s1 = 0, s2 = 0, near = 0;
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * F;
        int best = 0;
        double bv = -INFINITY, dist_best = INFINITY;
        for (int c = 0; c < K; c++) {
            double v = 0, dist = 0;
            for (int f = 0; f < F; f++) {
                v += (double)d.teacher[c * F + f] * xi[f];
                double r = xi[f] - d.amplitude * d.teacher[c * F + f];
                dist += r * r;
            }
            if (v > bv) {
                bv = v;
                best = c;
            }
            dist_best = fmin(dist_best, dist);
        }
        cr_assert_eq(y[i], best, "sample %d: label %d, teacher arg-max %d", i, y[i], best);
        hist[y[i]]++;
        /* squared distance to the nearest centre ~ chi-square with F degrees */
        near += dist_best / F;
        for (int f = 0; f < F; f++) {
            s1 += xi[f];
            s2 += (double)xi[f] * xi[f];
        }
        if (i % 997 == 0) {
            oomb_data_samples(&d, 1000 + i, 1, x2, &y2);
            cr_assert_eq(memcmp(x2, xi, F * sizeof(float)), 0, "sample %d alone", i);
            cr_assert_eq(y2, y[i]);
        }
    }
    /* per feature: mean 0, variance 1 + a^2 (the centres have mean 0 and
     * squared norm F) */
    double mean = s1 / ((double)N * F), var = s2 / ((double)N * F) - mean * mean;
    cr_expect_leq(fabs(mean), 0.01, "mean %g", mean);
    cr_expect_leq(fabs(var - (1 + d.amplitude * d.amplitude)), 0.02, "variance %g", var);
    cr_expect_leq(fabs(near / N - 1), 0.05, "mean squared distance to the nearest centre %g",
                  near / N);
    /* balanced: every class within 20% of N / K (measured 765 .. 833 of 800) */
    for (int c = 0; c < K; c++)
        cr_expect(hist[c] > 0.8 * N / K && hist[c] < 1.2 * N / K, "class %d: %d of %d", c,
                  hist[c], N);
    free(x);
    free(x2);
    free(y);
    oomb_data_free(&d);
}

/* The class histogram of the shipped synthetic inputs (flat 784 and 256,
 * tokens 32x64, images 3x32x32) at their scenarios' separations, over
 * 10000 samples: each class within 15% of N / K (measured 938 .. 1061 of
 * 1000; sampling alone spreads a class by +-3%). */
Test(synthetic, classes_are_balanced)
{
    static const struct {
        int64_t F;
        uint64_t seed;
        double sep;
    } cfg[] = {{784, 42, 8}, {256, 42, 8}, {32 * 64, 11, 8}, {3 * 32 * 32, 5, 64}};
    enum { K = 10, N = 10000, CHUNK = 500 };
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++) {
        struct oomb_data d;
        cr_assert_eq(oomb_data_init(&d, cfg[k].seed, cfg[k].F, K, cfg[k].sep), OOMB_OK);
        float *x = malloc(sizeof(float) * CHUNK * (size_t)cfg[k].F);
        int32_t y[CHUNK];
        cr_assert_not_null(x);
        int hist[K] = {0};
        for (int s = 0; s < N; s += CHUNK) {
            oomb_data_samples(&d, s, CHUNK, x, y);
            for (int i = 0; i < CHUNK; i++)
                hist[y[i]]++;
        }
        int lo = N, hi = 0;
        for (int c = 0; c < K; c++) {
            lo = hist[c] < lo ? hist[c] : lo;
            hi = hist[c] > hi ? hist[c] : hi;
        }
        cr_log_info("F %lld separation %g: classes %d .. %d of %d", (long long)cfg[k].F,
                    cfg[k].sep, lo, hi, N / K);
        cr_expect(lo > 0.85 * N / K && hi < 1.15 * N / K, "F %lld separation %g: %d .. %d",
                  (long long)cfg[k].F, cfg[k].sep, lo, hi);
        free(x);
        oomb_data_free(&d);
    }
}

Test(synthetic, rejects_bad_separation)
{
    struct oomb_data d;
    cr_expect_eq(oomb_data_init(&d, 1, 8, 2, -1.0), OOMB_ERR_INVALID);
    oomb_data_free(&d);
    cr_expect_eq(oomb_data_init(&d, 1, 8, 2, NAN), OOMB_ERR_INVALID);
    oomb_data_free(&d);
    cr_expect_eq(oomb_data_init(&d, 1, 8, 2, 2 * OOMB_DATA_SEPARATION_MAX), OOMB_ERR_INVALID);
    oomb_data_free(&d);
    /* degenerate sizes still give labels in range */
    float x[4];
    int32_t y[4];
    cr_assert_eq(oomb_data_init(&d, 1, 1, 3, 8.0), OOMB_OK);
    oomb_data_samples(&d, 0, 4, x, y);
    for (int i = 0; i < 4; i++)
        cr_expect(y[i] >= 0 && y[i] < 3 && isfinite(x[i]));
    oomb_data_free(&d);
    cr_assert_eq(oomb_data_init(&d, 1, 0, 3, 8.0), OOMB_OK);
    oomb_data_samples(&d, 0, 4, x, y);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(y[i], 0);
    oomb_data_free(&d);
}

/* model.init: kaiming: the same draws scaled to U(+-sqrt(6/fan_in)), weights
 * and biases alike; a gain of 1 is the default rule, bit for bit. */
Test(init, kaiming_gain)
{
    struct oomb_layer L = make_layer(OOMB_LAYER_LINEAR, 256, 64, 256 * 64 + 64);
    L.has_bias = 1;
    int64_t n = 256 * 64 + 64;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    cr_assert(a && b);
    oomb_data_init_params(7, 2, &L, a);
    oomb_data_init_params_gain(7, 2, &L, 1.0, b);
    cr_assert(memcmp(a, b, (size_t)n * sizeof *a) == 0);
    oomb_data_init_params_gain(7, 2, &L, sqrt(6.0), b);
    check_uniform(b, n, sqrt(6.0 / 256));
    for (int64_t i = 0; i < n; i++) /* the same draw, scaled: two float roundings */
        cr_assert(fabs(b[i] - sqrt(6.0) * a[i]) <= 1e-6 * fabs(b[i]) + 1e-12, "value %lld", (long long)i);
    free(a);
    free(b);
}
