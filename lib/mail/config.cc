// main.cf: reading, $name expansion, and typed, validated access to values.
#include "mail/config.h"

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "mail/params.h"
#include "util/error.h"
#include "util/file.h"
#include "util/logical_lines.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr size_t kMaxExpansionDepth = 100;

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Finds the '}' or ')' that closes text[open]; npos when there is none.
size_t matching_close(std::string_view text, size_t open) {
  char o = text[open], c = o == '{' ? '}' : ')';
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == o) ++depth;
    else if (text[i] == c && --depth == 0) return i;
  }
  return std::string_view::npos;
}

std::string_view unbrace(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') return trim(s.substr(1, s.size() - 2));
  return s;
}

std::string type_name(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "a whole number";
    case ParamType::kBool: return "yes or no";
    case ParamType::kTime: return "a time (number with unit s, m, h, d or w)";
    case ParamType::kSize: return "a size in bytes";
    case ParamType::kString: break;
  }
  return "text";
}

}  // namespace

std::optional<int64_t> parse_time(std::string_view text, char default_unit) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  char unit = default_unit;
  if (std::isalpha(static_cast<unsigned char>(text.back()))) {
    unit = static_cast<char>(std::tolower(static_cast<unsigned char>(text.back())));
    text.remove_suffix(1);
  }
  auto number = parse_int(text);
  if (!number || *number < 0) return std::nullopt;
  int64_t scale;
  switch (unit) {
    case 's': scale = 1; break;
    case 'm': scale = 60; break;
    case 'h': scale = 3600; break;
    case 'd': scale = 86400; break;
    case 'w': scale = 7 * 86400; break;
    default: return std::nullopt;
  }
  if (*number > std::numeric_limits<int64_t>::max() / scale) return std::nullopt;
  return *number * scale;
}

std::optional<int64_t> parse_size(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  int64_t scale = 1;
  switch (std::tolower(static_cast<unsigned char>(text.back()))) {
    case 'k': scale = 1024; break;
    case 'm': scale = 1024 * 1024; break;
    case 'g': scale = 1024 * 1024 * 1024; break;
  }
  if (scale != 1) text.remove_suffix(1);
  auto number = parse_int(text);
  if (!number || *number < 0 || *number > std::numeric_limits<int64_t>::max() / scale) return std::nullopt;
  return *number * scale;
}

std::optional<bool> parse_bool(std::string_view text) {
  std::string t = lowercase(trim(text));
  if (t == "yes" || t == "true" || t == "on" || t == "1") return true;
  if (t == "no" || t == "false" || t == "off" || t == "0") return false;
  return std::nullopt;
}

Config::Config(std::string dir) : dir_(std::move(dir)) {
  values_["config_directory"] = Entry{"config_directory", dir_, main_cf_path(), 0};
}

Config Config::defaults(const std::string& config_dir) { return Config(config_dir); }

std::string Config::choose_dir(const std::string& from_command_line) {
  if (!from_command_line.empty()) return from_command_line;
  if (const char* env = std::getenv("POSTERN_CONFIG_DIR"); env && *env) return env;
  return kDefaultDir;
}

Config Config::load(const std::string& config_dir) {
  Config config(config_dir);
  std::string path = config.main_cf_path();
  std::string text;
  try {
    text = read_file(path);
  } catch (const SystemError& e) {
    if (e.error() == ENOENT) return config;
    throw ConfigError(path, 0, std::string("cannot read: ") + std::strerror(e.error()));
  }
  return parse(config_dir, text);
}

Config Config::parse(const std::string& config_dir, const std::string& text) {
  Config config(config_dir);
  std::string path = config.main_cf_path();
  for_each_logical_line(text, path, [&](std::string_view line, int number) {
    auto [name, value] = split_assignment(line, path, number, "parameter");
    if (name == "config_directory") return;  // always the directory actually read
    config.values_[name] = Entry{name, std::move(value), path, number};
  });
  return config;
}

void Config::set(std::string name, std::string value, std::string file, int line) {
  std::string key = name;
  values_[key] = Entry{std::move(name), std::move(value), std::move(file), line};
}

ConfigError Config::error_in(std::string_view name, const std::string& what) const {
  const Entry* e = entry(name);
  return ConfigError(e ? e->file : main_cf_path(), e ? e->line : 0, std::string(name) + ": " + what);
}

