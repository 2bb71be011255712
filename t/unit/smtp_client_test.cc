// Tests of the SMTP client's protocol pieces (lib/mail/smtp_client.h): reply
// parsing, EHLO extensions, MAIL/RCPT parameters, DATA content, the remote-reply
// text of bounces, and a connection against a scripted server on a real socket.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "mail/smtp_client.h"
#include "util/fd.h"
#include "util/socket.h"

using namespace postern;

TEST_CASE("smtp_client: replies, one line and many, with and without enhanced codes", "[smtp_client]") {
  auto r = parse_reply({"550 5.1.1 <x@example.com>: user unknown"});
  REQUIRE(r.ok());
  CHECK(r->code == 550);
  CHECK(r->enhanced == "5.1.1");
  CHECK(r->dsn() == "5.1.1");
  CHECK(r->text() == "550 5.1.1 <x@example.com>: user unknown");
  CHECK_FALSE(r->positive());

  r = parse_reply({"250-mx.example.com", "250-PIPELINING", "250 SIZE 1000"});
  REQUIRE(r.ok());
  CHECK(r->lines.size() == 3);
  CHECK(r->enhanced.empty());
  CHECK(r->dsn() == "2.0.0");

  r = parse_reply({"451 try later"});
  REQUIRE(r.ok());
  CHECK(r->dsn() == "4.0.0");
  CHECK(r->temporary());
  // An enhanced code of the wrong class is text, not a code.
  r = parse_reply({"451 5.1.1 odd"});
  REQUIRE(r.ok());
  CHECK(r->enhanced.empty());
  r = parse_reply({"250"});
  REQUIRE(r.ok());
  CHECK(r->code == 250);

  CHECK_FALSE(parse_reply({}).ok());
  CHECK_FALSE(parse_reply({"hello"}).ok());
  CHECK_FALSE(parse_reply({"25x ok"}).ok());
  CHECK_FALSE(parse_reply({"650 odd class"}).ok());
  CHECK_FALSE(parse_reply({"250-a", "251 b"}).ok());   // codes differ
  CHECK_FALSE(parse_reply({"250 a", "250 b"}).ok());   // continuation after the last line
  CHECK_FALSE(parse_reply({"250-a"}).ok());            // no last line
}

TEST_CASE("smtp_client: EHLO extensions", "[smtp_client]") {
  auto r = parse_reply({"250-MX.Example.COM hello", "250-pipelining", "250-SIZE 10240000", "250-8BITMIME",
                        "250-SMTPUTF8", "250-DSN", "250-STARTTLS", "250-AUTH PLAIN login", "250 ENHANCEDSTATUSCODES"});
  REQUIRE(r.ok());
  EhloExtensions e = parse_ehlo(*r);
  CHECK(e.greeting_name == "mx.example.com");
  CHECK(e.pipelining);
  CHECK(e.size == 10240000u);
  CHECK(e.eightbitmime);
  CHECK(e.smtputf8);
  CHECK(e.dsn);
  CHECK(e.starttls);
  CHECK(e.auth == std::vector<std::string>{"PLAIN", "LOGIN"});

  EhloExtensions bare = parse_ehlo(*parse_reply({"250 mx.example.com"}));
  CHECK_FALSE(bare.pipelining);
  CHECK_FALSE(bare.size.has_value());
  CHECK_FALSE(bare.starttls);
}

TEST_CASE("smtp_client: MAIL FROM and RCPT TO parameters follow the server's extensions", "[smtp_client]") {
  EhloExtensions all;
  all.size = 0;
  all.eightbitmime = all.smtputf8 = all.dsn = true;
  EhloExtensions none;
  MailFromOptions o;
  o.size = 1234;
  o.eightbit = true;
  o.smtputf8 = true;
  o.ret = DsnRet::kHeaders;
  o.envid = "id+1=x";
  CHECK(mail_from_command("a@example.com", o, all) ==
        "MAIL FROM:<a@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3Dx\r\n");
  CHECK(mail_from_command("", o, none) == "MAIL FROM:<>\r\n");

  CHECK(rcpt_to_command("b@example.com", kNotifyFailure | kNotifyDelay, "rfc822;b+x@example.com", all) ==
        "RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+2Bx@example.com\r\n");
  CHECK(rcpt_to_command("b@example.com", kNotifyNever, "", all) == "RCPT TO:<b@example.com> NOTIFY=NEVER\r\n");
  CHECK(rcpt_to_command("b@example.com", kNotifyFailure, "rfc822;b@example.com", none) ==
        "RCPT TO:<b@example.com>\r\n");
}

