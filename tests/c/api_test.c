/*
 * api_test.c: exercises every function of the rrra C ABI, every documented error path and the
 * numbers it returns, from plain C99 and (compiled as C++17) from C++.
 *
 *   cc  -std=c99   -Wall -Wextra -Werror -pedantic -Iinclude tests/c/api_test.c ...
 *   c++ -x c++ -std=c++17 -Wall -Wextra -Werror  -Iinclude tests/c/api_test.c ...
 *   ./api_test [scratch-directory]
 *
 * tests/c_abi.rs builds it against the librrra.a of the same cargo invocation, with ASan and
 * UBSan, and again without them under Valgrind.
 *
 * What it relies on: only rrra.h. It writes its own adapter file (a minimal safetensors file,
 * SPEC §2) and recomputes SPEC §3-§5 in double precision to check the library's numbers.
 *
 * Every output buffer the library writes is carved out of a larger allocation with sentinel
 * words before and after it ("guarded buffers"); after every call the sentinels must be intact,
 * and after every failed call every guarded buffer must be byte-identical to before the call
 * (the header promises that outputs are written only on success).
 *
 * The last line of output is "api_test: N passed, M failed"; the exit status is 0 only when
 * M is 0. Each failure is printed with file:line and rrra_last_error().
 */
#define _POSIX_C_SOURCE 200809L

#include "rrra.h"
#include "rrra.h" /* a second time on purpose: the include guard must make this a no-op */

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Test data dimensions                                                                         */
/* ------------------------------------------------------------------------------------------ */

#define DIM 5           /* d: deliberately not a multiple of 4 or 8 */
#define HID 3           /* h */
#define NQ 4            /* queries in the ragged batch */
#define TOTAL 8         /* 3 + 0 + 1 + 4 candidates */
#define STRIDE 7        /* dense candidate row stride, > DIM; the padding holds NaN */
#define CANDS_LEN ((TOTAL - 1) * STRIDE + DIM) /* the exact minimum the header asks for */
#define CORPUS_ROWS 10
#define CORPUS_STRIDE 6 /* corpus row stride, > DIM; the padding holds NaN */
#define CORPUS_LEN (CORPUS_ROWS * CORPUS_STRIDE)
#define MAX_SPQ 4       /* samples per query, largest request */

/* Weight layout: the six tensors back to back, as in the file. */
#define W_FC1W 0
#define W_FC1B (W_FC1W + HID * 3 * DIM)
#define W_FC2W (W_FC1B + HID)
#define W_FC2B (W_FC2W + DIM * HID)
#define W_CLSW (W_FC2B + DIM)
#define W_CLSB (W_CLSW + 4 * HID)
#define N_PARAMS (W_CLSB + 4)

static const size_t COUNTS[NQ] = {3, 0, 1, 4};
static const size_t STARTS[NQ] = {0, 3, 3, 4};
static const uint64_t IDS[TOTAL] = {7, 2, 9, 4, 0, 5, 2, 8};
static const uint8_t MASK[TOTAL] = {1, 0, 0, 0, 0, 0, 1, 0}; /* q0 pos 0, q3 pos 2 */

/* ------------------------------------------------------------------------------------------ */
/* Check bookkeeping                                                                            */
/* ------------------------------------------------------------------------------------------ */

static int g_passed = 0;
static int g_failed = 0;

static void report(int ok, const char *file, int line, const char *what) {
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    printf("%s:%d: FAILED: %s\n    rrra_last_error: \"%s\"\n", file, line, what, rrra_last_error());
    fflush(stdout);
}

static void reportf(int ok, const char *file, int line, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    if (ok) {
        g_passed++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    report(0, file, line, what);
}

#define CHECK(cond) report((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
#define CHECKF(cond, ...) reportf((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* Checks a status; for RRRA_STATUS_OK also that rrra_last_error() is "", for an error that it
 * is non-empty and mentions `needle` (when not NULL). */
static void expect_status(int32_t got, int32_t want, const char *needle, const char *file, int line,
                          const char *expr) {
    char msg[1024];
    const char *raw = rrra_last_error();
    int ok;
    snprintf(msg, sizeof msg, "%s", raw != NULL ? raw : "(NULL)");
    if (got != want) {
        ok = 0;
    } else if (want == RRRA_STATUS_OK) {
        ok = raw != NULL && raw[0] == '\0';
    } else {
        ok = raw != NULL && raw[0] != '\0' && (needle == NULL || strstr(raw, needle) != NULL);
    }
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    printf("%s:%d: FAILED: %s\n    expected %s, got %s (%d)%s%s%s\n    rrra_last_error: \"%s\"\n", file, line,
           expr, rrra_status_name(want), rrra_status_name(got), (int)got, needle ? "; message should mention \"" : "",
           needle ? needle : "", needle ? "\"" : "", msg);
    fflush(stdout);
}

#define EXPECT_OK(call) expect_status((call), RRRA_STATUS_OK, NULL, __FILE__, __LINE__, #call)
#define EXPECT_ERR(call, want, needle) expect_status((call), (want), (needle), __FILE__, __LINE__, #call)

/* ------------------------------------------------------------------------------------------ */
/* Guarded buffers                                                                              */
/* ------------------------------------------------------------------------------------------ */

#define GUARD_WORDS 16
#define GUARD_WORD 0xDEADBEEFu
#define FILL_BYTE 0xA5
#define MAX_GBUF 32

typedef struct gbuf {
    uint32_t *raw;         /* GUARD_WORDS sentinels, the buffer, GUARD_WORDS sentinels */
    unsigned char *data;   /* what the library sees */
    size_t bytes;          /* a multiple of 4 */
    unsigned char *shadow; /* a snapshot of data, for the outputs-unchanged check */
} gbuf;

static gbuf g_bufs[MAX_GBUF];
static size_t g_nbufs = 0;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) {
        printf("api_test: out of memory\n");
        exit(2);
    }
    return p;
}

/* A guarded buffer of `bytes` bytes (a multiple of 4), filled with FILL_BYTE. */
static void *gbuf_new(size_t bytes) {
    size_t words = bytes / 4, i;
    gbuf *g;
    if (bytes % 4 != 0 || g_nbufs == MAX_GBUF) {
        printf("api_test: bad gbuf_new(%lu)\n", (unsigned long)bytes);
        exit(2);
    }
    g = &g_bufs[g_nbufs++];
    g->raw = (uint32_t *)xmalloc((words + 2 * GUARD_WORDS) * sizeof(uint32_t));
    for (i = 0; i < GUARD_WORDS; i++) {
        g->raw[i] = GUARD_WORD;
        g->raw[GUARD_WORDS + words + i] = GUARD_WORD;
    }
    g->data = (unsigned char *)(g->raw + GUARD_WORDS);
    g->bytes = bytes;
    g->shadow = (unsigned char *)xmalloc(bytes);
    memset(g->data, FILL_BYTE, bytes);
    return g->data;
}

static gbuf *gbuf_find(const void *data) {
    size_t i;
    for (i = 0; i < g_nbufs; i++) {
        if (g_bufs[i].data == (const unsigned char *)data) {
            return &g_bufs[i];
        }
    }
    printf("api_test: unknown gbuf\n");
    exit(2);
}

static void gbuf_fill(void *data) {
    gbuf *g = gbuf_find(data);
    memset(g->data, FILL_BYTE, g->bytes);
}

static int guards_intact(void) {
    size_t i, j;
    for (i = 0; i < g_nbufs; i++) {
        size_t words = g_bufs[i].bytes / 4;
        for (j = 0; j < GUARD_WORDS; j++) {
            if (g_bufs[i].raw[j] != GUARD_WORD || g_bufs[i].raw[GUARD_WORDS + words + j] != GUARD_WORD) {
                printf("    guard word %lu of buffer %lu overwritten\n", (unsigned long)j, (unsigned long)i);
                return 0;
            }
        }
    }
    return 1;
}

static void snapshot_all(void) {
    size_t i;
    for (i = 0; i < g_nbufs; i++) {
        memcpy(g_bufs[i].shadow, g_bufs[i].data, g_bufs[i].bytes);
    }
}

static int all_unchanged(void) {
    size_t i;
    for (i = 0; i < g_nbufs; i++) {
        if (memcmp(g_bufs[i].shadow, g_bufs[i].data, g_bufs[i].bytes) != 0) {
            printf("    guarded buffer %lu was written by a failing call\n", (unsigned long)i);
            return 0;
        }
    }
    return 1;
}

static int gbuf_unchanged(const void *data) {
    gbuf *g = gbuf_find(data);
    return memcmp(g->shadow, g->data, g->bytes) == 0;
}

/* Every 4-byte word of the buffer was overwritten (none still holds the fill pattern). */
static int gbuf_all_written(const void *data) {
    gbuf *g = gbuf_find(data);
    size_t i;
    for (i = 0; i + 4 <= g->bytes; i += 4) {
        if (g->data[i] == FILL_BYTE && g->data[i + 1] == FILL_BYTE && g->data[i + 2] == FILL_BYTE &&
            g->data[i + 3] == FILL_BYTE) {
            return 0;
        }
    }
    return 1;
}

static void gbuf_free_all(void) {
    size_t i;
    for (i = 0; i < g_nbufs; i++) {
        free(g_bufs[i].raw);
        free(g_bufs[i].shadow);
    }
    g_nbufs = 0;
}

