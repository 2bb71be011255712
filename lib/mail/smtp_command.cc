// SMTP command lines, ESMTP parameters, xtext and replies (smtp_command.h).
#include "mail/smtp_command.h"

#include <cctype>

#include "mail/queue_file.h"
#include "util/strings.h"

namespace postern {

namespace {

// One "KEYWORD[=value]" word; parameters are separated by spaces.
struct Parameter {
  std::string keyword;  // upper case
  std::string_view value;
  bool has_value = false;
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::vector<Parameter> split_parameters(std::string_view text) {
  std::vector<Parameter> out;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    if (pos >= text.size()) break;
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(pos, end - pos);
    Parameter p;
    size_t eq = word.find('=');
    p.keyword = upper(word.substr(0, eq));
    if (eq != std::string_view::npos) {
      p.value = word.substr(eq + 1);
      p.has_value = true;
    }
    out.push_back(std::move(p));
    pos = end;
  }
  return out;
}

Failure bad(const std::string& reply) { return fail(reply); }

}  // namespace

SmtpCommand parse_smtp_command(std::string_view line) {
  line = trim(line, " \t\r");
  size_t sp = line.find(' ');
  SmtpCommand c;
  c.verb = upper(line.substr(0, sp));
  if (sp != std::string_view::npos) c.args = trim(line.substr(sp + 1), " \t");
  return c;
}

bool strip_path_keyword(std::string_view args, std::string_view keyword, std::string_view& rest) {
  if (args.size() < keyword.size() || !iequals(args.substr(0, keyword.size()), keyword)) return false;
  rest = trim(args.substr(keyword.size()), " ");
  return true;
}

const char* body_type_name(BodyType type) {
  switch (type) {
    case BodyType::k7Bit: return "7BIT";
    case BodyType::k8BitMime: return "8BITMIME";
    case BodyType::kBinaryMime: return "BINARYMIME";
    case BodyType::kUnspecified: break;
  }
  return "";
}

Result<std::string> decode_xtext(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '+') {
      if (i + 2 >= text.size()) return fail("truncated +XX");
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return fail("bad +XX");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c < '!' || c > '~' || c == '=') {
      return fail("bad character");
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Result<MailParameters> parse_mail_parameters(std::string_view text, const SmtpExtensions& offered) {
  MailParameters m;
  bool seen_size = false, seen_body = false, seen_ret = false, seen_envid = false, seen_auth = false;
  for (const Parameter& p : split_parameters(text)) {
    if (p.keyword == "SIZE") {
      auto n = parse_int(p.value);
      if (seen_size || !p.has_value || !n || *n < 0) return bad("501 5.5.4 Bad message size syntax");
      seen_size = true;
      m.size = static_cast<uint64_t>(*n);
      if (offered.size_limit > 0 && m.size > offered.size_limit)
        return bad("552 5.3.4 Message size exceeds fixed limit");
    } else if (p.keyword == "BODY") {
      std::string v = upper(p.value);
      if (seen_body || !p.has_value) return bad("501 5.5.4 Bad BODY keyword syntax");
      seen_body = true;
      if (v == "7BIT") m.body = BodyType::k7Bit;
      else if (v == "8BITMIME") m.body = BodyType::k8BitMime;
      else if (v == "BINARYMIME" && offered.chunking) m.body = BodyType::kBinaryMime;
      else return bad("501 5.5.4 Unsupported BODY parameter: " + std::string(p.value));
    } else if (p.keyword == "SMTPUTF8" && offered.smtputf8) {
      if (p.has_value) return bad("501 5.5.4 Bad SMTPUTF8 parameter syntax");
      m.smtputf8 = true;
    } else if (p.keyword == "RET" && offered.dsn) {
      std::string v = upper(p.value);
      if (seen_ret || (v != "FULL" && v != "HDRS")) return bad("501 5.5.4 Bad RET parameter syntax");
      seen_ret = true;
      m.ret = v == "FULL" ? "F" : "H";
    } else if (p.keyword == "ENVID" && offered.dsn) {
      auto v = decode_xtext(p.value);
      if (seen_envid || !p.has_value || p.value.empty() || !v || v->size() > 100)
        return bad("501 5.5.4 Bad ENVID parameter syntax");
      seen_envid = true;
      m.envid = *v;
    } else if (p.keyword == "AUTH" && offered.auth) {
      auto v = decode_xtext(p.value);
      if (seen_auth || !p.has_value || !v) return bad("501 5.5.4 Bad AUTH parameter syntax");
      seen_auth = true;
      m.auth = *v;
    } else {
      return bad("555 5.5.4 Unsupported option: " + std::string(p.keyword) +
                 (p.has_value ? "=" + std::string(p.value) : ""));
    }
  }
  return m;
}

Result<RcptParameters> parse_rcpt_parameters(std::string_view text, const SmtpExtensions& offered) {
  RcptParameters r;
  bool seen_orcpt = false;
  for (const Parameter& p : split_parameters(text)) {
    if (p.keyword == "NOTIFY" && offered.dsn) {
      if (r.notify != 0 || !p.has_value) return bad("501 5.5.4 Error: Bad NOTIFY parameter syntax");
      for (const std::string& word : split(p.value, ",")) {
        std::string w = upper(word);
        uint8_t bit = w == "NEVER" ? kNotifyNever
                      : w == "SUCCESS" ? kNotifySuccess
                      : w == "FAILURE" ? kNotifyFailure
                      : w == "DELAY" ? kNotifyDelay : 0;
        if (bit == 0 || (r.notify & bit)) return bad("501 5.5.4 Error: Bad NOTIFY parameter syntax");
        r.notify |= bit;
      }
      if (r.notify == 0 || ((r.notify & kNotifyNever) && r.notify != kNotifyNever))
        return bad("501 5.5.4 Error: Bad NOTIFY parameter syntax");
    } else if (p.keyword == "ORCPT" && offered.dsn) {
      size_t semi = p.value.find(';');
      if (seen_orcpt || semi == std::string_view::npos || semi == 0)
        return bad("501 5.5.4 Error: Bad ORCPT parameter syntax");
      auto address = decode_xtext(p.value.substr(semi + 1));
      if (!address || address->empty() || address->size() > 500)
        return bad("501 5.5.4 Error: Bad ORCPT parameter syntax");
      seen_orcpt = true;
      r.orcpt = std::string(p.value.substr(0, semi)) + ";" + *address;
    } else {
      return bad("555 5.5.4 Unsupported option: " + std::string(p.keyword) +
                 (p.has_value ? "=" + std::string(p.value) : ""));
    }
  }
  return r;
}

std::string smtp_reply(int code, std::string_view dsn, std::string_view text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t nl = text.find('\n', pos);
    lines.emplace_back(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return smtp_reply(code, dsn, lines);
}

std::string smtp_reply(int code, std::string_view dsn, const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += std::to_string(code);
    out += i + 1 < lines.size() ? '-' : ' ';
    if (!dsn.empty()) {
      out += dsn;
      out += ' ';
    }
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

}  // namespace postern
