// Unit tests for sockets: frames over a socketpair, descriptor passing, peers
// that vanish, UNIX-domain listeners and clients, and TCP listeners.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "util/socket.h"

using namespace postern;
using postern::test::TempDir;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct Ping {
  std::string text;
  int64_t n = 0;
  static constexpr std::string_view kType = "ping";
  static constexpr auto kFields = std::make_tuple(field("text", &Ping::text), field("n", &Ping::n));
};

std::pair<UniqueFd, UniqueFd> make_pipe() {
  int fds[2];
  // Non-blocking, so that a write end left open makes drain() fail rather than hang.
  REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What a read from the pipe gives now: its bytes, "EOF" once every write end is
// closed, or "empty" while a write end is still open.
std::string drain(int fd) {
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n == 0) return "EOF";
  if (n < 0) return errno == EAGAIN ? "empty" : "error";
  return std::string(buf, static_cast<size_t>(n));
}

// Sends raw bytes with any number of descriptors, bypassing send_fds' checks.
void raw_send_fds(int sock, const std::vector<int>& fds) {
  char marker = 'F';
  struct iovec iov {&marker, 1};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  REQUIRE(::sendmsg(sock, &msg, 0) == 1);
}

void write_raw(int fd, std::string_view bytes) { REQUIRE(::write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size())); }

std::string be32(uint32_t n) {
  std::string out;
  codec_detail::put_length(out, n);
  return out;
}

}  // namespace

TEST_CASE("frames cross a socketpair", "[socket]") {
  auto [a, b] = make_socketpair();
  REQUIRE(write_frame(a.get(), "hello", 1s).ok());
  REQUIRE(write_frame(a.get(), "", 1s).ok());
  auto first = read_frame(b.get(), 1s);
  REQUIRE(first.ok());
  CHECK(*first == "hello");
  auto second = read_frame(b.get(), 1s);
  REQUIRE(second.ok());
  CHECK(second->empty());

  REQUIRE(write_message(b.get(), Ping{"pong", 42}, 1s).ok());
  auto ping = read_message<Ping>(a.get(), 1s);
  REQUIRE(ping.ok());
  CHECK(ping->text == "pong");
  CHECK(ping->n == 42);
}

TEST_CASE("a frame larger than the socket buffer crosses with a reader in another thread", "[socket]") {
  auto [a, b] = make_socketpair();
  std::string big(900 * 1024, 'x');
  big[12345] = 'y';
  Result<std::string> got = fail("not read");
  std::thread reader([&, fd = b.get()] { got = read_frame(fd, 5s); });
  auto sent = write_frame(a.get(), big, 5s);
  reader.join();
  REQUIRE(sent.ok());
  REQUIRE(got.ok());
  CHECK(*got == big);
}

TEST_CASE("frame I/O reports a vanished or slow peer as an error", "[socket]") {
  SECTION("closed before a frame") {
    auto [a, b] = make_socketpair();
    a.reset();
    CHECK(read_frame(b.get(), 1s).error() == "connection closed by peer");
  }
  SECTION("closed in the middle of the header") {
    auto [a, b] = make_socketpair();
    write_raw(a.get(), std::string("\0\0", 2));
    a.reset();
    CHECK(read_frame(b.get(), 1s).error() == "connection closed in the middle of a frame");
  }
  SECTION("closed in the middle of the payload") {
    auto [a, b] = make_socketpair();
    write_raw(a.get(), be32(100) + "only ten b");
    a.reset();
    CHECK(read_frame(b.get(), 1s).error() == "connection closed in the middle of a frame");
  }
  SECTION("silent peer times out") {
    auto [a, b] = make_socketpair();
    write_raw(a.get(), be32(10) + "abc");
    auto start = std::chrono::steady_clock::now();
    CHECK(read_frame(b.get(), 100ms).error() == "timed out reading a frame");
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  }
  SECTION("oversize frame is refused before it is read") {
    auto [a, b] = make_socketpair();
    write_raw(a.get(), be32(0xfffffff0));
    CHECK(read_frame(b.get(), 1s).error() == "frame of 4294967280 bytes, limit 1048576");
    CHECK_FALSE(write_frame(a.get(), std::string((1 << 20) + 1, 'x'), 1s).ok());
  }
  SECTION("writing to a closed peer is an error, not SIGPIPE") {
    auto [a, b] = make_socketpair();
    b.reset();
    auto r = write_frame(a.get(), "anyone there?", 1s);
    CHECK(r.error() == "write: peer closed the connection");
  }
  SECTION("a peer that does not read makes the writer time out") {
    auto [a, b] = make_socketpair();
    CHECK(write_frame(a.get(), std::string(1 << 20, 'x'), 100ms).error() == "timed out writing a frame");
  }
}

