#include "brook_codecs.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ---- the parts of libzstd's and liblz4's ABI used here (stable since zstd 1.4 and lz4 1.8) ----

typedef struct { const void *src; size_t size; size_t pos; } zstd_in;
typedef struct { void *dst; size_t size; size_t pos; } zstd_out;
enum { ZSTD_D_WINDOW_LOG_MAX = 100, ZSTD_DEFAULT_LEVEL = 3 };

static struct {
    size_t (*compress_bound)(size_t);
    size_t (*compress)(void *, size_t, const void *, size_t, int);
    unsigned (*is_error)(size_t);
    void *(*create_dctx)(void);
    size_t (*free_dctx)(void *);
    size_t (*dctx_set_parameter)(void *, int, int); // optional (zstd >= 1.4)
    size_t (*decompress_stream)(void *, zstd_out *, zstd_in *);
    unsigned long long (*frame_content_size)(const void *, size_t); // optional
} zstd;

typedef struct {
    int block_size_id, block_mode, content_checksum, frame_type;
    unsigned long long content_size;
    unsigned dict_id;
    int block_checksum;
} lz4_frame_info;
typedef struct {
    lz4_frame_info frame;
    int level;
    unsigned auto_flush, favor_dec_speed, reserved[3];
} lz4_prefs;
enum { LZ4F_VERSION_NUMBER = 100, LZ4_MAX64KB = 4, LZ4_BLOCK_INDEPENDENT = 1 };

static struct {
    unsigned (*is_error)(size_t);
    size_t (*create_dctx)(void **, unsigned);
    size_t (*free_dctx)(void *);
    size_t (*decompress)(void *, void *, size_t *, const void *, size_t *, const void *);
    size_t (*frame_bound)(size_t, const lz4_prefs *);
    size_t (*compress_frame)(void *, size_t, const void *, size_t, const lz4_prefs *);
} lz4;

static int zstd_loaded, lz4_loaded;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT, lz4_once = PTHREAD_ONCE_INIT;

static void *open_first(const char *a, const char *b) {
    void *h = dlopen(a, RTLD_NOW | RTLD_LOCAL);
    return h ? h : dlopen(b, RTLD_NOW | RTLD_LOCAL);
}

#define SYM(table, field, handle, name) (*(void **)(&table.field) = dlsym(handle, name))

static void load_zstd(void) {
    void *h = open_first("libzstd.so.1", "libzstd.so");
    if (!h) return;
    int ok = SYM(zstd, compress_bound, h, "ZSTD_compressBound") && SYM(zstd, compress, h, "ZSTD_compress")
        && SYM(zstd, is_error, h, "ZSTD_isError") && SYM(zstd, create_dctx, h, "ZSTD_createDCtx")
        && SYM(zstd, free_dctx, h, "ZSTD_freeDCtx") && SYM(zstd, decompress_stream, h, "ZSTD_decompressStream");
    SYM(zstd, dctx_set_parameter, h, "ZSTD_DCtx_setParameter");
    SYM(zstd, frame_content_size, h, "ZSTD_getFrameContentSize");
    zstd_loaded = ok;
}

static void load_lz4(void) {
    void *h = open_first("liblz4.so.1", "liblz4.so");
    if (!h) return;
    lz4_loaded = SYM(lz4, is_error, h, "LZ4F_isError") && SYM(lz4, create_dctx, h, "LZ4F_createDecompressionContext")
        && SYM(lz4, free_dctx, h, "LZ4F_freeDecompressionContext") && SYM(lz4, decompress, h, "LZ4F_decompress")
        && SYM(lz4, frame_bound, h, "LZ4F_compressFrameBound") && SYM(lz4, compress_frame, h, "LZ4F_compressFrame");
}

int brook_codec_available(int kind) {
    switch (kind) {
    case BROOK_GZIP: return 1;
    case BROOK_ZSTD: pthread_once(&zstd_once, load_zstd); return zstd_loaded;
    case BROOK_LZ4: pthread_once(&lz4_once, load_lz4); return lz4_loaded;
    default: return 0;
    }
}

// ---- decompression ----

struct brook_inflater {
    int kind;
    z_stream z;
    void *ctx; // ZSTD_DCtx or LZ4F_dctx
};

