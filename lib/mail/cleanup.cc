#include "mail/cleanup.h"

#include <sys/stat.h>
#include <time.h>

#include <cstring>
#include <chrono>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "mail/config.h"
#include "mail/queue_id.h"
#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"
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
  if (!message_.received.empty()) {
    out.insert(0, message_.received);
  } else if (message_.submit_uid >= 0) {
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

CleanupSettings cleanup_settings(const Config& config) {
  CleanupSettings s;
  s.myhostname = config.str("myhostname");
  s.mail_name = config.str("mail_name");
  int64_t size = config.bytes("message_size_limit");
  s.message_size_limit = size > 0 ? static_cast<uint64_t>(size) : 0;
  int64_t header = config.bytes("header_size_limit");
  s.header_size_limit = header > 0 ? static_cast<uint64_t>(header) : 102400;
  return s;
}

IncomingMessage::IncomingMessage(const Config& config, const CleanupBegin& begin, const ReceivedMaker& received)
    : spool_(config.str("queue_directory")),
      origin_(config.str("myorigin")),
      rewrite_context_(begin.rewrite_context),
      settings_(cleanup_settings(config)) {
  if (!begin.source_id.empty() && !is_valid_queue_id(begin.source_id))
    throw CleanupRefusal{"perm", "5.5.4 bad request: invalid source_id"};
  try {
    aliases_ = &process_virtual_aliases(config);
  } catch (const std::exception& e) {  // a table that cannot be opened now
    throw CleanupRefusal{"temp", std::string("4.3.0 virtual_alias_maps: ") + e.what()};
  }
  try {
    writer_ = begin.source_id.empty()
                  ? std::make_unique<QueueFileWriter>(incoming_folder())
                  : std::make_unique<QueueFileWriter>(incoming_folder(), 0600, begin.source_id);
  } catch (const SystemError& e) {
    throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
  }
  queue_id_ = writer_->queue_id();
  int64_t seconds = begin.arrival_seconds;
  int32_t micros = begin.arrival_microseconds;
  if (seconds <= 0) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    seconds = std::chrono::duration_cast<std::chrono::seconds>(now).count();
    micros = static_cast<int32_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count() % 1000000);
  }
  std::string sender = qualify_address(begin.sender, rewrite_context_, origin_);
  CleanupMessage message{queue_id_, sender, begin.full_name, seconds, begin.submit_uid,
                         received ? received(queue_id_) : std::string()};
  cleaner_ = std::make_unique<ContentCleaner>(settings_, std::move(message),
                                              [this](std::string_view text) { writer_->write_content(text); });
  try {
    writer_->set_arrival_time(seconds, micros);
    writer_->set_sender(sender);
    if (!begin.envid.empty()) writer_->set_envid(begin.envid);
    if (begin.ret == "F") writer_->set_ret(DsnRet::kFull);
    else if (begin.ret == "H") writer_->set_ret(DsnRet::kHeaders);
    else if (!begin.ret.empty()) throw CleanupRefusal{"perm", "5.5.4 bad DSN RET value"};
    for (const CleanupAttribute& a : begin.attributes) {
      if (a.name.empty() || a.name.size() > kMaxAttributeName || a.name.find('\0') != std::string::npos)
        throw CleanupRefusal{"perm", "5.5.4 bad attribute name"};
      writer_->add_attribute(a.name, a.value);
    }
  } catch (const SystemError& e) {
    throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
  } catch (const std::length_error& e) {  // a record over the queue file's limits
    throw CleanupRefusal{"perm", std::string("5.3.4 ") + e.what()};
  }
}

void IncomingMessage::add_recipient(const CleanupRecipient& rcpt) {
  if (rcpt.address.empty() || rcpt.notify < 0 || rcpt.notify > kNotifyMask)
    throw CleanupRefusal{"perm", "5.1.3 bad recipient"};
  // Virtual alias expansion: each final address is a recipient; the original one is kept as ORCPT.
  std::string address = qualify_address(rcpt.address, rewrite_context_, origin_);
  AliasExpansion expansion = aliases_->expand(address);
  if (!expansion.expanded())
    throw CleanupRefusal{expansion.status == AliasExpansion::Status::kDefer ? "temp" : "perm",
                         expansion.dsn + " " + expansion.reason};
  try {
    for (const std::string& final_address : expansion.addresses)
      writer_->add_recipient(final_address, rcpt.orcpt.empty() && expansion.changed ? "rfc822;" + address : rcpt.orcpt,
                             static_cast<uint8_t>(rcpt.notify));
  } catch (const SystemError& e) {
    throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
  } catch (const std::length_error& e) {
    throw CleanupRefusal{"perm", std::string("5.3.4 ") + e.what()};
  }
  ++recipients_;
}

void IncomingMessage::add_content(std::string_view text) {
  try {
    if (!cleaner_->feed(text)) throw CleanupRefusal{"perm", cleaner_->error()};
  } catch (const SystemError& e) {
    throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
  }
}

QueueFileWriter& IncomingMessage::finish() {
  try {
    if (!cleaner_->finish()) throw CleanupRefusal{"perm", cleaner_->error()};
  } catch (const SystemError& e) {
    throw CleanupRefusal{"temp", std::string("4.3.0 queue file write error: ") + e.what()};
  }
  if (recipients_ == 0) throw CleanupRefusal{"perm", "5.1.3 no recipients specified"};
  return *writer_;
}

std::unique_ptr<QueueFileWriter> IncomingMessage::release() { return std::move(writer_); }

void poke_qmgr(const std::string& spool) {
  std::string path = spool + "/public/qmgr";
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return;
  auto fd = connect_unix(path, std::chrono::milliseconds(100));
  if (!fd) log_debug("qmgr trigger: %s", fd.error().c_str());
}

}  // namespace postern