/* A failing call: status and message as expected, no guarded buffer written, guards intact. */
#define EXPECT_ERR_NOWRITE(call, want, needle)                                                      \
    do {                                                                                            \
        snapshot_all();                                                                             \
        expect_status((call), (want), (needle), __FILE__, __LINE__, #call);                         \
        report(all_unchanged(), __FILE__, __LINE__, "outputs unchanged after failing " #call);      \
        report(guards_intact(), __FILE__, __LINE__, "guard words intact after " #call);             \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Deterministic pseudo-random numbers                                                          */
/* ------------------------------------------------------------------------------------------ */

static uint64_t g_rng = UINT64_C(0x0123456789ABCDEF);

static uint32_t rnd_u32(void) {
    g_rng = g_rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (uint32_t)(g_rng >> 32);
}

/* Uniform in [lo, hi), exactly representable in f32 (multiples of 2^-16). */
static float rnd_float(float lo, float hi) {
    return lo + (hi - lo) * (float)(rnd_u32() >> 16) / 65536.0f;
}

/* ------------------------------------------------------------------------------------------ */
/* The adapter file (SPEC §2), written by hand                                                  */
/* ------------------------------------------------------------------------------------------ */

static const char *const TENSOR_NAMES[6] = {"fc1.weight", "fc1.bias", "fc2.weight",
                                            "fc2.bias", "classifier.weight", "classifier.bias"};

static void put_u64_le(unsigned char *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_f32_le(unsigned char *p, float f) {
    uint32_t u;
    int i;
    memcpy(&u, &f, sizeof u);
    for (i = 0; i < 4; i++) {
        p[i] = (unsigned char)(u >> (8 * i));
    }
}

/* Builds a safetensors file holding `weights` (N_PARAMS floats, F32). `names` may be NULL for
 * the standard tensor names; `metadata` is the JSON body of "__metadata__" (without braces), or
 * NULL for no "__metadata__" at all. Returns a malloc'd buffer and its length. */
static unsigned char *build_adapter(const float *weights, const char *const *names, const char *metadata,
                                    size_t *len_out) {
    char header[4096];
    size_t shapes[6][2] = {{HID, 3 * DIM}, {HID, 0}, {DIM, HID}, {DIM, 0}, {4, HID}, {4, 0}};
    size_t used = 0, offset = 0, header_len, i;
    unsigned char *bytes;
    if (names == NULL) {
        names = TENSOR_NAMES;
    }
    used += (size_t)snprintf(header + used, sizeof header - used, "{");
    if (metadata != NULL) {
        used += (size_t)snprintf(header + used, sizeof header - used, "\"__metadata__\":{%s},", metadata);
    }
    for (i = 0; i < 6; i++) {
        size_t count = shapes[i][1] == 0 ? shapes[i][0] : shapes[i][0] * shapes[i][1];
        char shape[64];
        if (shapes[i][1] == 0) {
            snprintf(shape, sizeof shape, "[%lu]", (unsigned long)shapes[i][0]);
        } else {
            snprintf(shape, sizeof shape, "[%lu,%lu]", (unsigned long)shapes[i][0], (unsigned long)shapes[i][1]);
        }
        used += (size_t)snprintf(header + used, sizeof header - used,
                                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%lu,%lu]}",
                                 i == 0 ? "" : ",", names[i], shape, (unsigned long)(4 * offset),
                                 (unsigned long)(4 * (offset + count)));
        offset += count;
    }
    used += (size_t)snprintf(header + used, sizeof header - used, "}");
    while (used % 8 != 0) { /* pad with spaces, as the reference writer does */
        header[used++] = ' ';
    }
    header_len = used;
    *len_out = 8 + header_len + 4 * (size_t)N_PARAMS;
    bytes = (unsigned char *)xmalloc(*len_out);
    put_u64_le(bytes, (uint64_t)header_len);
    memcpy(bytes + 8, header, header_len);
    for (i = 0; i < N_PARAMS; i++) {
        put_f32_le(bytes + 8 + header_len + 4 * i, weights[i]);
    }
    return bytes;
}

static const char *const MINIMAL_METADATA = "\"format\":\"rrra-adapter\",\"format_version\":\"1\"";

static int write_file(const char *path, const unsigned char *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    size_t written;
    if (f == NULL) {
        return 0;
    }
    written = len > 0 ? fwrite(bytes, 1, len, f) : 0;
    return fclose(f) == 0 && written == len;
}

/* ------------------------------------------------------------------------------------------ */
/* SPEC §3-§5 in double precision                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct pair_ref {
    double sim_a;    /* sim(q, a), dot */
    double sim_c;    /* sim(q, c), dot */
    double probs[4]; /* p_TP, p_FN, p_FP, p_TN */
    double log_not_fn;
} pair_ref;

static void ref_pair(const float *w, const float *q, const float *c, pair_ref *out) {
    double z[3 * DIM], hid[HID], logits[4], a, mx, sum;
    int i, j;
    for (i = 0; i < DIM; i++) {
        z[i] = (double)q[i] - (double)c[i];
        z[DIM + i] = (double)q[i] * (double)c[i];
        z[2 * DIM + i] = (double)q[i] + (double)c[i];
    }
    for (j = 0; j < HID; j++) {
        double pre = w[W_FC1B + j];
        for (i = 0; i < 3 * DIM; i++) {
            pre += (double)w[W_FC1W + j * 3 * DIM + i] * z[i];
        }
        hid[j] = pre > 0.0 ? pre : 0.0; /* relu */
    }
    out->sim_a = 0.0;
    out->sim_c = 0.0;
    for (i = 0; i < DIM; i++) {
        double delta = w[W_FC2B + i];
        for (j = 0; j < HID; j++) {
            delta += (double)w[W_FC2W + i * HID + j] * hid[j];
        }
        a = (double)c[i] + delta;
        out->sim_a += (double)q[i] * a;
        out->sim_c += (double)q[i] * (double)c[i];
    }
    mx = -1e300;
    for (i = 0; i < 4; i++) {
        logits[i] = w[W_CLSB + i];
        for (j = 0; j < HID; j++) {
            logits[i] += (double)w[W_CLSW + i * HID + j] * hid[j];
        }
        if (logits[i] > mx) {
            mx = logits[i];
        }
    }
    sum = 0.0;
    for (i = 0; i < 4; i++) {
        sum += exp(logits[i] - mx);
    }
    for (i = 0; i < 4; i++) {
        out->probs[i] = exp(logits[i] - mx) / sum;
    }
    out->log_not_fn = log(out->probs[0] + out->probs[2] + out->probs[3]);
}

static double log_sigmoid(double x) {
    /* -softplus(-x) */
    double y = -x;
    return -((y > 0.0 ? y : 0.0) + log1p(exp(-fabs(y))));
}

enum { T_IDENTITY = 0, T_SIGMOID = 1, T_SOFTMAX = 2 };

/* log s_B for every candidate of the batch (SPEC §4): base scores `base` or sim(q, c). */
static void ref_log_sb(const pair_ref *refs, const float *base, int transform, double mu, double tau,
                       double *out) {
    int q;
    size_t i;
    for (q = 0; q < NQ; q++) {
        double b[TOTAL], mx = -1e300, sum = 0.0;
        for (i = 0; i < COUNTS[q]; i++) {
            b[i] = base != NULL ? (double)base[STARTS[q] + i] : refs[STARTS[q] + i].sim_c;
        }
        for (i = 0; i < COUNTS[q]; i++) {
            if (b[i] / tau > mx) {
                mx = b[i] / tau;
            }
        }
        for (i = 0; i < COUNTS[q]; i++) {
            sum += exp(b[i] / tau - mx);
        }
        for (i = 0; i < COUNTS[q]; i++) {
            double v;
            if (transform == T_IDENTITY) {
                v = log(b[i]);
            } else if (transform == T_SIGMOID) {
                v = log_sigmoid((b[i] - mu) / tau);
            } else {
                v = b[i] / tau - mx - log(sum);
            }
            out[STARTS[q] + i] = v;
        }
    }
}

static int close_to(double got, double ref, double rel) {
    double scale = fabs(ref) > 1.0 ? fabs(ref) : 1.0;
    return fabs(got - ref) <= rel * scale;
}

/* SplitMix64 (SPEC §5) */
static uint64_t splitmix_next(uint64_t *state) {
    uint64_t z;
    *state += UINT64_C(0x9E3779B97F4A7C15);
    z = *state;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* SPEC §5 written out: up to n draws of one query; returns the count, fills out[n]. */
static size_t ref_sample(const float *log_s_rs, size_t k, const uint8_t *mask, uint64_t seed, uint64_t query_index,
                         uint32_t *out, size_t n) {
    double keys[TOTAL];
    uint32_t idx[TOTAL];
    size_t m = 0, i, j, count;
    uint64_t state = seed ^ (UINT64_C(0x9E3779B97F4A7C15) * (query_index + 1));
    for (i = 0; i < k; i++) {
        uint64_t x = splitmix_next(&state);
        double u = ((double)(x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        if (mask != NULL && mask[i] != 0) {
            continue;
        }
        keys[m] = log(u) * exp(-(double)log_s_rs[i]);
        idx[m] = (uint32_t)i;
        m++;
    }
    /* insertion sort: key descending, index ascending */
    for (i = 1; i < m; i++) {
        for (j = i; j > 0 && (keys[j] > keys[j - 1] || (keys[j] == keys[j - 1] && idx[j] < idx[j - 1])); j--) {
            double tk = keys[j];
            uint32_t ti = idx[j];
            keys[j] = keys[j - 1];
            idx[j] = idx[j - 1];
            keys[j - 1] = tk;
            idx[j - 1] = ti;
        }
    }
    count = m < n ? m : n;
    for (i = 0; i < n; i++) {
        out[i] = i < count ? idx[i] : RRRA_NOT_DRAWN;
    }
    return count;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared fixtures                                                                              */
/* ------------------------------------------------------------------------------------------ */

static float g_weights[N_PARAMS];
static float *g_queries;    /* NQ * DIM, exact-size malloc */
static float *g_cands;      /* CANDS_LEN, exact-size malloc; stride padding is NaN */
static float *g_corpus;     /* CORPUS_LEN, exact-size malloc; stride padding is NaN */
static float *g_base;       /* TOTAL positive retriever scores */
static pair_ref g_refs[TOTAL];

/* Guarded outputs, used by the single-threaded part. */
static float *o_log_s_rr, *o_s_a, *o_s_fn, *o_class_probs;
static uint32_t *o_order;
static float *o_log_s_rs, *o_rs_s_fn;
static uint32_t *o_samples, *o_counts;
static uint32_t *o_sn_samples; /* rrra_sample_negatives */
static size_t *o_sn_count;

typedef struct rr_result {
    float log_s_rr[TOTAL];
    float s_a[TOTAL];
    float s_fn[TOTAL];
    float class_probs[4 * TOTAL];
    uint32_t order[TOTAL];
} rr_result;

typedef struct rs_result {
    float log_s_rs[TOTAL];
    float s_fn[TOTAL];
    uint32_t samples[NQ * MAX_SPQ];
    uint32_t counts[NQ];
} rs_result;

static int rr_equal(const rr_result *a, const rr_result *b) {
    return memcmp(a->log_s_rr, b->log_s_rr, sizeof a->log_s_rr) == 0 && memcmp(a->s_a, b->s_a, sizeof a->s_a) == 0 &&
           memcmp(a->s_fn, b->s_fn, sizeof a->s_fn) == 0 &&
           memcmp(a->class_probs, b->class_probs, sizeof a->class_probs) == 0 &&
           memcmp(a->order, b->order, sizeof a->order) == 0;
}

static int rs_equal(const rs_result *a, const rs_result *b) {
    return memcmp(a->log_s_rs, b->log_s_rs, sizeof a->log_s_rs) == 0 &&
           memcmp(a->s_fn, b->s_fn, sizeof a->s_fn) == 0 && memcmp(a->samples, b->samples, sizeof a->samples) == 0 &&
           memcmp(a->counts, b->counts, sizeof a->counts) == 0;
}

static void make_fixtures(void) {
    size_t i, j;
    for (i = 0; i < N_PARAMS; i++) {
        g_weights[i] = rnd_float(-0.6f, 0.6f);
    }
    g_queries = (float *)xmalloc(NQ * DIM * sizeof(float));
    for (i = 0; i < NQ * DIM; i++) {
        g_queries[i] = rnd_float(-1.0f, 1.0f);
    }
    g_corpus = (float *)xmalloc(CORPUS_LEN * sizeof(float));
    for (i = 0; i < CORPUS_ROWS; i++) {
        for (j = 0; j < CORPUS_STRIDE; j++) {
            g_corpus[i * CORPUS_STRIDE + j] = j < DIM ? rnd_float(-1.0f, 1.0f) : (float)NAN;
        }
    }
    /* Dense candidates: the same rows as the corpus ids, so both paths must agree exactly. */
    g_cands = (float *)xmalloc(CANDS_LEN * sizeof(float));
    for (i = 0; i < CANDS_LEN; i++) {
        g_cands[i] = (float)NAN;
    }
    for (i = 0; i < TOTAL; i++) {
        memcpy(g_cands + i * STRIDE, g_corpus + IDS[i] * CORPUS_STRIDE, DIM * sizeof(float));
    }
    g_base = (float *)xmalloc(TOTAL * sizeof(float));
    for (i = 0; i < TOTAL; i++) {
        g_base[i] = rnd_float(0.05f, 0.95f);
    }
    for (i = 0; i < NQ; i++) {
        for (j = 0; j < COUNTS[i]; j++) {
            size_t p = STARTS[i] + j;
            ref_pair(g_weights, g_queries + i * DIM, g_cands + p * STRIDE, &g_refs[p]);
        }
    }
}

static void dense_batch(rrra_batch *b) {
    memset(b, 0, sizeof *b);
    b->struct_size = sizeof *b;
    b->dim = DIM;
    b->n_queries = NQ;
    b->queries = g_queries;
    b->queries_len = NQ * DIM;
    b->candidate_counts = COUNTS;
    b->candidates = g_cands;
    b->candidates_len = CANDS_LEN;
    b->candidate_stride = STRIDE;
}

static void id_batch(rrra_batch *b, const rrra_corpus *corpus) {
    memset(b, 0, sizeof *b);
    b->struct_size = sizeof *b;
    b->dim = DIM;
    b->n_queries = NQ;
    b->queries = g_queries;
    b->queries_len = NQ * DIM;
    b->candidate_counts = COUNTS;
    b->corpus = corpus;
    b->candidate_ids = IDS;
    b->candidate_ids_len = TOTAL;
}

static void rr_outputs(rrra_rerank_outputs *o) {
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->log_s_rr = o_log_s_rr;
    o->log_s_rr_len = TOTAL;
    o->s_a = o_s_a;
    o->s_a_len = TOTAL;
    o->s_fn = o_s_fn;
    o->s_fn_len = TOTAL;
    o->class_probs = o_class_probs;
    o->class_probs_len = 4 * TOTAL;
    o->order = o_order;
    o->order_len = TOTAL;
}

static void rs_outputs(rrra_resample_outputs *o, size_t spq) {
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->log_s_rs = o_log_s_rs;
    o->log_s_rs_len = TOTAL;
    o->s_fn = o_rs_s_fn;
    o->s_fn_len = TOTAL;
    o->samples = o_samples;
    o->samples_len = NQ * spq;
    o->sample_counts = o_counts;
    o->sample_counts_len = NQ;
}

static void rs_request(rrra_resample_request *r, size_t spq, const uint8_t *mask) {
    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    r->samples_per_query = spq;
    r->seed = UINT64_C(0x5EED5EED12345678);
    r->first_query_index = 100;
    r->positive_mask = mask;
    r->positive_mask_len = mask != NULL ? TOTAL : 0;
}

static void score_options_init(rrra_score_options *o) {
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
}

/* Reranks into the guarded outputs (refilled first) and copies them to `out`. */
static int32_t rerank(rrra_session *s, const rrra_batch *batch, const rrra_score_options *opt, rr_result *out,
                      const char *file, int line) {
    rrra_rerank_outputs o;
    int32_t st;
    gbuf_fill(o_log_s_rr);
    gbuf_fill(o_s_a);
    gbuf_fill(o_s_fn);
    gbuf_fill(o_class_probs);
    gbuf_fill(o_order);
    rr_outputs(&o);
    st = rrra_session_rerank(s, batch, opt, &o);
    expect_status(st, RRRA_STATUS_OK, NULL, file, line, "rrra_session_rerank (success path)");
    report(guards_intact(), file, line, "guard words intact after rrra_session_rerank");
    report(gbuf_all_written(o_log_s_rr) && gbuf_all_written(o_s_a) && gbuf_all_written(o_s_fn) &&
               gbuf_all_written(o_class_probs) && gbuf_all_written(o_order),
           file, line, "every element of every rerank output written");
    memcpy(out->log_s_rr, o_log_s_rr, sizeof out->log_s_rr);
    memcpy(out->s_a, o_s_a, sizeof out->s_a);
    memcpy(out->s_fn, o_s_fn, sizeof out->s_fn);
    memcpy(out->class_probs, o_class_probs, sizeof out->class_probs);
    memcpy(out->order, o_order, sizeof out->order);
    return st;
}

static int32_t resample(rrra_session *s, const rrra_batch *batch, const rrra_score_options *opt,
                        const rrra_resample_request *req, rs_result *out, const char *file, int line) {
    rrra_resample_outputs o;
    int32_t st;
    size_t i;
    gbuf_fill(o_log_s_rs);
    gbuf_fill(o_rs_s_fn);
    gbuf_fill(o_samples);
    gbuf_fill(o_counts);
    rs_outputs(&o, req->samples_per_query);
    st = rrra_session_resample(s, batch, opt, req, &o);
    expect_status(st, RRRA_STATUS_OK, NULL, file, line, "rrra_session_resample (success path)");
    report(guards_intact(), file, line, "guard words intact after rrra_session_resample");
    memcpy(out->log_s_rs, o_log_s_rs, sizeof out->log_s_rs);
    memcpy(out->s_fn, o_rs_s_fn, sizeof out->s_fn);
    for (i = 0; i < NQ * MAX_SPQ; i++) {
        out->samples[i] = i < NQ * req->samples_per_query ? o_samples[i] : 0;
    }
    memcpy(out->counts, o_counts, sizeof out->counts);
    return st;
}

/* Structural checks of a rerank result, and log s_RR against the double reference. */
static void check_rerank_result(const rr_result *r, const double *ref_lsb, double lambda, const char *file,
                                int line, const char *label) {
    int q;
    size_t i, j;
    int perm_ok = 1, sorted_ok = 1, sa_ok = 1, probs_ok = 1, sfn_ok = 1, ref_ok = 1, sfn_ref_ok = 1, sa_ref_ok = 1;
    for (q = 0; q < NQ; q++) {
        size_t k = COUNTS[q], s = STARTS[q];
        int seen[TOTAL];
        memset(seen, 0, sizeof seen);
        for (j = 0; j < k; j++) {
            uint32_t p = r->order[s + j];
            if (p >= k || seen[p]) {
                perm_ok = 0;
                break;
            }
            seen[p] = 1;
        }
        if (!perm_ok) {
            break;
        }
        for (j = 0; j + 1 < k; j++) {
            float a = r->log_s_rr[s + r->order[s + j]], b = r->log_s_rr[s + r->order[s + j + 1]];
            if (a < b || (a == b && r->order[s + j] > r->order[s + j + 1])) {
                sorted_ok = 0;
            }
        }
    }
    for (i = 0; i < TOTAL; i++) {
        const pair_ref *p = &g_refs[i];
        double sum = 0.0, ref_lsa = log_sigmoid(p->sim_a), ref = ref_lsb[i] + lambda * ref_lsa;
        if (!(r->s_a[i] > 0.0f && r->s_a[i] < 1.0f)) {
            sa_ok = 0;
        }
        for (j = 0; j < 4; j++) {
            sum += r->class_probs[4 * i + j];
            if (!(r->class_probs[4 * i + j] >= 0.0f && r->class_probs[4 * i + j] <= 1.0f)) {
                probs_ok = 0;
            }
            if (fabs(r->class_probs[4 * i + j] - p->probs[j]) > 1e-5) {
                sfn_ref_ok = 0;
            }
        }
        if (fabs(sum - 1.0) > 1e-5) {
            probs_ok = 0;
        }
        if (r->s_fn[i] != r->class_probs[4 * i + 1]) {
            sfn_ok = 0;
        }
        if (fabs(r->s_fn[i] - p->probs[1]) > 1e-5) {
            sfn_ref_ok = 0;
        }
        if (!close_to(log(r->s_a[i]), ref_lsa, 1e-4)) {
            sa_ref_ok = 0;
        }
        if (!close_to(r->log_s_rr[i], ref, 1e-4)) {
            ref_ok = 0;
            printf("    %s: candidate %lu: log_s_rr %.9g, reference %.9g\n", label, (unsigned long)i,
                   (double)r->log_s_rr[i], ref);
        }
    }
    reportf(perm_ok, file, line, "%s: order is a permutation of 0..k-1 per query", label);
    reportf(sorted_ok, file, line, "%s: order sorts log_s_rr descending (stable)", label);
    reportf(sa_ok, file, line, "%s: s_a in (0, 1)", label);
    reportf(probs_ok, file, line, "%s: class probabilities in [0, 1], summing to 1", label);
    reportf(sfn_ok, file, line, "%s: s_fn[i] == class_probs[4i+1]", label);
    reportf(sfn_ref_ok, file, line, "%s: class probabilities / s_fn within 1e-5 of the double reference", label);
    reportf(sa_ref_ok, file, line, "%s: log s_A within 1e-4 of the double reference", label);
    reportf(ref_ok, file, line, "%s: log_s_rr within 1e-4*max(1,|ref|) of the double reference", label);
}

/* ------------------------------------------------------------------------------------------ */
/* Status names, version, free(NULL)                                                           */
/* ------------------------------------------------------------------------------------------ */

static void test_status_names_and_version(void) {
    static const struct {
        int32_t status;
        const char *name;
    } known[] = {
        {RRRA_STATUS_OK, "RRRA_STATUS_OK"},
        {RRRA_STATUS_NULL_POINTER, "RRRA_STATUS_NULL_POINTER"},
        {RRRA_STATUS_INVALID_ARGUMENT, "RRRA_STATUS_INVALID_ARGUMENT"},
        {RRRA_STATUS_DIMENSION_MISMATCH, "RRRA_STATUS_DIMENSION_MISMATCH"},
        {RRRA_STATUS_NON_FINITE_INPUT, "RRRA_STATUS_NON_FINITE_INPUT"},
        {RRRA_STATUS_INVALID_MODEL, "RRRA_STATUS_INVALID_MODEL"},
        {RRRA_STATUS_IO, "RRRA_STATUS_IO"},
        {RRRA_STATUS_NUMERIC, "RRRA_STATUS_NUMERIC"},
        {RRRA_STATUS_UNSUPPORTED, "RRRA_STATUS_UNSUPPORTED"},
        {RRRA_STATUS_INTERNAL, "RRRA_STATUS_INTERNAL"},
    };
    static const int32_t unknown[] = {-1, 1, 999, 1000, 1009, 1098, 1100, INT32_MAX, INT32_MIN};
    size_t i;
    char expected_version[64];

    CHECK(RRRA_STATUS_OK == 0);
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *name = rrra_status_name(known[i].status);
        CHECKF(name != NULL && strcmp(name, known[i].name) == 0, "rrra_status_name(%d) is \"%s\", expected \"%s\"",
               (int)known[i].status, name ? name : "(NULL)", known[i].name);
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *name = rrra_status_name(unknown[i]);
        CHECKF(name != NULL && strcmp(name, "RRRA_STATUS_UNKNOWN") == 0,
               "rrra_status_name(%ld) is \"%s\", expected RRRA_STATUS_UNKNOWN", (long)unknown[i],
               name ? name : "(NULL)");
    }
    /* Static storage: the same pointer every time. */
    CHECK(rrra_status_name(RRRA_STATUS_IO) == rrra_status_name(RRRA_STATUS_IO));

    CHECK(rrra_version() != NULL);
    CHECKF(strcmp(rrra_version(), RRRA_VERSION_STRING) == 0, "rrra_version() \"%s\" != RRRA_VERSION_STRING \"%s\"",
           rrra_version(), RRRA_VERSION_STRING);
    snprintf(expected_version, sizeof expected_version, "%d.%d.%d", RRRA_VERSION_MAJOR, RRRA_VERSION_MINOR,
             RRRA_VERSION_PATCH);
    CHECK(strcmp(rrra_version(), expected_version) == 0);
    CHECK(rrra_version() == rrra_version());

    /* Header constants. */
    CHECK(RRRA_NOT_DRAWN == UINT32_MAX);
    CHECK(RRRA_OVERRIDE_LAMBDA_RR == 1 && RRRA_OVERRIDE_GAMMA_RS == 2 && RRRA_OVERRIDE_BASE_TRANSFORM == 4 &&
          RRRA_OVERRIDE_BASE_MU == 8 && RRRA_OVERRIDE_BASE_TAU == 16);
    CHECK(RRRA_ENGINE_AUTO == 0 && RRRA_ENGINE_REFERENCE == 1);
    CHECK(RRRA_BASE_TRANSFORM_IDENTITY == 0 && RRRA_BASE_TRANSFORM_SIGMOID == 1 && RRRA_BASE_TRANSFORM_SOFTMAX == 2);

    /* *_free(NULL) are no-ops and count as successful calls. */
    rrra_model_free(NULL);
    CHECK(rrra_last_error() != NULL && rrra_last_error()[0] == '\0');
    rrra_session_free(NULL);
    CHECK(rrra_last_error() != NULL && rrra_last_error()[0] == '\0');
    rrra_corpus_free(NULL);
    CHECK(rrra_last_error() != NULL && rrra_last_error()[0] == '\0');
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static char g_dir[512];
static unsigned g_file_counter = 0;

static void temp_path(char *out, size_t size, const char *tag) {
    snprintf(out, size, "%s/rrra_api_test_%ld_%u_%s.safetensors", g_dir, (long)getpid(), g_file_counter++, tag);
}

static char g_sentinel_object;
#define SENTINEL_PTR(T) ((T *)(void *)&g_sentinel_object)

static void expect_bad_bytes(const unsigned char *bytes, size_t len, const char *needle, const char *file, int line,
                             const char *what) {
    rrra_model *m = SENTINEL_PTR(rrra_model);
    expect_status(rrra_model_load_bytes(bytes, len, &m), RRRA_STATUS_INVALID_MODEL, needle, file, line, what);
    report(m == SENTINEL_PTR(rrra_model), file, line, "model_out untouched on failure");
}
#define EXPECT_BAD_BYTES(bytes, len, needle) expect_bad_bytes((bytes), (len), (needle), __FILE__, __LINE__, #bytes ", " #len)

/* Returns the model loaded from bytes (caller frees). */
static rrra_model *test_loading(void) {
    size_t len, bad_len, i, header_len;
    unsigned char *good = build_adapter(g_weights, NULL, MINIMAL_METADATA, &len);
    unsigned char *bad;
    rrra_model *m = SENTINEL_PTR(rrra_model), *from_file = NULL, *from_bytes = NULL, *rich = NULL;
    char path[1024], missing[1024], bad_path[1024];
    rrra_model_info info, before;
    float nan_weights[N_PARAMS];
    const char *misspelled[6];

    /* rrra_model_load_bytes: NULL pointers */
    EXPECT_ERR(rrra_model_load_bytes(NULL, len, &m), RRRA_STATUS_NULL_POINTER, "bytes");
    CHECK(m == SENTINEL_PTR(rrra_model));
    EXPECT_ERR(rrra_model_load_bytes(good, len, NULL), RRRA_STATUS_NULL_POINTER, "model_out");

    /* random bytes: first with a random 8-byte length, then with a plausible length */
    bad = (unsigned char *)xmalloc(256);
    for (i = 0; i < 256; i++) {
        bad[i] = (unsigned char)rnd_u32();
    }
    EXPECT_BAD_BYTES(bad, 256, NULL);
    put_u64_le(bad, 100);
    EXPECT_BAD_BYTES(bad, 256, "malformed");
    put_u64_le(bad, UINT64_MAX);
    EXPECT_BAD_BYTES(bad, 256, "header");
    free(bad);

    /* truncations of a valid file */
    header_len = len - 8 - 4 * (size_t)N_PARAMS;
    EXPECT_BAD_BYTES(good, 0, "truncated");
    EXPECT_BAD_BYTES((const unsigned char *)NULL, 0, "truncated");
    EXPECT_BAD_BYTES(good, 7, "truncated");
    EXPECT_BAD_BYTES(good, 8, "header");
    EXPECT_BAD_BYTES(good, 8 + header_len / 2, "header");
    EXPECT_BAD_BYTES(good, 8 + header_len, NULL);
    EXPECT_BAD_BYTES(good, len - 4, NULL);
    EXPECT_BAD_BYTES(good, len - 1, NULL);
    /* one trailing byte */
    bad = (unsigned char *)xmalloc(len + 1);
    memcpy(bad, good, len);
    bad[len] = 0;
    EXPECT_BAD_BYTES(bad, len + 1, NULL);
    free(bad);

    /* content that breaks SPEC §2: the message names the tensor or key */
    for (i = 0; i < 6; i++) {
        misspelled[i] = TENSOR_NAMES[i];
    }
    misspelled[5] = "classifier.bais";
    bad = build_adapter(g_weights, misspelled, MINIMAL_METADATA, &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "classifier.bias");
    free(bad);
    memcpy(nan_weights, g_weights, sizeof nan_weights);
    nan_weights[W_FC2W + 4] = (float)NAN;
    bad = build_adapter(nan_weights, NULL, MINIMAL_METADATA, &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "fc2.weight");
    free(bad);
    nan_weights[W_FC2W + 4] = (float)INFINITY;
    bad = build_adapter(nan_weights, NULL, MINIMAL_METADATA, &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "fc2.weight");
    free(bad);
    bad = build_adapter(g_weights, NULL, NULL, &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "__metadata__");
    free(bad);
    bad = build_adapter(g_weights, NULL, "\"format\":\"rrra-adapter\",\"format_version\":\"2\"", &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "format_version");
    free(bad);
    bad = build_adapter(g_weights, NULL, "\"format\":\"rrra-adapter\"", &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "format_version");
    free(bad);
    bad = build_adapter(g_weights, NULL,
                        "\"format\":\"rrra-adapter\",\"format_version\":\"1\",\"activation\":\"swish\"", &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "activation");
    free(bad);
    bad = build_adapter(g_weights, NULL, "\"format\":\"rrra-adapter\",\"format_version\":\"1\",\"base_tau\":\"0\"",
                        &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "base_tau");
    free(bad);
    bad = build_adapter(g_weights, NULL, "\"format\":\"rrra-adapter\",\"format_version\":\"1\",\"lamda_rr\":\"1\"",
                        &bad_len);
    EXPECT_BAD_BYTES(bad, bad_len, "lamda_rr");
    free(bad);

    /* the valid file from memory */
    EXPECT_OK(rrra_model_load_bytes(good, len, &from_bytes));
    CHECK(from_bytes != NULL && from_bytes != SENTINEL_PTR(rrra_model));

    /* rrra_model_load_file */
    temp_path(path, sizeof path, "good");
    CHECK(write_file(path, good, len));
    m = SENTINEL_PTR(rrra_model);
    EXPECT_ERR(rrra_model_load_file(NULL, &m), RRRA_STATUS_NULL_POINTER, "path");
    CHECK(m == SENTINEL_PTR(rrra_model));
    EXPECT_ERR(rrra_model_load_file(path, NULL), RRRA_STATUS_NULL_POINTER, "model_out");
    temp_path(missing, sizeof missing, "missing");
    EXPECT_ERR(rrra_model_load_file(missing, &m), RRRA_STATUS_IO, missing);
    CHECK(m == SENTINEL_PTR(rrra_model));
    EXPECT_ERR(rrra_model_load_file(g_dir, &m), RRRA_STATUS_IO, g_dir); /* a directory */
    CHECK(m == SENTINEL_PTR(rrra_model));
    EXPECT_ERR(rrra_model_load_file("\xff\xfe-not-utf8.safetensors", &m), RRRA_STATUS_INVALID_ARGUMENT, "UTF-8");
    CHECK(m == SENTINEL_PTR(rrra_model));
    temp_path(bad_path, sizeof bad_path, "truncated");
    CHECK(write_file(bad_path, good, len - 3));
    EXPECT_ERR(rrra_model_load_file(bad_path, &m), RRRA_STATUS_INVALID_MODEL, bad_path);
    CHECK(m == SENTINEL_PTR(rrra_model));
    CHECK(write_file(bad_path, good, 5));
    EXPECT_ERR(rrra_model_load_file(bad_path, &m), RRRA_STATUS_INVALID_MODEL, "truncated");
    CHECK(write_file(bad_path, good, 0));
    EXPECT_ERR(rrra_model_load_file(bad_path, &m), RRRA_STATUS_INVALID_MODEL, "truncated");
    CHECK(m == SENTINEL_PTR(rrra_model));
    remove(bad_path);
    EXPECT_OK(rrra_model_load_file(path, &from_file));
    CHECK(from_file != NULL && from_file != SENTINEL_PTR(rrra_model));
    remove(path);

    /* rrra_model_info_get */
    memset(&info, 0x5A, sizeof info);
    info.struct_size = sizeof info;
    memcpy(&before, &info, sizeof info);
    EXPECT_ERR(rrra_model_info_get(NULL, &info), RRRA_STATUS_NULL_POINTER, "model");
    CHECK(memcmp(&before, &info, sizeof info) == 0);
    EXPECT_ERR(rrra_model_info_get(from_bytes, NULL), RRRA_STATUS_NULL_POINTER, "info_out");
    info.struct_size = sizeof info - 8;
    memcpy(&before, &info, sizeof info);
    EXPECT_ERR(rrra_model_info_get(from_bytes, &info), RRRA_STATUS_INVALID_ARGUMENT, "struct_size");
    CHECK(memcmp(&before, &info, sizeof info) == 0);
    info.struct_size = 0;
    memcpy(&before, &info, sizeof info);
    EXPECT_ERR(rrra_model_info_get(from_bytes, &info), RRRA_STATUS_INVALID_ARGUMENT, "struct_size");
    CHECK(memcmp(&before, &info, sizeof info) == 0);

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT_OK(rrra_model_info_get(from_bytes, &info));
    CHECK(info.struct_size == sizeof info);
    CHECK(info.dim == DIM);
    CHECK(info.hidden == HID);
    CHECK(info.parameter_count == N_PARAMS);
    CHECK(info.activation == RRRA_ACTIVATION_RELU);
    CHECK(info.similarity == RRRA_SIMILARITY_DOT);
    CHECK(info.base_transform == RRRA_BASE_TRANSFORM_SIGMOID);
    CHECK(info.adapter_mu == 0.0 && info.adapter_tau == 1.0);
    CHECK(info.base_mu == 0.0 && info.base_tau == 1.0);
    CHECK(info.lambda_rr == 1.0 && info.gamma_rs == 1.0);
    CHECK(info.encoder != NULL && info.encoder[0] == '\0');
    memset(&before, 0, sizeof before);
    before.struct_size = sizeof before;
    EXPECT_OK(rrra_model_info_get(from_file, &before));
    CHECK(before.dim == info.dim && before.hidden == info.hidden && before.parameter_count == info.parameter_count &&
          before.activation == info.activation && before.lambda_rr == info.lambda_rr);

    /* every metadata key spelled out */
    bad = build_adapter(g_weights, NULL,
                        "\"format\":\"rrra-adapter\",\"format_version\":\"1\",\"activation\":\"gelu_tanh\","
                        "\"similarity\":\"cosine\",\"adapter_mu\":\"0.25\",\"adapter_tau\":\"2\","
                        "\"base_transform\":\"softmax\",\"base_mu\":\"-0.5\",\"base_tau\":\"0.125\","
                        "\"lambda_rr\":\"0.75\",\"gamma_rs\":\"3\",\"encoder\":\"api-test/encoder\","
                        "\"x-note\":\"free text\"",
                        &bad_len);
    EXPECT_OK(rrra_model_load_bytes(bad, bad_len, &rich));
    free(bad);
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT_OK(rrra_model_info_get(rich, &info));
    CHECK(info.activation == RRRA_ACTIVATION_GELU_TANH);
    CHECK(info.similarity == RRRA_SIMILARITY_COSINE);
    CHECK(info.base_transform == RRRA_BASE_TRANSFORM_SOFTMAX);
    CHECK(info.adapter_mu == 0.25 && info.adapter_tau == 2.0);
    CHECK(info.base_mu == -0.5 && info.base_tau == 0.125);
    CHECK(info.lambda_rr == 0.75 && info.gamma_rs == 3.0);
    CHECK(info.encoder != NULL && strcmp(info.encoder, "api-test/encoder") == 0);
    rrra_model_free(rich);
    CHECK(rrra_last_error()[0] == '\0');

    rrra_model_free(from_file);
    free(good);
    return from_bytes;
}

/* ------------------------------------------------------------------------------------------ */
/* Corpus and session handles                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_corpus_errors(void) {
    rrra_corpus *c = SENTINEL_PTR(rrra_corpus), *empty = NULL;
    EXPECT_ERR(rrra_corpus_new(NULL, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &c), RRRA_STATUS_NULL_POINTER,
               "data");
    EXPECT_ERR(rrra_corpus_new(g_corpus, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, NULL), RRRA_STATUS_NULL_POINTER,
               "corpus_out");
    EXPECT_ERR(rrra_corpus_new(g_corpus, CORPUS_LEN, CORPUS_ROWS, 0, CORPUS_STRIDE, &c), RRRA_STATUS_INVALID_ARGUMENT,
               "dim");
    EXPECT_ERR(rrra_corpus_new(g_corpus, CORPUS_LEN, CORPUS_ROWS, DIM, DIM - 1, &c), RRRA_STATUS_INVALID_ARGUMENT,
               "stride");
    EXPECT_ERR(rrra_corpus_new(g_corpus, CORPUS_LEN - CORPUS_STRIDE, CORPUS_ROWS, DIM, CORPUS_STRIDE, &c),
               RRRA_STATUS_INVALID_ARGUMENT, "corpus");
    EXPECT_ERR(rrra_corpus_new(g_corpus, CORPUS_LEN, SIZE_MAX, DIM, SIZE_MAX / 2, &c), RRRA_STATUS_INVALID_ARGUMENT,
               "corpus");
    EXPECT_ERR(rrra_corpus_new(g_corpus, SIZE_MAX / 2, CORPUS_ROWS, DIM, CORPUS_STRIDE, &c),
               RRRA_STATUS_INVALID_ARGUMENT, "data");
    CHECK(c == SENTINEL_PTR(rrra_corpus));
    /* the exact minimum length is enough: (rows - 1) * stride + dim */
    EXPECT_OK(rrra_corpus_new(g_corpus, (CORPUS_ROWS - 1) * CORPUS_STRIDE + DIM, CORPUS_ROWS, DIM, CORPUS_STRIDE, &c));
    CHECK(c != NULL && c != SENTINEL_PTR(rrra_corpus));
    rrra_corpus_free(c);
    /* an empty corpus */
    EXPECT_OK(rrra_corpus_new(NULL, 0, 0, DIM, DIM, &empty));
    rrra_corpus_free(empty);
}

static void test_session_handles(const rrra_model *model) {
    rrra_session *s = SENTINEL_PTR(rrra_session), *forced = NULL, *autos = NULL;
    rrra_session_options opt;
    uint32_t engine = 12345;
    const char *reason = NULL;

    EXPECT_ERR(rrra_session_new(NULL, NULL, &s), RRRA_STATUS_NULL_POINTER, "model");
    EXPECT_ERR(rrra_session_new(model, NULL, NULL), RRRA_STATUS_NULL_POINTER, "session_out");
    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt - 1;
    EXPECT_ERR(rrra_session_new(model, &opt, &s), RRRA_STATUS_INVALID_ARGUMENT, "struct_size");
    opt.struct_size = sizeof opt;
    opt.engine = 1000;
    EXPECT_ERR(rrra_session_new(model, &opt, &s), RRRA_STATUS_INVALID_ARGUMENT, "engine");
    opt.engine = UINT32_MAX;
    EXPECT_ERR(rrra_session_new(model, &opt, &s), RRRA_STATUS_INVALID_ARGUMENT, "engine");
    CHECK(s == SENTINEL_PTR(rrra_session));

    opt.engine = RRRA_ENGINE_REFERENCE;
    EXPECT_OK(rrra_session_new(model, &opt, &forced));
    opt.engine = RRRA_ENGINE_AUTO;
    EXPECT_OK(rrra_session_new(model, &opt, &autos));

    EXPECT_ERR(rrra_session_engine(NULL, &engine, &reason), RRRA_STATUS_NULL_POINTER, "session");
    CHECK(engine == 12345 && reason == NULL);
    EXPECT_OK(rrra_session_engine(forced, NULL, NULL));
    EXPECT_OK(rrra_session_engine(forced, &engine, NULL));
    CHECK(engine == RRRA_ENGINE_REFERENCE);
    EXPECT_OK(rrra_session_engine(forced, NULL, &reason));
    CHECK(reason != NULL && reason[0] != '\0');
    printf("engine %u (forced reference); reason: \"%s\"\n", (unsigned)engine, reason != NULL ? reason : "(NULL)");
    /* AUTO resolves to a concrete engine, one that can also be asked for by name */
    engine = 12345;
    reason = NULL;
    EXPECT_OK(rrra_session_engine(autos, &engine, &reason));
    CHECK(engine != RRRA_ENGINE_AUTO && engine != 12345);
    CHECK(reason != NULL && reason[0] != '\0');
    printf("engine %u (auto); reason: \"%s\"\n", (unsigned)engine, reason != NULL ? reason : "(NULL)");
    rrra_session_free(forced);
    forced = NULL;
    opt.engine = engine;
    EXPECT_OK(rrra_session_new(model, &opt, &forced));
    rrra_session_free(forced);
    rrra_session_free(autos);
}

/* ------------------------------------------------------------------------------------------ */
/* Rerank                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static rr_result g_rr_base; /* default options, dense batch */
static rs_result g_rs_base; /* default options, MASK, spq 2 */

static void test_rerank_success(rrra_session *s, const rrra_corpus *corpus) {
    rrra_batch batch;
    rrra_score_options opt;
    rr_result by_id, r;
    double lsb[TOTAL];
    size_t i;
    int q;

    /* defaults (options NULL): sigmoid base transform of sim(q, c), mu 0, tau 1, lambda 1 */
    dense_batch(&batch);
    rerank(s, &batch, NULL, &g_rr_base, __FILE__, __LINE__);
    ref_log_sb(g_refs, NULL, T_SIGMOID, 0.0, 1.0, lsb);
    check_rerank_result(&g_rr_base, lsb, 1.0, __FILE__, __LINE__, "dense, default options");

    /* the same batch by id through rrra_corpus_new: identical outputs */
    id_batch(&batch, corpus);
    rerank(s, &batch, NULL, &by_id, __FILE__, __LINE__);
    CHECK(rr_equal(&by_id, &g_rr_base));

    /* options with no override bits: the model's settings, bit for bit */
    score_options_init(&opt);
    opt.lambda_rr = -5.0; /* ignored without its bit */
    opt.base_transform = 99;
    opt.base_tau = -1.0;
    dense_batch(&batch);
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    CHECK(rr_equal(&r, &g_rr_base));

    /* lambda 0: log s_RR = log s_B, and the order is the base order */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    opt.lambda_rr = 0.0;
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    check_rerank_result(&r, lsb, 0.0, __FILE__, __LINE__, "lambda 0");
    {
        int order_ok = 1;
        for (q = 0; q < NQ; q++) {
            size_t k = COUNTS[q], st = STARTS[q], j, best;
            uint32_t base_order[TOTAL];
            int used[TOTAL];
            memset(used, 0, sizeof used);
            for (j = 0; j < k; j++) { /* stable argsort of sim(q, c), descending */
                best = k;
                for (i = 0; i < k; i++) {
                    if (!used[i] && (best == k || g_refs[st + i].sim_c > g_refs[st + best].sim_c)) {
                        best = i;
                    }
                }
                used[best] = 1;
                base_order[j] = (uint32_t)best;
            }
            for (j = 0; j < k; j++) {
                if (r.order[st + j] != base_order[j]) {
                    order_ok = 0;
                }
            }
        }
        CHECK(order_ok);
    }
    /* lambda 0 and the base order do not depend on the adapter: same across two batches */

    /* lambda 2.5 */
    opt.lambda_rr = 2.5;
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    check_rerank_result(&r, lsb, 2.5, __FILE__, __LINE__, "lambda 2.5");

    /* base_mu / base_tau overrides of the sigmoid transform */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_MU | RRRA_OVERRIDE_BASE_TAU;
    opt.base_mu = 0.3;
    opt.base_tau = 2.0;
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    ref_log_sb(g_refs, NULL, T_SIGMOID, 0.3, 2.0, lsb);
    check_rerank_result(&r, lsb, 1.0, __FILE__, __LINE__, "sigmoid, mu 0.3, tau 2");

    /* softmax base transform override, tau 0.5: per query, sum of s_B over the list is 1 */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_TRANSFORM | RRRA_OVERRIDE_BASE_TAU | RRRA_OVERRIDE_LAMBDA_RR;
    opt.base_transform = RRRA_BASE_TRANSFORM_SOFTMAX;
    opt.base_tau = 0.5;
    opt.lambda_rr = 0.0;
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    ref_log_sb(g_refs, NULL, T_SOFTMAX, 0.0, 0.5, lsb);
    check_rerank_result(&r, lsb, 0.0, __FILE__, __LINE__, "softmax, tau 0.5, lambda 0");
    for (q = 0; q < NQ; q++) {
        double sum = 0.0;
        for (i = 0; i < COUNTS[q]; i++) {
            sum += exp((double)r.log_s_rr[STARTS[q] + i]);
        }
        CHECKF(COUNTS[q] == 0 || fabs(sum - 1.0) < 1e-5, "softmax s_B of query %d sums to %.9g", q, sum);
    }

    /* caller base scores, sigmoid */
    dense_batch(&batch);
    batch.base_scores = g_base;
    batch.base_scores_len = TOTAL;
    rerank(s, &batch, NULL, &r, __FILE__, __LINE__);
    ref_log_sb(g_refs, g_base, T_SIGMOID, 0.0, 1.0, lsb);
    check_rerank_result(&r, lsb, 1.0, __FILE__, __LINE__, "base scores, sigmoid");

    /* caller base scores, identity transform override */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_TRANSFORM;
    opt.base_transform = RRRA_BASE_TRANSFORM_IDENTITY;
    rerank(s, &batch, &opt, &r, __FILE__, __LINE__);
    ref_log_sb(g_refs, g_base, T_IDENTITY, 0.0, 1.0, lsb);
    check_rerank_result(&r, lsb, 1.0, __FILE__, __LINE__, "base scores, identity");

    /* by id with base scores equals dense with base scores */
    id_batch(&batch, corpus);
    batch.base_scores = g_base;
    batch.base_scores_len = TOTAL;
    rerank(s, &batch, &opt, &by_id, __FILE__, __LINE__);
    CHECK(rr_equal(&by_id, &r));
}

static void test_rerank_partial_and_empty(rrra_session *s) {
    rrra_batch batch;
    rrra_rerank_outputs o;
    uint32_t *order2 = o_samples; /* any guarded u32 buffer of >= TOTAL words */
    size_t zero_counts[2] = {0, 0};

    /* A NULL output with a length is a forgotten pointer: an error, and nothing is written */
    dense_batch(&batch);
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_s_rr_len = 12345;
    o.order = order2;
    o.order_len = TOTAL;
    gbuf_fill(o_samples);
    snapshot_all();
    EXPECT_ERR(rrra_session_rerank(s, &batch, NULL, &o), RRRA_STATUS_NULL_POINTER,
               "outputs->log_s_rr is NULL but outputs->log_s_rr_len is 12345");
    CHECK(gbuf_unchanged(o_samples));

    /* NULL outputs with length 0 are skipped */
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.order = order2;
    o.order_len = TOTAL;
    gbuf_fill(o_samples);
    snapshot_all();
    EXPECT_OK(rrra_session_rerank(s, &batch, NULL, &o));
    CHECK(guards_intact());
    CHECK(gbuf_unchanged(o_log_s_rr) && gbuf_unchanged(o_s_a) && gbuf_unchanged(o_s_fn) &&
          gbuf_unchanged(o_class_probs) && gbuf_unchanged(o_order));
    CHECK(memcmp(order2, g_rr_base.order, sizeof g_rr_base.order) == 0);
    CHECK(order2[TOTAL] == 0xA5A5A5A5u); /* nothing past order_len */

    /* no output at all: a pure validation call */
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    snapshot_all();
    EXPECT_OK(rrra_session_rerank(s, &batch, NULL, &o));
    CHECK(all_unchanged());

    /* an empty batch: no queries, no pointers */
    memset(&batch, 0, sizeof batch);
    batch.struct_size = sizeof batch;
    batch.dim = DIM;
    EXPECT_OK(rrra_session_rerank(s, &batch, NULL, &o));
    /* queries with k = 0 only: no candidate buffer needed; zero-length outputs accepted */
    batch.n_queries = 2;
    batch.queries = g_queries;
    batch.queries_len = 2 * DIM;
    batch.candidate_counts = zero_counts;
    rr_outputs(&o);
    o.log_s_rr_len = o.s_a_len = o.s_fn_len = o.class_probs_len = o.order_len = 0;
    snapshot_all();
    EXPECT_OK(rrra_session_rerank(s, &batch, NULL, &o));
    CHECK(all_unchanged() && guards_intact());
    /* and with a (zero-length) dense candidate buffer */
    batch.candidates = g_cands;
    batch.candidates_len = 0;
    batch.candidate_stride = DIM;
    EXPECT_OK(rrra_session_rerank(s, &batch, NULL, &o));
    CHECK(all_unchanged() && guards_intact());
}

static void test_rerank_errors(rrra_session *s, const rrra_corpus *corpus) {
    rrra_batch batch, b;
    rrra_rerank_outputs o, oo;
    rrra_score_options opt;
    rrra_corpus *narrow = NULL, *nan_corpus = NULL;
    float *bad = (float *)xmalloc(CANDS_LEN * sizeof(float));
    float *badq = (float *)xmalloc(NQ * DIM * sizeof(float));
    float *badb = (float *)xmalloc(TOTAL * sizeof(float));
    float *badc = (float *)xmalloc(CORPUS_LEN * sizeof(float));
    float *big = (float *)xmalloc(CANDS_LEN * sizeof(float));
    float *bigq = (float *)xmalloc(NQ * DIM * sizeof(float));
    uint64_t ids[TOTAL];
    float *q_as_output = (float *)gbuf_new(NQ * DIM * sizeof(float));
    size_t i;
    int any_nonpositive = 0;

    dense_batch(&batch);
    rr_outputs(&o);
    gbuf_fill(o_log_s_rr);
    gbuf_fill(o_s_a);
    gbuf_fill(o_s_fn);
    gbuf_fill(o_class_probs);
    gbuf_fill(o_order);

    /* NULL pointer arguments */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(NULL, &batch, NULL, &o), RRRA_STATUS_NULL_POINTER, "session");
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, NULL, NULL, &o), RRRA_STATUS_NULL_POINTER, "batch");
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, NULL), RRRA_STATUS_NULL_POINTER, "outputs");
    b = batch;
    b.queries = NULL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NULL_POINTER, "queries");
    b = batch;
    b.candidate_counts = NULL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NULL_POINTER, "candidate_counts");
    b = batch;
    b.candidates = NULL; /* neither candidates nor corpus */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NULL_POINTER, "candidates");
    id_batch(&b, corpus);
    b.candidate_ids = NULL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NULL_POINTER, "candidate_ids");

    /* both candidates and corpus */
    b = batch;
    b.corpus = corpus;
    b.candidate_ids = IDS;
    b.candidate_ids_len = TOTAL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "candidates");

    /* struct sizes */
    b = batch;
    b.struct_size = sizeof b + 8;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "batch->struct_size");
    oo = o;
    oo.struct_size = sizeof oo - 8;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT,
                       "outputs->struct_size");
    score_options_init(&opt);
    opt.struct_size = 0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "options->struct_size");

    /* wrong lengths */
    b = batch;
    b.queries_len = NQ * DIM - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "queries");
    b = batch;
    b.candidates_len = CANDS_LEN - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "candidates");
    b = batch;
    b.candidate_stride = DIM - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "stride");
    b = batch;
    b.base_scores = g_base;
    b.base_scores_len = TOTAL - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "base_scores");
    id_batch(&b, corpus);
    b.candidate_ids_len = TOTAL - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "candidate_ids");
    oo = o;
    oo.log_s_rr_len = TOTAL - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "log_s_rr");
    oo = o;
    oo.s_a_len = TOTAL + 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "s_a");
    oo = o;
    oo.s_fn_len = 0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "s_fn");
    oo = o;
    oo.class_probs_len = TOTAL; /* needs 4 x total */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "class_probs");
    oo = o;
    oo.order_len = TOTAL - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "order");

    /* lengths no buffer can have, counts that overflow */
    {
        size_t huge_counts[2] = {SIZE_MAX, 1};
        b = batch;
        b.n_queries = 2;
        b.queries_len = 2 * DIM;
        b.candidate_counts = huge_counts;
        EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "candidate_counts");
    }
    b = batch;
    b.queries_len = SIZE_MAX / 2;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "queries");
    oo = o;
    oo.s_a_len = SIZE_MAX;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "s_a");

    /* misaligned pointers, to a buffer and to a struct */
    {
        float *shifted = (float *)xmalloc((NQ * DIM + 1) * sizeof(float));
        unsigned char *raw = (unsigned char *)xmalloc(sizeof(rrra_batch) + 16);
        memcpy((char *)shifted + 1, g_queries, NQ * DIM * sizeof(float));
        b = batch;
        b.queries = (const float *)(const void *)((const char *)shifted + 1);
        EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "aligned");
        memcpy(raw + 1, &batch, sizeof batch);
        EXPECT_ERR_NOWRITE(rrra_session_rerank(s, (const rrra_batch *)(const void *)(raw + 1), NULL, &o),
                           RRRA_STATUS_INVALID_ARGUMENT, "aligned");
        free(shifted);
        free(raw);
    }

    /* dimension mismatch */
    b = batch;
    b.dim = DIM - 1;
    b.queries_len = NQ * (DIM - 1);
    b.candidate_stride = DIM - 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_DIMENSION_MISMATCH, "dim");
    b = batch;
    b.dim = DIM + 1;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_DIMENSION_MISMATCH, "dim");
    EXPECT_OK(rrra_corpus_new(g_corpus, CORPUS_LEN, CORPUS_ROWS, DIM - 1, CORPUS_STRIDE, &narrow));
    id_batch(&b, narrow);
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_DIMENSION_MISMATCH, "corpus");
    rrra_corpus_free(narrow);

    /* NaN / Inf in queries, candidates, base scores: the message names the query and position */
    memcpy(badq, g_queries, NQ * DIM * sizeof(float));
    badq[2 * DIM + 3] = (float)NAN;
    b = batch;
    b.queries = badq;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 2");
    badq[2 * DIM + 3] = -(float)INFINITY;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 2");
    /* a non-finite query with k = 0 is still an error (SPEC §6) */
    memcpy(badq, g_queries, NQ * DIM * sizeof(float));
    badq[1 * DIM + 0] = (float)NAN;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 1");

    memcpy(bad, g_cands, CANDS_LEN * sizeof(float));
    bad[5 * STRIDE + 0] = (float)INFINITY; /* candidate 5 = query 3, position 1 */
    b = batch;
    b.candidates = bad;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 3, position 1");
    memcpy(bad, g_cands, CANDS_LEN * sizeof(float));
    bad[1 * STRIDE + 4] = (float)NAN; /* query 0, position 1, last column */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 0, position 1");

    memcpy(badb, g_base, TOTAL * sizeof(float));
    badb[6] = (float)NAN; /* query 3, position 2 */
    b = batch;
    b.base_scores = badb;
    b.base_scores_len = TOTAL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 3, position 2");
    badb[6] = g_base[6];
    badb[3] = -(float)INFINITY; /* query 2, position 0 */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 2, position 0");

    memcpy(badc, g_corpus, CORPUS_LEN * sizeof(float));
    badc[IDS[4] * CORPUS_STRIDE + 2] = (float)NAN; /* row used by query 3, position 0 */
    EXPECT_OK(rrra_corpus_new(badc, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &nan_corpus));
    id_batch(&b, nan_corpus);
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 3, position 0");
    rrra_corpus_free(nan_corpus);

    /* candidate ids out of range */
    memcpy(ids, IDS, sizeof ids);
    ids[4] = CORPUS_ROWS; /* query 3, position 0 */
    id_batch(&b, corpus);
    b.candidate_ids = ids;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "query 3, position 0");
    ids[4] = IDS[4];
    ids[2] = UINT64_MAX; /* query 0, position 2 */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT, "query 0, position 2");

    /* score options */
    score_options_init(&opt);
    opt.override_flags = 32;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "override_flags");
    opt.override_flags = RRRA_OVERRIDE_LAMBDA_RR | 0x80000000u;
    opt.lambda_rr = 1.0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "override_flags");
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    opt.lambda_rr = -0.5;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "lambda_rr");
    opt.lambda_rr = NAN;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "lambda_rr");
    opt.lambda_rr = INFINITY;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "lambda_rr");
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_GAMMA_RS;
    opt.gamma_rs = -1.0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "gamma_rs");
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_TAU;
    opt.base_tau = 0.0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "base_tau");
    opt.base_tau = -2.0;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "base_tau");
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_MU;
    opt.base_mu = NAN;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "base_mu");
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_BASE_TRANSFORM;
    opt.base_transform = 3;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "base_transform");

    /* identity base transform with a non-positive base score */
    opt.base_transform = RRRA_BASE_TRANSFORM_IDENTITY;
    memcpy(badb, g_base, TOTAL * sizeof(float));
    badb[5] = 0.0f; /* query 3, position 1 */
    b = batch;
    b.base_scores = badb;
    b.base_scores_len = TOTAL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "query 3, position 1");
    badb[5] = g_base[5];
    badb[0] = -0.25f; /* query 0, position 0 */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "query 0, position 0");
    /* ... and without base scores, where some sim(q, c) <= 0 */
    for (i = 0; i < TOTAL; i++) {
        if (g_refs[i].sim_c <= 0.0) {
            any_nonpositive = 1;
        }
    }
    CHECK(any_nonpositive);
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_INVALID_ARGUMENT, "sim(q, c)");

    /* overlapping buffers */
    oo = o;
    oo.s_a = oo.log_s_rr; /* two outputs, same memory */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    oo = o;
    oo.s_fn = o_class_probs + 4; /* partial overlap */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    oo = o;
    oo.order = (uint32_t *)(void *)(o_log_s_rr + 3); /* different types, overlapping bytes */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    /* an output overlapping an input */
    memcpy(q_as_output, g_queries, NQ * DIM * sizeof(float));
    b = batch;
    b.queries = q_as_output;
    oo = o;
    oo.log_s_rr = q_as_output + 6;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    oo = o;
    oo.s_fn = (float *)(void *)(g_base); /* overlapping base scores; would be written if accepted */
    b = batch;
    b.base_scores = g_base;
    b.base_scores_len = TOTAL;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");

    /* finite input of absurd magnitude: the forward pass overflows (NUMERIC) */
    for (i = 0; i < CANDS_LEN; i++) {
        big[i] = isnan(g_cands[i]) ? g_cands[i] : 1e20f;
    }
    for (i = 0; i < NQ * DIM; i++) {
        bigq[i] = 1e20f;
    }
    b = batch;
    b.queries = bigq;
    b.candidates = big;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &b, NULL, &o), RRRA_STATUS_NUMERIC, "query");

    /* after all these failures the session still works, bit for bit */
    {
        rr_result r;
        rerank(s, &batch, NULL, &r, __FILE__, __LINE__);
        CHECK(rr_equal(&r, &g_rr_base));
    }

    free(bad);
    free(badq);
    free(badb);
    free(badc);
    free(big);
    free(bigq);
}

