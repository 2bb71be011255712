#include "mail/submission.h"

#include <unistd.h>

#include <cerrno>

#include "mail/address.h"
#include "util/error.h"
#include "util/strings.h"

namespace postern {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Just past the end of the quoted string (open = close = '"') or comment
// (nesting) that starts at text[i], or npos when it is not closed.
size_t skip_delimited(std::string_view text, size_t i, char open, char close) {
  int depth = 1;
  for (++i; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\') {
      ++i;
    } else if (c == close) {
      if (--depth == 0) return i + 1;
    } else if (c == open) {
      ++depth;
    }
  }
  return std::string_view::npos;
}

// One mailbox of a list while it is read: the addr-spec outside < >, with white
// space kept only where it separates two words (which makes it invalid), or the
// content of < > when there is one (the words before it are a display name).
struct Element {
  std::string bare;
  bool pending_space = false;
  bool have_angle = false;
  std::string angle;

  void add(std::string_view piece) {
    if (have_angle) return;  // text after <addr> is ignored, as Postfix's tok822 does
    if (pending_space && !bare.empty() && bare.back() != '@' && bare.back() != '.' && piece.front() != '@' &&
        piece.front() != '.')
      bare += ' ';
    pending_space = false;
    bare.append(piece);
  }
};

Result<void> finish(Element& e, std::vector<std::string>& out) {
  std::string address;
  if (e.have_angle) {
    std::string_view a = trim(e.angle);
    if (!a.empty() && a.front() == '@') {  // a source route: "@a,@b:user@d"
      size_t colon = a.find(':');
      if (colon == std::string_view::npos) return fail("malformed source route in <" + std::string(a) + ">");
      a = trim(a.substr(colon + 1));
    }
    if (a.empty()) return fail("empty address <>");
    address = a;
  } else {
    if (e.bare.empty()) {
      e = Element{};
      return {};  // ",," and empty groups give nothing
    }
    // A space left between two words outside quotes: "John Doe" without <address>.
    bool quoted = false;
    for (size_t i = 0; i < e.bare.size(); ++i) {
      char c = e.bare[i];
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ' ' && !quoted) {
        return fail("malformed address \"" + e.bare + "\" (a name without <address>?)");
      }
    }
    address = e.bare;
  }
  out.push_back(std::move(address));
  e = Element{};
  return {};
}

}  // namespace

Result<std::vector<std::string>> parse_address_list(std::string_view text) {
  std::vector<std::string> out;
  Element e;
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (is_space(c)) {
      e.pending_space = true;
      ++i;
    } else if (c == '"') {
      size_t end = skip_delimited(text, i, '"', '"');
      if (end == std::string_view::npos) return fail("unterminated quoted string in \"" + std::string(text) + "\"");
      e.add(text.substr(i, end - i));
      i = end;
    } else if (c == '(') {
      size_t end = skip_delimited(text, i, '(', ')');
      if (end == std::string_view::npos) return fail("unterminated comment in \"" + std::string(text) + "\"");
      e.pending_space = true;
      i = end;
    } else if (c == '<') {
      if (e.have_angle) return fail("two <addresses> in one mailbox in \"" + std::string(text) + "\"");
      size_t j = i + 1;
      for (; j < text.size() && text[j] != '>'; ++j) {
        if (text[j] == '"') {
          size_t end = skip_delimited(text, j, '"', '"');
          if (end == std::string_view::npos) break;
          j = end - 1;
        } else if (text[j] == '\\') {
          ++j;
        }
      }
      if (j >= text.size()) return fail("missing '>' in \"" + std::string(text) + "\"");
      e.have_angle = true;
      e.angle = text.substr(i + 1, j - i - 1);
      i = j + 1;
    } else if (c == '>' || c == ')') {
      return fail(std::string("unbalanced '") + c + "' in \"" + std::string(text) + "\"");
    } else if (c == ',' || c == ';') {
      if (auto r = finish(e, out); !r) return r.failure();
      ++i;
    } else if (c == ':' && !e.have_angle) {
      e = Element{};  // what came before was a group name
      ++i;
    } else {
      size_t j = i;
      while (j < text.size() && !is_space(text[j]) && std::string_view("\"(<>),;:").find(text[j]) == std::string_view::npos) {
        if (text[j] == '\\' && j + 1 < text.size()) ++j;
        ++j;
      }
      if (j == i) ++j;  // a lone special character the loop did not take
      e.add(text.substr(i, j - i));
      i = j;
    }
  }
  if (auto r = finish(e, out); !r) return r.failure();
  return out;
}