TEST_CASE("smtp_client: DATA content is CRLF, dot-stuffed and terminated", "[smtp_client]") {
  CHECK(data_content("Subject: x\n\n.hidden\nbody\n") == "Subject: x\r\n\r\n..hidden\r\nbody\r\n.\r\n");
  CHECK(data_content("a\r\n.\r\nb") == "a\r\n..\r\nb\r\n.\r\n");
  CHECK(data_content("") == ".\r\n");
}

TEST_CASE("smtp_client: the remote reply as a sender reads it", "[smtp_client]") {
  auto r = parse_reply({"550 5.1.1 <x@example.com>: user unknown"});
  CHECK(remote_said("mx.example.com", "192.0.2.1", *r, "RCPT TO") ==
        "host mx.example.com[192.0.2.1] said: 550 5.1.1 <x@example.com>: user unknown (in reply to RCPT TO "
        "command)");
}

TEST_CASE("smtp_client: a connection reads multi-line replies and times out on a silent server", "[smtp_client]") {
  auto listeners = listen_inet("127.0.0.1:0");
  REQUIRE(listeners.ok());
  int listen_fd = (*listeners)[0].get();
  set_nonblocking(listen_fd, false);
  uint16_t port = local_port(listen_fd);
  std::string received;
  std::thread server([&] {
    UniqueFd c(::accept(listen_fd, nullptr, nullptr));
    std::string greet = "220-mx.example.com\r\n220 ready\r\n";
    ::send(c.get(), greet.data(), greet.size(), 0);
    char buf[256];
    ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
    if (n > 0) received.assign(buf, size_t(n));
    std::string ehlo = "250-mx.example.com\r\n250 PIPELINING\r\n";
    ::send(c.get(), ehlo.data(), ehlo.size(), 0);
    // then silence until the client gives up and closes
    ::recv(c.get(), buf, sizeof buf, 0);
  });
  auto conn = SmtpConnection::connect("127.0.0.1", port, std::chrono::seconds(5));
  REQUIRE(conn.ok());
  conn->set_timeout(std::chrono::seconds(5));
  auto greeting = conn->read_reply();
  REQUIRE(greeting.ok());
  CHECK(greeting->lines == std::vector<std::string>{"mx.example.com", "ready"});
  auto ehlo = conn->command("EHLO client.example\r\n");
  REQUIRE(ehlo.ok());
  CHECK(parse_ehlo(*ehlo).pipelining);
  CHECK(received == "EHLO client.example\r\n");
  conn->set_timeout(std::chrono::milliseconds(200));
  auto silent = conn->read_reply();
  REQUIRE_FALSE(silent.ok());
  CHECK(silent.error().find("timeout") != std::string::npos);
  { auto gone = std::move(*conn); }  // closes the socket: the server thread ends
  server.join();
}

TEST_CASE("smtp_client: connecting where nobody listens fails with the reason", "[smtp_client]") {
  auto listeners = listen_inet("127.0.0.1:0");
  REQUIRE(listeners.ok());
  uint16_t port = local_port((*listeners)[0].get());
  listeners->clear();  // now nothing listens there
  auto conn = SmtpConnection::connect("127.0.0.1", port, std::chrono::seconds(5));
  REQUIRE_FALSE(conn.ok());
  CHECK(conn.error().find("refused") != std::string::npos);
  CHECK_FALSE(SmtpConnection::connect("not-an-ip", 25, std::chrono::seconds(1)).ok());
}