/* ------------------------------------------------------------------------------------------ */
/* Resample and the stand-alone sampler                                                         */
/* ------------------------------------------------------------------------------------------ */

static void check_draws(const rs_result *r, size_t spq, const uint8_t *mask, uint64_t seed, uint64_t first,
                        const char *file, int line, const char *label) {
    int q;
    size_t j, t;
    int ok_counts = 1, ok_slots = 1, ok_mask = 1, ok_distinct = 1, ok_ref = 1;
    for (q = 0; q < NQ; q++) {
        size_t k = COUNTS[q], st = STARTS[q], eligible = 0, want, count = r->counts[q];
        uint32_t ref[MAX_SPQ];
        const uint32_t *drawn = r->samples + q * spq;
        for (j = 0; j < k; j++) {
            if (mask == NULL || mask[st + j] == 0) {
                eligible++;
            }
        }
        want = eligible < spq ? eligible : spq;
        if (count != want) {
            ok_counts = 0;
            printf("    %s: query %d drew %lu, expected %lu\n", label, q, (unsigned long)count, (unsigned long)want);
        }
        for (j = 0; j < spq; j++) {
            if (j < count) {
                if (drawn[j] >= k) {
                    ok_slots = 0;
                    continue;
                }
                if (mask != NULL && mask[st + drawn[j]] != 0) {
                    ok_mask = 0;
                }
                for (t = 0; t < j; t++) {
                    if (drawn[t] == drawn[j]) {
                        ok_distinct = 0;
                    }
                }
            } else if (drawn[j] != RRRA_NOT_DRAWN) {
                ok_slots = 0;
            }
        }
        if (ref_sample(r->log_s_rs + st, k, mask != NULL ? mask + st : NULL, seed, first + (uint64_t)q, ref, spq) !=
                count ||
            memcmp(ref, drawn, spq * sizeof(uint32_t)) != 0) {
            ok_ref = 0;
        }
    }
    reportf(ok_counts, file, line, "%s: sample counts = min(eligible, samples_per_query)", label);
    reportf(ok_slots, file, line, "%s: drawn positions < k, RRRA_NOT_DRAWN past the count", label);
    reportf(ok_mask, file, line, "%s: masked positives never drawn", label);
    reportf(ok_distinct, file, line, "%s: draws without replacement", label);
    reportf(ok_ref, file, line, "%s: draws equal an independent C implementation of SPEC section 5", label);
}