TEST_CASE("descriptors pass with SCM_RIGHTS", "[socket]") {
  auto [a, b] = make_socketpair();
  SECTION("a pipe's write end, written through on the other side") {
    auto [r, w] = make_pipe();
    const int fds[] = {w.get()};
    REQUIRE(send_fds(a.get(), fds, 1s).ok());
    w.reset();
    auto got = recv_fds(b.get(), 1, 1s);
    REQUIRE(got.ok());
    REQUIRE(got->size() == 1);
    int fd = (*got)[0].get();
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    write_raw(fd, "through the pipe");
    CHECK(drain(r.get()) == "through the pipe");
    got->clear();
    CHECK(drain(r.get()) == "EOF");
  }
  SECTION("frames and descriptors interleave in order") {
    auto [r, w] = make_pipe();
    const int fds[] = {w.get(), w.get()};
    REQUIRE(write_frame(a.get(), "before", 1s).ok());
    REQUIRE(send_fds(a.get(), fds, 1s).ok());
    REQUIRE(write_frame(a.get(), "after", 1s).ok());
    CHECK(*read_frame(b.get(), 1s) == "before");
    auto got = recv_fds(b.get(), 2, 1s);
    REQUIRE(got.ok());
    CHECK(got->size() == 2);
    CHECK(*read_frame(b.get(), 1s) == "after");
  }
  SECTION("more descriptors than expected are all closed") {
    auto [r, w] = make_pipe();
    const int fds[] = {w.get(), w.get(), w.get()};
    REQUIRE(send_fds(a.get(), fds, 1s).ok());
    w.reset();
    auto got = recv_fds(b.get(), 2, 1s);
    CHECK(got.error() == "received 3 descriptors, expected 2");
    CHECK(drain(r.get()) == "EOF");
  }
  SECTION("more descriptors than fit are truncated, and what arrived is closed") {
    auto [r, w] = make_pipe();
    raw_send_fds(a.get(), std::vector<int>(kMaxPassedFds + 5, w.get()));
    w.reset();
    auto got = recv_fds(b.get(), 1, 1s);
    CHECK(got.error() == "descriptors truncated: too many passed");
    CHECK(drain(r.get()) == "EOF");
  }
  SECTION("plain data where descriptors were expected") {
    write_raw(a.get(), "x");
    CHECK(recv_fds(b.get(), 1, 1s).error() == "expected passed descriptors, got other data");
  }
  SECTION("peer closed") {
    a.reset();
    CHECK(recv_fds(b.get(), 1, 1s).error() == "connection closed by peer");
  }
  SECTION("nothing arrives in time") {
    CHECK(recv_fds(b.get(), 1, 50ms).error() == "timed out receiving descriptors");
  }
  SECTION("counts out of range") {
    CHECK_FALSE(send_fds(a.get(), {}, 1s).ok());
    std::vector<int> too_many(kMaxPassedFds + 1, 0);
    CHECK_FALSE(send_fds(a.get(), too_many, 1s).ok());
    CHECK_FALSE(recv_fds(b.get(), 0, 1s).ok());
  }
}

