// Unit tests for the DATA and BDAT decoders (lib/mail/smtp_data.h): the end of
// data only at CRLF.CRLF, every smuggling variant as content, dot-unstuffing,
// bare LF accepted or rejected, long lines in pieces, CRLF split across chunks.
#include <catch2/catch.hpp>

#include <string>

#include "mail/smtp_data.h"

using namespace postern;

namespace {

struct Decoded {
  std::string out;
  size_t used = 0;
  bool done = false;
  bool rejected = false;
};

// Feeds in pieces of chunk bytes, as the network may split it.
Decoded decode(const std::string& in, size_t chunk = 1000000, BareNewline policy = BareNewline::kAccept) {
  Decoded d;
  DataDecoder decoder(policy, [&](std::string_view t) { d.out += t; });
  for (size_t i = 0; i < in.size() && !decoder.done() && !decoder.rejected(); i += chunk)
    d.used = i + decoder.feed(std::string_view(in).substr(i, chunk));
  d.done = decoder.done();
  d.rejected = decoder.rejected();
  return d;
}

}  // namespace

TEST_CASE("DATA ends at CRLF.CRLF and the rest is left for the next command", "[smtp_data]") {
  for (size_t chunk : {1, 2, 3, 7, 1000}) {
    Decoded d = decode("Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", chunk);
    CHECK(d.done);
    CHECK(d.out == "Subject: a\n\nbody\n");
    CHECK(d.used == std::string("Subject: a\r\n\r\nbody\r\n.\r\n").size());
  }
}

TEST_CASE("an empty message: the end right away", "[smtp_data]") {
  Decoded d = decode(".\r\n");
  CHECK(d.done);
  CHECK(d.out.empty());
}

TEST_CASE("leading dots are unstuffed once", "[smtp_data]") {
  Decoded d = decode("..\r\n...x\r\n.y\r\nz.\r\n.\r\n", 2);
  CHECK(d.done);
  CHECK(d.out == ".\n..x\ny\nz.\n");
}

TEST_CASE("no smuggling: every fake end of data is content", "[smtp_data]") {
  for (std::string fake : {"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"}) {
    for (size_t chunk : {1, 3, 1000}) {
      Decoded d = decode("a" + fake + "MAIL FROM:<x@y>\r\n", chunk);
      INFO("fake end " << fake.size() << " bytes, chunk " << chunk);
      CHECK_FALSE(d.done);
      CHECK(d.out.find("MAIL FROM:<x@y>\n") != std::string::npos);
    }
  }
}

TEST_CASE("bare LF ends a line but never the data; bare CR is content", "[smtp_data]") {
  Decoded d = decode("one\ntwo\rthree\r\n.\r\n");
  CHECK(d.done);
  CHECK(d.out == "one\ntwo\rthree\n");
  // After a line that ended with a bare LF, "." + CRLF is content.
  Decoded e = decode("one\n.\r\n");
  CHECK_FALSE(e.done);
  CHECK(e.out == "one\n\n");
}

TEST_CASE("bare LF rejected when asked, and nothing after it passed on", "[smtp_data]") {
  Decoded d = decode("ok\r\nbad\nMAIL FROM:<x@y>\r\n.\r\n", 1000, BareNewline::kReject);
  CHECK(d.rejected);
  CHECK_FALSE(d.done);
  CHECK(d.out == "ok\n");
}

TEST_CASE("long lines pass in pieces and keep their CRLF", "[smtp_data]") {
  std::string line(20000, 'x');
  Decoded d = decode(line + "\r\n.\r\n", 4097);
  CHECK(d.done);
  CHECK(d.out == line + "\n");
  std::string dotted = "." + std::string(9000, 'y');
  Decoded e = decode(dotted + "\r\n.\r\n", 5000);
  CHECK(e.out == dotted.substr(1) + "\n");
}

TEST_CASE("BDAT: CRLF becomes LF across chunk boundaries, the rest is kept", "[smtp_data]") {
  std::string out;
  ChunkDecoder c([&](std::string_view t) { out += t; });
  c.feed("a\r");
  c.feed("\nb\rc\r");
  c.feed("d\n.\r\n");
  c.feed("end\r");
  c.finish();
  CHECK(out == "a\nb\rc\rd\n.\nend\r");
}
