// Editing main.cf in place (postconf -e / -X).
#include "mail/main_cf_edit.h"

#include <sys/stat.h>

#include <cctype>
#include <set>

#include "mail/config.h"
#include "util/error.h"
#include "util/file.h"
#include "util/strings.h"

namespace postern {
namespace {

// The parameter a physical line starts, or "" for comments, blanks and continuations.
std::string name_on_line(std::string_view line) {
  if (line.empty() || std::isspace(static_cast<unsigned char>(line[0])) || line[0] == '#') return {};
  size_t eq = line.find('=');
  if (eq == std::string_view::npos) return {};
  return std::string(trim(line.substr(0, eq)));
}

bool continues(std::string_view line) {
  return !line.empty() && std::isspace(static_cast<unsigned char>(line[0])) && !trim(line).empty() &&
         trim(line)[0] != '#';
}

// Problems without their "file:line: " prefix, so that moved lines compare equal.
std::set<std::string> problem_texts(const Config& config) {
  std::set<std::string> out;
  for (const std::string& p : config.check()) {
    std::string_view v = p;
    size_t first = v.find(": ");
    out.insert(std::string(first == std::string_view::npos ? v : v.substr(first + 2)));
  }
  return out;
}

}  // namespace

std::string apply_main_cf_edits(const std::string& text, const std::vector<MainCfEdit>& edits) {
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  for (const MainCfEdit& edit : edits) {
    bool placed = false;
    std::vector<std::string> out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (name_on_line(lines[i]) != edit.name) {
        out.push_back(lines[i]);
        continue;
      }
      while (i + 1 < lines.size() && continues(lines[i + 1])) ++i;  // drop the old continuation lines
      if (edit.value && !placed) out.push_back(edit.name + " = " + *edit.value);
      placed = true;
    }
    if (edit.value && !placed) out.push_back(edit.name + " = " + *edit.value);
    lines = std::move(out);
  }
  std::string result;
  for (const std::string& l : lines) result += l + "\n";
  return result;
}

void edit_main_cf(const std::string& config_dir, const std::vector<MainCfEdit>& edits) {
  for (const MainCfEdit& e : edits) {
    if (e.name.empty() || e.name.find_first_of(" \t=#$") != std::string::npos)
      throw UsageError("invalid parameter name \"" + e.name + "\"");
    if (e.value && e.value->find('\n') != std::string::npos)
      throw UsageError("a value cannot contain a newline: " + e.name);
  }
  Config before = Config::load(config_dir);
  std::string path = before.main_cf_path();
  std::string text;
  mode_t mode = 0644;
  if (UniqueFd fd = open_file_if_exists(path, O_RDONLY); fd.valid()) {
    text = read_fd(fd.get());
    struct stat st;
    if (::fstat(fd.get(), &st) == 0) mode = st.st_mode & 07777;
  }
  std::string edited = apply_main_cf_edits(text, edits);
  Config after = Config::parse(config_dir, edited);
  std::set<std::string> old_problems = problem_texts(before);
  for (const std::string& p : problem_texts(after))
    if (!old_problems.count(p)) throw ConfigError(path, 0, "edit refused: " + p);
  AtomicFile file(path, mode);
  file.write(edited);
  file.commit();
}

}  // namespace postern
