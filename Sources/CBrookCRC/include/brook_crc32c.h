#ifndef BROOK_CRC32C_H
#define BROOK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli) over `length` bytes. Start with crc = 0.
/// Uses the CPU's CRC32 instructions when present (SSE4.2, ARMv8 CRC), else a table.
uint32_t brook_crc32c_update(uint32_t crc, const void *data, size_t length);

/// The portable table-driven version, for tests and measurement.
uint32_t brook_crc32c_update_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int brook_crc32c_hardware(void);

#endif
