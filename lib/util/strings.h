// Small string helpers used everywhere: trimming, splitting, case folding, numbers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern {

inline constexpr std::string_view kBlanks = " \t\r\n";

std::string_view trim(std::string_view s, std::string_view chars = kBlanks);
// Splits on any of the separator characters and drops empty pieces.
std::vector<std::string> split(std::string_view s, std::string_view separators);
// Splits a Postfix list value: separators are comma and white space; "{ ... }" keeps a piece whole.
std::vector<std::string> split_list(std::string_view s);
std::string lowercase(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
std::string join(const std::vector<std::string>& parts, std::string_view separator);
// A whole decimal number, or nothing (no sign games, no trailing junk).
std::optional<int64_t> parse_int(std::string_view s);
// Appends printf-formatted text.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace postern
