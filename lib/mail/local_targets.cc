// Target lists of aliases, .forward and :include: files, and forward_path
// expansion; see local_targets.h.
#include "mail/local_targets.h"

#include <cctype>

#include "util/strings.h"

namespace postern {
namespace {

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool starts_with_include(std::string_view s) {
  return s.size() >= 9 && iequals(s.substr(0, 9), ":include:");
}

}  // namespace

Result<std::vector<std::string>> split_targets(std::string_view text, bool comment_lines) {
  std::vector<std::string> pieces;
  size_t i = 0;
  bool line_start = true;
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (is_separator(c)) {
      ++i;
      continue;
    }
    if (line_start && comment_lines && c == '#') {
      size_t nl = text.find('\n', i);
      i = nl == std::string_view::npos ? text.size() : nl;
      continue;
    }
    line_start = false;
    std::string piece;
    if (c == '"') {
      size_t start = i++;
      bool closed = false;
      while (i < text.size()) {
        char q = text[i++];
        if (q == '\\' && i < text.size()) {
          piece += text[i++];
        } else if (q == '"') {
          closed = true;
          break;
        } else {
          piece += q;
        }
      }
      if (!closed) return fail("unclosed quote in \"" + std::string(text.substr(start, 40)) + "\"");
    } else if (c == '|') {
      // An unquoted command keeps its blanks: it ends at a comma or a line end.
      size_t end = text.find_first_of(",\n", i);
      if (end == std::string_view::npos) end = text.size();
      piece = std::string(trim(text.substr(i, end - i)));
      i = end;
    } else {
      size_t end = i;
      while (end < text.size() && !is_separator(text[end])) ++end;
      piece = std::string(text.substr(i, end - i));
      i = end;
    }
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

Result<LocalTarget> classify_target(std::string_view piece) {
  std::string p(trim(piece));
  if (p.empty()) return fail("empty target");
  if (p[0] == '|') {
    std::string command(trim(std::string_view(p).substr(1)));
    if (command.empty()) return fail("empty command in \"" + p + "\"");
    return LocalTarget{TargetKind::kCommand, command};
  }
  if (p[0] == '/') return LocalTarget{TargetKind::kFile, p};
  if (starts_with_include(p)) {
    std::string path(trim(std::string_view(p).substr(9)));
    if (path.empty() || path[0] != '/') return fail(":include: needs an absolute path in \"" + p + "\"");
    return LocalTarget{TargetKind::kInclude, path};
  }
  if (p[0] == '\\') {
    std::string user = p.substr(1);
    if (user.empty()) return fail("empty user name in \"" + p + "\"");
    return LocalTarget{TargetKind::kMailbox, user};
  }
  return LocalTarget{TargetKind::kAddress, p};
}

Result<std::vector<LocalTarget>> parse_targets(std::string_view text, bool comment_lines) {
  auto pieces = split_targets(text, comment_lines);
  if (!pieces) return pieces.failure();
  std::vector<LocalTarget> targets;
  for (const std::string& piece : *pieces) {
    auto target = classify_target(piece);
    if (!target) return target.failure();
    targets.push_back(std::move(*target));
  }
  return targets;
}

std::string expand_forward_element(std::string_view element, const std::map<std::string, std::string>& attributes) {
  auto value_of = [&](const std::string& name) -> std::string {
    auto it = attributes.find(name);
    return it == attributes.end() ? std::string() : it->second;
  };
  std::string out;
  size_t i = 0;
  while (i < element.size()) {
    char c = element[i];
    if (c != '$') {
      out += c;
      ++i;
      continue;
    }
    ++i;
    std::string name;
    char op = 0;
    std::string text;
    if (i < element.size() && element[i] == '{') {
      size_t close = element.find('}', i);
      if (close == std::string_view::npos) return "";  // malformed: skip the element
      std::string_view inner = element.substr(i + 1, close - i - 1);
      size_t sep = inner.find_first_of("?:");
      name = std::string(inner.substr(0, sep));
      if (sep != std::string_view::npos) {
        op = inner[sep];
        text = std::string(inner.substr(sep + 1));
      }
      i = close + 1;
    } else {
      while (i < element.size() && (std::isalnum(static_cast<unsigned char>(element[i])) || element[i] == '_'))
        name += element[i++];
    }
    if (name.empty()) return "";
    std::string value = value_of(name);
    if (op == '?') out += value.empty() ? "" : text;
    else if (op == ':') out += value.empty() ? text : value;
    else if (value.empty()) return "";
    else out += value;
  }
  return out;
}

std::vector<std::string> forward_files(std::string_view forward_path,
                                       const std::map<std::string, std::string>& attributes) {
  std::vector<std::string> files;
  for (const std::string& element : split_list(forward_path)) {
    std::string path = expand_forward_element(element, attributes);
    if (!path.empty()) files.push_back(std::move(path));
  }
  return files;
}

bool has_delivered_to(std::string_view message, std::string_view address) {
  constexpr std::string_view kName = "delivered-to:";
  while (!message.empty()) {
    size_t nl = message.find('\n');
    std::string_view line = message.substr(0, nl);
    message.remove_prefix(nl == std::string_view::npos ? message.size() : nl + 1);
    if (trim(line, "\r").empty()) break;  // the end of the header
    if (line.size() > kName.size() && iequals(line.substr(0, kName.size()), kName) &&
        iequals(trim(line.substr(kName.size())), address))
      return true;
  }
  return false;
}

}  // namespace postern
