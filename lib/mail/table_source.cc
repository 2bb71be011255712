// Parsing postmap(1) and aliases(5) source files into entries.
#include "mail/table_source.h"

#include "util/error.h"
#include "util/logical_lines.h"
#include "util/strings.h"

namespace postern {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Reads a double-quoted string at the start of s (s[0] == '"'), undoing \" and \\;
// returns the text and leaves s after the closing quote.
std::string unquote(std::string_view& s, const std::string& file, int line) {
  std::string out;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      out += s[++i];
    } else if (c == '"') {
      s.remove_prefix(i + 1);
      return out;
    } else {
      out += c;
    }
  }
  throw ConfigError(file, line, "missing closing double quote");
}

SourceEntry parse_map_line(std::string_view line, const std::string& file, int number) {
  SourceEntry e;
  e.line = number;
  std::string_view rest = line;
  if (rest.front() == '"') {
    e.key = unquote(rest, file, number);
    if (!rest.empty() && !is_blank(rest.front()))
      throw ConfigError(file, number, "text after the closing quote of the key");
    if (e.key.empty()) throw ConfigError(file, number, "empty key");
  } else {
    size_t blank = rest.find_first_of(" \t");
    e.key = std::string(rest.substr(0, blank));
    rest = blank == std::string_view::npos ? std::string_view() : rest.substr(blank);
  }
  e.value = std::string(trim(rest));
  if (e.value.empty()) throw ConfigError(file, number, "expected format: key whitespace value");
  return e;
}

bool is_include(std::string_view v) { return v.size() >= 9 && iequals(v.substr(0, 9), ":include:"); }

// One alias target: what local delivery will do with it decides what it needs.
// White space outside quotes is most often a missing comma, so only a command and
// an :include: may hold it unquoted.
void check_alias_value(std::string_view item, const std::string& file, int number) {
  std::string_view v = item;
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    v = trim(v.substr(1, v.size() - 2));
  } else if (v.front() != '|' && !is_include(v)) {
    bool quoted = false;
    for (char c : v) {
      if (c == '"') quoted = !quoted;
      else if (is_blank(c) && !quoted)
        throw ConfigError(file, number, "white space in \"" + std::string(item) +
                                            "\" (a missing comma? quote a value that holds white space)");
    }
  }
  if (is_include(v) && trim(v.substr(9)).empty()) throw ConfigError(file, number, ":include: without a file name");
  if (v.front() == '|' && trim(v.substr(1)).empty()) throw ConfigError(file, number, "| without a command");
}

SourceEntry parse_alias_line(std::string_view line, const std::string& file, int number) {
  SourceEntry e;
  e.line = number;
  std::string_view rest = line;
  if (rest.front() == '"') {
    e.key = unquote(rest, file, number);
    rest = trim(rest);
    if (rest.empty() || rest.front() != ':') throw ConfigError(file, number, "missing ':' after the alias name");
  } else {
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos) throw ConfigError(file, number, "missing ':' after the alias name");
    e.key = std::string(trim(rest.substr(0, colon)));
    if (e.key.find_first_of(" \t") != std::string::npos)
      throw ConfigError(file, number, "white space in alias name \"" + e.key + "\" (quote the name)");
    rest = rest.substr(colon);
  }
  if (e.key.empty()) throw ConfigError(file, number, "empty alias name");
  rest.remove_prefix(1);  // the colon

  // Values are separated by commas outside double quotes.
  std::vector<std::string> items;
  bool quoted = false;
  size_t begin = 0;
  for (size_t i = 0; i <= rest.size(); ++i) {
    if (quoted && i + 1 < rest.size() && rest[i] == '\\') {
      ++i;
    } else if (i < rest.size() && rest[i] == '"') {
      quoted = !quoted;
    } else if (i == rest.size() || (rest[i] == ',' && !quoted)) {
      std::string_view item = trim(rest.substr(begin, i - begin));
      if (!item.empty()) {
        check_alias_value(item, file, number);
        items.emplace_back(item);
      }
      begin = i + 1;
    }
  }
  if (quoted) throw ConfigError(file, number, "missing closing double quote");
  if (items.empty()) throw ConfigError(file, number, "no value for alias \"" + e.key + "\"");
  e.value = join(items, ", ");
  return e;
}

}  // namespace

std::vector<SourceEntry> parse_source(SourceFormat format, std::string_view text, const std::string& file) {
  std::vector<SourceEntry> entries;
  for_each_logical_line(text, file, [&](std::string_view line, int number) {
    entries.push_back(format == SourceFormat::kMap ? parse_map_line(line, file, number)
                                                   : parse_alias_line(line, file, number));
  });
  return entries;
}

}  // namespace postern
