// Unit tests for delivery status notifications and what they are made from: the
// status logs (format, parsing, the delay-warning mark), who gets a notice (DSN
// NOTIFY, double bounces), the composed report (structure, fields, RET=HDRS,
// bounce_size_limit), and the cleanup client against a scripted cleanup server.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mail/cleanup_client.h"
#include "mail/dsn_notice.h"
#include "mail/queue_tools.h"
#include "util/error.h"
#include "util/file.h"
#include "util/socket.h"

using namespace postern;
using namespace std::chrono_literals;
using postern::test::TempDir;

namespace {

NoticeSettings settings() {
  NoticeSettings s;
  s.myhostname = "mx.example.com";
  s.myorigin = "example.com";
  s.double_bounce_sender = "double-bounce";
  s.two_bounce_recipient = "postmaster";
  s.size_limit = 50000;
  return s;
}

NoticeInput failure_input() {
  NoticeInput in;
  in.kind = NoticeKind::kFailure;
  in.queue_id = "5BN5YL02n4z1bkW5";
  in.arrival_seconds = 1700000000;
  in.now = 1700000100;
  in.original_sender = "alice@example.org";
  in.to = "alice@example.org";
  in.records.push_back(StatusRecord{"bob@example.com", "rfc822;Bob@Example.com", 0, 120, "5.1.1", "failed",
                                    "user unknown", ""});
  in.original = "Subject: hi\nFrom: alice@example.org\n\nthe body\n";
  return in;
}

// The text between "--boundary\n" lines, by part number (0 is the preamble).
std::vector<std::string> parts_of(const std::string& notice) {
  auto b = notice.find("boundary=\"");
  REQUIRE(b != std::string::npos);
  std::string boundary = notice.substr(b + 10, notice.find('"', b + 10) - b - 10);
  std::string delimiter = "\n--" + boundary;
  std::vector<std::string> parts;
  size_t pos = notice.find("\n\n");  // the end of the header
  for (;;) {
    size_t next = notice.find(delimiter, pos);
    if (next == std::string::npos) break;
    parts.push_back(notice.substr(pos, next - pos));
    pos = next + delimiter.size();
  }
  REQUIRE(notice.substr(pos) == "--\n");  // the close delimiter ends the notice
  return parts;
}

}  // namespace

TEST_CASE("status log blocks round trip and skip what they do not know", "[dsn]") {
  StatusRecord r{"bob@example.com", "rfc822;bob@example.com", kNotifyFailure, 77, "5.1.1", "failed",
                 "user\nunknown", "smtp; 550 no"};
  std::string block = format_status_block(r);
  CHECK(block ==
        "recipient=bob@example.com\norcpt=rfc822;bob@example.com\nnotify=4\noffset=77\nstatus=5.1.1\n"
        "action=failed\nreason=user unknown\ndiagnostic=smtp; 550 no\n\n");
  auto records = parse_status_log("junk line\nrecipient=x@y\nstrange=1\nreason=r\n\ndelay_warning=sent\n\n" + block);
  REQUIRE(records.size() == 2);
  CHECK(records[0].recipient == "x@y");
  CHECK(records[0].reason == "r");
  CHECK(records[1].offset == 77);
  CHECK(records[1].notify == kNotifyFailure);
  CHECK(records[1].reason == "user unknown");
  CHECK(records[1].diagnostic == "smtp; 550 no");
}

TEST_CASE("status logs append durably and record one delay warning", "[dsn]") {
  TempDir dir;
  ::mkdir((dir.path + "/defer").c_str(), 0700);
  const std::string id = "5BN5YL02n4z1bkW5";
  CHECK(read_status_log(dir.path, "defer", id).empty());
  CHECK_FALSE(delay_warning_sent(dir.path, id));
  append_status_log(dir.path, "defer", id, {{"a@x", "", 0, 10, "4.3.0", "delayed", "first", ""}}, true);
  append_status_log(dir.path, "defer", id, {{"a@x", "", 0, 10, "4.4.1", "delayed", "second", ""}}, false);
  record_delay_warning(dir.path, id);
  CHECK(delay_warning_sent(dir.path, id));
  CHECK(read_status_log(dir.path, "defer", id).size() == 2);
  CHECK(defer_reasons(dir.path, id) == std::map<std::string, std::string>{{"a@x", "second"}});
  std::vector<StatusRecord> one{{"a@x", "", 0, 1, "", "", "", ""}};
  CHECK_THROWS_AS(append_status_log(dir.path, "nosuchfolder", id, one, true), SystemError);
}