brook_inflater *brook_inflater_new(int kind, int window_log_max) {
    if (!brook_codec_available(kind)) return NULL;
    brook_inflater *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->kind = kind;
    switch (kind) {
    case BROOK_GZIP:
        if (inflateInit2(&f->z, 15 + 32) != Z_OK) { free(f); return NULL; } // gzip or zlib header
        break;
    case BROOK_ZSTD:
        f->ctx = zstd.create_dctx();
        if (!f->ctx) { free(f); return NULL; }
        if (zstd.dctx_set_parameter && window_log_max > 0)
            zstd.dctx_set_parameter(f->ctx, ZSTD_D_WINDOW_LOG_MAX, window_log_max);
        break;
    case BROOK_LZ4:
        if (lz4.is_error(lz4.create_dctx(&f->ctx, LZ4F_VERSION_NUMBER))) { free(f); return NULL; }
        break;
    }
    return f;
}

void brook_inflater_free(brook_inflater *f) {
    if (!f) return;
    switch (f->kind) {
    case BROOK_GZIP: inflateEnd(&f->z); break;
    case BROOK_ZSTD: zstd.free_dctx(f->ctx); break;
    case BROOK_LZ4: lz4.free_dctx(f->ctx); break;
    }
    free(f);
}

static int inflate_gzip(brook_inflater *f, const uint8_t *src, size_t src_len, size_t *src_pos,
                        uint8_t *dst, size_t dst_cap, size_t *dst_pos) {
    for (;;) {
        size_t in_left = src_len - *src_pos, out_left = dst_cap - *dst_pos;
        // zlib counts in uInt: feed at most UINT_MAX at a time.
        f->z.next_in = (Bytef *)(src + *src_pos);
        f->z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        f->z.next_out = dst + *dst_pos;
        f->z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        uInt in_before = f->z.avail_in, out_before = f->z.avail_out;
        int rc = inflate(&f->z, Z_NO_FLUSH);
        *src_pos += in_before - f->z.avail_in;
        *dst_pos += out_before - f->z.avail_out;
        if (rc == Z_STREAM_END) {
            if (*src_pos == src_len) return BROOK_CODEC_DONE;
            if (inflateReset(&f->z) != Z_OK) return BROOK_CODEC_CORRUPT; // another gzip member
            continue;
        }
        if (rc == Z_MEM_ERROR) return BROOK_CODEC_NOMEM;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return BROOK_CODEC_CORRUPT;
        if (*dst_pos == dst_cap) return BROOK_CODEC_MORE;
        if (*src_pos == src_len) return BROOK_CODEC_CORRUPT; // truncated
        if (rc == Z_BUF_ERROR) return BROOK_CODEC_CORRUPT;   // no progress possible
    }
}

static int inflate_zstd(brook_inflater *f, const uint8_t *src, size_t src_len, size_t *src_pos,
                        uint8_t *dst, size_t dst_cap, size_t *dst_pos) {
    if (src_len == 0) return BROOK_CODEC_DONE;
    zstd_in in = { src, src_len, *src_pos };
    zstd_out out = { dst, dst_cap, *dst_pos };
    for (;;) {
        size_t rc = zstd.decompress_stream(f->ctx, &out, &in);
        *src_pos = in.pos;
        *dst_pos = out.pos;
        if (zstd.is_error(rc)) return BROOK_CODEC_CORRUPT;
        if (rc == 0 && in.pos == in.size) return BROOK_CODEC_DONE; // frame complete and flushed
        if (out.pos == out.size) return BROOK_CODEC_MORE;
        if (in.pos == in.size) return BROOK_CODEC_CORRUPT; // truncated frame
    }
}

static int inflate_lz4(brook_inflater *f, const uint8_t *src, size_t src_len, size_t *src_pos,
                       uint8_t *dst, size_t dst_cap, size_t *dst_pos) {
    if (src_len == 0) return BROOK_CODEC_DONE;
    for (;;) {
        size_t in = src_len - *src_pos, out = dst_cap - *dst_pos;
        size_t rc = lz4.decompress(f->ctx, dst + *dst_pos, &out, src + *src_pos, &in, NULL);
        *src_pos += in;
        *dst_pos += out;
        if (lz4.is_error(rc)) return BROOK_CODEC_CORRUPT;
        if (rc == 0 && *src_pos == src_len) return BROOK_CODEC_DONE;
        if (*dst_pos == dst_cap) return BROOK_CODEC_MORE;
        if (*src_pos == src_len) return BROOK_CODEC_CORRUPT; // truncated frame
        if (in == 0 && out == 0) return BROOK_CODEC_CORRUPT; // no progress
    }
}

