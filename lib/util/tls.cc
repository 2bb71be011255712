// TLS contexts, session descriptions and the blocking TLS stream (see tls.h).
#include "util/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>

#include "util/error.h"
#include "util/socket.h"
#include "util/strings.h"

namespace postern {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

struct OpensslDeleter {
  void operator()(void* p) const { OPENSSL_free(p); }
};

// A ConfigError that reads "parameter = value: what".
[[noreturn]] void bad_setting(const std::string& parameter, const std::string& value, const std::string& what) {
  throw ConfigError(parameter + " = " + value, 0, what);
}

// Postfix's protocol names, oldest first; SSLv2 is known but OpenSSL 3 cannot speak it.
struct ProtocolName {
  std::string_view name;
  int version;
  uint64_t no_option;
};
constexpr std::array<ProtocolName, 6> kProtocols{{
    {"sslv2", 0, 0},
    {"sslv3", SSL3_VERSION, SSL_OP_NO_SSLv3},
    {"tlsv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
    {"tlsv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
    {"tlsv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
    {"tlsv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
}};

Result<size_t> protocol_index(std::string_view name) {
  std::string lower = lowercase(name);
  for (size_t i = 0; i < kProtocols.size(); ++i)
    if (kProtocols[i].name == lower) return i;
  return fail("unknown protocol '" + std::string(name) + "'");
}

// What one PEM file holds, in the order it holds it.
struct PemObject {
  X509Ptr cert;     // one of cert and key is set
  EvpPkeyPtr key;
};

std::vector<PemObject> read_pem_file(const std::string& parameter, const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    int err = errno;
    ERR_clear_error();
    bad_setting(parameter, path, std::string("cannot open: ") + std::strerror(err));
  }
  std::vector<PemObject> objects;
  for (;;) {
    char* raw_name = nullptr;
    char* raw_header = nullptr;
    unsigned char* raw_data = nullptr;
    long length = 0;
    if (!PEM_read_bio(bio.get(), &raw_name, &raw_header, &raw_data, &length)) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;  // the end of the file
      }
      bad_setting(parameter, path, "malformed PEM: " + openssl_errors());
    }
    std::unique_ptr<char, OpensslDeleter> name(raw_name), header(raw_header);
    std::unique_ptr<unsigned char, OpensslDeleter> data(raw_data);
    std::string_view kind(name.get());
    const unsigned char* p = data.get();
    PemObject object;
    bool encrypted = kind == "ENCRYPTED PRIVATE KEY" ||
                     std::string_view(header.get()).find("ENCRYPTED") != std::string_view::npos;
    if (kind.ends_with("PRIVATE KEY") && encrypted) {
      bad_setting(parameter, path, "the private key is encrypted (a daemon cannot ask for its passphrase)");
    } else if (kind == "CERTIFICATE" || kind == "TRUSTED CERTIFICATE") {
      object.cert.reset(kind == "CERTIFICATE" ? d2i_X509(nullptr, &p, length) : d2i_X509_AUX(nullptr, &p, length));
      if (!object.cert) bad_setting(parameter, path, "malformed certificate: " + openssl_errors());
    } else if (kind.ends_with("PRIVATE KEY")) {
      object.key.reset(d2i_AutoPrivateKey(nullptr, &p, length));
      if (!object.key) bad_setting(parameter, path, "malformed private key: " + openssl_errors());
    } else {
      continue;  // parameters, CRLs and the like are not ours to use
    }
    objects.push_back(std::move(object));
  }
  return objects;
}

// A key with its certificate and the certificates that chain it to a root.
struct KeyAndChain {
  EvpPkeyPtr key;
  X509Ptr cert;
  STACK_OF(X509)* chain = sk_X509_new_null();
  KeyAndChain() = default;
  KeyAndChain(KeyAndChain&& other) noexcept
      : key(std::move(other.key)), cert(std::move(other.cert)), chain(std::exchange(other.chain, nullptr)) {}
  KeyAndChain(const KeyAndChain&) = delete;
  KeyAndChain& operator=(const KeyAndChain&) = delete;
  KeyAndChain& operator=(KeyAndChain&&) = delete;
  ~KeyAndChain() { sk_X509_pop_free(chain, X509_free); }
  void add(X509Ptr c) {
    if (!cert) {
      cert = std::move(c);
    } else if (sk_X509_push(chain, c.get())) {
      c.release();
    }
  }
};

void install(SSL_CTX* ctx, KeyAndChain& set, const std::string& key_parameter, const std::string& key_path,
             const std::string& cert_description) {
  if (!X509_check_private_key(set.cert.get(), set.key.get())) {
    ERR_clear_error();
    bad_setting(key_parameter, key_path, "the private key does not match the certificate in " + cert_description);
  }
  if (!SSL_CTX_use_cert_and_key(ctx, set.cert.get(), set.key.get(), set.chain, 1))
    bad_setting(key_parameter, key_path, "cannot use the key and certificate: " + openssl_errors());
}

// Postfix's chain_files: each key is followed by its certificate and chain.
void load_chain_files(SSL_CTX* ctx, const std::string& parameter, const std::vector<std::string>& files) {
  for (const auto& path : files) {
    std::vector<KeyAndChain> sets;
    for (auto& object : read_pem_file(parameter, path)) {
      if (object.key) {
        sets.emplace_back().key = std::move(object.key);
      } else if (sets.empty()) {
        bad_setting(parameter, path, "a certificate comes before its private key");
      } else {
        sets.back().add(std::move(object.cert));
      }
    }
    if (sets.empty()) bad_setting(parameter, path, "no private key found");
    for (auto& set : sets) {
      if (!set.cert) bad_setting(parameter, path, "a private key without a certificate");
      install(ctx, set, parameter, path, path);
    }
  }
}

// A certificate file (the certificate, then its chain) and its key file.
void load_cert_and_key(SSL_CTX* ctx, const std::string& prefix, const std::string& cert_file,
                       const std::string& key_file) {
  const std::string cert_parameter = prefix + "cert_file";
  const std::string key_parameter = prefix + "key_file";
  KeyAndChain set;
  for (auto& object : read_pem_file(cert_parameter, cert_file))
    if (object.cert) set.add(std::move(object.cert));
  if (!set.cert) bad_setting(cert_parameter, cert_file, "no certificate found");
  const std::string& key_path = key_file.empty() ? cert_file : key_file;
  for (auto& object : read_pem_file(key_parameter, key_path)) {
    if (object.key) {
      set.key = std::move(object.key);
      break;
    }
  }
  if (!set.key) bad_setting(key_parameter, key_path, "no private key found");
  install(ctx, set, key_parameter, key_path, cert_parameter + " = " + cert_file);
}

void set_protocols(SSL_CTX* ctx, const std::string& parameter, const std::string& spec) {
  auto protocols = parse_tls_protocols(spec);
  if (!protocols) bad_setting(parameter, spec, protocols.error());
  if (!SSL_CTX_set_min_proto_version(ctx, protocols->min_version) ||
      !SSL_CTX_set_max_proto_version(ctx, protocols->max_version))
    bad_setting(parameter, spec, "not supported: " + openssl_errors());
  SSL_CTX_set_options(ctx, protocols->excluded);
}

void set_ciphers(SSL_CTX* ctx, const std::string& prefix, const std::string& grade, const TlsCipherLists& lists,
                 const std::string& exclude) {
  const std::string* list = nullptr;
  if (grade == "high") list = &lists.high;
  else if (grade == "medium") list = &lists.medium;
  else if (grade == "null") list = &lists.null;
  else bad_setting(prefix + "ciphers", grade, "unknown cipher grade (high, medium or null)");
  std::string ciphers = *list;
  for (const auto& name : split_list(exclude)) ciphers += ":!" + name;
  if (!SSL_CTX_set_cipher_list(ctx, ciphers.c_str()))
    bad_setting("tls_" + grade + "_cipherlist", ciphers, "no usable cipher: " + openssl_errors());
}

void load_verify_locations(SSL_CTX* ctx, const std::string& prefix, const std::string& ca_file,
                           const std::string& ca_path) {
  if (ca_file.empty() && ca_path.empty()) return;
  if (!ca_file.empty() && !SSL_CTX_load_verify_file(ctx, ca_file.c_str()))
    bad_setting(prefix + "CAfile", ca_file, "cannot load: " + openssl_errors());
  if (!ca_path.empty() && !SSL_CTX_load_verify_dir(ctx, ca_path.c_str()))
    bad_setting(prefix + "CApath", ca_path, "cannot load: " + openssl_errors());
}

SslCtxPtr new_context(const SSL_METHOD* method) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) throw SystemError(ENOMEM, "SSL_CTX_new: " + openssl_errors());
  // A peer that closes without close_notify is an end of input: the mail protocols
  // detect truncation themselves (QUIT, the final dot, LOGOUT).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  return ctx;
}

