// Unit tests for the SMTP command grammar (lib/mail/smtp_command.h): verbs,
// MAIL/RCPT keywords, every ESMTP parameter with its error reply, xtext, replies.
#include <catch2/catch.hpp>

#include <string>

#include "mail/queue_file.h"
#include "mail/smtp_command.h"

using namespace postern;

TEST_CASE("command lines split into an upper-case verb and its argument", "[smtp_command]") {
  SmtpCommand c = parse_smtp_command("ehlo  client.example  ");
  CHECK(c.verb == "EHLO");
  CHECK(c.args == "client.example");
  CHECK(parse_smtp_command("QUIT").args.empty());
  CHECK(parse_smtp_command("").verb.empty());
  std::string_view rest;
  CHECK(strip_path_keyword("from: <a@b>", "FROM:", rest));
  CHECK(rest == "<a@b>");
  CHECK_FALSE(strip_path_keyword("FRM:<a@b>", "FROM:", rest));
}

TEST_CASE("MAIL parameters", "[smtp_command]") {
  SmtpExtensions x;
  x.size_limit = 1000;
  auto m = parse_mail_parameters("SIZE=999 body=8bitmime SMTPUTF8 RET=hdrs ENVID=a+2Bb", x);
  REQUIRE(m);
  CHECK(m->size == 999);
  CHECK(m->body == BodyType::k8BitMime);
  CHECK(m->smtputf8);
  CHECK(m->ret == "H");
  CHECK(m->envid == "a+b");
  CHECK(parse_mail_parameters("BODY=BINARYMIME", x)->body == BodyType::kBinaryMime);
  CHECK(parse_mail_parameters("", x));

  CHECK(parse_mail_parameters("SIZE=1001", x).error() == "552 5.3.4 Message size exceeds fixed limit");
  CHECK(parse_mail_parameters("SIZE=-1", x).error() == "501 5.5.4 Bad message size syntax");
  CHECK(parse_mail_parameters("SIZE", x).error() == "501 5.5.4 Bad message size syntax");
  CHECK(parse_mail_parameters("SIZE=1 SIZE=2", x).error() == "501 5.5.4 Bad message size syntax");
  CHECK(parse_mail_parameters("BODY=9BIT", x).error() == "501 5.5.4 Unsupported BODY parameter: 9BIT");
  CHECK(parse_mail_parameters("RET=ALL", x).error() == "501 5.5.4 Bad RET parameter syntax");
  CHECK(parse_mail_parameters("ENVID=a=b", x).error() == "501 5.5.4 Bad ENVID parameter syntax");
  CHECK(parse_mail_parameters("SMTPUTF8=yes", x).error() == "501 5.5.4 Bad SMTPUTF8 parameter syntax");
  CHECK(parse_mail_parameters("XYZ=1", x).error() == "555 5.5.4 Unsupported option: XYZ=1");
  CHECK(parse_mail_parameters("AUTH=<>", x).error() == "555 5.5.4 Unsupported option: AUTH=<>");
  x.auth = true;
  CHECK(parse_mail_parameters("AUTH=u+40example.com", x)->auth == "u@example.com");
  x.chunking = false;
  CHECK_FALSE(parse_mail_parameters("BODY=BINARYMIME", x));
}

TEST_CASE("RCPT parameters", "[smtp_command]") {
  SmtpExtensions x;
  auto r = parse_rcpt_parameters("NOTIFY=success,DELAY ORCPT=rfc822;a+2Bb@example.com", x);
  REQUIRE(r);
  CHECK(r->notify == (kNotifySuccess | kNotifyDelay));
  CHECK(r->orcpt == "rfc822;a+b@example.com");
  CHECK(parse_rcpt_parameters("NOTIFY=NEVER", x)->notify == kNotifyNever);
  for (const char* bad : {"NOTIFY=NEVER,DELAY", "NOTIFY=", "NOTIFY=SOMETIMES", "NOTIFY=DELAY,DELAY"})
    CHECK(parse_rcpt_parameters(bad, x).error() == "501 5.5.4 Error: Bad NOTIFY parameter syntax");
  for (const char* bad : {"ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;", "ORCPT=rfc822;a+zz"})
    CHECK(parse_rcpt_parameters(bad, x).error() == "501 5.5.4 Error: Bad ORCPT parameter syntax");
  CHECK(parse_rcpt_parameters("FOO", x).error() == "555 5.5.4 Unsupported option: FOO");
  x.dsn = false;
  CHECK_FALSE(parse_rcpt_parameters("NOTIFY=NEVER", x));
}

TEST_CASE("xtext", "[smtp_command]") {
  CHECK(*decode_xtext("a+2B+3Db") == "a+=b");
  CHECK_FALSE(decode_xtext("a+2"));
  CHECK_FALSE(decode_xtext("a+2b"));  // hex digits are upper case
  CHECK_FALSE(decode_xtext("a b"));
  CHECK_FALSE(decode_xtext("a=b"));
}

TEST_CASE("replies, single and multi-line", "[smtp_command]") {
  CHECK(smtp_reply(250, "2.1.0", "Ok") == "250 2.1.0 Ok\r\n");
  CHECK(smtp_reply(354, "", "End data") == "354 End data\r\n");
  CHECK(smtp_reply(250, "", std::vector<std::string>{"host", "PIPELINING", "SIZE"}) ==
        "250-host\r\n250-PIPELINING\r\n250 SIZE\r\n");
  CHECK(smtp_reply(550, "5.7.1", "one\ntwo") == "550-5.7.1 one\r\n550 5.7.1 two\r\n");
}
