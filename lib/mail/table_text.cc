// Tables that live in memory, read from text when opened:
//   texthash:/path                  a postmap(1) source file, without building a .db
//   inline:{ k=v, { k = v w } }     entries in the parameter value itself
//   static:value, static:{v w}      every key finds the same value
#include <map>
#include <optional>

#include "mail/table.h"
#include "mail/table_source.h"
#include "mail/table_types.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {
namespace {

using Entries = std::map<std::string, std::string, std::less<>>;

class MemoryTable final : public Table {
 public:
  MemoryTable(std::string spec, const TableOptions& options, Entries entries)
      : Table(std::move(spec), options), entries_(std::move(entries)) {}

  void for_each(const std::function<void(std::string_view, std::string_view)>& fn) override {
    for (const auto& [key, value] : entries_) fn(key, value);
  }

 protected:
  LookupResult do_lookup(const std::string& key) override {
    auto it = entries_.find(key);
    return it == entries_.end() ? LookupResult::not_found() : LookupResult::found(it->second);
  }

 private:
  Entries entries_;
};

class StaticTable final : public Table {
 public:
  StaticTable(std::string spec, const TableOptions& options, std::string value)
      : Table(std::move(spec), options), value_(std::move(value)) {}

 protected:
  LookupResult do_lookup(const std::string&) override { return LookupResult::found(value_); }

 private:
  std::string value_;
};

// The text between "{" and "}" around the whole of s, trimmed; nothing if s is not braced.
std::optional<std::string_view> inside_braces(std::string_view s) {
  s = trim(s);
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return std::nullopt;
  return trim(s.substr(1, s.size() - 2));
}

}  // namespace

std::unique_ptr<Table> open_texthash_table(std::string_view name, const TableOptions& options) {
  std::string path(name);
  std::string spec = "texthash:" + path;
  if (path.empty()) throw ConfigError(spec, 0, "missing file name");
  std::string text;
  try {
    text = read_file(path);
  } catch (const SystemError& e) {
    throw ConfigError(path, 0, std::string("cannot read: ") + e.code().message());
  }
  Entries entries;
  for (SourceEntry& e : parse_source(SourceFormat::kMap, text, path)) {
    std::string key = options.fold_case ? lowercase(e.key) : std::move(e.key);
    if (!entries.emplace(key, std::move(e.value)).second)
      log_warn("%s:%d: duplicate entry: \"%s\"", path.c_str(), e.line, key.c_str());
  }
  return std::make_unique<MemoryTable>(std::move(spec), options, std::move(entries));
}

// Postfix syntax: items separated by commas or white space; an item is key=value,
// or { key = value } when the value holds white space or commas.
std::unique_ptr<Table> open_inline_table(std::string_view name, const TableOptions& options) {
  std::string spec = "inline:" + std::string(name);
  std::optional<std::string_view> body = inside_braces(name);
  if (!body) throw ConfigError(spec, 0, "expected inline:{ key=value, ... }");
  Entries entries;
  for (const std::string& item : split_list(*body)) {
    std::string_view text = item;
    if (text.front() == '{') {
      std::optional<std::string_view> inner = inside_braces(text);
      if (!inner) throw ConfigError(spec, 0, "missing '}' in \"" + item + "\"");
      text = *inner;
    }
    size_t eq = text.find('=');
    if (eq == std::string_view::npos)
      throw ConfigError(spec, 0, "expected key=value or { key = value }, not \"" + item + "\"");
    std::string key(trim(text.substr(0, eq)));
    std::string_view value = trim(text.substr(eq + 1));
    if (key.empty()) throw ConfigError(spec, 0, "missing key in \"" + item + "\"");
    if (value.empty()) throw ConfigError(spec, 0, "missing value in \"" + item + "\"");
    if (options.fold_case) key = lowercase(key);
    if (!entries.emplace(key, value).second) throw ConfigError(spec, 0, "duplicate key \"" + key + "\"");
  }
  if (entries.empty()) throw ConfigError(spec, 0, "empty table");
  return std::make_unique<MemoryTable>(std::move(spec), options, std::move(entries));
}

std::unique_ptr<Table> open_static_table(std::string_view name, const TableOptions& options) {
  std::string spec = "static:" + std::string(name);
  std::string_view value = name;
  if (!value.empty() && value.front() == '{') {
    std::optional<std::string_view> inner = inside_braces(value);
    if (!inner) throw ConfigError(spec, 0, "missing '}'");
    value = *inner;
  }
  return std::make_unique<StaticTable>(std::move(spec), options, std::string(value));
}

}  // namespace postern