// Accepts whatever certificate a client shows; its verification result is kept
// for tls_peer_verified() and the logs.
int accept_any_client_cert(int, X509_STORE_CTX*) { return 1; }

bool is_ip_address(const std::string& name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// Runs an OpenSSL I/O call until it succeeds, waiting for the socket as it asks.
// Returns false for a clean end of input (close_notify or EOF).
Result<bool> drive(SSL* ssl, int fd, std::chrono::steady_clock::time_point deadline, const char* what,
                   const std::function<int()>& call) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int ret = call();
    if (ret > 0) return true;
    int err = SSL_get_error(ssl, ret);
    short events = 0;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else if (err == SSL_ERROR_ZERO_RETURN) {
      return false;
    } else if (err == SSL_ERROR_SYSCALL) {
      int saved = errno;
      ERR_clear_error();
      if (saved == 0) return fail(std::string(what) + ": the connection was closed");
      return fail(std::string(what) + ": " + std::strerror(saved));
    } else {
      std::string reason = openssl_errors();
      long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) reason += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      return fail(std::string(what) + ": " + reason);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail(std::string(what) + ": timed out");
    struct pollfd pfd {fd, events, 0};
    int n = retry_eintr([&] { return ::poll(&pfd, 1, static_cast<int>(left.count())); });
    if (n < 0) return fail(std::string(what) + ": poll: " + std::strerror(errno));
    if (n == 0) return fail(std::string(what) + ": timed out");
  }
}

