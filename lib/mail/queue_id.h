// Queue IDs: the name of a message's queue file and the key that follows it
// through every log line.  Like Postfix's long queue IDs, an ID is made from the
// time the message arrived and the inode number of its queue file, so it is
// unique for as long as that file exists (no two files share an inode), and IDs
// sort by arrival time.
//
// Format: SSSSSSUUUUzI...   (12 to 23 characters)
//   SSSSSS  seconds since the epoch, 6 digits         (enough until the year 2527)
//   UUUU    microseconds, 4 digits                     (below 1,000,000)
//   z       separator
//   I...    inode number, 1 to 12 digits, no leading zero
// Digits are base 51 over "0-9", then the consonants "B-Z" and "b-y" without
// vowels (so no words) and without 'z' (the separator).  The digits are in ASCII
// order and the time fields have fixed width, so a byte-wise sort is a time sort.
// Nothing in the alphabet is special in a file name or a shell.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern {

inline constexpr size_t kMaxQueueIdLength = 23;

struct QueueIdParts {
  int64_t seconds = 0;
  int32_t microseconds = 0;
  uint64_t inode = 0;
  bool operator==(const QueueIdParts&) const = default;
};

// Throws std::invalid_argument for a time before the epoch or beyond the format,
// or microseconds outside 0..999999: callers pass what gettimeofday() gave.
std::string make_queue_id(int64_t seconds, int32_t microseconds, uint64_t inode);

// The parts of a well-formed ID, or nothing.
std::optional<QueueIdParts> decode_queue_id(std::string_view id);

// True only for an ID make_queue_id could have made: no '/', no '.', nothing
// outside the alphabet, no empty or over-long string.  Safe to use as a file
// name in a queue directory when it returns true (postsuper checks user input).
bool is_valid_queue_id(std::string_view id);

}  // namespace postern
