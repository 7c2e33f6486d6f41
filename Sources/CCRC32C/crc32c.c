// CRC32C with run-time dispatch. The hardware paths are compiled with target attributes so that the
// package needs no unsafeFlags; the CPU is asked once, on first use.
#include "crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[t][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

// Slicing-by-8: about 2 GB/s, used only where the CPU has no CRC instructions.
uint32_t crc32c_extend_portable(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    const unsigned char *p = data;
    crc = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;  // little-endian hosts only, like every platform this engine targets
        crc = crc_table[7][word & 0xFF] ^ crc_table[6][(word >> 8) & 0xFF] ^
              crc_table[5][(word >> 16) & 0xFF] ^ crc_table[4][(word >> 24) & 0xFF] ^
              crc_table[3][(word >> 32) & 0xFF] ^ crc_table[2][(word >> 40) & 0xFF] ^
              crc_table[1][(word >> 48) & 0xFF] ^ crc_table[0][word >> 56];
        p += 8;
        length -= 8;
    }
    while (length--) crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

// A 32x32 matrix over GF(2), as the images of the 32 unit vectors.
static uint32_t matrix_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (int i = 0; vector; i++, vector >>= 1)
        if (vector & 1) sum ^= matrix[i];
    return sum;
}

// product = a after b
static void matrix_compose(uint32_t *product, const uint32_t *a, const uint32_t *b) {
    uint32_t out[32];
    for (int i = 0; i < 32; i++) out[i] = matrix_times(a, b[i]);
    memcpy(product, out, sizeof out);
}

// The operator that advances a CRC register over `bytes` zero bytes, by squaring (log2(bytes) steps).
static void zeros_matrix(uint32_t *result, size_t bytes) {
    // One zero bit into the reflected register: shift right, fold the polynomial in if bit 0 was set.
    uint32_t bit[32];
    bit[0] = CRC32C_POLY;
    for (int i = 1; i < 32; i++) bit[i] = 1u << (i - 1);
    uint32_t power[32];  // advances over 8 zero bits, then 16, 32, ... by squaring
    matrix_compose(power, bit, bit);
    matrix_compose(power, power, power);
    matrix_compose(power, power, power);
    for (int i = 0; i < 32; i++) result[i] = 1u << i;
    for (size_t n = bytes; n; n >>= 1) {
        if (n & 1) matrix_compose(result, power, result);
        matrix_compose(power, power, power);
    }
}

// With F(M) the finished checksum (register preset to ones, inverted at the end) and Z(n) the advance over n
// zero bytes: F(A ++ B) = Z(len B)(F(A)) xor F(B), the presets and inversions cancelling out.
uint32_t crc32c_combine(uint32_t first, uint32_t second, size_t second_length) {
    uint32_t advance_over_second[32];
    zeros_matrix(advance_over_second, second_length);
    return matrix_times(advance_over_second, first) ^ second;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <pthread.h>

// The crc32 instruction takes 3 cycles and can start one every cycle: a single chain of it uses a third of
// what the CPU can do. So long buffers are checksummed as three interleaved chains over three adjacent
// blocks, then joined: a CRC register run over a block of n bytes from state s equals the register run over
// it from 0, xor s advanced over n zero bytes. Advancing over n zero bytes is linear over GF(2), so a table
// per byte of the register (built once from the operator's matrix) does it in four lookups.
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

typedef struct { uint32_t byte[4][256]; } zeros_operator;
static zeros_operator zeros_long, zeros_short;
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;

static void build_zeros_operator(zeros_operator *op, size_t bytes) {
    uint32_t result[32];
    zeros_matrix(result, bytes);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) op->byte[k][v] = matrix_times(result, v << (8 * k));
}

static void build_zeros_operators(void) {
    build_zeros_operator(&zeros_long, LONG_BLOCK);
    build_zeros_operator(&zeros_short, SHORT_BLOCK);
}

static inline uint32_t advance(const zeros_operator *op, uint32_t c) {
    return op->byte[0][c & 0xFF] ^ op->byte[1][(c >> 8) & 0xFF] ^ op->byte[2][(c >> 16) & 0xFF] ^ op->byte[3][c >> 24];
}

// Three chains over the blocks at p, p + block and p + 2 * block; returns the register after all three.
__attribute__((target("sse4.2")))
static inline uint64_t three_blocks(uint64_t c0, const unsigned char *p, size_t block, const zeros_operator *op) {
    uint64_t c1 = 0, c2 = 0;
    for (const unsigned char *end = p + block; p < end; p += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + block, 8);
        memcpy(&w2, p + 2 * block, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    uint32_t joined = advance(op, (uint32_t)c0) ^ (uint32_t)c1;
    return advance(op, joined) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_extend_hardware(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    uint64_t c = ~crc;
    if (length >= 3 * SHORT_BLOCK) {
        pthread_once(&zeros_once, build_zeros_operators);
        for (; length >= 3 * LONG_BLOCK; p += 3 * LONG_BLOCK, length -= 3 * LONG_BLOCK)
            c = three_blocks(c, p, LONG_BLOCK, &zeros_long);
        for (; length >= 3 * SHORT_BLOCK; p += 3 * SHORT_BLOCK, length -= 3 * SHORT_BLOCK)
            c = three_blocks(c, p, SHORT_BLOCK, &zeros_short);
    }
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

static int cpu_has_crc(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

__attribute__((target("crc")))
static uint32_t crc32c_extend_hardware(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_arm_crc32cd(c, word);
        p += 8;
        length -= 8;
    }
    while (length--) c = __builtin_arm_crc32cb(c, *p++);
    return ~c;
}

static int cpu_has_crc(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }

#else
static uint32_t crc32c_extend_hardware(uint32_t crc, const void *data, size_t length) {
    return crc32c_extend_portable(crc, data, length);
}
static int cpu_has_crc(void) { return 0; }
#endif

typedef uint32_t (*crc_function)(uint32_t, const void *, size_t);
static crc_function chosen = 0;

static crc_function choose(void) {
    crc_function f = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (f) return f;
    f = cpu_has_crc() ? crc32c_extend_hardware : crc32c_extend_portable;
    __atomic_store_n(&chosen, f, __ATOMIC_RELEASE);  // a race stores the same value twice
    return f;
}

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t length) {
    return choose()(crc, data, length);
}

int crc32c_is_hardware_accelerated(void) { return choose() == crc32c_extend_hardware && cpu_has_crc(); }