std::chrono::steady_clock::time_point deadline_after(TlsTimeout timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

}  // namespace

std::string openssl_errors() {
  std::string text;
  while (unsigned long err = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(err);
    if (!text.empty()) text += "; ";
    if (reason) {
      text += reason;
    } else {
      char buf[256];
      ERR_error_string_n(err, buf, sizeof buf);
      text += buf;
    }
  }
  return text.empty() ? "unknown error" : text;
}

Result<TlsProtocols> parse_tls_protocols(std::string_view spec) {
  std::array<bool, kProtocols.size()> included{}, excluded{};
  bool any_included = false;
  size_t low = 0, high = kProtocols.size() - 1;
  for (const std::string& token : split(spec, ", \t:")) {
    std::string_view name(token);
    char op = 0;
    if (name.starts_with("!")) {
      op = '!';
      name.remove_prefix(1);
    } else if (name.starts_with(">=") || name.starts_with("<=")) {
      op = name[0];
      name.remove_prefix(2);
    }
    auto index = protocol_index(name);
    if (!index) return index.failure();
    switch (op) {
      case '!': excluded[*index] = true; break;
      case '>': low = std::max(low, *index); break;
      case '<': high = std::min(high, *index); break;
      default: included[*index] = any_included = true; break;
    }
  }
  TlsProtocols result;
  std::vector<size_t> allowed;
  for (size_t i = 1; i < kProtocols.size(); ++i)  // from SSLv3: OpenSSL has no SSLv2
    if (i >= low && i <= high && !excluded[i] && (!any_included || included[i])) allowed.push_back(i);
  if (allowed.empty()) return fail("no protocol is left that OpenSSL can speak");
  result.min_version = kProtocols[allowed.front()].version;
  result.max_version = allowed.back() == kProtocols.size() - 1 ? 0 : kProtocols[allowed.back()].version;
  for (size_t i = allowed.front(); i <= allowed.back(); ++i)
    if (std::find(allowed.begin(), allowed.end(), i) == allowed.end()) result.excluded |= kProtocols[i].no_option;
  return result;
}

