/*
 * Fashion-MNIST (and any data set in the IDX format of MNIST): gzipped IDX
 * files read with zlib into host memory, pixels normalised to float, and the
 * seeded sample order of training (a fresh permutation every epoch).
 *
 * The Debian package dataset-fashion-mnist installs the four files under
 * /usr/share/datasets/fashion-mnist (scripts/setup.sh installs it).
 */
#ifndef OOMB_MNIST_H
#define OOMB_MNIST_H

#include <stddef.h>
#include <stdint.h>

#include "oombench/plugin.h"

#define OOMB_FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define OOMB_FASHION_MNIST_ENV "OOMB_FASHION_MNIST_DIR"
#define OOMB_FASHION_MNIST_CLASSES 10

/* A labelled data set in host memory. x holds n rows of `features`
 * normalised pixels, y n labels in [0, classes). Both are owned by the
 * struct: release them with oomb_dataset_free. */
struct oomb_dataset {
    int64_t n;
    int64_t features;
    int64_t classes;
    float *x;   /* (n, features) normalised */
    int32_t *y; /* (n) */
};

/* Reads one pair of IDX files, gzipped (read with gzopen/gzread, which also
 * accepts uncompressed files): images of magic 0x00000803 with big-endian
 * dimensions (n, rows, cols) and one byte per pixel, labels of magic
 * 0x00000801 with a big-endian count and one byte per label.
 * Checks the magic numbers, that both counts agree, that every label is below
 * 10 and that each file holds exactly its header and data (missing or
 * trailing bytes are errors). Pixels become (p/255 - 0.2860) / 0.3530
 * (Fashion-MNIST's training mean and standard deviation); features =
 * rows * cols, classes = 10.
 * Returns OOMB_OK and fills *out (caller frees with oomb_dataset_free), or
 * OOMB_ERR_IO (a file cannot be opened or read), OOMB_ERR_PARSE (a file is
 * malformed) or OOMB_ERR_OOM, with err naming the file and what is wrong;
 * on error *out is left empty (all zero) and nothing needs freeing. */
int oomb_dataset_load_idx(const char *images_gz, const char *labels_gz, struct oomb_dataset *out,
                          char *err, size_t err_len) OOMB_WARN_UNUSED;

/* The directory oomb_fashion_mnist_load reads when given NULL:
 * $OOMB_FASHION_MNIST_DIR when set and non-empty, else
 * OOMB_FASHION_MNIST_DEFAULT_DIR. Returns getenv's string or the constant. */
const char *oomb_fashion_mnist_dir(void);

/* Loads Fashion-MNIST from dir (NULL: oomb_fashion_mnist_dir()): the
 * training set from train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz
 * into *train, the test set from t10k-images-idx3-ubyte.gz /
 * t10k-labels-idx1-ubyte.gz into *test (either may be NULL to skip it).
 * When a file is missing, returns OOMB_ERR_IO with "Fashion-MNIST not found
 * at DIR: install the Debian package dataset-fashion-mnist (scripts/setup.sh
 * does)" and the missing file; other errors as oomb_dataset_load_idx.
 * On error nothing is left allocated (both sets are empty). */
int oomb_fashion_mnist_load(const char *dir, struct oomb_dataset *train,
                            struct oomb_dataset *test, char *err, size_t err_len)
    OOMB_WARN_UNUSED;

/* Frees d's arrays and zeroes it; NULL and an empty set are allowed. */
void oomb_dataset_free(struct oomb_dataset *d);

/*
 * The sample that position `global_index` of the seeded training stream
 * takes. The stream is epoch after epoch over a set of n samples: position
 * i belongs to epoch e = i / n and takes sample P_e(i mod n), where P_e is a
 * permutation of [0, n) keyed by (seed, e), a different one every epoch.
 *
 * P_e is a keyed bijection computed on the fly, with no state and O(1)
 * expected cost: an 8-round balanced Feistel network on the smallest even
 * number of bits 2h with 2^(2h) >= n (round function: splitmix64 of the
 * right half and a round key derived from seed and e), restricted to [0, n)
 * by cycle walking (re-applying the network until the value falls below n;
 * since 2^(2h) < 4n, fewer than 4 applications on average). The result
 * depends on (seed, n, global_index) only: identical across calls, runs,
 * threads and processes.
 *
 * Returns the sample index in [0, n), or -1 when n < 1 or global_index < 0.
 */
int64_t oomb_dataset_sample_index(uint64_t seed, int64_t n, int64_t global_index);

/* Gathers samples idx[0..count) of d into host buffers x (count, features)
 * and y (count). Every idx[i] must be in [0, d->n). */
void oomb_dataset_copy(const struct oomb_dataset *d, const int64_t *idx, int64_t count, float *x,
                       int32_t *y);

/*
 * A decoded data set in a file, so that a run can hold it whole in its own
 * memory (resident) or read the samples a batch needs (streaming) without
 * the parent process holding it: "OOMBDS1\0", then n, features and classes
 * as little-endian int64, then x (n, features) float32 and y (n) int32, in
 * this machine's byte order (the file lives only as long as the runner's
 * temporary folder).
 */
struct oomb_dataset_file {
    int fd; /* -1 when closed */
    int64_t n, features, classes;
};

/* Writes d to a new file at path (mode 0600, replaced if it exists).
 * Returns OOMB_OK, or OOMB_ERR_IO with err naming the path. */
int oomb_dataset_save(const struct oomb_dataset *d, const char *path, char *err, size_t err_len)
    OOMB_WARN_UNUSED;
/* Opens a file written by oomb_dataset_save and checks its header against
 * its size. Returns OOMB_OK and *f (close with oomb_dataset_file_close), or
 * OOMB_ERR_IO / OOMB_ERR_PARSE with err naming the path (f->fd is -1). */
int oomb_dataset_file_open(const char *path, struct oomb_dataset_file *f, char *err,
                           size_t err_len) OOMB_WARN_UNUSED;
/* Reads the whole set into *out (caller frees with oomb_dataset_free).
 * Returns OOMB_OK, OOMB_ERR_OOM or OOMB_ERR_IO (out left empty). */
int oomb_dataset_file_load(const struct oomb_dataset_file *f, struct oomb_dataset *out)
    OOMB_WARN_UNUSED;
/* Reads samples idx[0..count) (each in [0, n)) into x (count, features)
 * and y (count) with pread, so that several threads may read one file.
 * Returns OOMB_OK, OOMB_ERR_INVALID for an index out of range, or
 * OOMB_ERR_IO. */
int oomb_dataset_file_read(const struct oomb_dataset_file *f, const int64_t *idx, int64_t count,
                           float *x, int32_t *y) OOMB_WARN_UNUSED;
/* Closes the file and sets fd to -1; fd -1 (closed, or never opened: set it
 * to -1 before a failed or skipped open) is a no-op. */
void oomb_dataset_file_close(struct oomb_dataset_file *f);

#endif
