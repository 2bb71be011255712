// TLS for Postern's servers and clients, over OpenSSL 3: owners for OpenSSL
// objects, a server context and a client context built from Postfix-style
// settings, a one-line description of an established session for logs and the
// Received header, and a small blocking TLS stream with deadlines.
//
// Who uses what: smtpd drives TLS through libevent's bufferevent_openssl and so
// needs only a context and an SSL* per session (make_ssl()); pop3d, imapd and the
// smtp client may use TlsStream on a blocking socket.
//
// This layer knows nothing of main.cf: the caller fills the settings structs from
// its parameters (smtpd_tls_*, smtp_tls_*, ...).  A setting that cannot be used (a
// certificate that does not load, a key that does not match it, an unknown protocol
// name) is a ConfigError whose text names the parameter, built from
// parameter_prefix ("smtpd_tls_cert_file = /etc/x.pem: ...").
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace postern {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// Everything on this thread's OpenSSL error queue, oldest first, "; "-separated,
// and the queue emptied; "unknown error" when it was empty.
std::string openssl_errors();

// The TLS versions a "protocols" parameter allows, in any of Postfix's forms:
//   "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"   exclusions (everything else is allowed)
//   "TLSv1.2, TLSv1.3"                    inclusions (only those)
//   ">=TLSv1.2", "<=TLSv1.3", ">=TLSv1.2 <=TLSv1.3"   bounds (Postfix 3.6)
// Separators are commas, white space or colons; names are case-insensitive.
struct TlsProtocols {
  int min_version = 0;        // TLS1_2_VERSION, ...
  int max_version = 0;        // 0: the newest OpenSSL has
  uint64_t excluded = 0;      // SSL_OP_NO_* for versions excluded between the bounds
};
Result<TlsProtocols> parse_tls_protocols(std::string_view spec);

// Postfix's cipher grades and the OpenSSL lists they stand for (the defaults of
// tls_high_cipherlist, tls_medium_cipherlist and tls_null_cipherlist).  The lists
// apply to TLS 1.2 and below; TLS 1.3 suites are OpenSSL's (all strong).
struct TlsCipherLists {
  std::string high = "aNULL:-aNULL:HIGH:@STRENGTH";
  std::string medium = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH";
  std::string null = "eNULL:!aNULL";
};

// What a server context is made of; the defaults are Postfix's.
struct TlsServerSettings {
  // Names the parameters in errors: "smtpd_tls_" gives "smtpd_tls_cert_file".
  std::string parameter_prefix = "smtpd_tls_";
  // A certificate (PEM, optionally followed by its intermediates) and its key;
  // key_file empty means the key is in cert_file.
  std::string cert_file;
  std::string key_file;
  // Postfix's chain_files: PEM files, each holding a key followed by its
  // certificate and chain.  Used instead of cert_file/key_file when not empty.
  std::vector<std::string> chain_files;
  std::string protocols = ">=TLSv1.2";
  std::string cipher_grade = "medium";  // high, medium or null
  TlsCipherLists cipher_lists;
  std::string exclude_ciphers;          // OpenSSL cipher names to remove, comma or space separated
  // The groups offered for (EC)DHE key exchange (tls_eecdh_auto_curves).
  std::string eecdh_curves = "X25519 X448 prime256v1 secp521r1 secp384r1";
  // Session resumption, by cache and by tickets; zero turns both off.
  std::chrono::seconds session_timeout{3600};
  // The session ID context: sessions resume only with the same service.
  std::string session_context = "postern";
  // Ask the client for a certificate, verified against these CAs (only reported,
  // never required).
  bool ask_client_cert = false;
  std::string ca_file;
  std::string ca_path;
};

// A server context.  Throws ConfigError naming the parameter when a certificate or
// key cannot be loaded, the key does not match the certificate, or a protocol,
// grade, cipher list or curve list is not usable.
SslCtxPtr make_server_context(const TlsServerSettings& settings);

// How a client treats the server's certificate.
enum class TlsVerify {
  kNone,    // encrypt, look at nothing (Postfix's "encrypt" and "may" without CAs)
  kMay,     // check the chain and name and report the result, but go on regardless
  kVerify,  // the handshake fails unless the chain verifies and a name matches
};

struct TlsClientSettings {
  std::string parameter_prefix = "smtp_tls_";
  TlsVerify verify = TlsVerify::kNone;
  std::string ca_file;  // kVerify needs one of these two
  std::string ca_path;
  // An optional client certificate and key.
  std::string cert_file;
  std::string key_file;
  std::string protocols = ">=TLSv1.2";
  std::string cipher_grade = "medium";
  TlsCipherLists cipher_lists;
  std::string exclude_ciphers;
};

SslCtxPtr make_client_context(const TlsClientSettings& settings);

// A fresh session on a context, not yet attached to a socket.
SslPtr make_ssl(SSL_CTX* ctx);
// A client session that sends server_name as SNI (unless it is an IP address) and
// accepts a certificate for any of match_names (exact host names, or ".domain" for
// any name below domain).  Without match_names, server_name is the one to match.
SslPtr make_client_ssl(SSL_CTX* ctx, const std::string& server_name,
                       const std::vector<std::string>& match_names = {});

// An established session in Postfix's words, for logs and the Received header:
//   "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
// followed, when the peer showed a certificate, by
//   ", peer CN=mx.example.com (verified)"   or "(not verified: <reason>)".
std::string describe_tls_session(const SSL* ssl);
// True when the peer's certificate chain verified (and its name matched, where
// names were set with make_client_ssl).
bool tls_peer_verified(const SSL* ssl);

using TlsTimeout = std::chrono::milliseconds;

// TLS over a connected stream socket with a deadline for each call, for programs
// that do blocking I/O.  The socket is made non-blocking and waited on with poll(2).
// Failures are values: a peer that stops talking (timeout), a handshake refused
// (with OpenSSL's reason), a reset connection.
class TlsStream {
 public:
  // The server side: the client's handshake, on fd.
  static Result<TlsStream> accept(UniqueFd fd, SSL_CTX* ctx, TlsTimeout timeout);
  // The client side, with a session from make_client_ssl().
  static Result<TlsStream> connect(UniqueFd fd, SslPtr ssl, TlsTimeout timeout);

  // Up to size bytes; 0 when the peer closed the connection.
  Result<size_t> read(char* buf, size_t size, TlsTimeout timeout);
  Result<void> write(std::string_view data, TlsTimeout timeout);
  // Sends our close_notify (best effort within the timeout); reading may go on.
  void shutdown(TlsTimeout timeout);

  SSL* ssl() const { return ssl_.get(); }
  int fd() const { return fd_.get(); }
  std::string describe() const { return describe_tls_session(ssl_.get()); }

 private:
  TlsStream(UniqueFd fd, SslPtr ssl) : fd_(std::move(fd)), ssl_(std::move(ssl)) {}
  // Both sides: ssl already knows which one it is.
  static Result<TlsStream> handshake(UniqueFd fd, SslPtr ssl, TlsTimeout timeout);

  UniqueFd fd_;  // declared before ssl_: the session goes first
  SslPtr ssl_;
};

}  // namespace postern
