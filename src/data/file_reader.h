// Helpers shared by the data readers: reading a whole file into memory (plain
// or gzip, told apart by the gzip magic bytes, never by the file name), the
// ReadStats a text reader fills in, and the number/token handling behind the
// "file:line: expected X, found 'Y'" messages. Internal to the data layer.
// Stateless functions; safe to call from any thread.
#ifndef DISTOPT_DATA_FILE_READER_H_
#define DISTOPT_DATA_FILE_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "distopt/status.h"

namespace distopt {

// What a text reader saw. Filled in on success; in strict mode the first bad
// line is the returned error instead.
struct ReadStats {
  size_t lines = 0;           // physical lines looked at, blank and comment lines included
  size_t rows = 0;            // examples kept
  size_t bad_lines = 0;       // lines skipped because skip_bad_lines was set
  std::string first_error{};  // "file:line: expected ..., found ..." of the first skipped line
};

// True if `bytes` starts with the gzip magic (1f 8b).
bool IsGzip(std::string_view bytes);

// Reads the whole file at `path`, decompressing it with zlib when it is gzip.
// Fails with InvalidArgument (naming the path and both sizes) when the plain
// file or the decompressed stream is larger than `max_bytes`: the limit is
// checked before the buffer grows past it. Missing file: NotFound.
Result<std::string> ReadFileContents(const std::string& path, size_t max_bytes);

namespace data_internal {

// `token` as it goes between quotes in an error message: non-printable bytes
// escaped as \xNN and cut to about 48 characters, so a binary or huge line
// cannot blow up a message.
std::string Quote(std::string_view token);

// Parses all of `s` as a finite float (an optional leading '+' is accepted, as
// LibSVM files write "+1"). False on anything else: empty, trailing junk,
// inf, nan, out of range.
bool ParseFloat(std::string_view s, float* out);

// Parses all of `s` as a decimal unsigned integer. False on empty, sign,
// trailing junk or overflow.
bool ParseUint(std::string_view s, uint64_t* out);

// Bytes counted in `text` equal to `c` (used to size vectors before parsing).
size_t CountByte(std::string_view text, char c);

}  // namespace data_internal
}  // namespace distopt

#endif  // DISTOPT_DATA_FILE_READER_H_
