// Queue ID encoding and decoding; the format is described in queue_id.h.
#include "mail/queue_id.h"

#include <stdexcept>

namespace postern {

namespace {

constexpr std::string_view kDigits = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy";
constexpr uint64_t kBase = kDigits.size();
constexpr char kSeparator = 'z';
constexpr size_t kSecondsWidth = 6;
constexpr size_t kMicrosWidth = 4;
constexpr size_t kMaxInodeWidth = 12;
constexpr size_t kTimeWidth = kSecondsWidth + kMicrosWidth;

constexpr uint64_t power(uint64_t base, size_t exponent) {
  uint64_t result = 1;
  while (exponent-- > 0) result *= base;
  return result;
}
constexpr uint64_t kSecondsLimit = power(kBase, kSecondsWidth);

static_assert(kDigits.size() == 51, "the alphabet is base 51");
static_assert(power(kBase, kMicrosWidth) > 999999, "microseconds must fit");
static_assert(kTimeWidth + 1 + kMaxInodeWidth == kMaxQueueIdLength);

int digit_value(char c) {
  size_t pos = kDigits.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

void put_fixed(std::string& out, uint64_t value, size_t width) {
  std::string digits(width, kDigits[0]);
  for (size_t i = width; i-- > 0; value /= kBase) digits[i] = kDigits[value % kBase];
  out += digits;
}

// A run of digits as a number; nothing when a character is not a digit or the value overflows.
std::optional<uint64_t> read_number(std::string_view digits) {
  uint64_t value = 0;
  for (char c : digits) {
    int d = digit_value(c);
    if (d < 0) return std::nullopt;
    if (value > (UINT64_MAX - static_cast<uint64_t>(d)) / kBase) return std::nullopt;
    value = value * kBase + static_cast<uint64_t>(d);
  }
  return value;
}

}  // namespace

std::string make_queue_id(int64_t seconds, int32_t microseconds, uint64_t inode) {
  if (seconds < 0 || static_cast<uint64_t>(seconds) >= kSecondsLimit)
    throw std::invalid_argument("queue ID: time out of range");
  if (microseconds < 0 || microseconds > 999999) throw std::invalid_argument("queue ID: microseconds out of range");
  std::string id;
  id.reserve(kMaxQueueIdLength);
  put_fixed(id, static_cast<uint64_t>(seconds), kSecondsWidth);
  put_fixed(id, static_cast<uint64_t>(microseconds), kMicrosWidth);
  id += kSeparator;
  std::string inode_digits;
  do {
    inode_digits.insert(inode_digits.begin(), kDigits[inode % kBase]);
    inode /= kBase;
  } while (inode > 0);
  return id + inode_digits;
}

std::optional<QueueIdParts> decode_queue_id(std::string_view id) {
  if (id.size() < kTimeWidth + 2 || id.size() > kMaxQueueIdLength || id[kTimeWidth] != kSeparator)
    return std::nullopt;
  std::string_view inode_digits = id.substr(kTimeWidth + 1);
  // One spelling per inode: no leading zero digit.
  if (inode_digits.size() > 1 && inode_digits.front() == kDigits[0]) return std::nullopt;
  auto seconds = read_number(id.substr(0, kSecondsWidth));
  auto micros = read_number(id.substr(kSecondsWidth, kMicrosWidth));
  auto inode = read_number(inode_digits);
  if (!seconds || !micros || !inode || *micros > 999999) return std::nullopt;
  return QueueIdParts{static_cast<int64_t>(*seconds), static_cast<int32_t>(*micros), *inode};
}

bool is_valid_queue_id(std::string_view id) { return decode_queue_id(id).has_value(); }

}  // namespace postern
