// Postfix's logical lines and "name = value" assignments.
#include "util/logical_lines.h"

#include <cctype>

#include "util/error.h"
#include "util/strings.h"

namespace postern {

void for_each_logical_line(std::string_view text, const std::string& file,
                           const std::function<void(std::string_view, int)>& fn) {
  std::string logical;
  int start = 0;
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    std::string_view content = trim(raw);
    if (content.empty() || content.front() == '#') continue;
    if (content.data() != raw.data()) {  // begins with white space
      if (start == 0) throw ConfigError(file, number, "continuation line with nothing to continue");
      logical += ' ';
      logical += content;
      continue;
    }
    if (start != 0) fn(logical, start);
    logical.assign(content);
    start = number;
  }
  if (start != 0) fn(logical, start);
}

std::pair<std::string, std::string> split_assignment(std::string_view line, const std::string& file, int number,
                                                     std::string_view what) {
  const std::string kind(what);
  size_t eq = line.find('=');
  if (eq == std::string_view::npos)
    throw ConfigError(file, number, "missing '=' after " + kind + " name \"" + std::string(line) + "\"");
  std::string name(trim(line.substr(0, eq)));
  if (name.empty()) throw ConfigError(file, number, "missing " + kind + " name before '='");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      throw ConfigError(file, number, "invalid " + kind + " name \"" + name + "\"");
  return {name, std::string(trim(line.substr(eq + 1)))};
}

}  // namespace postern