SslCtxPtr make_server_context(const TlsServerSettings& s) {
  const std::string& prefix = s.parameter_prefix;
  SslCtxPtr ctx = new_context(TLS_server_method());
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!s.chain_files.empty()) {
    load_chain_files(ctx.get(), prefix + "chain_files", s.chain_files);
  } else if (!s.cert_file.empty()) {
    load_cert_and_key(ctx.get(), prefix, s.cert_file, s.key_file);
  } else {
    bad_setting(prefix + "cert_file", "", "a TLS server needs a certificate (or " + prefix + "chain_files)");
  }
  set_protocols(ctx.get(), prefix + "protocols", s.protocols);
  set_ciphers(ctx.get(), prefix, s.cipher_grade, s.cipher_lists, s.exclude_ciphers);
  std::string groups = join(split_list(s.eecdh_curves), ":");
  if (!SSL_CTX_set1_groups_list(ctx.get(), groups.c_str()))
    bad_setting("tls_eecdh_auto_curves", s.eecdh_curves, "unusable: " + openssl_errors());
  SSL_CTX_set_dh_auto(ctx.get(), 1);

  const auto* context = reinterpret_cast<const unsigned char*>(s.session_context.data());
  SSL_CTX_set_session_id_context(ctx.get(), context,
                                 static_cast<unsigned>(std::min<size_t>(s.session_context.size(),
                                                                        SSL_MAX_SID_CTX_LENGTH)));
  if (s.session_timeout.count() > 0) {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_timeout(ctx.get(), static_cast<long>(s.session_timeout.count()));
  } else {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
  }

  if (s.ask_client_cert) {
    load_verify_locations(ctx.get(), prefix, s.ca_file, s.ca_path);
    if (!s.ca_file.empty()) {
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str()))
        SSL_CTX_set_client_CA_list(ctx.get(), names);
      ERR_clear_error();
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_client_cert);
  }
  return ctx;
}

SslCtxPtr make_client_context(const TlsClientSettings& s) {
  const std::string& prefix = s.parameter_prefix;
  SslCtxPtr ctx = new_context(TLS_client_method());
  set_protocols(ctx.get(), prefix + "protocols", s.protocols);
  set_ciphers(ctx.get(), prefix, s.cipher_grade, s.cipher_lists, s.exclude_ciphers);
  if (!s.cert_file.empty()) load_cert_and_key(ctx.get(), prefix, s.cert_file, s.key_file);
  if (s.verify == TlsVerify::kVerify && s.ca_file.empty() && s.ca_path.empty())
    bad_setting(prefix + "CAfile", "", "verifying servers needs " + prefix + "CAfile or " + prefix + "CApath");
  if (s.verify != TlsVerify::kNone) load_verify_locations(ctx.get(), prefix, s.ca_file, s.ca_path);
  SSL_CTX_set_verify(ctx.get(), s.verify == TlsVerify::kVerify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

SslPtr make_ssl(SSL_CTX* ctx) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) throw SystemError(ENOMEM, "SSL_new: " + openssl_errors());
  return ssl;
}

