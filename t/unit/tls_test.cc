// Unit tests for TLS: real handshakes over socketpairs between a server context
// and a client context, with certificates the test makes (a private CA, server and
// client certificates); protocol floors, verification, client certificates, the
// session description, timeouts, and clear errors for unusable settings.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "mail/config.h"
#include "mail/tls_config.h"
#include "util/error.h"
#include "util/socket.h"
#include "util/tls.h"

using namespace postern;
using postern::test::TempDir;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::Matches;

namespace {

EvpPkeyPtr new_key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  REQUIRE(key);
  return key;
}

// A certificate for cn with key, signed by issuer (self-signed when issuer is null).
X509Ptr new_cert(const std::string& cn, EVP_PKEY* key, X509* issuer_cert, EVP_PKEY* issuer_key, bool ca,
                 const std::vector<std::string>& dns_names = {}) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), issuer_cert ? X509_get_subject_name(issuer_cert) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert ? issuer_cert : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto add_ext = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    REQUIRE(ext);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add_ext(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) add_ext(NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!dns_names.empty()) {
    std::string san;
    for (const auto& n : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
    add_ext(NID_subject_alt_name, san);
  }
  REQUIRE(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0);
  return cert;
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(n));
  BIO_free(bio);
  return text;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(n));
  BIO_free(bio);
  return text;
}

// A private CA with a server certificate for mx.example.com and a client certificate.
struct Pki {
  TempDir dir;
  std::string ca_file, server_cert, server_key, client_cert, client_key, other_key, chain_file;
  Pki() {
    EvpPkeyPtr ca_key = new_key();
    X509Ptr ca = new_cert("Test CA", ca_key.get(), nullptr, nullptr, true);
    EvpPkeyPtr skey = new_key();
    X509Ptr scert = new_cert("mx.example.com", skey.get(), ca.get(), ca_key.get(), false, {"mx.example.com"});
    EvpPkeyPtr ckey = new_key();
    X509Ptr ccert = new_cert("client.example.org", ckey.get(), ca.get(), ca_key.get(), false);
    EvpPkeyPtr okey = new_key();
    ca_file = dir.write("ca.pem", pem_of(ca.get()));
    server_cert = dir.write("server.pem", pem_of(scert.get()) + pem_of(ca.get()));
    server_key = dir.write("server.key", pem_of(skey.get()), 0600);
    client_cert = dir.write("client.pem", pem_of(ccert.get()));
    client_key = dir.write("client.key", pem_of(ckey.get()), 0600);
    other_key = dir.write("other.key", pem_of(okey.get()), 0600);
    chain_file = dir.write("chain.pem", pem_of(skey.get()) + pem_of(scert.get()) + pem_of(ca.get()), 0600);
  }
};

const Pki& pki() {
  static Pki instance;
  return instance;
}

TlsServerSettings server_settings() {
  TlsServerSettings s;
  s.cert_file = pki().server_cert;
  s.key_file = pki().server_key;
  return s;
}

struct HandshakeOutcome {
  Result<TlsStream> server = fail("not run");
  Result<TlsStream> client = fail("not run");
};

// Both sides of one handshake over a socketpair; the server runs on a thread.
HandshakeOutcome handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx, const std::string& server_name = "mx.example.com",
                           const std::vector<std::string>& match_names = {}) {
  auto [a, b] = make_socketpair();
  auto server = std::async(std::launch::async, [fd = std::move(a), server_ctx]() mutable {
    return TlsStream::accept(std::move(fd), server_ctx, 5s);
  });
  HandshakeOutcome outcome;
  outcome.client = TlsStream::connect(std::move(b), make_client_ssl(client_ctx, server_name, match_names), 5s);
  outcome.server = server.get();
  return outcome;
}

}  // namespace