/* rrra_sample_negatives on the session's log_s_rs reproduces the session's draws exactly. */
static void check_reproduced(const rs_result *r, size_t spq, const uint8_t *mask, uint64_t seed, uint64_t first,
                             const char *file, int line) {
    int q;
    for (q = 0; q < NQ; q++) {
        size_t st = STARTS[q];
        int32_t status;
        gbuf_fill(o_sn_samples);
        gbuf_fill(o_sn_count);
        status = rrra_sample_negatives(r->log_s_rs + st, COUNTS[q], mask != NULL ? mask + st : NULL,
                                       mask != NULL ? COUNTS[q] : 0, seed, first + (uint64_t)q, o_sn_samples, spq,
                                       o_sn_count);
        expect_status(status, RRRA_STATUS_OK, NULL, file, line, "rrra_sample_negatives on the session's log_s_rs");
        report(guards_intact(), file, line, "guard words intact after rrra_sample_negatives");
        reportf(*o_sn_count == r->counts[q] && memcmp(o_sn_samples, r->samples + q * spq, spq * sizeof(uint32_t)) == 0,
                file, line, "rrra_sample_negatives reproduces the session's draws of query %d", q);
        reportf(o_sn_samples[spq] == 0xA5A5A5A5u, file, line, "nothing written past samples_len (query %d)", q);
    }
}

