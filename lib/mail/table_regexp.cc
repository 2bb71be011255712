// regexp:/path - POSIX regular expressions in Postfix's regexp_table(5) syntax:
//   /pattern/flags result     the first pattern that matches the whole key answers;
//                             $1..$9, ${n} or $(n) insert what a (group) matched, $$ a '$'
//   !/pattern/flags result    answers when the pattern does not match (no $n then)
//   if /pattern/flags         the lines up to the matching endif are tried only
//   if !/pattern/flags        when the pattern matches (does not match); nestable
//   endif
// Any character but a letter, digit or white space may delimit a pattern ("/" is
// usual). Flags toggle: i case-insensitive (on by default), x extended syntax (on
// by default), m multi-line. Keys are matched as given, not folded to lower case:
// the i flag decides. Every syntax error is reported as file:line when the table opens.
#include <regex.h>

#include <cctype>
#include <memory>
#include <vector>

#include "mail/table.h"
#include "mail/table_source.h"
#include "mail/table_types.h"
#include "util/error.h"
#include "util/file.h"
#include "util/strings.h"

namespace postern {
namespace {

// A compiled POSIX expression, freed when the owner goes away.
class Regex {
 public:
  Regex(const std::string& pattern, int cflags, const std::string& file, int line) {
    int ret = ::regcomp(&re_, pattern.c_str(), cflags);
    if (ret != 0) {
      char message[256];
      ::regerror(ret, &re_, message, sizeof message);  // re_ holds nothing to free after a failure
      throw ConfigError(file, line, "bad regular expression /" + pattern + "/: " + message);
    }
  }
  ~Regex() { ::regfree(&re_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  size_t groups() const { return re_.re_nsub; }
  // Fills matches (the whole match and every group) when text matches.
  bool match(const std::string& text, std::vector<regmatch_t>& matches) const {
    matches.resize(re_.re_nsub + 1);
    return ::regexec(&re_, text.c_str(), matches.size(), matches.data(), 0) == 0;
  }

 private:
  regex_t re_;
};

// A result is literal text and group references, split once when the table opens.
struct ResultPart {
  std::string text;
  size_t group = 0;  // when not 0: insert what this group matched
};

struct Rule {
  enum class Kind { kMatch, kIf, kEndif };
  Kind kind = Kind::kMatch;
  std::unique_ptr<Regex> regex;
  bool negated = false;
  std::vector<ResultPart> result;  // kMatch
  size_t endif = 0;                // kIf: index of its endif
};

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  std::vector<Rule> parse(std::string_view text) {
    for_each_logical_line(text, file_, [&](std::string_view line, int number) { parse_line(line, number); });
    if (!open_ifs_.empty()) throw ConfigError(file_, open_ifs_.back().line, "if without endif");
    return std::move(rules_);
  }

 private:
  struct OpenIf {
    size_t index;
    int line;
  };

  [[noreturn]] void fail(const std::string& what) const { throw ConfigError(file_, line_, what); }

  void parse_line(std::string_view line, int number) {
    line_ = number;
    size_t word_end = 0;
    while (word_end < line.size() && std::isalpha(static_cast<unsigned char>(line[word_end]))) ++word_end;
    std::string_view word = line.substr(0, word_end);
    Rule rule;
    if (iequals(word, "endif")) {
      if (!trim(line.substr(word_end)).empty()) fail("text after endif");
      if (open_ifs_.empty()) fail("endif without if");
      rules_[open_ifs_.back().index].endif = rules_.size();
      open_ifs_.pop_back();
      rule.kind = Rule::Kind::kEndif;
    } else if (iequals(word, "if")) {
      std::string_view rest = trim(line.substr(word_end));
      parse_pattern(rest, rule);
      if (!trim(rest).empty()) fail("text after the pattern of if");
      rule.kind = Rule::Kind::kIf;
      open_ifs_.push_back({rules_.size(), number});
    } else if (!word.empty()) {
      fail("expected /pattern/, if or endif, not \"" + std::string(word) + "\"");
    } else {
      std::string_view rest = line;
      parse_pattern(rest, rule);
      parse_result(trim(rest), rule);
    }
    rules_.push_back(std::move(rule));
  }

  // [!]<d>pattern<d>flags at the start of s; leaves s after the flags.
  void parse_pattern(std::string_view& s, Rule& rule) {
    if (!s.empty() && s.front() == '!') {
      rule.negated = true;
      s = trim(s.substr(1));
    }
    if (s.empty()) fail("missing pattern");
    char delimiter = s.front();
    if (std::isalnum(static_cast<unsigned char>(delimiter)) || delimiter == '\\')
      fail(std::string("bad pattern delimiter '") + delimiter + "'");
    size_t end = 1;
    for (; end < s.size() && s[end] != delimiter; ++end)
      if (s[end] == '\\' && end + 1 < s.size()) ++end;  // an escaped delimiter stays in the pattern
    if (end >= s.size()) fail(std::string("missing closing '") + delimiter + "' after the pattern");
    std::string pattern(s.substr(1, end - 1));
    int cflags = REG_ICASE | REG_EXTENDED;
    size_t pos = end + 1;
    for (; pos < s.size() && !std::isspace(static_cast<unsigned char>(s[pos])); ++pos) {
      switch (s[pos]) {
        case 'i': cflags ^= REG_ICASE; break;
        case 'x': cflags ^= REG_EXTENDED; break;
        case 'm': cflags ^= REG_NEWLINE; break;
        default: fail(std::string("unknown flag '") + s[pos] + "' after the pattern");
      }
    }
    rule.regex = std::make_unique<Regex>(pattern, cflags, file_, line_);
    s = s.substr(pos);
  }

  void parse_result(std::string_view text, Rule& rule) {
    if (text.empty()) fail("missing result after the pattern");
    std::string literal;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '$') {
        literal += text[i];
        continue;
      }
      if (++i == text.size()) fail("'$' at the end of the result (write $$ for a dollar sign)");
      if (text[i] == '$') {
        literal += '$';
        continue;
      }
      std::string_view number;
      if (std::isdigit(static_cast<unsigned char>(text[i]))) {
        number = text.substr(i, 1);
      } else if (text[i] == '{' || text[i] == '(') {
        size_t close = text.find(text[i] == '{' ? '}' : ')', i);
        if (close == std::string_view::npos) fail("unclosed $" + std::string(1, text[i]) + " in the result");
        number = text.substr(i + 1, close - i - 1);
        i = close;
      } else {
        fail("invalid '$' in the result (write $$ for a dollar sign)");
      }
      std::optional<int64_t> group = parse_int(number);
      if (!group || *group < 1) fail("invalid substitution $" + std::string(number) + " in the result");
      if (rule.negated) fail("$" + std::string(number) + " in the result of a negated pattern, which captures nothing");
      if (static_cast<size_t>(*group) > rule.regex->groups())
        fail("$" + std::string(number) + " refers past the " + std::to_string(rule.regex->groups()) +
             " group(s) of the pattern");
      rule.result.push_back({std::move(literal), static_cast<size_t>(*group)});
      literal.clear();
    }
    if (!literal.empty()) rule.result.push_back({std::move(literal), 0});
  }

