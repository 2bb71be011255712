// The one table of every configuration parameter Postern knows: its name, type,
// default (which may refer to other parameters as $name) and allowed range.
// postconf -d prints it; Config validates against it; a test checks that every
// entry is documented.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

namespace postern {

class Config;

enum class ParamType {
  kString,
  kInt,
  kBool,  // yes/no
  kTime,  // a number with an optional unit s, m, h, d, w (default unit in ParamSpec)
  kSize,  // bytes
};

struct ParamSpec {
  std::string_view name;
  ParamType type;
  std::string_view default_value;
  std::string_view doc;
  int64_t min = 0;
  int64_t max = std::numeric_limits<int64_t>::max();
  char time_unit = 's';  // the unit of a bare number, for kTime
  // For kString: the allowed values separated by '|' ("" may be one), or empty for any.
  std::string_view choices = {};
  // A default that depends on the host or on other values (myhostname, mydomain).
  std::string (*compute_default)(const Config&) = nullptr;
  // Kept as written: the program that uses it expands its own names there
  // ($home, $user, ${extension} in forward_path), as Postfix's raw parameters.
  bool raw = false;
};

// The default of a parameter, computed for host-dependent ones.
std::string default_value(const ParamSpec& spec, const Config& config);

std::span<const ParamSpec> all_params();
const ParamSpec* find_param(std::string_view name);

}  // namespace postern
