#ifndef CCRC32C_H
#define CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli, reflected polynomial 0x82F63B78) over `length` bytes.
/// Start with `crc = 0`; the result of one call is the `crc` of the next to checksum data in pieces.
/// Uses SSE4.2 on x86-64 or the ARMv8 CRC instructions on aarch64 when the CPU has them, a table otherwise.
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t length);

/// The same checksum computed by the portable table code only (for tests that compare the two paths).
uint32_t crc32c_extend_portable(uint32_t crc, const void *data, size_t length);

/// The checksum of A followed by B, from the checksum of A, that of B (each started from 0) and B's length:
/// for a file whose checksum covers a header written last, after a body checksummed as it streamed out.
uint32_t crc32c_combine(uint32_t first, uint32_t second, size_t second_length);

/// 1 when `crc32c_extend` uses hardware instructions on this CPU, 0 when it uses the table.
int crc32c_is_hardware_accelerated(void);

#endif