static void test_resample(rrra_session *s, const rrra_corpus *corpus) {
    rrra_batch batch;
    rrra_resample_request req;
    rrra_score_options opt;
    rs_result r, r2;
    rr_result rr;
    double lsb[TOTAL];
    size_t i;
    int ok;

    dense_batch(&batch);

    /* default options, mask, 2 per query */
    rs_request(&req, 2, MASK);
    resample(s, &batch, NULL, &req, &g_rs_base, __FILE__, __LINE__);
    check_draws(&g_rs_base, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__, "spq 2, mask");
    check_reproduced(&g_rs_base, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__);
    /* log s_RS = log s_B + gamma log(1 - s_FN), gamma 1 */
    ref_log_sb(g_refs, NULL, T_SIGMOID, 0.0, 1.0, lsb);
    ok = 1;
    for (i = 0; i < TOTAL; i++) {
        if (!close_to(g_rs_base.log_s_rs[i], lsb[i] + g_refs[i].log_not_fn, 1e-4)) {
            ok = 0;
        }
    }
    CHECK(ok);
    CHECK(memcmp(g_rs_base.s_fn, g_rr_base.s_fn, sizeof g_rs_base.s_fn) == 0);
    /* expected counts for this mask: q0 2 of 2 eligible, q1 none, q2 1, q3 2 of 3 */
    CHECK(g_rs_base.counts[0] == 2 && g_rs_base.counts[1] == 0 && g_rs_base.counts[2] == 1 && g_rs_base.counts[3] == 2);
    CHECK(g_rs_base.samples[2] == RRRA_NOT_DRAWN && g_rs_base.samples[3] == RRRA_NOT_DRAWN &&
          g_rs_base.samples[5] == RRRA_NOT_DRAWN);

    /* by id: identical */
    id_batch(&batch, corpus);
    resample(s, &batch, NULL, &req, &r, __FILE__, __LINE__);
    CHECK(rs_equal(&r, &g_rs_base));
    dense_batch(&batch);

    /* more slots than eligible candidates */
    rs_request(&req, MAX_SPQ, MASK);
    resample(s, &batch, NULL, &req, &r, __FILE__, __LINE__);
    check_draws(&r, MAX_SPQ, MASK, req.seed, req.first_query_index, __FILE__, __LINE__, "spq 4, mask");
    check_reproduced(&r, MAX_SPQ, MASK, req.seed, req.first_query_index, __FILE__, __LINE__);
    CHECK(r.counts[0] == 2 && r.counts[1] == 0 && r.counts[2] == 1 && r.counts[3] == 3);

    /* no mask; another seed and first query index */
    rs_request(&req, 3, NULL);
    req.seed = 7;
    req.first_query_index = 0;
    resample(s, &batch, NULL, &req, &r, __FILE__, __LINE__);
    check_draws(&r, 3, NULL, req.seed, req.first_query_index, __FILE__, __LINE__, "spq 3, no mask");
    check_reproduced(&r, 3, NULL, req.seed, req.first_query_index, __FILE__, __LINE__);
    /* deterministic: the same call again gives the same draws */
    resample(s, &batch, NULL, &req, &r2, __FILE__, __LINE__);
    CHECK(rs_equal(&r, &r2));

    /* splitting the batch: query 3 alone with first_query_index + 3 draws what it drew in the batch */
    {
        rrra_batch one;
        rrra_resample_request req1;
        rrra_resample_outputs o;
        size_t count3[1] = {4};
        dense_batch(&one);
        one.n_queries = 1;
        one.queries = g_queries + 3 * DIM;
        one.queries_len = DIM;
        one.candidate_counts = count3;
        one.candidates = g_cands + 4 * STRIDE;
        one.candidates_len = 3 * STRIDE + DIM;
        req1 = req;
        req1.first_query_index = req.first_query_index + 3;
        gbuf_fill(o_samples);
        gbuf_fill(o_counts);
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.samples = o_samples;
        o.samples_len = 3;
        o.sample_counts = o_counts;
        o.sample_counts_len = 1;
        EXPECT_OK(rrra_session_resample(s, &one, NULL, &req1, &o));
        CHECK(o_counts[0] == r.counts[3] && memcmp(o_samples, r.samples + 3 * 3, 3 * sizeof(uint32_t)) == 0);
        CHECK(guards_intact());
    }

    /* gamma 0: log s_RS = log s_B exactly, i.e. rerank's log s_RR with lambda 0 */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_GAMMA_RS;
    opt.gamma_rs = 0.0;
    rs_request(&req, 2, MASK);
    resample(s, &batch, &opt, &req, &r, __FILE__, __LINE__);
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    opt.lambda_rr = 0.0;
    rerank(s, &batch, &opt, &rr, __FILE__, __LINE__);
    CHECK(memcmp(r.log_s_rs, rr.log_s_rr, sizeof r.log_s_rs) == 0);
    check_draws(&r, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__, "gamma 0");

    /* gamma 2.5 with caller base scores and the identity transform */
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_GAMMA_RS | RRRA_OVERRIDE_BASE_TRANSFORM;
    opt.gamma_rs = 2.5;
    opt.base_transform = RRRA_BASE_TRANSFORM_IDENTITY;
    batch.base_scores = g_base;
    batch.base_scores_len = TOTAL;
    resample(s, &batch, &opt, &req, &r, __FILE__, __LINE__);
    ref_log_sb(g_refs, g_base, T_IDENTITY, 0.0, 1.0, lsb);
    ok = 1;
    for (i = 0; i < TOTAL; i++) {
        if (!close_to(r.log_s_rs[i], lsb[i] + 2.5 * g_refs[i].log_not_fn, 1e-4)) {
            ok = 0;
        }
    }
    CHECK(ok);
    check_draws(&r, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__, "gamma 2.5, identity");
    check_reproduced(&r, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__);

    /* samples_per_query 0 */
    rs_request(&req, 0, NULL);
    batch.base_scores = NULL;
    batch.base_scores_len = 0;
    resample(s, &batch, NULL, &req, &r, __FILE__, __LINE__);
    CHECK(r.counts[0] == 0 && r.counts[1] == 0 && r.counts[2] == 0 && r.counts[3] == 0);
    CHECK(memcmp(r.log_s_rs, g_rs_base.log_s_rs, sizeof r.log_s_rs) == 0);
}