TEST_CASE("a handshake with the defaults gives TLS 1.3 and carries data both ways", "[tls]") {
  SslCtxPtr server_ctx = make_server_context(server_settings());
  SslCtxPtr client_ctx = make_client_context({});
  auto outcome = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE(outcome.server.ok());
  REQUIRE(outcome.client.ok());
  TlsStream& server = *outcome.server;
  TlsStream& client = *outcome.client;

  CHECK(server.describe() == "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
  // The client sees the server's certificate, but was not asked to verify it.
  CHECK_THAT(client.describe(), Matches("TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\), peer "
                                        "CN=mx\\.example\\.com \\(not verified: .*\\)"));
  CHECK_FALSE(tls_peer_verified(client.ssl()));

  std::string big(100000, 'x');
  auto writer = std::async(std::launch::async, [&] { return client.write("EHLO there\r\n" + big, 5s); });
  std::string got;
  char buf[4096];
  while (got.size() < 12 + big.size()) {
    auto n = server.read(buf, sizeof buf, 5s);
    REQUIRE(n.ok());
    REQUIRE(*n > 0);
    got.append(buf, *n);
  }
  REQUIRE(writer.get().ok());
  CHECK(got.substr(0, 12) == "EHLO there\r\n");
  CHECK(got.size() == 12 + big.size());

  // A close_notify reads as the end of input.
  client.shutdown(1s);
  auto end = server.read(buf, sizeof buf, 5s);
  REQUIRE(end.ok());
  CHECK(*end == 0);
}

TEST_CASE("the protocol floor refuses a client that speaks only TLS 1.1", "[tls]") {
  SslCtxPtr server_ctx = make_server_context(server_settings());  // >=TLSv1.2
  TlsClientSettings old;
  old.protocols = "TLSv1.1";
  old.cipher_lists.medium = "DEFAULT:@SECLEVEL=0";  // so that the client really offers TLS 1.1
  SslCtxPtr client_ctx = make_client_context(old);
  auto outcome = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE_FALSE(outcome.server.ok());
  CHECK_THAT(outcome.server.error(), Contains("TLS handshake") && Contains("unsupported protocol"));
  CHECK_FALSE(outcome.client.ok());

  SECTION("and a TLS 1.2 client is served with TLS 1.2") {
    TlsClientSettings tls12;
    tls12.protocols = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3";
    SslCtxPtr ctx12 = make_client_context(tls12);
    auto ok = handshake(server_ctx.get(), ctx12.get());
    REQUIRE(ok.server.ok());
    CHECK(ok.server->describe() == "TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)");
  }
}

TEST_CASE("protocol lists in Postfix's three forms", "[tls]") {
  auto exclusions = parse_tls_protocols("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1");
  REQUIRE(exclusions.ok());
  CHECK(exclusions->min_version == TLS1_2_VERSION);
  CHECK(exclusions->max_version == 0);
  CHECK(exclusions->excluded == 0);

  auto inclusions = parse_tls_protocols("TLSv1.2:TLSv1.3");
  REQUIRE(inclusions.ok());
  CHECK(inclusions->min_version == TLS1_2_VERSION);
  CHECK(inclusions->max_version == 0);

  auto bounds = parse_tls_protocols(">=TLSv1.1 <=tlsv1.2");
  REQUIRE(bounds.ok());
  CHECK(bounds->min_version == TLS1_1_VERSION);
  CHECK(bounds->max_version == TLS1_2_VERSION);

  auto hole = parse_tls_protocols(">=TLSv1.1, !TLSv1.2");
  REQUIRE(hole.ok());
  CHECK(hole->min_version == TLS1_1_VERSION);
  CHECK(hole->max_version == 0);
  CHECK(hole->excluded == SSL_OP_NO_TLSv1_2);

  auto all = parse_tls_protocols("");
  REQUIRE(all.ok());
  CHECK(all->min_version == SSL3_VERSION);

  CHECK(parse_tls_protocols("TLSv1.4").error() == "unknown protocol 'TLSv1.4'");
  CHECK(parse_tls_protocols("!TLSv1.2, !TLSv1.3, <=TLSv1.3, >=TLSv1.2").error() ==
        "no protocol is left that OpenSSL can speak");
  CHECK_FALSE(parse_tls_protocols("SSLv2").ok());
}

TEST_CASE("unusable server settings are errors that name the parameter", "[tls]") {
  TlsServerSettings s = server_settings();
  std::string expected;
  SECTION("a key that belongs to another certificate") {
    s.key_file = pki().other_key;
    expected = "smtpd_tls_key_file = " + pki().other_key +
               ": the private key does not match the certificate in smtpd_tls_cert_file = " + pki().server_cert;
  }
  SECTION("a missing certificate file") {
    s.cert_file = pki().dir.path + "/missing.pem";
    expected = "smtpd_tls_cert_file = " + s.cert_file + ": cannot open: No such file or directory";
  }
  SECTION("a certificate file without a certificate") {
    s.cert_file = pki().server_key;
    expected = "smtpd_tls_cert_file = " + s.cert_file + ": no certificate found";
  }
  SECTION("a key file without a key") {
    s.key_file = pki().ca_file;
    expected = "smtpd_tls_key_file = " + s.key_file + ": no private key found";
  }
  SECTION("no certificate at all") {
    s.cert_file.clear();
    expected = "smtpd_tls_cert_file = : a TLS server needs a certificate (or smtpd_tls_chain_files)";
  }
  SECTION("garbage in a PEM file") {
    s.cert_file = pki().dir.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64 !!\n"
                                                 "-----END CERTIFICATE-----\n");
    expected = "smtpd_tls_cert_file = " + s.cert_file + ": malformed";
  }
  SECTION("an encrypted key") {
    EvpPkeyPtr key = new_key();
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key.get(), EVP_aes_128_cbc(), nullptr, 0, nullptr, const_cast<char*>("pass"));
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    s.key_file = pki().dir.write("encrypted.key", std::string(data, static_cast<size_t>(n)), 0600);
    BIO_free(bio);
    expected = "smtpd_tls_key_file = " + s.key_file +
               ": the private key is encrypted (a daemon cannot ask for its passphrase)";
  }
  SECTION("an unknown protocol") {
    s.protocols = "!SSLv2, TLSv9";
    expected = "smtpd_tls_protocols = !SSLv2, TLSv9: unknown protocol 'TLSv9'";
  }
  SECTION("an unknown cipher grade") {
    s.cipher_grade = "export";
    expected = "smtpd_tls_ciphers = export: unknown cipher grade (high, medium or null)";
  }
  SECTION("a cipher list that leaves nothing") {
    s.cipher_lists.high = "NOSUCHCIPHER";
    s.cipher_grade = "high";
    expected = "tls_high_cipherlist = NOSUCHCIPHER: no usable cipher";
  }
  SECTION("an unknown curve") {
    s.eecdh_curves = "X25519 nosuchcurve";
    expected = "tls_eecdh_auto_curves = X25519 nosuchcurve: unusable";
  }
  SECTION("a chain file whose certificate comes first") {
    s.chain_files = {pki().server_cert};
    expected = "smtpd_tls_chain_files = " + pki().server_cert + ": a certificate comes before its private key";
  }
  s.parameter_prefix = "smtpd_tls_";
  try {
    make_server_context(s);
    FAIL("no error for: " << expected);
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith(expected));
  }
}