Result<std::string> submission_address(std::string_view external) {
  AddressOptions options;
  options.allow_utf8 = true;
  options.allow_local_only = true;
  Result<Address> a = parse_mailbox(external, options);
  if (!a) return fail("bad address \"" + std::string(external) + "\": " + a.error());
  if (a->local.empty()) return fail("bad address \"" + std::string(external) + "\": empty local part");
  return a->domain.empty() ? a->local : a->local + "@" + a->domain;
}

// ---------------------------------------------------------------- input

bool MessageReader::fill() {
  if (eof_) return false;
  char chunk[65536];
  ssize_t n = retry_eintr([&] { return ::read(fd_, chunk, sizeof chunk); });
  if (n < 0) throw SystemError(errno, "read standard input");
  if (n == 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

Result<std::optional<std::string>> MessageReader::next_line(size_t max_line) {
  while (!done_) {
    std::string line;
    size_t nl = buffer_.find('\n', pos_);
    if (nl != std::string::npos) {
      line = buffer_.substr(pos_, nl - pos_);
      pos_ = nl + 1;
    } else if (eof_) {
      if (pos_ == buffer_.size()) break;
      line = buffer_.substr(pos_);
      pos_ = buffer_.size();
    } else {
      if (buffer_.size() - pos_ > max_line) return fail("line too long");
      buffer_.erase(0, pos_);
      pos_ = 0;
      fill();
      continue;
    }
    while (!line.empty() && line.back() == '\r') line.pop_back();
    if (at_start_) {
      size_t gt = line.find_first_not_of('>');
      if (gt != std::string::npos && line.compare(gt, 5, "From ") == 0) continue;
      at_start_ = false;
    }
    if (dot_ends_input_ && line == ".") break;
    return std::optional<std::string>(std::move(line));
  }
  done_ = true;
  return std::optional<std::string>();
}

// ---------------------------------------------------------------- header

bool is_header_start(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] > ' ' && line[i] < 127 && line[i] != ':') ++i;
  if (i == 0) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  return i < line.size() && line[i] == ':';
}

std::string_view header_name(std::string_view line) {
  size_t colon = line.find(':');
  return trim(line.substr(0, colon));
}

std::string HeaderField::value() const {
  std::string v = lines.front().substr(lines.front().find(':') + 1);
  for (size_t i = 1; i < lines.size(); ++i) v += lines[i];
  return v;
}

bool is_bcc_field(std::string_view name) { return iequals(name, "bcc") || iequals(name, "resent-bcc"); }

Result<std::vector<std::string>> header_recipients(const std::vector<HeaderField>& header) {
  static constexpr std::string_view kPlain[] = {"to", "cc", "bcc"};
  static constexpr std::string_view kResent[] = {"resent-to", "resent-cc", "resent-bcc"};
  auto is_one_of = [](std::string_view name, const auto& names) {
    for (std::string_view n : names)
      if (iequals(name, n)) return true;
    return false;
  };
  bool resent = false;
  for (const HeaderField& f : header)
    if (is_one_of(f.name(), kResent)) resent = true;
  std::vector<std::string> out;
  for (const HeaderField& f : header) {
    if (!(resent ? is_one_of(f.name(), kResent) : is_one_of(f.name(), kPlain))) continue;
    Result<std::vector<std::string>> list = parse_address_list(f.value());
    if (!list) return fail(std::string(f.name()) + ": " + list.error());
    for (std::string& a : *list) {
      Result<std::string> internal = submission_address(a);
      if (!internal) return fail(std::string(f.name()) + ": " + internal.error());
      out.push_back(std::move(*internal));
    }
  }
  return out;
}

}  // namespace postern