int brook_inflate(brook_inflater *f, const void *src, size_t src_len, size_t *src_pos,
                  void *dst, size_t dst_cap, size_t *dst_pos) {
    switch (f->kind) {
    case BROOK_GZIP: return inflate_gzip(f, src, src_len, src_pos, dst, dst_cap, dst_pos);
    case BROOK_ZSTD: return inflate_zstd(f, src, src_len, src_pos, dst, dst_cap, dst_pos);
    case BROOK_LZ4: return inflate_lz4(f, src, src_len, src_pos, dst, dst_cap, dst_pos);
    default: return BROOK_CODEC_UNAVAILABLE;
    }
}

long long brook_content_size(int kind, const void *src, size_t n) {
    const uint8_t *p = src;
    switch (kind) {
    case BROOK_GZIP:
        if (n < 18 || p[0] != 0x1f || p[1] != 0x8b) return -1;
        return (long long)p[n - 4] | (long long)p[n - 3] << 8 | (long long)p[n - 2] << 16 | (long long)p[n - 1] << 24;
    case BROOK_ZSTD: {
        if (!brook_codec_available(kind) || !zstd.frame_content_size) return -1;
        unsigned long long size = zstd.frame_content_size(src, n);
        return size >= (1ULL << 62) ? -1 : (long long)size; // unknown or error
    }
    case BROOK_LZ4: {
        // magic (4), FLG, BD, [content size (8) if FLG bit 3], ...
        if (n < 15 || p[0] != 0x04 || p[1] != 0x22 || p[2] != 0x4d || p[3] != 0x18 || !(p[4] & 0x08)) return -1;
        unsigned long long size = 0;
        for (int i = 7; i >= 0; i--) size = size << 8 | p[6 + i];
        return size >= (1ULL << 62) ? -1 : (long long)size;
    }
    default: return -1;
    }
}

// ---- compression ----

static lz4_prefs lz4_preferences(int level) {
    lz4_prefs p;
    memset(&p, 0, sizeof p);
    p.frame.block_size_id = LZ4_MAX64KB;         // what Kafka's Java client writes
    p.frame.block_mode = LZ4_BLOCK_INDEPENDENT;  // the only mode Kafka's Java reader takes
    p.level = level == INT32_MIN ? 0 : level;
    return p;
}

size_t brook_deflate_bound(int kind, size_t n) {
    if (!brook_codec_available(kind)) return 0;
    switch (kind) {
    case BROOK_GZIP: return compressBound((uLong)n) + 32; // gzip's header and trailer are longer than zlib's
    case BROOK_ZSTD: return zstd.compress_bound(n);
    case BROOK_LZ4: { lz4_prefs p = lz4_preferences(0); return lz4.frame_bound(n, &p); }
    default: return 0;
    }
}

long brook_deflate(int kind, int level, const void *src, size_t n, void *dst, size_t cap) {
    if (!brook_codec_available(kind)) return BROOK_CODEC_UNAVAILABLE;
    if (n > (size_t)LONG_MAX / 2 || cap > (size_t)LONG_MAX) return BROOK_CODEC_NOMEM;
    switch (kind) {
    case BROOK_GZIP: {
        if (n > UINT_MAX || cap > UINT_MAX) return BROOK_CODEC_NOMEM;
        z_stream z;
        memset(&z, 0, sizeof z);
        int lvl = level == INT32_MIN ? Z_DEFAULT_COMPRESSION : level;
        if (deflateInit2(&z, lvl, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return BROOK_CODEC_NOMEM;
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)n;
        z.next_out = dst;
        z.avail_out = (uInt)cap;
        int rc = deflate(&z, Z_FINISH);
        long size = (long)z.total_out;
        deflateEnd(&z);
        return rc == Z_STREAM_END ? size : BROOK_CODEC_NOMEM;
    }
    case BROOK_ZSTD: {
        size_t rc = zstd.compress(dst, cap, src, n, level == INT32_MIN ? ZSTD_DEFAULT_LEVEL : level);
        return zstd.is_error(rc) ? BROOK_CODEC_NOMEM : (long)rc;
    }
    case BROOK_LZ4: {
        lz4_prefs p = lz4_preferences(level);
        size_t rc = lz4.compress_frame(dst, cap, src, n, &p);
        return lz4.is_error(rc) ? BROOK_CODEC_NOMEM : (long)rc;
    }
    default: return BROOK_CODEC_UNAVAILABLE;
    }
}