TEST_CASE("chain files hold the key, the certificate and its chain", "[tls]") {
  TlsServerSettings s;
  s.chain_files = {pki().chain_file};
  SslCtxPtr server_ctx = make_server_context(s);
  TlsClientSettings c;
  c.verify = TlsVerify::kVerify;
  c.ca_file = pki().ca_file;
  SslCtxPtr client_ctx = make_client_context(c);
  auto outcome = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE(outcome.client.ok());
  CHECK(tls_peer_verified(outcome.client->ssl()));
}

TEST_CASE("a verifying client accepts only a trusted certificate with a matching name", "[tls]") {
  SslCtxPtr server_ctx = make_server_context(server_settings());
  TlsClientSettings c;
  c.verify = TlsVerify::kVerify;
  c.ca_file = pki().ca_file;
  SslCtxPtr client_ctx = make_client_context(c);

  auto good = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE(good.client.ok());
  CHECK(tls_peer_verified(good.client->ssl()));
  CHECK_THAT(good.client->describe(), Contains(", peer CN=mx.example.com (verified)"));

  auto parent = handshake(server_ctx.get(), client_ctx.get(), "example.com", {"other.example.net", ".example.com"});
  CHECK(parent.client.ok());

  auto wrong_name = handshake(server_ctx.get(), client_ctx.get(), "mail.example.net");
  REQUIRE_FALSE(wrong_name.client.ok());
  CHECK_THAT(wrong_name.client.error(), Contains("certificate verify failed (hostname mismatch)"));

  SECTION("an untrusted certificate fails") {
    TlsClientSettings other = c;
    other.ca_file = pki().client_cert;  // a certificate that is not the CA
    SslCtxPtr strict = make_client_context(other);
    auto untrusted = handshake(server_ctx.get(), strict.get());
    REQUIRE_FALSE(untrusted.client.ok());
    CHECK_THAT(untrusted.client.error(), Contains("certificate verify failed"));
  }
  SECTION("'may' goes on with a wrong name and says so") {
    TlsClientSettings may = c;
    may.verify = TlsVerify::kMay;
    SslCtxPtr lenient = make_client_context(may);
    auto outcome = handshake(server_ctx.get(), lenient.get(), "mail.example.net");
    REQUIRE(outcome.client.ok());
    CHECK_FALSE(tls_peer_verified(outcome.client->ssl()));
    CHECK_THAT(outcome.client->describe(), Contains("(not verified: hostname mismatch)"));
  }
  SECTION("verifying without CAs is a configuration error") {
    TlsClientSettings none;
    none.verify = TlsVerify::kVerify;
    CHECK_THROWS_WITH(make_client_context(none),
                      "smtp_tls_CAfile = : verifying servers needs smtp_tls_CAfile or smtp_tls_CApath");
  }
}