static void test_resample_errors(rrra_session *s) {
    rrra_batch batch, b;
    rrra_resample_request req, rq;
    rrra_resample_outputs o, oo;
    rrra_score_options opt;
    float *badq = (float *)xmalloc(NQ * DIM * sizeof(float));

    dense_batch(&batch);
    rs_request(&req, 2, MASK);
    rs_outputs(&o, 2);

    EXPECT_ERR_NOWRITE(rrra_session_resample(NULL, &batch, NULL, &req, &o), RRRA_STATUS_NULL_POINTER, "session");
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, NULL, NULL, &req, &o), RRRA_STATUS_NULL_POINTER, "batch");
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, NULL, &o), RRRA_STATUS_NULL_POINTER, "request");
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, NULL), RRRA_STATUS_NULL_POINTER, "outputs");
    b = batch;
    b.queries = NULL;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &b, NULL, &req, &o), RRRA_STATUS_NULL_POINTER, "queries");

    rq = req;
    rq.struct_size = 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &rq, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "request->struct_size");
    oo = o;
    oo.struct_size = sizeof oo * 2;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT,
                       "outputs->struct_size");
    b = batch;
    b.struct_size = 0;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &b, NULL, &req, &o), RRRA_STATUS_INVALID_ARGUMENT, "struct_size");

    rq = req;
    rq.positive_mask_len = TOTAL - 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &rq, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "positive_mask");
    oo = o;
    oo.samples_len = NQ * 2 + 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT, "samples");
    oo = o;
    oo.sample_counts_len = NQ - 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT,
                       "sample_counts");
    oo = o;
    oo.log_s_rs_len = TOTAL + 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT, "log_s_rs");
    oo = o;
    oo.s_fn_len = 1;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT, "s_fn");

    b = batch;
    b.dim = DIM + 2;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &b, NULL, &req, &o), RRRA_STATUS_DIMENSION_MISMATCH, "dim");

    memcpy(badq, g_queries, NQ * DIM * sizeof(float));
    badq[3 * DIM + 4] = (float)INFINITY;
    b = batch;
    b.queries = badq;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &b, NULL, &req, &o), RRRA_STATUS_NON_FINITE_INPUT, "query 3");

    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_GAMMA_RS;
    opt.gamma_rs = -0.5;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, &opt, &req, &o), RRRA_STATUS_INVALID_ARGUMENT, "gamma_rs");
    opt.override_flags = 64;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, &opt, &req, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "override_flags");

    oo = o;
    oo.sample_counts = o_samples + 2; /* overlaps samples */
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    oo = o;
    oo.s_fn = oo.log_s_rs;
    EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &req, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    /* an output overlapping the mask (an input) */
    {
        uint32_t *mask_mem = (uint32_t *)gbuf_new(TOTAL * sizeof(uint32_t));
        memcpy(mask_mem, MASK, TOTAL);
        rq = req;
        rq.positive_mask = (const uint8_t *)mask_mem;
        oo = o;
        oo.sample_counts = mask_mem;
        EXPECT_ERR_NOWRITE(rrra_session_resample(s, &batch, NULL, &rq, &oo), RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    }
    free(badq);
}

static void test_sample_negatives_errors(void) {
    float scores[6] = {0.0f, -1.0f, -0.5f, -3.0f, -0.25f, -2.0f};
    uint8_t mask[6] = {0, 1, 0, 0, 0, 0};
    float *score_mem = (float *)gbuf_new(8 * sizeof(float));
    size_t count = 777;
    uint32_t *samples = o_sn_samples;

    memcpy(score_mem, scores, sizeof scores);
    gbuf_fill(o_sn_samples);
    gbuf_fill(o_sn_count);

    EXPECT_ERR_NOWRITE(rrra_sample_negatives(NULL, 6, NULL, 0, 1, 0, samples, 3, o_sn_count),
                       RRRA_STATUS_NULL_POINTER, "log_s_rs");
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, NULL, 0, 1, 0, NULL, 3, o_sn_count), RRRA_STATUS_NULL_POINTER,
                       "samples");
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, NULL, 0, 1, 0, samples, 3, NULL), RRRA_STATUS_NULL_POINTER,
                       "count_out");
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, mask, 5, 1, 0, samples, 3, o_sn_count),
                       RRRA_STATUS_INVALID_ARGUMENT, "positive_mask");
    scores[2] = (float)NAN;
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, mask, 6, 1, 0, samples, 3, o_sn_count),
                       RRRA_STATUS_NON_FINITE_INPUT, "position 2");
    scores[2] = -(float)INFINITY;
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, mask, 6, 1, 0, samples, 3, o_sn_count),
                       RRRA_STATUS_NON_FINITE_INPUT, "position 2");
    scores[2] = -0.5f;
    /* overlapping: samples over the scores, count_out over samples */
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(score_mem, 6, NULL, 0, 1, 0, (uint32_t *)(void *)(score_mem + 2), 3,
                                             o_sn_count),
                       RRRA_STATUS_INVALID_ARGUMENT, "overlaps");
    EXPECT_ERR_NOWRITE(rrra_sample_negatives(scores, 6, NULL, 0, 1, 0, samples, 4, (size_t *)(void *)(samples + 2)),
                       RRRA_STATUS_INVALID_ARGUMENT, "overlaps");

    /* success paths */
    EXPECT_OK(rrra_sample_negatives(scores, 6, mask, 6, 99, 5, samples, 3, &count));
    CHECK(count == 3);
    {
        uint32_t ref[3];
        CHECK(ref_sample(scores, 6, mask, 99, 5, ref, 3) == 3 && memcmp(ref, samples, sizeof ref) == 0);
        CHECK(samples[0] != 1 && samples[1] != 1 && samples[2] != 1);
    }
    /* more slots than eligible candidates */
    EXPECT_OK(rrra_sample_negatives(scores, 6, mask, 6, 99, 5, samples, 7, &count));
    CHECK(count == 5 && samples[5] == RRRA_NOT_DRAWN && samples[6] == RRRA_NOT_DRAWN);
    CHECK(guards_intact());
    /* k = 0 with NULL scores */
    count = 777;
    EXPECT_OK(rrra_sample_negatives(NULL, 0, NULL, 0, 1, 0, samples, 2, &count));
    CHECK(count == 0 && samples[0] == RRRA_NOT_DRAWN && samples[1] == RRRA_NOT_DRAWN);
    /* every candidate masked */
    memset(mask, 1, sizeof mask);
    EXPECT_OK(rrra_sample_negatives(scores, 6, mask, 6, 1, 0, samples, 2, &count));
    CHECK(count == 0 && samples[0] == RRRA_NOT_DRAWN && samples[1] == RRRA_NOT_DRAWN);
    /* a pure function: same arguments, same draws */
    {
        uint32_t a[4], b2[4];
        size_t ca = 0, cb = 0;
        EXPECT_OK(rrra_sample_negatives(scores, 6, NULL, 0, 12345, 77, a, 4, &ca));
        EXPECT_OK(rrra_sample_negatives(scores, 6, NULL, 0, 12345, 77, b2, 4, &cb));
        CHECK(ca == 4 && cb == 4 && memcmp(a, b2, sizeof a) == 0);
    }
    CHECK(guards_intact());
}

