// main.cf: Postfix syntax (name = value, continuation lines that begin with white
// space, # comments), $name / ${name} expansion, ${name?text} (text when name is
// not empty), ${name:text} (text when name is empty) and ${name?{a}:{b}}.
// Values are kept as written and expanded when read, so "$myhostname" follows a
// later change of myhostname, as in Postfix. Typed getters validate against the
// parameter table and throw ConfigError naming the file and line the value came from.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace postern {

class Config {
 public:
  struct Entry {
    std::string name;
    std::string value;  // as written, unexpanded
    std::string file;   // where it was set: main.cf, or master.cf for a -o override
    int line = 0;
  };

  // Reads DIR/main.cf (a missing file means every default). Throws ConfigError on
  // syntax errors; a value's type is checked by check() and by the getters.
  static Config load(const std::string& config_dir);
  // The same from main.cf text that is not (yet) in the file: postconf -e checks an edit with it.
  static Config parse(const std::string& config_dir, const std::string& main_cf_text);
  // A configuration of defaults only, rooted at config_dir (for tests and tools).
  static Config defaults(const std::string& config_dir);
  // -c DIR if given, else $POSTERN_CONFIG_DIR, else the compiled-in kDefaultDir.
  static std::string choose_dir(const std::string& from_command_line);
  static constexpr const char* kDefaultDir = "/etc/postern";

  const std::string& dir() const { return dir_; }
  std::string main_cf_path() const { return dir_ + "/main.cf"; }
  std::string master_cf_path() const { return dir_ + "/master.cf"; }

  // The value with every $reference expanded.
  std::string str(std::string_view name) const;
  int64_t integer(std::string_view name) const;
  bool boolean(std::string_view name) const;
  int64_t seconds(std::string_view name) const;  // kTime parameters
  int64_t bytes(std::string_view name) const;    // kSize parameters
  std::vector<std::string> list(std::string_view name) const;

  // The value as written (main.cf, override, or the default), or nothing for an
  // unknown parameter that was never set.
  std::optional<std::string> raw(std::string_view name) const;
  bool is_set(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  const Entry* entry(std::string_view name) const;
  // An error in a parameter's value, placed where it was set: "file:line: name:
  // what", or "main.cf: name: what" for a default.
  ConfigError error_in(std::string_view name, const std::string& what) const;
  // Every parameter set in main.cf or by override, by name.
  const std::map<std::string, Entry, std::less<>>& entries() const { return values_; }

  // Sets a value as master.cf "-o name=value" or a command line does.
  void set(std::string name, std::string value, std::string file, int line);

  // Expands $references in arbitrary text (master.cf arguments, table queries).
  std::string expand(std::string_view text) const;

  // Every problem in the configuration: values of the wrong type or out of range,
  // references to undefined parameters, reference cycles. Empty when all is well.
  std::vector<std::string> check() const;
  // Parameters set in main.cf that Postern does not know and no value refers to
  // (most often a typo); postconf warns about them as Postfix does.
  std::vector<const Entry*> unused() const;

 private:
  explicit Config(std::string dir);
  struct Where {
    std::string file;
    int line;
  };
  std::string expand_in(std::string_view text, std::vector<std::string>& stack, const Where& where) const;
  std::string value_of(std::string_view name, std::vector<std::string>& stack, const Where& where,
                       bool undefined_is_empty) const;
  Where where_of(std::string_view name) const;
  std::string typed_value(std::string_view name, int type) const;

  std::string dir_;
  std::map<std::string, Entry, std::less<>> values_;
};

// Parses a time value ("30s", "5m", "2h", "1d", "1w", or a bare number in default_unit).
std::optional<int64_t> parse_time(std::string_view text, char default_unit);
// Parses a size in bytes (a bare number; k, m, g suffixes are accepted as in 10m = 10 MiB).
std::optional<int64_t> parse_size(std::string_view text);
// yes/no (also true/false, 1/0, on/off as Postfix accepts).
std::optional<bool> parse_bool(std::string_view text);

}  // namespace postern
