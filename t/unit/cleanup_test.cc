// Unit tests for cleanup's content processing (lib/mail/cleanup.h): headers added
// when missing and kept when present, the display name, folding, envelope
// qualification, and the refusals (size, header field size, NUL).
#include <catch2/catch.hpp>

#include <string>

#include "mail/cleanup.h"

using namespace postern;

namespace {

struct Run {
  bool ok;
  std::string out;
  std::string error;
  std::string message_id;
};

CleanupSettings settings() {
  CleanupSettings s;
  s.myhostname = "mail.example.com";
  s.message_size_limit = 1000;
  s.header_size_limit = 200;
  return s;
}

// Feeds text in chunks of chunk bytes (to cross line boundaries anywhere).
Run clean(const std::string& text, CleanupMessage m = {}, size_t chunk = 7, CleanupSettings s = settings()) {
  if (m.queue_id.empty()) m.queue_id = "4ABCDEFGHIJ";
  if (m.sender.empty()) m.sender = "alice@example.com";
  if (m.arrival_seconds == 0) m.arrival_seconds = 1700000000;
  std::string out;
  ContentCleaner c(s, m, [&](std::string_view t) { out += t; });
  bool ok = true;
  for (size_t i = 0; i < text.size() && ok; i += chunk) ok = c.feed(std::string_view(text).substr(i, chunk));
  if (ok) ok = c.finish();
  return {ok, out, c.error(), c.message_id()};
}

std::string header_of(const std::string& out) { return out.substr(0, out.find("\n\n") + 1); }

}  // namespace

TEST_CASE("missing Date, Message-Id and From are added after the header", "[cleanup]") {
  Run r = clean("Subject: hi\nTo: bob@example.net\n\nbody line\n");
  REQUIRE(r.ok);
  std::string h = header_of(r.out);
  CHECK(h.rfind("Subject: hi\nTo: bob@example.net\nDate: ", 0) == 0);
  CHECK(h.find("\nMessage-Id: <") != std::string::npos);
  CHECK(r.message_id.find(".4ABCDEFGHIJ@mail.example.com>") != std::string::npos);
  CHECK(h.find("Message-Id: " + r.message_id + "\n") != std::string::npos);
  CHECK(h.find("\nFrom: alice@example.com\n") != std::string::npos);
  CHECK(h.find("Received:") == std::string::npos);  // not a local submission
  CHECK(r.out.substr(h.size()) == "\nbody line\n");
}

TEST_CASE("existing Date, Message-ID and From are kept as they are", "[cleanup]") {
  std::string in = "From: Someone <x@example.org>\ndate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                   "Message-ID: <given@example.org>\nSubject: s\n\nbody\n";
  Run r = clean(in);
  REQUIRE(r.ok);
  CHECK(r.out == in);
  CHECK(r.message_id == "<given@example.org>");
}

TEST_CASE("full_name becomes the display name of an added From", "[cleanup]") {
  CleanupMessage m;
  m.full_name = "Alice Liddell";
  CHECK(clean("Subject: s\n\nb\n", m).out.find("\nFrom: Alice Liddell <alice@example.com>\n") != std::string::npos);
  m.full_name = "Liddell, Alice \"Al\"";
  CHECK(clean("Subject: s\n\nb\n", m).out.find("\nFrom: \"Liddell, Alice \\\"Al\\\"\" <alice@example.com>\n") !=
        std::string::npos);
  CHECK(display_phrase("a\x01 b") == "a b");
  CHECK(display_phrase(" ") == "");
}

TEST_CASE("a local submission gets a Received field first", "[cleanup]") {
  CleanupMessage m;
  m.submit_uid = 1234;
  Run r = clean("Subject: s\n\nb\n", m);
  REQUIRE(r.ok);
  CHECK(r.out.rfind("Received: by mail.example.com (Postern, from userid 1234)\n\tid 4ABCDEFGHIJ; ", 0) == 0);
  CHECK(r.out.find("\nSubject: s\n") != std::string::npos);
}

TEST_CASE("folded fields stay folded and count as one field", "[cleanup]") {
  std::string in = "Subject: one\n two\n\tthree\nFrom: a@b\nDate: x\nMessage-Id: <m@x>\n\nbody\n";
  Run r = clean(in, {}, 3);
  REQUIRE(r.ok);
  CHECK(r.out == in);
  // A folded field over header_size_limit in total is refused although each line is short.
  std::string big = "Subject: x\n";
  for (int i = 0; i < 30; ++i) big += " continuation\n";
  Run b = clean(big + "\nbody\n");
  CHECK_FALSE(b.ok);
  CHECK(b.error.rfind("5.6.0 ", 0) == 0);
  CHECK(b.out.empty());
}

TEST_CASE("a message without a header or without the empty line gets one", "[cleanup]") {
  Run r = clean("just text\nmore\n");
  REQUIRE(r.ok);
  CHECK(r.out.find("\nFrom: alice@example.com\n\njust text\nmore\n") != std::string::npos);
  Run h = clean("Subject: s");  // header only, no final LF
  REQUIRE(h.ok);
  CHECK(h.out.rfind("Subject: s\nDate: ", 0) == 0);
  CHECK(h.out.size() >= 2);
  CHECK(h.out.substr(h.out.size() - 2) == "\n\n");
  Run t = clean("Subject: s\n\nno newline at end");
  CHECK(t.out.substr(t.out.size() - 19) == "\nno newline at end\n");
}

TEST_CASE("size, a long header line and NUL are refused", "[cleanup]") {
  Run big = clean("Subject: s\n\n" + std::string(1000, 'x') + "\n");
  CHECK_FALSE(big.ok);
  CHECK(big.error.rfind("5.3.4 message file too big", 0) == 0);
  Run line = clean("Subject: " + std::string(300, 'y') + "\n\nb\n", {}, 1000);
  CHECK_FALSE(line.ok);
  CHECK(line.error.rfind("5.6.0 ", 0) == 0);
  // A long body line is fine: only header fields are bounded.
  CHECK(clean("Subject: s\n\n" + std::string(500, 'z') + "\n").ok);
  Run nul = clean(std::string("Subject: s\n\na\0b\n", 16));
  CHECK_FALSE(nul.ok);
  CHECK(nul.error.rfind("5.6.0 ", 0) == 0);
}

TEST_CASE("envelope addresses without a domain get @myorigin in the local context", "[cleanup]") {
  CHECK(qualify_address("bob", "local", "example.com") == "bob@example.com");
  CHECK(qualify_address("bob", "", "example.com") == "bob@example.com");
  CHECK(qualify_address("bob", "remote", "example.com") == "bob");
  CHECK(qualify_address("bob@x.org", "local", "example.com") == "bob@x.org");
  CHECK(qualify_address("", "local", "example.com") == "");
}

TEST_CASE("the date is RFC 5322", "[cleanup]") {
  std::string d = rfc5322_date(1700000000);
  CHECK(d.size() >= 31);
  CHECK(d.find("2023") != std::string::npos);
  CHECK((d.find(" +") != std::string::npos || d.find(" -") != std::string::npos));
}