/* ------------------------------------------------------------------------------------------ */
/* Every engine this build has                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Runs one session (engine and CPU kernel as `opt` asks): it must report what was asked for,
 * meet the SPEC §6 f32 tolerance against the double reference, give identical results for dense
 * and by-id candidates, and draw what the stand-alone sampler draws from its own log s_RS. */
static void check_engine(rrra_session *s, uint32_t engine, uint32_t kernel, const rrra_corpus *corpus) {
    rrra_batch batch;
    rrra_resample_request req;
    rr_result dense, by_id;
    rs_result rs, rs_id;
    double lsb[TOTAL];
    uint32_t reported = 12345, reported_kernel = 12345;
    const char *reason = NULL;
    char label[64];

    EXPECT_OK(rrra_session_engine(s, &reported, &reason));
    CHECK(reported == engine);
    CHECK(reason != NULL && reason[0] != '\0');
    EXPECT_OK(rrra_session_cpu_kernel(s, &reported_kernel));
    if (kernel != RRRA_CPU_KERNEL_AUTO) {
        CHECK(reported_kernel == kernel);
    }
    snprintf(label, sizeof label, "engine %u, cpu kernel %u", (unsigned)engine, (unsigned)reported_kernel);
    printf("%s: %s\n", label, reason != NULL ? reason : "(NULL)");

    dense_batch(&batch);
    rerank(s, &batch, NULL, &dense, __FILE__, __LINE__);
    ref_log_sb(g_refs, NULL, T_SIGMOID, 0.0, 1.0, lsb);
    check_rerank_result(&dense, lsb, 1.0, __FILE__, __LINE__, label);
    id_batch(&batch, corpus);
    rerank(s, &batch, NULL, &by_id, __FILE__, __LINE__);
    CHECKF(rr_equal(&dense, &by_id), "%s: dense and by-id candidates give identical outputs", label);

    dense_batch(&batch);
    rs_request(&req, 2, MASK);
    resample(s, &batch, NULL, &req, &rs, __FILE__, __LINE__);
    check_draws(&rs, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__, label);
    check_reproduced(&rs, 2, MASK, req.seed, req.first_query_index, __FILE__, __LINE__);
    CHECKF(memcmp(rs.s_fn, dense.s_fn, sizeof rs.s_fn) == 0, "%s: resample s_fn == rerank s_fn", label);
    id_batch(&batch, corpus);
    resample(s, &batch, NULL, &req, &rs_id, __FILE__, __LINE__);
    CHECKF(rs_equal(&rs, &rs_id), "%s: dense and by-id resample identical", label);
}

/* Forces each engine value from RRRA_ENGINE_REFERENCE, and for each engine each CPU kernel value
 * from RRRA_CPU_KERNEL_AUTO, until rrra_session_new reports an unknown value, so engines and
 * kernels added later are covered without editing this file. */
static void test_engines(const rrra_model *model, const rrra_corpus *corpus) {
    uint32_t e, k;
    int engines = 0, folded_kernels = 0;
    for (e = RRRA_ENGINE_REFERENCE; e < 64; e++) {
        int32_t st = RRRA_STATUS_OK;
        for (k = RRRA_CPU_KERNEL_AUTO; k < 64; k++) {
            rrra_session_options opt;
            rrra_session *s = NULL;
            memset(&opt, 0, sizeof opt);
            opt.struct_size = sizeof opt;
            opt.engine = e;
            opt.cpu_kernel = k;
            st = rrra_session_new(model, &opt, &s);
            if (st == RRRA_STATUS_INVALID_ARGUMENT) {
                /* an unknown engine, an unknown kernel, or a kernel this engine does not have */
                CHECK(strstr(rrra_last_error(), k == RRRA_CPU_KERNEL_AUTO ? "engine" : "kernel") != NULL);
                break;
            }
            if (st == RRRA_STATUS_UNSUPPORTED) {
                CHECK(rrra_last_error()[0] != '\0');
                printf("engine %u, cpu kernel %u: unsupported here (%s)\n", (unsigned)e, (unsigned)k, rrra_last_error());
                continue;
            }
            EXPECT_OK(st);
            if (st != RRRA_STATUS_OK) {
                continue;
            }
            engines += k == RRRA_CPU_KERNEL_AUTO;
            folded_kernels += e == RRRA_ENGINE_FOLDED && k != RRRA_CPU_KERNEL_AUTO;
            check_engine(s, e, k, corpus);
            rrra_session_free(s);
        }
        if (st == RRRA_STATUS_INVALID_ARGUMENT && k == RRRA_CPU_KERNEL_AUTO) {
            break;
        }
    }
    CHECK(engines >= 2);
    CHECK(folded_kernels >= 1); /* the portable kernel runs everywhere */
}

/* f16 precision where the CPU has it: the same outputs as f32 within SPEC §6's reduced-precision
 * tolerance; UNSUPPORTED (with a message) elsewhere; refused on the reference engine. */
static void test_f16_precision(const rrra_model *model) {
    rrra_session_options opt;
    rrra_session *f16 = NULL, *f32 = NULL, *s = SENTINEL_PTR(rrra_session);
    rrra_batch batch;
    rr_result a, b;
    uint32_t precision = 12345;
    size_t i;
    int32_t st;

    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.precision = 7;
    EXPECT_ERR(rrra_session_new(model, &opt, &s), RRRA_STATUS_INVALID_ARGUMENT, "precision");
    opt.precision = RRRA_PRECISION_F16;
    opt.engine = RRRA_ENGINE_REFERENCE;
    EXPECT_ERR(rrra_session_new(model, &opt, &s), RRRA_STATUS_INVALID_ARGUMENT, "f16");
    CHECK(s == SENTINEL_PTR(rrra_session));
    opt.engine = RRRA_ENGINE_AUTO;
    st = rrra_session_new(model, &opt, &f16);
    if (st == RRRA_STATUS_UNSUPPORTED) {
        CHECK(strstr(rrra_last_error(), "f16") != NULL);
        printf("f16 precision: unsupported here (%s)\n", rrra_last_error());
        return;
    }
    EXPECT_OK(st);
    EXPECT_OK(rrra_session_precision(f16, &precision));
    CHECK(precision == RRRA_PRECISION_F16);
    EXPECT_ERR(rrra_session_precision(f16, NULL), RRRA_STATUS_NULL_POINTER, "precision_out");
    EXPECT_OK(rrra_session_new(model, NULL, &f32));
    EXPECT_OK(rrra_session_precision(f32, &precision));
    CHECK(precision == RRRA_PRECISION_F32);
    dense_batch(&batch);
    rerank(f16, &batch, NULL, &a, __FILE__, __LINE__);
    rerank(f32, &batch, NULL, &b, __FILE__, __LINE__);
    for (i = 0; i < TOTAL; i++) {
        double tol = 2e-2 * (fabs(b.log_s_rr[i]) > 1.0 ? fabs(b.log_s_rr[i]) : 1.0);
        CHECKF(fabs(a.log_s_rr[i] - b.log_s_rr[i]) <= tol, "f16 log_s_rr[%zu] %g vs f32 %g", i, a.log_s_rr[i],
               b.log_s_rr[i]);
        CHECKF(fabs(a.s_fn[i] - b.s_fn[i]) <= 2e-3, "f16 s_fn[%zu] %g vs f32 %g", i, a.s_fn[i], b.s_fn[i]);
    }
    rrra_session_free(f16);
    rrra_session_free(f32);
}

/* ------------------------------------------------------------------------------------------ */
/* Embeddings stored as f16 or bf16                                                             */
/* ------------------------------------------------------------------------------------------ */

/* IEEE half bits of f, rounded to nearest even (NaN stays NaN), written here independently of
 * the library. */
static uint16_t to_f16_bits(float f) {
    uint32_t x, abs_x, sign, mant, rem, h;
    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    abs_x = x & 0x7fffffffu;
    if (abs_x > 0x7f800000u) {
        return (uint16_t)(sign | 0x7e00u);
    }
    if (abs_x >= 0x477ff000u) { /* rounds to infinity (65520 and up) */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (abs_x < 0x38800000u) { /* below 2^-14: a subnormal half, in units of 2^-24 */
        return (uint16_t)(sign | (uint32_t)nearbyintf(fabsf(f) * 16777216.0f));
    }
    mant = abs_x & 0x7fffffu;
    h = ((((abs_x >> 23) - 127 + 15) << 10) | (mant >> 13));
    rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) {
        h++;
    }
    return (uint16_t)(sign | h);
}

static float from_f16_bits(uint16_t h) {
    uint32_t exponent = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    float f = exponent == 0    ? ldexpf((float)mant, -24)
              : exponent == 31 ? (mant ? (float)NAN : (float)INFINITY)
                               : ldexpf((float)(mant | 0x400u), (int)exponent - 25);
    return (h & 0x8000u) ? -f : f;
}

/* bfloat16 bits of f, rounded to nearest even (NaN stays NaN). */
static uint16_t to_bf16_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u);
    }
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static float from_bf16_bits(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* `n` values as `dtype` bits into `bits`, and the values those bits stand for into `wide`. */
static void narrow(uint32_t dtype, const float *values, size_t n, uint16_t *bits, float *wide) {
    size_t i;
    for (i = 0; i < n; i++) {
        bits[i] = dtype == RRRA_DTYPE_F16 ? to_f16_bits(values[i]) : to_bf16_bits(values[i]);
        wide[i] = dtype == RRRA_DTYPE_F16 ? from_f16_bits(bits[i]) : from_bf16_bits(bits[i]);
    }
}

static void test_narrow_embeddings(rrra_session *s) {
    static const uint32_t DTYPES[2] = {RRRA_DTYPE_F16, RRRA_DTYPE_BF16};
    uint16_t *q_bits = (uint16_t *)xmalloc(NQ * DIM * sizeof(uint16_t));
    uint16_t *c_bits = (uint16_t *)xmalloc(CANDS_LEN * sizeof(uint16_t));
    uint16_t *corpus_bits = (uint16_t *)xmalloc((CORPUS_LEN + 1) * sizeof(uint16_t));
    float *q_wide = (float *)xmalloc(NQ * DIM * sizeof(float));
    float *c_wide = (float *)xmalloc(CANDS_LEN * sizeof(float));
    float *corpus_wide = (float *)xmalloc(CORPUS_LEN * sizeof(float));
    rrra_corpus *narrow_corpus = SENTINEL_PTR(rrra_corpus), *wide_corpus = NULL;
    rrra_batch batch;
    rrra_rerank_outputs out;
    rr_result want, got;
    size_t d, old_size = offsetof(rrra_batch, queries_dtype);

    rr_outputs(&out);
    for (d = 0; d < 2; d++) {
        uint32_t dtype = DTYPES[d];
        const char *name = dtype == RRRA_DTYPE_F16 ? "f16" : "bf16";
        narrow(dtype, g_queries, NQ * DIM, q_bits, q_wide);
        narrow(dtype, g_cands, CANDS_LEN, c_bits, c_wide);
        narrow(dtype, g_corpus, CORPUS_LEN, corpus_bits, corpus_wide);

        /* Dense: the narrow bits score exactly as the values they stand for, passed as floats. */
        dense_batch(&batch);
        batch.queries = q_wide;
        batch.candidates = c_wide;
        rerank(s, &batch, NULL, &want, __FILE__, __LINE__);
        batch.queries = q_bits;
        batch.queries_dtype = dtype;
        batch.candidates = c_bits;
        batch.candidates_dtype = dtype;
        rerank(s, &batch, NULL, &got, __FILE__, __LINE__);
        CHECKF(rr_equal(&got, &want), "%s queries and candidates score as their float values", name);
        /* Mixed: float queries, narrow candidates. */
        batch.queries = q_wide;
        batch.queries_dtype = RRRA_DTYPE_F32;
        rerank(s, &batch, NULL, &got, __FILE__, __LINE__);
        CHECKF(rr_equal(&got, &want), "float queries with %s candidates", name);

        /* By id, from a narrow corpus. */
        EXPECT_OK(rrra_corpus_new_typed(dtype, corpus_bits, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE,
                                        &narrow_corpus));
        EXPECT_OK(rrra_corpus_new(corpus_wide, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &wide_corpus));
        id_batch(&batch, wide_corpus);
        batch.queries = q_wide;
        rerank(s, &batch, NULL, &want, __FILE__, __LINE__);
        id_batch(&batch, narrow_corpus);
        batch.queries = q_bits;
        batch.queries_dtype = dtype;
        batch.candidates_dtype = 9; /* dense candidates only: ignored by id */
        rerank(s, &batch, NULL, &got, __FILE__, __LINE__);
        CHECKF(rr_equal(&got, &want), "%s corpus scores as its float values", name);
        rrra_corpus_free(narrow_corpus);
        rrra_corpus_free(wide_corpus);
        wide_corpus = NULL;

        /* A narrow NaN or infinity is named like a float one. */
        dense_batch(&batch);
        batch.candidates = c_bits;
        batch.candidates_dtype = dtype;
        c_bits[5 * STRIDE + 2] = dtype == RRRA_DTYPE_F16 ? 0xfc00u : 0xff80u; /* -inf: query 3, position 1 */
        EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &out), RRRA_STATUS_NON_FINITE_INPUT,
                           "candidates: query 3, position 1, column 2 is -inf");
        narrow(dtype, g_cands, CANDS_LEN, c_bits, c_wide);
    }

    /* Unknown element types, misaligned narrow data, and the struct of version 0.1. */
    dense_batch(&batch);
    batch.queries_dtype = 3;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &out), RRRA_STATUS_INVALID_ARGUMENT,
                       "batch->queries_dtype: unknown element type 3");
    dense_batch(&batch);
    batch.candidates_dtype = 0xffffffffu;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &out), RRRA_STATUS_INVALID_ARGUMENT,
                       "batch->candidates_dtype");
    dense_batch(&batch);
    batch.queries = (const unsigned char *)(const void *)q_bits + 1;
    batch.queries_dtype = RRRA_DTYPE_BF16;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &out), RRRA_STATUS_INVALID_ARGUMENT,
                       "batch->queries is not aligned to 2 bytes");
    narrow_corpus = SENTINEL_PTR(rrra_corpus);
    EXPECT_ERR(rrra_corpus_new_typed(5, corpus_bits, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &narrow_corpus),
               RRRA_STATUS_INVALID_ARGUMENT, "dtype: unknown element type 5");
    EXPECT_ERR(rrra_corpus_new_typed(RRRA_DTYPE_F16, (const unsigned char *)(const void *)corpus_bits + 1,
                                     CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &narrow_corpus),
               RRRA_STATUS_INVALID_ARGUMENT, "not aligned");
    EXPECT_ERR(rrra_corpus_new_typed(RRRA_DTYPE_F16, corpus_bits, (CORPUS_ROWS - 1) * CORPUS_STRIDE + DIM - 1,
                                     CORPUS_ROWS, DIM, CORPUS_STRIDE, &narrow_corpus),
               RRRA_STATUS_INVALID_ARGUMENT, "need");
    CHECK(narrow_corpus == SENTINEL_PTR(rrra_corpus));
    dense_batch(&batch);
    batch.struct_size = old_size; /* no dtype fields: f32 */
    rerank(s, &batch, NULL, &got, __FILE__, __LINE__);
    CHECK(rr_equal(&got, &g_rr_base));
    batch.struct_size = old_size + 4; /* half of the new fields */
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &out), RRRA_STATUS_INVALID_ARGUMENT,
                       "batch->struct_size");

    free(q_bits);
    free(c_bits);
    free(corpus_bits);
    free(q_wide);
    free(c_wide);
    free(corpus_wide);
}