SslPtr make_client_ssl(SSL_CTX* ctx, const std::string& server_name, const std::vector<std::string>& match_names) {
  SslPtr ssl = make_ssl(ctx);
  SSL_set_connect_state(ssl.get());
  if (!server_name.empty() && !is_ip_address(server_name) && !SSL_set_tlsext_host_name(ssl.get(), server_name.c_str()))
    throw SystemError(EINVAL, "SNI name '" + server_name + "': " + openssl_errors());
  std::vector<std::string> names = match_names;
  if (names.empty() && !server_name.empty()) names.push_back(server_name);
  SSL_set_hostflags(ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  for (size_t i = 0; i < names.size(); ++i) {
    int ok = i == 0 ? SSL_set1_host(ssl.get(), names[i].c_str()) : SSL_add1_host(ssl.get(), names[i].c_str());
    if (!ok) throw SystemError(EINVAL, "certificate name '" + names[i] + "': " + openssl_errors());
  }
  return ssl;
}

bool tls_peer_verified(const SSL* ssl) {
  return SSL_get0_peer_certificate(ssl) != nullptr && SSL_get_verify_result(ssl) == X509_V_OK;
}

std::string describe_tls_session(const SSL* ssl) {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  if (!cipher) return "no TLS session";
  int alg_bits = 0;
  int bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
  std::string text = std::string(SSL_get_version(ssl)) + " with cipher " + SSL_CIPHER_get_name(cipher) + " (" +
                     std::to_string(bits) + "/" + std::to_string(alg_bits) + " bits)";
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) return text;
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  text += ", peer " + std::string(data, static_cast<size_t>(std::max(length, 0L)));
  long verify = SSL_get_verify_result(ssl);
  text += verify == X509_V_OK ? " (verified)"
                              : " (not verified: " + std::string(X509_verify_cert_error_string(verify)) + ")";
  return text;
}

Result<TlsStream> TlsStream::accept(UniqueFd fd, SSL_CTX* ctx, TlsTimeout timeout) {
  SslPtr ssl = make_ssl(ctx);
  SSL_set_accept_state(ssl.get());
  return handshake(std::move(fd), std::move(ssl), timeout);
}

Result<TlsStream> TlsStream::connect(UniqueFd fd, SslPtr ssl, TlsTimeout timeout) {
  SSL_set_connect_state(ssl.get());
  return handshake(std::move(fd), std::move(ssl), timeout);
}

Result<TlsStream> TlsStream::handshake(UniqueFd fd, SslPtr ssl, TlsTimeout timeout) {
  set_nonblocking(fd.get());
  if (!SSL_set_fd(ssl.get(), fd.get())) return fail("TLS handshake: " + openssl_errors());
  TlsStream stream(std::move(fd), std::move(ssl));
  SSL* s = stream.ssl_.get();
  auto done = drive(s, stream.fd(), deadline_after(timeout), "TLS handshake", [s] { return SSL_do_handshake(s); });
  if (!done) return done.failure();
  if (!*done) return fail("TLS handshake: the connection was closed");
  return stream;
}

Result<size_t> TlsStream::read(char* buf, size_t size, TlsTimeout timeout) {
  size_t n = 0;
  SSL* s = ssl_.get();
  auto more = drive(s, fd(), deadline_after(timeout), "TLS read", [&] { return SSL_read_ex(s, buf, size, &n); });
  if (!more) return more.failure();
  return *more ? n : 0;
}

Result<void> TlsStream::write(std::string_view data, TlsTimeout timeout) {
  auto deadline = deadline_after(timeout);
  SSL* s = ssl_.get();
  while (!data.empty()) {
    size_t n = 0;
    auto open = drive(s, fd(), deadline, "TLS write",
                      [&] { return SSL_write_ex(s, data.data(), data.size(), &n); });
    if (!open) return open.failure();
    if (!*open) return fail("TLS write: the peer closed the connection");
    data.remove_prefix(n);
  }
  return {};
}

void TlsStream::shutdown(TlsTimeout timeout) {
  SSL* s = ssl_.get();
  // SSL_shutdown returns 0 once our close_notify is sent; the peer's is not awaited.
  auto sent = drive(s, fd(), deadline_after(timeout), "TLS shutdown", [s] {
    int ret = SSL_shutdown(s);
    return ret == 0 ? 1 : ret;
  });
  (void)sent;
}

}  // namespace postern
