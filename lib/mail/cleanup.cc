#include "mail/cleanup.h"

#include <time.h>

#include <cstring>
#include <ctime>
#include <utility>

#include "util/strings.h"

namespace postern {

std::string qualify_address(std::string_view internal, std::string_view rewrite_context, std::string_view origin) {
  if (internal.empty() || origin.empty() || rewrite_context == "remote") return std::string(internal);
  if (internal.find('@') != std::string_view::npos) return std::string(internal);
  return std::string(internal) + "@" + std::string(origin);
}

std::string rfc5322_date(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  localtime_r(&t, &tm);
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  long offset = tm.tm_gmtoff / 60;
  char sign = offset < 0 ? '-' : '+';
  if (offset < 0) offset = -offset;
  std::string out = format("%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", kDays[tm.tm_wday], tm.tm_mday,
                           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                           offset / 60, offset % 60);
  if (tm.tm_zone && *tm.tm_zone) out += format(" (%s)", tm.tm_zone);
  return out;
}

std::string display_phrase(std::string_view name) {
  std::string clean;
  for (char c : name)
    if (static_cast<unsigned char>(c) >= ' ' && c != 127) clean += c;
  std::string_view t = trim(clean);
  if (t.empty()) return "";
  bool atoms = true;
  for (char c : t) {
    unsigned char u = static_cast<unsigned char>(c);
    bool atext = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u >= 128 ||
                 std::strchr("!#$%&'*+-/=?^_`{|}~ ", c) != nullptr;
    atoms = atoms && atext;
  }
  if (atoms) return std::string(t);
  std::string out = "\"";
  for (char c : t) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

ContentCleaner::ContentCleaner(const CleanupSettings& settings, CleanupMessage message, Output out)
    : settings_(settings), message_(std::move(message)), out_(std::move(out)) {}

void ContentCleaner::refuse(std::string reason) {
  if (error_.empty()) error_ = std::move(reason);
  header_.clear();
  partial_.clear();
}

bool ContentCleaner::feed(std::string_view text) {
  if (failed()) return false;
  size_ += text.size();
  if (settings_.message_size_limit > 0 && size_ > settings_.message_size_limit) {
    refuse(format("5.3.4 message file too big (message_size_limit = %llu bytes)",
                  static_cast<unsigned long long>(settings_.message_size_limit)));
    return false;
  }
  if (text.find('\0') != std::string_view::npos) {
    refuse("5.6.0 message content contains a NUL character");
    return false;
  }
  while (!text.empty() && !failed()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      if (!in_header_) {
        out_(text);  // a body line may be long: pass it on in pieces
        body_mid_line_ = true;
      } else {
        partial_ += text;
        if (partial_.size() > settings_.header_size_limit)
          refuse(format("5.6.0 message header field too long (header_size_limit = %llu bytes)",
                        static_cast<unsigned long long>(settings_.header_size_limit)));
      }
      break;
    }
    if (!in_header_) {
      out_(text.substr(0, nl + 1));
      body_mid_line_ = false;
    } else {
      partial_ += text.substr(0, nl);
      std::string whole = std::move(partial_);
      partial_.clear();
      line(whole);
    }
    text.remove_prefix(nl + 1);
  }
  return !failed();
}

void ContentCleaner::line(std::string_view text) {
  if (is_header_start(text)) {
    header_.push_back(HeaderField{{std::string(text)}});
    field_size_ = text.size() + 1;
  } else if (!header_.empty() && !text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    header_.back().lines.emplace_back(text);
    field_size_ += text.size() + 1;
  } else {
    // The empty line, or a first body line where the header ended without one.
    end_header();
    if (!text.empty()) {
      out_(text);
      out_("\n");
    }
    return;
  }
  if (field_size_ > settings_.header_size_limit)
    refuse(format("5.6.0 message header field too long (header_size_limit = %llu bytes)",
                  static_cast<unsigned long long>(settings_.header_size_limit)));
}

void ContentCleaner::end_header() {
  in_header_ = false;
  bool have_date = false, have_message_id = false, have_from = false;
  std::string out;
  for (const HeaderField& field : header_) {
    std::string_view name = field.name();
    if (iequals(name, "Date")) have_date = true;
    if (iequals(name, "From")) have_from = true;
    if (iequals(name, "Message-ID")) {
      have_message_id = true;
      message_id_ = std::string(trim(field.value()));
    }
    for (const std::string& l : field.lines) {
      out += l;
      out += '\n';
    }
  }
  const std::string& host = settings_.myhostname;
  if (message_.submit_uid >= 0) {
    // Postfix puts it first; a local submission has no earlier hop to record.
    out.insert(0, format("Received: by %s (%s, from userid %lld)\n\tid %s; %s\n", host.c_str(),
                         settings_.mail_name.c_str(), static_cast<long long>(message_.submit_uid),
                         message_.queue_id.c_str(), rfc5322_date(message_.arrival_seconds).c_str()));
  }
  if (!have_date) out += "Date: " + rfc5322_date(message_.arrival_seconds) + "\n";
  if (!have_message_id) {
    time_t t = static_cast<time_t>(message_.arrival_seconds);
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    message_id_ = format("<%s.%s@%s>", stamp, message_.queue_id.c_str(), host.c_str());
    out += "Message-Id: " + message_id_ + "\n";
  }
  if (!have_from) {
    std::string address = message_.sender.empty() ? "MAILER-DAEMON@" + host : message_.sender;
    std::string phrase = display_phrase(message_.full_name);
    out += phrase.empty() ? "From: " + address + "\n" : "From: " + phrase + " <" + address + ">\n";
  }
  out += '\n';
  header_.clear();
  out_(out);
}

bool ContentCleaner::finish() {
  if (failed()) return false;
  if (in_header_) {
    if (!partial_.empty()) {
      std::string last = std::move(partial_);
      partial_.clear();
      line(last);
    }
    if (in_header_ && !failed()) end_header();
  } else if (body_mid_line_) {
    out_("\n");
    body_mid_line_ = false;
  }
  return !failed();
}

}  // namespace postern
