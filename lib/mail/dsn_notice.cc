// Delivery status notifications: routing, composition and submission.
#include "mail/dsn_notice.h"

#include <algorithm>
#include <ctime>

#include "mail/cleanup.h"
#include "mail/cleanup_client.h"
#include "mail/config.h"
#include "util/strings.h"

namespace postern {
namespace {

constexpr std::string_view kHeaderFrom = "From: Mail Delivery System <MAILER-DAEMON@";

bool has_8bit(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// At most limit bytes of text, cut after the last line end that fits.
std::string_view cut_at_line(std::string_view text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t nl = text.substr(0, limit).rfind('\n');
  return text.substr(0, nl == std::string_view::npos ? 0 : nl + 1);
}

// "rfc822;user@example.com" -> "rfc822; user@example.com".
std::string dsn_address_field(std::string_view orcpt) {
  size_t semi = orcpt.find(';');
  if (semi == std::string_view::npos) return "rfc822; " + std::string(orcpt);
  return std::string(trim(orcpt.substr(0, semi))) + "; " + std::string(trim(orcpt.substr(semi + 1)));
}

std::string human_part(const NoticeSettings& s, const NoticeInput& in) {
  std::string text = "This is the mail system at host " + s.myhostname + ".\n\n";
  if (in.kind == NoticeKind::kFailure) {
    text +=
        "I'm sorry to have to tell you that your message could not be delivered to\n"
        "one or more of its recipients. It is attached below.\n\n"
        "For help, please write to postmaster and include this report. You may\n"
        "remove the attached message from it.\n\n";
  } else {
    int64_t hours = std::max<int64_t>(0, in.now - in.arrival_seconds) / 3600;
    text +=
        "THIS IS A WARNING ONLY. YOU DO NOT NEED TO SEND YOUR MESSAGE AGAIN.\n\n"
        "Your message has not been delivered to one or more of its recipients yet\n"
        "(it has waited " + std::to_string(hours) + " hour" + (hours == 1 ? "" : "s") +
        "). The mail system keeps trying and will tell you\n"
        "if it gives up.\n\n";
  }
  text += "                   The mail system\n\n";
  for (const StatusRecord& r : in.records) text += "<" + r.recipient + ">: " + r.reason + "\n";
  return text;
}

std::string status_part(const NoticeSettings& s, const NoticeInput& in) {
  std::string text = "Reporting-MTA: dns; " + s.myhostname + "\n";
  text += "X-Postern-Queue-ID: " + in.queue_id + "\n";
  text += "X-Postern-Sender: rfc822; " + in.original_sender + "\n";
  if (!in.envid.empty()) text += "Original-Envelope-Id: " + in.envid + "\n";
  text += "Arrival-Date: " + rfc5322_date(in.arrival_seconds) + "\n";
  const char* action = in.kind == NoticeKind::kFailure ? "failed" : "delayed";
  for (const StatusRecord& r : in.records) {
    text += "\nFinal-Recipient: rfc822; " + r.recipient + "\n";
    if (!r.orcpt.empty()) text += "Original-Recipient: " + dsn_address_field(r.orcpt) + "\n";
    text += std::string("Action: ") + action + "\n";
    text += "Status: " + r.status + "\n";
    if (!r.diagnostic.empty()) text += "Diagnostic-Code: " + r.diagnostic + "\n";
  }
  return text;
}

Result<CleanupReply> submit_notice(const std::string& spool, const NoticeRoute& route, const std::string& text,
                                   Timeout timeout) {
  auto client = CleanupClient::connect(spool, timeout);
  if (!client) return client.failure();
  CleanupBegin begin;
  begin.origin = "bounce";
  begin.sender = route.sender;
  begin.rewrite_context = "local";
  Result<void> sent = client->begin(begin);
  if (sent) sent = client->add_recipient({route.recipient, "", 0});
  if (sent) sent = client->write_content(text);
  if (!sent) return sent.failure();
  return client->finish();
}

}  // namespace

NoticeSettings NoticeSettings::from_config(const Config& config) {
  NoticeSettings s;
  s.myhostname = config.str("myhostname");
  s.myorigin = config.str("myorigin");
  s.double_bounce_sender = config.str("double_bounce_sender");
  s.two_bounce_recipient = config.str("2bounce_notice_recipient");
  s.size_limit = static_cast<size_t>(config.bytes("bounce_size_limit"));
  return s;
}

std::string NoticeSettings::double_bounce_address() const {
  if (double_bounce_sender.find('@') != std::string::npos || myorigin.empty()) return double_bounce_sender;
  return double_bounce_sender + "@" + myorigin;
}

bool wants_notice(int notify, NoticeKind kind) {
  if (notify == 0) return true;  // RFC 3461: the MTA's default, FAILURE (and DELAY)
  return (notify & (kind == NoticeKind::kFailure ? kNotifyFailure : kNotifyDelay)) != 0;
}

NoticeRoute route_notice(const NoticeSettings& s, std::string_view original_sender, NoticeKind kind) {
  NoticeRoute route;
  std::string_view local = original_sender.substr(0, original_sender.rfind('@'));
  bool from_double_bounce = iequals(original_sender, s.double_bounce_address()) ||
                            (original_sender.find('@') == std::string_view::npos && iequals(local, s.double_bounce_sender));
  if (from_double_bounce || (original_sender.empty() && kind == NoticeKind::kDelay)) {
    route.discard = true;
  } else if (original_sender.empty()) {
    route.sender = s.double_bounce_address();
    route.recipient = s.two_bounce_recipient;
  } else {
    route.recipient = std::string(original_sender);
  }
  return route;
}

std::string compose_notice(const NoticeSettings& s, const NoticeInput& in) {
  bool headers_only = in.ret == DsnRet::kHeaders;
  std::string_view original = in.original;
  if (headers_only) {
    size_t end = original.find("\n\n");
    if (end != std::string_view::npos) original = original.substr(0, end + 1);
  }
  original = cut_at_line(original, s.size_limit);
  bool eight_bit = has_8bit(original);

  std::string boundary = in.queue_id + "." + std::to_string(in.now) + "/" + s.myhostname;
  while (original.find("--" + boundary) != std::string_view::npos) boundary += "=";

  bool failure = in.kind == NoticeKind::kFailure;
  std::string text;
  text += std::string(kHeaderFrom) + s.myorigin + ">\n";
  text += std::string("Subject: ") +
          (failure ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)") + "\n";
  text += "To: <" + in.to + ">\n";
  text += "Auto-Submitted: auto-replied\n";
  text += "Date: " + rfc5322_date(in.now) + "\n";
  text += "Message-ID: <" + std::to_string(in.now) + "." + in.queue_id + (failure ? ".failure" : ".delay") + "@" +
          s.myhostname + ">\n";
  text += "MIME-Version: 1.0\n";
  text += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"" + boundary + "\"\n";
  text += std::string("Content-Transfer-Encoding: ") + (eight_bit ? "8bit" : "7bit") + "\n\n";
  text += "This is a MIME-encapsulated message.\n\n";

  text += "--" + boundary + "\n";
  text += "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n";
  text += human_part(s, in) + "\n";

  text += "--" + boundary + "\n";
  text += "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n";
  text += status_part(s, in) + "\n";

  if (!original.empty()) {
    text += "--" + boundary + "\n";
    if (headers_only) {
      text += std::string("Content-Description: ") + (failure ? "Undelivered" : "Delayed") + " Message Headers\n";
      text += "Content-Type: text/rfc822-headers\n";
    } else {
      text += std::string("Content-Description: ") + (failure ? "Undelivered" : "Delayed") + " Message\n";
      text += "Content-Type: message/rfc822\n";
    }
    if (eight_bit) text += "Content-Transfer-Encoding: 8bit\n";
    text += "\n";
    text += original;
    if (original.back() != '\n') text += "\n";
    text += "\n";
  }
  text += "--" + boundary + "--\n";
  return text;
}

Result<NoticeOutcome> send_notice(const std::string& spool, const NoticeSettings& settings, NoticeKind kind,
                                  const QueueFile& file, const std::vector<StatusRecord>& records, Timeout timeout) {
  const QueueEnvelope& env = file.envelope();
  NoticeRoute route = route_notice(settings, env.sender, kind);
  if (route.discard) {
    return NoticeOutcome{"", env.sender.empty() ? "no delay notice for the null sender"
                                                : "notice about mail from <" + env.sender + "> discarded"};
  }
  NoticeInput input;
  input.kind = kind;
  input.queue_id = file.queue_id();
  input.arrival_seconds = env.arrival_seconds;
  input.original_sender = env.sender;
  input.envid = env.envid;
  input.ret = env.ret;
  input.to = route.recipient;
  input.now = ::time(nullptr);
  for (const StatusRecord& r : records)
    if (env.sender.empty() || wants_notice(r.notify, kind)) input.records.push_back(r);
  if (input.records.empty()) return NoticeOutcome{"", "no recipient asked for one (DSN NOTIFY)"};
  // One byte more than the limit tells compose_notice to cut.
  size_t want = static_cast<size_t>(std::min<uint64_t>(env.content_size, settings.size_limit + 1));
  input.original.resize(want);
  input.original.resize(file.read_content(0, input.original.data(), want));

  // Cleanup may refuse a notice for what it returns (too big for
  // message_size_limit, a NUL byte): then only the header goes back, then nothing.
  Result<CleanupReply> reply = fail("");
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt == 1) input.ret = DsnRet::kHeaders;
    if (attempt == 2) input.original.clear();
    reply = submit_notice(spool, route, compose_notice(settings, input), timeout);
    if (!reply) return reply.failure();
    if (reply->status != "perm") break;
  }
  if (reply->status != "ok") return fail("cleanup: " + reply->status + ": " + reply->reason);
  return NoticeOutcome{reply->queue_id, ""};
}

}  // namespace postern
