#ifndef BROOK_CODECS_H
#define BROOK_CODECS_H

#include <stddef.h>
#include <stdint.h>

/// Codecs backed by C libraries: gzip through zlib (linked), zstd and lz4 through the runtime
/// libraries libzstd.so.1 and liblz4.so.1, opened with dlopen on first use (a fresh machine has
/// them without their headers, so the few entry points used are declared here by hand).

enum brook_codec_kind { BROOK_GZIP = 1, BROOK_LZ4 = 3, BROOK_ZSTD = 4 };

enum brook_codec_status {
    BROOK_CODEC_DONE = 1,         ///< the input is fully decoded
    BROOK_CODEC_MORE = 0,         ///< output space ran out: call again with more room
    BROOK_CODEC_CORRUPT = -1,     ///< not a valid stream (or truncated)
    BROOK_CODEC_UNAVAILABLE = -2, ///< the library could not be loaded
    BROOK_CODEC_NOMEM = -3,
};

/// 1 when the codec's library is loaded (or loads now), 0 when it cannot be.
int brook_codec_available(int kind);

/// A streaming decompressor for one input held whole in memory.
typedef struct brook_inflater brook_inflater;

/// A new decompressor for `kind`; `window_log_max` bounds zstd's window (memory) as 2^n bytes.
/// NULL when the library is missing or memory is short.
brook_inflater *brook_inflater_new(int kind, int window_log_max);
void brook_inflater_free(brook_inflater *inflater);

/// Decodes from src[*src_pos..<src_len] into dst[*dst_pos..<dst_cap], moving both positions.
/// Returns a brook_codec_status. Concatenated frames (or gzip members) are decoded in turn.
int brook_inflate(brook_inflater *inflater, const void *src, size_t src_len, size_t *src_pos,
                  void *dst, size_t dst_cap, size_t *dst_pos);

/// The decompressed size the stream announces, when it does (zstd and lz4 frame headers, the
/// gzip trailer's size modulo 2^32), else -1. A hint only: the data may not keep its word.
long long brook_content_size(int kind, const void *src, size_t n);

/// The most bytes compressing `n` bytes can take (0 if the library is missing).
size_t brook_deflate_bound(int kind, size_t n);

/// Compresses src into dst (at least brook_deflate_bound bytes); returns the compressed size,
/// or a negative brook_codec_status. `level` is the codec's own scale; INT32_MIN for its default.
long brook_deflate(int kind, int level, const void *src, size_t n, void *dst, size_t cap);

#endif