TEST_CASE("UNIX-domain listener and client", "[socket]") {
  TempDir dir;
  std::string path = dir.path + "/qmgr";
  auto listener = listen_unix(path, 0620);
  REQUIRE(listener.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0620);
  CHECK((::fcntl(listener->get(), F_GETFL) & O_NONBLOCK) != 0);

  CHECK(accept_connection(listener->get()).error() == "no connection pending");

  auto client = connect_unix(path, 1s);
  REQUIRE(client.ok());
  CHECK((::fcntl(client->get(), F_GETFL) & O_NONBLOCK) == 0);
  auto server = accept_connection(listener->get());
  REQUIRE(server.ok());

  SECTION("handshake with the right service") {
    REQUIRE(write_message(server->get(), make_hello("qmgr"), 1s).ok());
    auto hello = read_hello(client->get(), "qmgr", 1s);
    REQUIRE(hello.ok());
    CHECK(hello->service == "qmgr");
  }
  SECTION("handshake with the wrong service") {
    REQUIRE(write_message(server->get(), make_hello("bounce"), 1s).ok());
    CHECK(read_hello(client->get(), "qmgr", 1s).error() ==
          "handshake: connected to service 'bounce', expected 'qmgr'");
  }
  SECTION("handshake with another major version") {
    Hello hello = make_hello("qmgr");
    hello.version = kProtocolVersion + 1;
    REQUIRE(write_message(server->get(), hello, 1s).ok());
    auto r = read_hello(client->get(), "qmgr", 1s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("handshake: peer speaks protocol version") == 0);
  }
  SECTION("handshake when the server sends something else first") {
    REQUIRE(write_message(server->get(), Ping{"x", 1}, 1s).ok());
    CHECK(read_hello(client->get(), "qmgr", 1s).error() == "handshake: expected a 'hello' message, got 'ping'");
  }
  SECTION("a live socket is not taken over") {
    CHECK(listen_unix(path, 0600).error() == path + ": a server already listens there");
  }
  SECTION("a stale socket is replaced") {
    listener->reset();
    auto again = listen_unix(path, 0666);
    REQUIRE(again.ok());
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0666);
    CHECK(connect_unix(path, 1s).ok());
  }
}

TEST_CASE("UNIX-domain failures are values", "[socket]") {
  TempDir dir;
  std::string file = dir.path + "/not-a-socket";
  std::ofstream(file) << "precious";
  CHECK(listen_unix(file, 0600).error() == file + ": exists and is not a socket");
  CHECK(fs::file_size(file) == 8);

  auto missing = connect_unix(dir.path + "/missing", 100ms);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error() == dir.path + "/missing: connect: No such file or directory");

  std::string long_path = dir.path + "/" + std::string(120, 'x');
  CHECK_FALSE(listen_unix(long_path, 0600).ok());
  CHECK_FALSE(connect_unix(long_path, 100ms).ok());
}

TEST_CASE("inet endpoints parse as master.cf writes them", "[socket]") {
  auto check = [](std::string_view spec, std::string host, std::string port) {
    auto e = parse_inet_endpoint(spec);
    REQUIRE(e.ok());
    CHECK(e->host == host);
    CHECK(e->port == port);
  };
  check("25", "", "25");
  check("smtp", "", "smtp");
  check("127.0.0.1:2525", "127.0.0.1", "2525");
  check("mail.example.com:submission", "mail.example.com", "submission");
  check("[::1]:25", "::1", "25");
  check("[2001:db8::1]:0", "2001:db8::1", "0");
  for (std::string_view bad : {"", "::1:25", "[::1]", "[::1]25", "[nonsense]:25", ":25", "host:", "host:99999",
                               "host:-1", "host:a b", "[::1:25"}) {
    INFO(bad);
    CHECK_FALSE(parse_inet_endpoint(bad).ok());
  }
}

TEST_CASE("inet listener on loopback", "[socket]") {
  auto listeners = listen_inet("127.0.0.1:0");
  REQUIRE(listeners.ok());
  REQUIRE(listeners->size() == 1);
  int listen_fd = (*listeners)[0].get();
  uint16_t port = local_port(listen_fd);
  CHECK(port != 0);

  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in sin {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(client.get(), reinterpret_cast<struct sockaddr*>(&sin), sizeof(sin)) == 0);
  auto server = accept_connection(listen_fd);
  REQUIRE(server.ok());
  REQUIRE(write_frame(server->get(), "over tcp", 1s).ok());
  CHECK(*read_frame(client.get(), 1s) == "over tcp");

  // The port is taken now; a second listener on it fails with a reason.
  auto again = listen_inet("127.0.0.1:" + std::to_string(port));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error() == "'127.0.0.1:" + std::to_string(port) + "': bind: Address already in use");

  CHECK_FALSE(listen_inet("192.0.2.1:0").ok());  // not an address of this host
  CHECK_FALSE(listen_inet("host:").ok());
}

TEST_CASE("inet listener on every address and on IPv6 loopback", "[socket]") {
  auto all = listen_inet("0");
  REQUIRE(all.ok());
  CHECK(!all->empty());

  if (!fs::exists("/proc/net/if_inet6")) {
    WARN("no IPv6 on this host: [::1] not tested");
    return;
  }
  auto v6 = listen_inet("[::1]:0");
  REQUIRE(v6.ok());
  REQUIRE(v6->size() == 1);
  CHECK(local_port((*v6)[0].get()) != 0);
}