const Config::Entry* Config::entry(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

std::optional<std::string> Config::raw(std::string_view name) const {
  if (const Entry* e = entry(name)) return e->value;
  if (const ParamSpec* spec = find_param(name)) return default_value(*spec, *this);
  return std::nullopt;
}

Config::Where Config::where_of(std::string_view name) const {
  if (const Entry* e = entry(name)) return {e->file, e->line};
  return {main_cf_path(), 0};
}

std::string Config::value_of(std::string_view name, std::vector<std::string>& stack, const Where& where,
                             bool undefined_is_empty) const {
  auto value = raw(name);
  if (!value) {
    if (undefined_is_empty) return {};
    throw ConfigError(where.file, where.line, "undefined parameter $" + std::string(name));
  }
  for (const std::string& outer : stack)
    if (outer == name)
      throw ConfigError(where.file, where.line,
                        "parameter $" + std::string(name) + " refers to itself via $" + stack.back());
  if (stack.size() >= kMaxExpansionDepth)
    throw ConfigError(where.file, where.line, "expansion of $" + std::string(name) + " nests too deep");
  stack.emplace_back(name);
  std::string out = expand_in(*value, stack, where_of(name));
  stack.pop_back();
  return out;
}

std::string Config::expand_in(std::string_view text, std::vector<std::string>& stack, const Where& where) const {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= text.size()) throw ConfigError(where.file, where.line, "'$' at the end of a value");
    char next = text[i + 1];
    if (next == '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (is_name_char(next)) {
      size_t end = i + 1;
      while (end < text.size() && is_name_char(text[end])) ++end;
      out += value_of(text.substr(i + 1, end - i - 1), stack, where, false);
      i = end;
      continue;
    }
    if (next != '{' && next != '(')
      throw ConfigError(where.file, where.line,
                        std::string("'$' must be followed by a parameter name, '{' or '$', not '") + next + "'");
    size_t close = matching_close(text, i + 1);
    if (close == std::string_view::npos)
      throw ConfigError(where.file, where.line, std::string("unbalanced '") + next + "' after '$'");
    std::string_view inner = text.substr(i + 2, close - i - 2);
    size_t name_end = 0;
    while (name_end < inner.size() && is_name_char(inner[name_end])) ++name_end;
    std::string_view name = inner.substr(0, name_end);
    if (name.empty()) throw ConfigError(where.file, where.line, "missing parameter name after '${'");
    std::string_view rest = inner.substr(name_end);
    if (rest.empty()) {
      out += value_of(name, stack, where, false);
    } else if (rest[0] == '?' || rest[0] == ':') {
      bool has_value = !value_of(name, stack, where, true).empty();
      std::string_view when_set, when_empty;
      std::string_view body = rest.substr(1);
      // ${name?{a}:{b}} chooses between two texts; ${name?a} and ${name:b} give one.
      size_t split = std::string_view::npos;
      if (rest[0] == '?' && !trim(body).empty() && trim(body)[0] == '{') {
        std::string_view t = trim(body);
        size_t first_close = matching_close(t, 0);
        if (first_close != std::string_view::npos) {
          std::string_view after = trim(t.substr(first_close + 1));
          if (!after.empty() && after[0] == ':') {
            when_set = unbrace(t.substr(0, first_close + 1));
            when_empty = unbrace(after.substr(1));
            split = first_close;
          }
        }
      }
      if (split == std::string_view::npos) {
        (rest[0] == '?' ? when_set : when_empty) = unbrace(body);
      }
      std::string_view chosen = has_value ? when_set : when_empty;
      out += expand_in(chosen, stack, where);
    } else {
      throw ConfigError(where.file, where.line,
                        "invalid expression ${" + std::string(inner) + "}: expected ${name}, ${name?text} or ${name:text}");
    }
    i = close + 1;
  }
  return out;
}

std::string Config::expand(std::string_view text) const {
  std::vector<std::string> stack;
  return expand_in(text, stack, {main_cf_path(), 0});
}

std::string Config::str(std::string_view name) const {
  if (const ParamSpec* spec = find_param(name); spec && spec->raw) return raw(name).value_or("");
  std::vector<std::string> stack;
  return value_of(name, stack, where_of(name), false);
}

std::string Config::typed_value(std::string_view name, int type) const {
  const ParamSpec* spec = find_param(name);
  if (!spec) throw ConfigError(main_cf_path(), 0, "unknown parameter " + std::string(name));
  if (static_cast<int>(spec->type) != type)
    throw ConfigError(main_cf_path(), 0, "parameter " + std::string(name) + " is not " +
                                             type_name(static_cast<ParamType>(type)));
  return str(name);
}