TEST_CASE("a server that asks for client certificates reports the subject", "[tls]") {
  TlsServerSettings s = server_settings();
  s.ask_client_cert = true;
  s.ca_file = pki().ca_file;
  SslCtxPtr server_ctx = make_server_context(s);
  TlsClientSettings c;
  c.cert_file = pki().client_cert;
  c.key_file = pki().client_key;
  SslCtxPtr client_ctx = make_client_context(c);
  auto outcome = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE(outcome.server.ok());
  CHECK(outcome.server->describe() ==
        "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits), peer CN=client.example.org (verified)");
  CHECK(tls_peer_verified(outcome.server->ssl()));

  SECTION("a client without one is still served") {
    SslCtxPtr anonymous = make_client_context({});
    auto plain = handshake(server_ctx.get(), anonymous.get());
    REQUIRE(plain.server.ok());
    CHECK(plain.server->describe() == "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
    CHECK_FALSE(tls_peer_verified(plain.server->ssl()));
  }
}

TEST_CASE("a handshake with a silent peer times out", "[tls]") {
  SslCtxPtr server_ctx = make_server_context(server_settings());
  auto [a, b] = make_socketpair();
  auto start = std::chrono::steady_clock::now();
  auto stream = TlsStream::accept(std::move(a), server_ctx.get(), 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(stream.ok());
  CHECK(stream.error() == "TLS handshake: timed out");
  CHECK(took >= 190ms);
  CHECK(took < 2s);

  SECTION("and a peer that hangs up fails at once") {
    auto [c, d] = make_socketpair();
    d.reset();
    auto closed = TlsStream::accept(std::move(c), server_ctx.get(), 5s);
    REQUIRE_FALSE(closed.ok());
    CHECK(closed.error() == "TLS handshake: the connection was closed");
  }
}

TEST_CASE("a peer that speaks plain text instead of TLS is refused", "[tls]") {
  SslCtxPtr server_ctx = make_server_context(server_settings());
  auto [a, b] = make_socketpair();
  std::string hello = "EHLO plain.example\r\n";
  REQUIRE(::write(b.get(), hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
  auto stream = TlsStream::accept(std::move(a), server_ctx.get(), 5s);
  REQUIRE_FALSE(stream.ok());
  CHECK_THAT(stream.error(), Contains("TLS handshake: ") && Contains("wrong version number"));
}

TEST_CASE("contexts from main.cf use the parameter families and say where a bad value was set", "[tls]") {
  std::string main_cf = "myhostname = mx.example.com\n"
                        "smtpd_tls_cert_file = " + pki().server_cert + "\n"
                        "smtpd_tls_key_file = " + pki().server_key + "\n"
                        "smtpd_tls_mandatory_protocols = TLSv1.2\n"
                        "smtp_tls_CAfile = " + pki().ca_file + "\n";
  Config config = Config::parse(pki().dir.path, main_cf);
  TlsServerSettings settings = tls_server_settings(config, "smtpd_tls_", false);
  CHECK(settings.protocols == ">=TLSv1.2");
  CHECK(settings.cipher_grade == "medium");
  CHECK(settings.cipher_lists.medium == "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH");
  CHECK(settings.session_timeout == std::chrono::seconds(3600));
  CHECK(tls_server_settings(config, "smtpd_tls_", true).protocols == "TLSv1.2");

  SslCtxPtr server_ctx = make_server_context(config, "smtpd_tls_", true);
  SslCtxPtr client_ctx = make_client_context(config, "smtp_tls_", TlsVerify::kVerify, false);
  auto outcome = handshake(server_ctx.get(), client_ctx.get());
  REQUIRE(outcome.client.ok());
  CHECK_THAT(outcome.client->describe(), Catch::Matchers::StartsWith("TLSv1.2 with cipher ECDHE-ECDSA-"));
  CHECK(tls_peer_verified(outcome.client->ssl()));

  Config mismatched = Config::parse(pki().dir.path, main_cf + "smtpd_tls_key_file = " + pki().other_key + "\n");
  CHECK_THROWS_WITH(make_server_context(mismatched, "smtpd_tls_", false),
                    pki().dir.path + "/main.cf:6: smtpd_tls_key_file = " + pki().other_key +
                        ": the private key does not match the certificate in smtpd_tls_cert_file = " +
                        pki().server_cert);
  Config bad_curves = Config::parse(pki().dir.path, main_cf + "tls_eecdh_auto_curves = nosuch\n");
  CHECK_THROWS_WITH(make_server_context(bad_curves, "smtpd_tls_", false),
                    Catch::Matchers::StartsWith(pki().dir.path + "/main.cf:6: tls_eecdh_auto_curves = nosuch: "));
}

TEST_CASE("sessions resume unless the session timeout is zero", "[tls]") {
  TlsClientSettings c;
  c.protocols = "TLSv1.2";  // a TLS 1.2 session is ready right after the handshake
  SslCtxPtr client_ctx = make_client_context(c);
  // Two handshakes; the second offers the first one's session. True when it resumed.
  auto resumes = [&](SSL_CTX* server_ctx) {
    auto first = handshake(server_ctx, client_ctx.get());
    REQUIRE(first.client.ok());
    SSL_SESSION* session = SSL_get1_session(first.client->ssl());
    REQUIRE(session);
    auto [a, b] = make_socketpair();
    auto server = std::async(std::launch::async, [fd = std::move(a), server_ctx]() mutable {
      return TlsStream::accept(std::move(fd), server_ctx, 5s);
    });
    SslPtr ssl = make_client_ssl(client_ctx.get(), "mx.example.com");
    SSL_set_session(ssl.get(), session);
    SSL_SESSION_free(session);
    auto second = TlsStream::connect(std::move(b), std::move(ssl), 5s);
    REQUIRE(server.get().ok());
    REQUIRE(second.ok());
    return SSL_session_reused(second->ssl()) == 1;
  };
  SslCtxPtr caching = make_server_context(server_settings());
  CHECK(resumes(caching.get()));
  TlsServerSettings no_cache = server_settings();
  no_cache.session_timeout = std::chrono::seconds(0);
  SslCtxPtr fresh = make_server_context(no_cache);
  CHECK_FALSE(resumes(fresh.get()));
}