/* Version 0.1's rrra_session_options, before cpu_kernel: binaries built against it still work. */
static void test_session_options_v0_1(const rrra_model *model) {
    struct {
        size_t struct_size;
        uint32_t engine;
        uint32_t threads;
    } old;
    rrra_session *s = NULL;
    uint32_t kernel = 12345;
    memset(&old, 0, sizeof old);
    old.struct_size = sizeof old;
    old.engine = RRRA_ENGINE_FOLDED;
    EXPECT_OK(rrra_session_new(model, (const rrra_session_options *)(const void *)&old, &s));
    EXPECT_OK(rrra_session_cpu_kernel(s, &kernel));
    CHECK(kernel != RRRA_CPU_KERNEL_AUTO && kernel != 12345);
    EXPECT_ERR(rrra_session_cpu_kernel(NULL, &kernel), RRRA_STATUS_NULL_POINTER, "session");
    EXPECT_ERR(rrra_session_cpu_kernel(s, NULL), RRRA_STATUS_NULL_POINTER, "kernel_out");
    rrra_session_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define N_THREADS 4
#define ITERATIONS 25

typedef struct thread_arg {
    const rrra_model *model;
    int id;
    int failures;
    rr_result rr;
    rs_result rs;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = (thread_arg *)p;
    rrra_session *s = NULL;
    rrra_batch batch, wrong;
    rrra_rerank_outputs o;
    rrra_resample_outputs ro;
    rrra_resample_request req;
    char needle[64];
    int it;
    size_t i;

    if (rrra_session_new(a->model, NULL, &s) != RRRA_STATUS_OK) {
        a->failures++;
        return NULL;
    }
    dense_batch(&batch);
    wrong = batch;
    wrong.dim = 100 + (size_t)a->id; /* a message only this thread's call can produce */
    snprintf(needle, sizeof needle, "got %d", 100 + a->id);
    for (it = 0; it < ITERATIONS; it++) {
        rr_result rr;
        rs_result rs;
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.log_s_rr = rr.log_s_rr;
        o.log_s_rr_len = TOTAL;
        o.s_a = rr.s_a;
        o.s_a_len = TOTAL;
        o.s_fn = rr.s_fn;
        o.s_fn_len = TOTAL;
        o.class_probs = rr.class_probs;
        o.class_probs_len = 4 * TOTAL;
        o.order = rr.order;
        o.order_len = TOTAL;
        if (rrra_session_rerank(s, &batch, NULL, &o) != RRRA_STATUS_OK || rrra_last_error()[0] != '\0') {
            a->failures++;
        }
        if (rrra_session_rerank(s, &wrong, NULL, &o) != RRRA_STATUS_DIMENSION_MISMATCH ||
            strstr(rrra_last_error(), needle) == NULL) {
            a->failures++;
        }
        memset(&rs, 0, sizeof rs);
        rs_request(&req, 2, MASK);
        memset(&ro, 0, sizeof ro);
        ro.struct_size = sizeof ro;
        ro.log_s_rs = rs.log_s_rs;
        ro.log_s_rs_len = TOTAL;
        ro.s_fn = rs.s_fn;
        ro.s_fn_len = TOTAL;
        ro.samples = rs.samples;
        ro.samples_len = NQ * 2;
        ro.sample_counts = rs.counts;
        ro.sample_counts_len = NQ;
        if (rrra_session_resample(s, &batch, NULL, &req, &ro) != RRRA_STATUS_OK) {
            a->failures++;
        }
        for (i = NQ * 2; i < NQ * MAX_SPQ; i++) {
            rs.samples[i] = 0;
        }
        if (it == 0) {
            a->rr = rr;
            a->rs = rs;
        } else if (!rr_equal(&rr, &a->rr) || !rs_equal(&rs, &a->rs)) {
            a->failures++;
        }
    }
    rrra_session_free(s);
    return NULL;
}

static void test_threads(const rrra_model *model) {
    pthread_t threads[N_THREADS];
    thread_arg args[N_THREADS];
    int i, started[N_THREADS];
    for (i = 0; i < N_THREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].model = model;
        args[i].id = i;
        started[i] = pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0;
        CHECK(started[i]);
    }
    for (i = 0; i < N_THREADS; i++) {
        if (started[i]) {
            CHECK(pthread_join(threads[i], NULL) == 0);
        }
        CHECKF(args[i].failures == 0, "thread %d: %d failed calls or mismatching results", i, args[i].failures);
        CHECKF(rr_equal(&args[i].rr, &g_rr_base), "thread %d: rerank identical to the single-threaded run", i);
        CHECKF(rs_equal(&args[i].rs, &g_rs_base), "thread %d: resample identical to the single-threaded run", i);
    }
}

/* ------------------------------------------------------------------------------------------ */

/* Inputs that once slipped through: each now fails cleanly, or succeeds without a huge allocation. */
static void test_boundary_regressions(const rrra_model *model, rrra_session *s, const rrra_corpus *corpus) {
    static const size_t fewer_counts[NQ] = {3, 0, 1, 2};
    rrra_batch batch;
    rrra_rerank_outputs o;
    rrra_resample_request req;
    rrra_resample_outputs ro;
    rrra_score_options opt;
    size_t q;

    /* an output buffer inside the registered corpus rows */
    id_batch(&batch, corpus);
    rr_outputs(&o);
    o.log_s_rr = g_corpus;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "outputs->log_s_rr overlaps corpus rows");

    /* base scores forgotten: NULL with a length */
    dense_batch(&batch);
    batch.base_scores_len = TOTAL;
    rr_outputs(&o);
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &o), RRRA_STATUS_NULL_POINTER,
                       "batch->base_scores is NULL but batch->base_scores_len is");

    /* more candidate rows than the counts use: counts and candidates disagree */
    dense_batch(&batch);
    batch.candidate_counts = fewer_counts;
    rr_outputs(&o);
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, NULL, &o), RRRA_STATUS_INVALID_ARGUMENT,
                       "that candidate_counts add up to");

    /* a thread count no machine has, as an uninitialised field would give */
    {
        rrra_session_options so;
        rrra_session *big = NULL;
        memset(&so, 0, sizeof so);
        so.struct_size = sizeof so;
        so.threads = UINT32_MAX;
        EXPECT_ERR(rrra_session_new(model, &so, &big), RRRA_STATUS_INVALID_ARGUMENT, "threads");
        CHECK(big == NULL);
    }

    /* cleaning up after a failure keeps its message for the caller to read */
    EXPECT_ERR(rrra_session_rerank(s, NULL, NULL, &o), RRRA_STATUS_NULL_POINTER, "batch");
    rrra_model_free(NULL);
    rrra_corpus_free(NULL);
    rrra_session_free(NULL);
    CHECK(strstr(rrra_last_error(), "batch") != NULL);

    /* a finite lambda so large that log s_RR overflows f32 */
    dense_batch(&batch);
    score_options_init(&opt);
    opt.override_flags = RRRA_OVERRIDE_LAMBDA_RR;
    opt.lambda_rr = 1e300;
    EXPECT_ERR_NOWRITE(rrra_session_rerank(s, &batch, &opt, &o), RRRA_STATUS_NUMERIC, "log s_RR is not finite");

    /* samples_per_query far beyond any list and no samples buffer: no scratch of that size */
    rs_request(&req, (size_t)UINT32_MAX, NULL);
    rs_outputs(&ro, 0);
    ro.samples = NULL;
    ro.samples_len = 0;
    gbuf_fill(o_counts);
    EXPECT_OK(rrra_session_resample(s, &batch, NULL, &req, &ro));
    for (q = 0; q < NQ; q++)
        CHECK(o_counts[q] == (uint32_t)COUNTS[q]);
}

int main(int argc, char **argv) {
    rrra_model *model;
    rrra_session *s = NULL, *orphan = NULL;
    rrra_corpus *corpus = NULL;
    float *queries_copy, *cands_copy, *corpus_copy;

    snprintf(g_dir, sizeof g_dir, "%s", argc > 1 ? argv[1] : "/tmp");
    make_fixtures();
    queries_copy = (float *)xmalloc(NQ * DIM * sizeof(float));
    cands_copy = (float *)xmalloc(CANDS_LEN * sizeof(float));
    corpus_copy = (float *)xmalloc(CORPUS_LEN * sizeof(float));
    memcpy(queries_copy, g_queries, NQ * DIM * sizeof(float));
    memcpy(cands_copy, g_cands, CANDS_LEN * sizeof(float));
    memcpy(corpus_copy, g_corpus, CORPUS_LEN * sizeof(float));

    o_log_s_rr = (float *)gbuf_new(TOTAL * sizeof(float));
    o_s_a = (float *)gbuf_new(TOTAL * sizeof(float));
    o_s_fn = (float *)gbuf_new(TOTAL * sizeof(float));
    o_class_probs = (float *)gbuf_new(4 * TOTAL * sizeof(float));
    o_order = (uint32_t *)gbuf_new(TOTAL * sizeof(uint32_t));
    o_log_s_rs = (float *)gbuf_new(TOTAL * sizeof(float));
    o_rs_s_fn = (float *)gbuf_new(TOTAL * sizeof(float));
    o_samples = (uint32_t *)gbuf_new(NQ * MAX_SPQ * sizeof(uint32_t));
    o_counts = (uint32_t *)gbuf_new(NQ * sizeof(uint32_t));
    o_sn_samples = (uint32_t *)gbuf_new(8 * sizeof(uint32_t));
    o_sn_count = (size_t *)gbuf_new(2 * sizeof(size_t));

    test_status_names_and_version();
    model = test_loading();
    test_corpus_errors();
    test_session_handles(model);

    EXPECT_OK(rrra_session_new(model, NULL, &s));
    EXPECT_OK(rrra_corpus_new(g_corpus, CORPUS_LEN, CORPUS_ROWS, DIM, CORPUS_STRIDE, &corpus));

    test_rerank_success(s, corpus);
    test_rerank_partial_and_empty(s);
    test_rerank_errors(s, corpus);
    test_resample(s, corpus);
    test_resample_errors(s);
    test_boundary_regressions(model, s, corpus);
    test_sample_negatives_errors();
    test_engines(model, corpus);
    test_session_options_v0_1(model);
    test_f16_precision(model);
    test_narrow_embeddings(s);
    test_threads(model);

    /* A session outlives its model. */
    EXPECT_OK(rrra_session_new(model, NULL, &orphan));
    rrra_model_free(model);
    {
        rrra_batch batch;
        rr_result r;
        dense_batch(&batch);
        rerank(orphan, &batch, NULL, &r, __FILE__, __LINE__);
        CHECK(rr_equal(&r, &g_rr_base));
    }
    rrra_session_free(orphan);
    rrra_session_free(s);
    rrra_corpus_free(corpus);

    /* the library never wrote to its inputs */
    CHECK(memcmp(queries_copy, g_queries, NQ * DIM * sizeof(float)) == 0);
    CHECK(memcmp(cands_copy, g_cands, CANDS_LEN * sizeof(float)) == 0);
    CHECK(memcmp(corpus_copy, g_corpus, CORPUS_LEN * sizeof(float)) == 0);
    CHECK(guards_intact());

    gbuf_free_all();
    free(queries_copy);
    free(cands_copy);
    free(corpus_copy);
    free(g_queries);
    free(g_cands);
    free(g_corpus);
    free(g_base);

    printf("api_test: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