namespace {

[[noreturn]] void bad_value(const ConfigError& where, std::string_view name, const std::string& value,
                            const ParamSpec& spec) {
  std::string expect = type_name(spec.type);
  if (spec.type == ParamType::kInt || spec.type == ParamType::kTime || spec.type == ParamType::kSize) {
    if (spec.min != 0 || spec.max != std::numeric_limits<int64_t>::max()) {
      expect += " from " + std::to_string(spec.min);
      if (spec.max != std::numeric_limits<int64_t>::max()) expect += " to " + std::to_string(spec.max);
      if (spec.type == ParamType::kTime) expect += " seconds";
    }
  }
  if (!spec.choices.empty()) {
    expect = "one of: ";
    for (const std::string& c : split(spec.choices, "|")) expect += (expect.size() > 8 ? ", " : "") + c;
    if (spec.choices.front() == '|') expect += " (or empty)";
  }
  throw ConfigError(where.file(), where.line(),
                    "invalid value for " + std::string(name) + ": \"" + value + "\" (expected " + expect + ")");
}

int64_t in_range(std::optional<int64_t> v, const ConfigError& where, std::string_view name, const std::string& value,
                 const ParamSpec& spec) {
  if (!v || *v < spec.min || *v > spec.max) bad_value(where, name, value, spec);
  return *v;
}

}  // namespace

int64_t Config::integer(std::string_view name) const {
  std::string v = typed_value(name, static_cast<int>(ParamType::kInt));
  Where w = where_of(name);
  return in_range(parse_int(trim(v)), ConfigError(w.file, w.line, ""), name, v, *find_param(name));
}

bool Config::boolean(std::string_view name) const {
  std::string v = typed_value(name, static_cast<int>(ParamType::kBool));
  auto b = parse_bool(v);
  if (!b) {
    Where w = where_of(name);
    bad_value(ConfigError(w.file, w.line, ""), name, v, *find_param(name));
  }
  return *b;
}

int64_t Config::seconds(std::string_view name) const {
  std::string v = typed_value(name, static_cast<int>(ParamType::kTime));
  const ParamSpec& spec = *find_param(name);
  Where w = where_of(name);
  return in_range(parse_time(v, spec.time_unit), ConfigError(w.file, w.line, ""), name, v, spec);
}

int64_t Config::bytes(std::string_view name) const {
  std::string v = typed_value(name, static_cast<int>(ParamType::kSize));
  Where w = where_of(name);
  return in_range(parse_size(v), ConfigError(w.file, w.line, ""), name, v, *find_param(name));
}

std::vector<std::string> Config::list(std::string_view name) const { return split_list(str(name)); }

std::vector<std::string> Config::check() const {
  std::vector<std::string> problems;
  auto attempt = [&](auto&& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      problems.emplace_back(e.what());
    }
  };
  for (const ParamSpec& spec : all_params()) {
    attempt([&] {
      switch (spec.type) {
        case ParamType::kInt: integer(spec.name); break;
        case ParamType::kBool: boolean(spec.name); break;
        case ParamType::kTime: seconds(spec.name); break;
        case ParamType::kSize: bytes(spec.name); break;
        case ParamType::kString: {
          std::string v = str(spec.name);
          if (!spec.choices.empty()) {
            bool ok = false;
            for (std::string_view c = spec.choices;;) {
              size_t bar = c.find('|');
              if (iequals(trim(v), c.substr(0, bar))) ok = true;
              if (bar == std::string_view::npos) break;
              c.remove_prefix(bar + 1);
            }
            if (!ok) {
              Where w = where_of(spec.name);
              bad_value(ConfigError(w.file, w.line, ""), spec.name, v, spec);
            }
          }
          break;
        }
      }
    });
  }
  // Parameters only main.cf knows (user-defined) must expand too.
  for (const auto& [name, e] : values_)
    if (!find_param(name)) attempt([&] { str(name); });
  return problems;
}

std::vector<const Config::Entry*> Config::unused() const {
  std::vector<const Entry*> out;
  for (const auto& [name, e] : values_) {
    if (find_param(name)) continue;
    bool referenced = false;
    for (const auto& [other, oe] : values_) {
      size_t at = 0;
      while (!referenced && (at = oe.value.find(name, at)) != std::string::npos) {
        bool starts = at > 0 && (oe.value[at - 1] == '$' || oe.value[at - 1] == '{' || oe.value[at - 1] == '(');
        bool ends = at + name.size() >= oe.value.size() || !is_name_char(oe.value[at + name.size()]);
        referenced = starts && ends;
        at += name.size();
      }
      if (referenced) break;
    }
    if (!referenced) out.push_back(&e);
  }
  return out;
}

}  // namespace postern
