// Unit tests for local submission: RFC 5322 address lists, the addresses the
// queue keeps, the message reader's line handling, and header recipients (-t).
#include <catch2/catch.hpp>

#include <unistd.h>

#include "mail/submission.h"
#include "util/file.h"

using namespace postern;

namespace {

std::vector<std::string> list(std::string_view text) {
  auto r = parse_address_list(text);
  INFO(text);
  REQUIRE(r.ok());
  return *r;
}

bool list_fails(std::string_view text) { return !parse_address_list(text).ok(); }

// Everything MessageReader returns for input, as one string with '|' after each line.
std::string read_all(const std::string& input, bool dot_ends_input, size_t max_line = 1000) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  UniqueFd r(fds[0]);
  {
    UniqueFd w(fds[1]);
    write_all(w.get(), input);
  }
  MessageReader reader(r.get(), dot_ends_input);
  std::string out;
  for (;;) {
    auto line = reader.next_line(max_line);
    if (!line.ok()) return out + "<error>";
    if (!*line) return out;
    out += **line + "|";
  }
}

HeaderField field(std::vector<std::string> lines) { return HeaderField{std::move(lines)}; }

}  // namespace

TEST_CASE("address lists as in To: and Cc:", "[submission]") {
  CHECK(list("a@x.example") == std::vector<std::string>{"a@x.example"});
  CHECK(list("a@x, B <b@y>, \"C, Jr.\" <c@z>") == std::vector<std::string>{"a@x", "b@y", "c@z"});
  CHECK(list("friends: d@x, e@y; f@z") == std::vector<std::string>{"d@x", "e@y", "f@z"});
  CHECK(list("undisclosed-recipients:;").empty());
  CHECK(list("g@x (a comment, with a comma), h@y") == std::vector<std::string>{"g@x", "h@y"});
  CHECK(list("<@route.example:i@x>") == std::vector<std::string>{"i@x"});
  CHECK(list("\"j k\"@x") == std::vector<std::string>{"\"j k\"@x"});
  CHECK(list("  ,  ").empty());
  CHECK(list_fails("\"unbalanced@x"));
  CHECK(list_fails("a@x (unclosed comment"));
  CHECK(list_fails("B <b@y"));
  CHECK(list_fails("a b@x"));
}

TEST_CASE("addresses as the queue keeps them", "[submission]") {
  auto kept = [](std::string_view a) {
    auto r = submission_address(a);
    return r.ok() ? *r : "<error: " + r.error() + ">";
  };
  CHECK(kept("User@EXAMPLE.Org") == "User@example.org");
  CHECK(kept("\"j k\"@x.example") == "j k@x.example");
  CHECK(kept("alice") == "alice");  // qualified later by cleanup
  CHECK(kept("müller@bücher.example") == "müller@bücher.example");
  CHECK_THAT(kept("a@@x"), Catch::StartsWith("<error"));
  CHECK_THAT(kept("a@-x.example"), Catch::StartsWith("<error"));
  CHECK_THAT(kept(""), Catch::StartsWith("<error"));
}

TEST_CASE("message reader: line ends, From_ lines, the dot", "[submission]") {
  CHECK(read_all("a\r\nb\nc", false) == "a|b|c|");
  CHECK(read_all("a\r\r\nb\n", false) == "a|b|");
  CHECK(read_all("From someone Mon Nov 23\n>From other\nSubject: x\n\nFrom inside\n", false) ==
        "Subject: x||From inside|");
  CHECK(read_all("one\n.\ntwo\n", true) == "one|");
  CHECK(read_all("one\n.\ntwo\n", false) == "one|.|two|");
  CHECK(read_all("..\n. \n", true) == "..|. |");
  CHECK(read_all(std::string("nul\0byte\n", 9), false) == std::string("nul\0byte|", 9));
  // max_line bounds the memory a line without a line end may take.
  CHECK(read_all("short\n" + std::string(5000, 'x'), false, 1000) == "short|<error>");
}

TEST_CASE("header fields and -t recipients", "[submission]") {
  CHECK(is_header_start("To: a@x"));
  CHECK(is_header_start("X-Odd-Name : v"));
  CHECK_FALSE(is_header_start(" continued"));
  CHECK_FALSE(is_header_start("no colon here"));
  CHECK_FALSE(is_header_start(": empty name"));
  CHECK(header_name("Subject : hi") == "Subject");
  CHECK(field({"To: a@x,", "\tb@y"}).value() == " a@x,\tb@y");

  std::vector<HeaderField> plain = {field({"From: me@x"}), field({"To: a@x, B <b@y>"}), field({"Cc: c@z"}),
                                    field({"Bcc: d@w"}), field({"Subject: s"})};
  auto r = header_recipients(plain);
  REQUIRE(r.ok());
  CHECK(*r == std::vector<std::string>{"a@x", "b@y", "c@z", "d@w"});

  std::vector<HeaderField> resent = {field({"To: a@x"}), field({"Resent-To: r@x"}), field({"Resent-Bcc: s@y"})};
  r = header_recipients(resent);
  REQUIRE(r.ok());
  CHECK(*r == std::vector<std::string>{"r@x", "s@y"});

  std::vector<HeaderField> broken = {field({"To: a@x"}), field({"Cc: \"unbalanced@x"})};
  r = header_recipients(broken);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Catch::Contains("Cc"));

  CHECK(is_bcc_field("Bcc"));
  CHECK(is_bcc_field("resent-bcc"));
  CHECK_FALSE(is_bcc_field("Cc"));
}
