// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) as Kafka's RecordBatch v2 uses it.
// Hardware path: three interleaved streams of the crc32 instruction (it has a latency of
// three cycles and a throughput of one), joined by carry-less shifts done with tables.
#include "brook_crc32c.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_table(void) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
}

uint32_t brook_crc32c_update_portable(uint32_t crc, const void *data, size_t length) {
    ensure_table();
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (length && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); length--; }
    while (length >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][(w >> 56) & 0xff];
        p += 8;
        length -= 8;
    }
    while (length--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// ---- shifting a CRC over zero bytes, for joining interleaved streams ----
// Multiplication in GF(2) modulo the polynomial (reflected bit order).
static uint32_t gf2_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (a & 0x80000000u) product ^= b;
        a <<= 1;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return product;
}

// x^(8*n) mod P in reflected form: the operator that appends n zero bytes.
static uint32_t zeros_operator(size_t n) {
    uint32_t result = 0x80000000u;  // x^0
    uint32_t square = 0x00800000u;  // x^8
    while (n) {
        if (n & 1) result = gf2_multiply(result, square);
        square = gf2_multiply(square, square);
        n >>= 1;
    }
    return result;
}

// Per-stripe tables: shift(crc) = crc * x^(8*stripe), applied a byte at a time.
#define STRIPE 4096
static uint32_t shift_table[4][256];
static int shift_ready = 0;

static void build_shift_table(void) {
    uint32_t op = zeros_operator(STRIPE);
    for (int byte = 0; byte < 4; byte++)
        for (uint32_t n = 0; n < 256; n++)
            shift_table[byte][n] = gf2_multiply(n << (8 * byte), op);
    __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t shift_stripe(uint32_t crc) {
    return shift_table[0][crc & 0xff] ^ shift_table[1][(crc >> 8) & 0xff] ^
           shift_table[2][(crc >> 16) & 0xff] ^ shift_table[3][crc >> 24];
}

#if defined(__x86_64__)
#include <cpuid.h>
#define HW_TARGET __attribute__((target("sse4.2")))
static inline HW_TARGET uint64_t hw64(uint64_t c, uint64_t w) { return __builtin_ia32_crc32di(c, w); }
static inline HW_TARGET uint32_t hw8(uint32_t c, uint8_t b) { return __builtin_ia32_crc32qi(c, b); }
static int detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}
#define HAVE_HW_PATH 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#define HW_TARGET __attribute__((target("crc")))
static inline HW_TARGET uint64_t hw64(uint64_t c, uint64_t w) { return __builtin_arm_crc32cd((uint32_t)c, w); }
static inline HW_TARGET uint32_t hw8(uint32_t c, uint8_t b) { return __builtin_arm_crc32cb(c, b); }
static int detect(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#define HAVE_HW_PATH 1
#endif

#ifdef HAVE_HW_PATH
static HW_TARGET uint32_t update_hw(uint32_t crc, const uint8_t *p, size_t length) {
    uint64_t c0 = ~crc;
    while (length && ((uintptr_t)p & 7)) { c0 = hw8((uint32_t)c0, *p++); length--; }
    if (length >= 3 * STRIPE) {
        if (!__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) build_shift_table();
        while (length >= 3 * STRIPE) {
            uint64_t c1 = 0, c2 = 0;
            const uint8_t *p1 = p + STRIPE, *p2 = p + 2 * STRIPE;
            for (size_t i = 0; i < STRIPE; i += 8) {
                uint64_t w0, w1, w2;
                memcpy(&w0, p + i, 8);
                memcpy(&w1, p1 + i, 8);
                memcpy(&w2, p2 + i, 8);
                c0 = hw64(c0, w0);
                c1 = hw64(c1, w1);
                c2 = hw64(c2, w2);
            }
            // crc(A|B) = shift(crc(A)) ^ crc(B) for raw (un-inverted) register values.
            c0 = shift_stripe((uint32_t)c0) ^ (uint32_t)c1;
            c0 = shift_stripe((uint32_t)c0) ^ (uint32_t)c2;
            p += 3 * STRIPE;
            length -= 3 * STRIPE;
        }
    }
    while (length >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = hw64(c0, w);
        p += 8;
        length -= 8;
    }
    while (length--) c0 = hw8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

static int hardware_state = -1;

int brook_crc32c_hardware(void) {
#ifdef HAVE_HW_PATH
    int state = __atomic_load_n(&hardware_state, __ATOMIC_RELAXED);
    if (state < 0) {
        state = detect();
        __atomic_store_n(&hardware_state, state, __ATOMIC_RELAXED);
    }
    return state;
#else
    return 0;
#endif
}

uint32_t brook_crc32c_update(uint32_t crc, const void *data, size_t length) {
#ifdef HAVE_HW_PATH
    if (brook_crc32c_hardware()) return update_hw(crc, (const uint8_t *)data, length);
#endif
    return brook_crc32c_update_portable(crc, data, length);
}