TEST_CASE("DSN NOTIFY decides which recipients are reported", "[dsn]") {
  CHECK(wants_notice(0, NoticeKind::kFailure));
  CHECK(wants_notice(0, NoticeKind::kDelay));
  CHECK(wants_notice(kNotifyFailure, NoticeKind::kFailure));
  CHECK_FALSE(wants_notice(kNotifyFailure, NoticeKind::kDelay));
  CHECK_FALSE(wants_notice(kNotifyNever, NoticeKind::kFailure));
  CHECK_FALSE(wants_notice(kNotifyNever, NoticeKind::kDelay));
  CHECK_FALSE(wants_notice(kNotifySuccess | kNotifyDelay, NoticeKind::kFailure));
  CHECK(wants_notice(kNotifySuccess | kNotifyDelay, NoticeKind::kDelay));
}

TEST_CASE("notices go to the sender, bounces of bounces to postmaster, double bounces nowhere", "[dsn]") {
  NoticeSettings s = settings();
  NoticeRoute r = route_notice(s, "alice@example.org", NoticeKind::kFailure);
  CHECK_FALSE(r.discard);
  CHECK(r.sender.empty());
  CHECK(r.recipient == "alice@example.org");
  r = route_notice(s, "", NoticeKind::kFailure);
  CHECK_FALSE(r.discard);
  CHECK(r.sender == "double-bounce@example.com");
  CHECK(r.recipient == "postmaster");
  CHECK(route_notice(s, "", NoticeKind::kDelay).discard);
  CHECK(route_notice(s, "double-bounce@example.com", NoticeKind::kFailure).discard);
  CHECK(route_notice(s, "Double-Bounce@Example.COM", NoticeKind::kFailure).discard);
  CHECK(route_notice(s, "double-bounce", NoticeKind::kFailure).discard);
  CHECK_FALSE(route_notice(s, "double-bounce@elsewhere.org", NoticeKind::kFailure).discard);
}