  std::string file_;
  int line_ = 0;
  std::vector<Rule> rules_;
  std::vector<OpenIf> open_ifs_;
};

class RegexpTable final : public Table {
 public:
  RegexpTable(const std::string& path, std::vector<Rule> rules)
      : Table("regexp:" + path, TableOptions{.fold_case = false}), rules_(std::move(rules)) {}

 protected:
  LookupResult do_lookup(const std::string& key) override {
    std::vector<regmatch_t> m;
    for (size_t i = 0; i < rules_.size(); ++i) {
      const Rule& rule = rules_[i];
      if (rule.kind == Rule::Kind::kEndif) continue;
      bool matched = rule.regex->match(key, m) != rule.negated;
      if (rule.kind == Rule::Kind::kIf) {
        if (!matched) i = rule.endif;
        continue;
      }
      if (!matched) continue;
      std::string value;
      for (const ResultPart& part : rule.result) {
        value += part.text;
        if (part.group && m[part.group].rm_so >= 0)
          value.append(key, m[part.group].rm_so, m[part.group].rm_eo - m[part.group].rm_so);
      }
      return LookupResult::found(std::move(value));
    }
    return LookupResult::not_found();
  }

 private:
  std::vector<Rule> rules_;
};

}  // namespace

// Case is the i flag's business, so the table gets keys as given whatever options say.
std::unique_ptr<Table> open_regexp_table(std::string_view name, const TableOptions&) {
  std::string path(name);
  if (path.empty()) throw ConfigError("regexp:", 0, "missing file name");
  std::string text;
  try {
    text = read_file(path);
  } catch (const SystemError& e) {
    throw ConfigError(path, 0, std::string("cannot read: ") + e.code().message());
  }
  return std::make_unique<RegexpTable>(path, Parser(path).parse(text));
}

}  // namespace postern
