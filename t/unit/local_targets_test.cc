// Unit tests for local's target lists (aliases, .forward, :include:), the
// forward_path expansion and the Delivered-To loop test.
#include <catch2/catch.hpp>

#include "mail/local_targets.h"

using namespace postern;

namespace {

std::vector<std::string> pieces(std::string_view text, bool comments = false) {
  auto r = split_targets(text, comments);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("target lists split on commas, blanks and lines, quotes keep a piece whole", "[local_targets]") {
  CHECK(pieces("a, b c,,d") == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(pieces("\"|/usr/bin/prog -x \\\"y\\\"\", /var/log/mail") ==
        std::vector<std::string>{"|/usr/bin/prog -x \"y\"", "/var/log/mail"});
  // An unquoted command runs to the next comma, with its blanks.
  CHECK(pieces("|/usr/bin/procmail -a x, bob") == std::vector<std::string>{"|/usr/bin/procmail -a x", "bob"});
  CHECK(pieces("") .empty());
}

TEST_CASE("comment lines count only in files and only at the start of a line", "[local_targets]") {
  CHECK(pieces("# who gets it\nalice\n  # not a comment start? still a comment after blanks\nbob#x\n", true) ==
        std::vector<std::string>{"alice", "bob#x"});
  CHECK(pieces("#alice", false) == std::vector<std::string>{"#alice"});
}

TEST_CASE("an unclosed quote is an error that shows the text", "[local_targets]") {
  auto r = split_targets("a, \"|cmd never closed", false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("unclosed quote") != std::string::npos);
  CHECK(r.error().find("|cmd never closed") != std::string::npos);
}

TEST_CASE("targets are classified as Postfix's local(8) reads them", "[local_targets]") {
  auto r = parse_targets("bob, \\alice, \"| cat > /tmp/x\", /var/spool/file, /home/a/Maildir/, :include:/etc/list, "
                         ":INCLUDE:/etc/other, x@example.net",
                         false);
  REQUIRE(r.ok());
  std::vector<std::pair<TargetKind, std::string>> got;
  for (const auto& t : *r) got.emplace_back(t.kind, t.value);
  CHECK(got == std::vector<std::pair<TargetKind, std::string>>{
                   {TargetKind::kAddress, "bob"},
                   {TargetKind::kMailbox, "alice"},
                   {TargetKind::kCommand, "cat > /tmp/x"},
                   {TargetKind::kFile, "/var/spool/file"},
                   {TargetKind::kFile, "/home/a/Maildir/"},
                   {TargetKind::kInclude, "/etc/list"},
                   {TargetKind::kInclude, "/etc/other"},
                   {TargetKind::kAddress, "x@example.net"},
               });
}

TEST_CASE("bad targets are refused with the piece named", "[local_targets]") {
  for (auto [text, why] : {std::pair{"\"|\"", "empty command"},
                           std::pair{":include:relative/list", "absolute path"},
                           std::pair{":include:", "absolute path"},
                           std::pair{"\\", "empty user name"}}) {
    auto r = parse_targets(std::string("ok, ") + text, false);
    INFO(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find(why) != std::string::npos);
  }
}

TEST_CASE("forward_path: an element that refers to an empty value is skipped", "[local_targets]") {
  const std::string kDefault = "$home/.forward${recipient_delimiter}${extension}, $home/.forward";
  std::map<std::string, std::string> plain = {{"home", "/home/u"}, {"user", "u"}};
  CHECK(forward_files(kDefault, plain) == std::vector<std::string>{"/home/u/.forward"});
  std::map<std::string, std::string> ext = {
      {"home", "/home/u"}, {"user", "u"}, {"extension", "lists"}, {"recipient_delimiter", "+"}};
  CHECK(forward_files(kDefault, ext) == std::vector<std::string>{"/home/u/.forward+lists", "/home/u/.forward"});
}

TEST_CASE("forward_path: ${name?text} and ${name:text}", "[local_targets]") {
  std::map<std::string, std::string> a = {{"home", "/h"}, {"extension", "x"}};
  CHECK(expand_forward_element("${extension?/ext}${home}", a) == "/ext/h");
  CHECK(expand_forward_element("/f/${user:nobody}", a) == "/f/nobody");
  CHECK(expand_forward_element("/f/$user", a).empty());
  CHECK(expand_forward_element("/f/${unclosed", a).empty());
}

TEST_CASE("Delivered-To in the header, not the body, is a loop", "[local_targets]") {
  std::string msg = "Received: x\nDelivered-To: Alice@Example.COM \nSubject: s\n\nDelivered-To: bob@example.com\n";
  CHECK(has_delivered_to(msg, "alice@example.com"));
  CHECK_FALSE(has_delivered_to(msg, "bob@example.com"));
  CHECK_FALSE(has_delivered_to(msg, "alice@example.org"));
  CHECK(has_delivered_to("Delivered-To:a@b\r\n\r\n", "a@b"));
}