TEST_CASE("a non-delivery notice is a multipart/report with the original", "[dsn]") {
  std::string n = compose_notice(settings(), failure_input());
  std::string header = n.substr(0, n.find("\n\n") + 1);
  CHECK(header.find("From: Mail Delivery System <MAILER-DAEMON@example.com>\n") != std::string::npos);
  CHECK(header.find("Subject: Undelivered Mail Returned to Sender\n") != std::string::npos);
  CHECK(header.find("To: <alice@example.org>\n") != std::string::npos);
  CHECK(header.find("Auto-Submitted: auto-replied\n") != std::string::npos);
  CHECK(header.find("\nDate: ") != std::string::npos);
  CHECK(header.find("\nMessage-ID: <") != std::string::npos);
  CHECK(header.find("MIME-Version: 1.0\n") != std::string::npos);
  CHECK(header.find("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"") !=
        std::string::npos);
  auto parts = parts_of(n);
  REQUIRE(parts.size() == 4);
  CHECK(parts[1].find("Content-Type: text/plain") != std::string::npos);
  CHECK(parts[1].find("This is the mail system at host mx.example.com.") != std::string::npos);
  CHECK(parts[1].find("<bob@example.com>: user unknown\n") != std::string::npos);
  CHECK(parts[2].find("Content-Type: message/delivery-status\n\n") != std::string::npos);
  CHECK(parts[2].find("Reporting-MTA: dns; mx.example.com\n") != std::string::npos);
  CHECK(parts[2].find("X-Postern-Queue-ID: 5BN5YL02n4z1bkW5\n") != std::string::npos);
  CHECK(parts[2].find("Arrival-Date: ") != std::string::npos);
  CHECK(parts[2].find("\n\nFinal-Recipient: rfc822; bob@example.com\nOriginal-Recipient: rfc822; Bob@Example.com\n"
                      "Action: failed\nStatus: 5.1.1\n") != std::string::npos);
  CHECK(parts[2].find("Diagnostic-Code") == std::string::npos);  // not a remote reply
  CHECK(parts[3].find("Content-Type: message/rfc822\n\nSubject: hi\nFrom: alice@example.org\n\nthe body\n") !=
        std::string::npos);
}

TEST_CASE("RET=HDRS returns the header only; a remote reply is the Diagnostic-Code", "[dsn]") {
  NoticeInput in = failure_input();
  in.ret = DsnRet::kHeaders;
  in.records[0].diagnostic = "smtp; 550 5.1.1 no such mailbox";
  in.records[0].orcpt.clear();
  auto parts = parts_of(compose_notice(settings(), in));
  REQUIRE(parts.size() == 4);
  CHECK(parts[2].find("Diagnostic-Code: smtp; 550 5.1.1 no such mailbox\n") != std::string::npos);
  CHECK(parts[2].find("Original-Recipient") == std::string::npos);
  CHECK(parts[3].find("Content-Type: text/rfc822-headers\n\nSubject: hi\nFrom: alice@example.org\n") !=
        std::string::npos);
  CHECK(parts[3].find("the body") == std::string::npos);
}

TEST_CASE("the original is cut at a line end within bounce_size_limit", "[dsn]") {
  NoticeSettings s = settings();
  s.size_limit = 100;
  NoticeInput in = failure_input();
  in.original = "Subject: big\n\n";
  for (int i = 0; i < 50; ++i) in.original += "line " + std::to_string(i) + "\n";
  auto parts = parts_of(compose_notice(s, in));
  REQUIRE(parts.size() == 4);
  std::string returned = parts[3].substr(parts[3].find("\n\n", 1) + 2);
  CHECK(returned.size() <= 100 + 1);
  CHECK(returned.find("line 0\n") != std::string::npos);
  CHECK(returned.find("line 49") == std::string::npos);
  CHECK(returned.back() == '\n');
}

TEST_CASE("a delay warning says Action: delayed; 8-bit originals are declared", "[dsn]") {
  NoticeInput in = failure_input();
  in.kind = NoticeKind::kDelay;
  in.original = "Subject: caf\xc3\xa9\n\nbody\n";
  in.records[0].status = "4.4.1";
  std::string n = compose_notice(settings(), in);
  CHECK(n.find("Subject: Delayed Mail (still being retried)\n") != std::string::npos);
  CHECK(n.find("Content-Transfer-Encoding: 8bit\n") != std::string::npos);
  auto parts = parts_of(n);
  REQUIRE(parts.size() == 4);
  CHECK(parts[2].find("Action: delayed\nStatus: 4.4.1\n") != std::string::npos);
  CHECK(parts[3].find("Content-Description: Delayed Message\n") != std::string::npos);
}

TEST_CASE("the boundary never occurs in the original", "[dsn]") {
  NoticeInput in = failure_input();
  std::string first = compose_notice(settings(), in);
  std::string boundary = first.substr(first.find("boundary=\"") + 10);
  boundary = boundary.substr(0, boundary.find('"'));
  in.original = "Subject: tricky\n\n--" + boundary + "\n";
  auto parts = parts_of(compose_notice(settings(), in));
  CHECK(parts.size() == 4);
}

TEST_CASE("the cleanup client keeps recipients and content in order and reports cleanup's answer", "[dsn]") {
  TempDir dir;
  ::mkdir((dir.path + "/public").c_str(), 0700);
  auto listener = listen_unix(dir.path + "/public/cleanup", 0600);
  REQUIRE(listener);
  std::vector<std::string> seen;  // frame types, with the recipient count or content size
  std::string content;
  std::thread server([&] {
    set_nonblocking(listener->get(), false);
    auto client = accept_connection(listener->get());
    REQUIRE(client);
    int fd = client->get();
    REQUIRE(write_message(fd, make_hello(kCleanupService), 5s));
    for (;;) {
      auto frame = read_frame(fd, 5s);
      REQUIRE(frame);
      std::string type = *peek_type(*frame);
      if (type == CleanupRecipients::kType) {
        seen.push_back(type + ":" + std::to_string(decode<CleanupRecipients>(*frame)->recipients.size()));
      } else if (type == CleanupContent::kType) {
        content += decode<CleanupContent>(*frame)->data;
        seen.push_back(type);
      } else {
        seen.push_back(type);
      }
      if (type == CleanupEnd::kType) break;
    }
    REQUIRE(write_message(fd, CleanupReply{"perm", "", "5.3.4 message file too big"}, 5s));
  });
  auto client = CleanupClient::connect(dir.path, 5s);
  REQUIRE(client);
  CHECK(client->begin(CleanupBegin{}));
  CHECK(client->add_recipient({"a@x", "", 0}));
  CHECK(client->add_recipient({"b@x", "", 0}));
  std::string big(kCleanupChunk + 10, 'x');
  CHECK(client->write_content(big));
  CHECK(client->write_content("tail\n"));
  CHECK(client->add_recipient({"c@x", "", 0}));
  auto reply = client->finish();
  server.join();
  REQUIRE(reply);
  CHECK(reply->status == "perm");
  CHECK(reply->reason == "5.3.4 message file too big");
  CHECK(content == big + "tail\n");
  CHECK(seen == std::vector<std::string>{"cleanup-begin", "cleanup-recipients:2", "cleanup-content",
                                         "cleanup-content", "cleanup-recipients:1", "cleanup-end"});
}

TEST_CASE("the cleanup client fails clearly when cleanup is not there", "[dsn]") {
  TempDir dir;
  auto client = CleanupClient::connect(dir.path, 1s);
  REQUIRE_FALSE(client);
  CHECK(client.error().find("connect to cleanup") == 0);
}

TEST_CASE("without an original the report has two parts", "[dsn]") {
  NoticeInput in = failure_input();
  in.original.clear();
  auto parts = parts_of(compose_notice(settings(), in));
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].find("Content-Type: message/delivery-status") != std::string::npos);
}
