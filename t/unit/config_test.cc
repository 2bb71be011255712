// Unit tests for main.cf parsing, expansion, typed values, the parameter table,
// master.cf parsing and postconf -e style edits.
#include <catch2/catch.hpp>

#include "temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "mail/config.h"
#include "mail/main_cf_edit.h"
#include "mail/master_cf.h"
#include "mail/params.h"
#include "mail/table.h"
#include "util/error.h"
#include "util/file.h"
#include "util/strings.h"

using namespace postern;
using postern::test::TempDir;
namespace fs = std::filesystem;

namespace {


Config parse(const std::string& text) { return Config::parse("/etc/test", text); }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("main.cf lines, continuations and comments", "[config]") {
  Config c = parse("# comment\n\nmyhostname = mail.example.com\nmydestination = a,\n  b,\n# inside\n\tc\n  \nx=1\n");
  CHECK(c.str("myhostname") == "mail.example.com");
  CHECK(c.raw("mydestination") == "a, b, c");
  CHECK(c.entry("x")->line == 9);
  CHECK(c.entry("mydestination")->line == 4);
}

TEST_CASE("main.cf syntax errors name file and line", "[config]") {
  CHECK(error_of([] { parse("a = 1\njust words\n"); }) == "/etc/test/main.cf:2: missing '=' after parameter name \"just words\"");
  CHECK(error_of([] { parse("  leading = 1\n"); }) == "/etc/test/main.cf:1: continuation line with nothing to continue");
  CHECK(error_of([] { parse("bad name = 1\n"); }) == "/etc/test/main.cf:1: invalid parameter name \"bad name\"");
  CHECK(error_of([] { parse("= 1\n"); }) == "/etc/test/main.cf:1: missing parameter name before '='");
}

TEST_CASE("a later setting wins and config_directory is the directory read", "[config]") {
  Config c = parse("relayhost = a\nrelayhost = b\nconfig_directory = /elsewhere\n");
  CHECK(c.str("relayhost") == "b");
  CHECK(c.str("config_directory") == "/etc/test");
}

TEST_CASE("expansion of $name, ${name}, $(name) and $$", "[config]") {
  Config c = parse("a = A\nb = [$a] [${a}] [$(a)] $$a\nc = $b!\n");
  CHECK(c.str("b") == "[A] [A] [A] $a");
  CHECK(c.str("c") == "[A] [A] [A] $a!");
  // Expansion is lazy: defaults follow the configured values they name.
  Config d = parse("myhostname = mx.example.org\n");
  CHECK(d.str("myorigin") == "mx.example.org");
  CHECK(d.str("mydomain") == "example.org");
  CHECK(d.str("mydestination") == "mx.example.org, localhost.example.org, localhost");
}

TEST_CASE("conditional expansion", "[config]") {
  Config c = parse("set = x\nempty =\nq1 = ${set?yes}\nq2 = ${empty?yes}\nq3 = ${set:no}\nq4 = ${empty:no}\n"
                   "q5 = ${set?{has $set}:{none}}\nq6 = ${empty?{has}:{none $set}}\nq7 = ${undefined_one?x}\n"
                   "q8 = ${undefined_one:fallback}\n");
  CHECK(c.str("q1") == "yes");
  CHECK(c.str("q2") == "");
  CHECK(c.str("q3") == "");
  CHECK(c.str("q4") == "no");
  CHECK(c.str("q5") == "has x");
  CHECK(c.str("q6") == "none x");
  CHECK(c.str("q7") == "");
  CHECK(c.str("q8") == "fallback");
}

TEST_CASE("expansion errors: undefined names, cycles, depth, stray $", "[config]") {
  Config c = parse("a = $nosuch\nloop1 = $loop2\nloop2 = x $loop1\nself = $self\nstray = cost $ 5\n"
                   "tail = 5$\nopen = ${a\nweird = ${a!x}\n");
  CHECK(error_of([&] { c.str("a"); }) == "/etc/test/main.cf:1: undefined parameter $nosuch");
  CHECK_THAT(error_of([&] { c.str("loop1"); }), Catch::Contains("refers to itself"));
  CHECK_THAT(error_of([&] { c.str("self"); }), Catch::Contains("main.cf:4: parameter $self refers to itself"));
  CHECK_THAT(error_of([&] { c.str("stray"); }), Catch::Contains("main.cf:5: '$' must be followed"));
  CHECK_THAT(error_of([&] { c.str("tail"); }), Catch::Contains("main.cf:6: '$' at the end"));
  CHECK_THAT(error_of([&] { c.str("open"); }), Catch::Contains("main.cf:7: unbalanced"));
  CHECK_THAT(error_of([&] { c.str("weird"); }), Catch::Contains("main.cf:8: invalid expression"));
  // A long chain that is not a cycle still ends at the depth limit.
  std::string text;
  for (int i = 0; i < 150; ++i) text += "p" + std::to_string(i) + " = $p" + std::to_string(i + 1) + "\n";
  text += "p150 = end\n";
  CHECK_THAT(error_of([&] { parse(text).str("p0"); }), Catch::Contains("nests too deep"));
  std::string shallow;
  for (int i = 0; i < 50; ++i) shallow += "p" + std::to_string(i) + " = $p" + std::to_string(i + 1) + "\n";
  shallow += "p50 = end\n";
  CHECK(parse(shallow).str("p0") == "end");
}

TEST_CASE("typed values are checked against the parameter table", "[config]") {
  Config c = parse("message_size_limit = 20m\nsmtpd_timeout = 5m\nmaximal_queue_lifetime = 2\n"
                   "disable_vrfy_command = no\nsmtpd_recipient_limit = 0\nmax_use = 12x\n"
                   "smtpd_tls_security_level = maybe\nsmtpd_helo_required = sure\n");
  CHECK(c.bytes("message_size_limit") == 20 * 1024 * 1024);
  CHECK(c.seconds("smtpd_timeout") == 300);
  CHECK(c.seconds("maximal_queue_lifetime") == 2 * 86400);  // a bare number is days here, as in Postfix
  CHECK_FALSE(c.boolean("disable_vrfy_command"));
  CHECK(c.integer("default_process_limit") == 100);
  CHECK(error_of([&] { c.integer("smtpd_recipient_limit"); }) ==
        "/etc/test/main.cf:5: invalid value for smtpd_recipient_limit: \"0\" (expected a whole number from 1 to 1000000)");
  CHECK_THAT(error_of([&] { c.integer("max_use"); }), Catch::Contains("main.cf:6: invalid value for max_use"));
  CHECK_THAT(error_of([&] { c.boolean("smtpd_helo_required"); }), Catch::Contains("main.cf:8:"));
  CHECK_THAT(error_of([&] { c.integer("smtpd_timeout"); }), Catch::Contains("is not a whole number"));
  std::vector<std::string> problems = c.check();
  REQUIRE(problems.size() == 4);
  CHECK_THAT(problems[0], Catch::Contains("max_use"));
  CHECK_THAT(join(problems, "\n"), Catch::Contains("main.cf:7: invalid value for smtpd_tls_security_level: \"maybe\""));
}

TEST_CASE("time, size and boolean parsing", "[config]") {
  CHECK(parse_time("30", 's') == 30);
  CHECK(parse_time("2h", 's') == 7200);
  CHECK(parse_time("1w", 's') == 604800);
  CHECK(parse_time("3", 'd') == 259200);
  CHECK_FALSE(parse_time("3x", 's'));
  CHECK_FALSE(parse_time("-1s", 's'));
  CHECK_FALSE(parse_time("", 's'));
  CHECK_FALSE(parse_time("99999999999999999999", 's'));
  CHECK(parse_size("1024") == 1024);
  CHECK(parse_size("10k") == 10240);
  CHECK_FALSE(parse_size("ten"));
  CHECK(parse_bool("Yes") == true);
  CHECK(parse_bool("off") == false);
  CHECK_FALSE(parse_bool("maybe"));
}

TEST_CASE("the parameter table is sorted, documented, and its defaults are valid", "[config][params]") {
  auto params = all_params();
  REQUIRE(params.size() > 50);
  for (size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].name);
    CHECK(params[i].doc.size() > 10);
    if (i) CHECK(params[i - 1].name < params[i].name);
    CHECK(find_param(params[i].name) == &params[i]);
  }
  CHECK(find_param("no_such_parameter") == nullptr);
  CHECK(Config::defaults("/etc/postern").check().empty());
}

TEST_CASE("unused parameters are those nobody knows or refers to", "[config]") {
  Config c = parse("my_networks = 1.2.3.4\nmy_list = a b\nmynetworks = $my_list\n");
  auto unused = c.unused();
  REQUIRE(unused.size() == 1);
  CHECK(unused[0]->name == "my_networks");
}

TEST_CASE("a config directory is chosen by -c, then the environment, then /etc/postern", "[config]") {
  ::setenv("POSTERN_CONFIG_DIR", "/from/env", 1);
  CHECK(Config::choose_dir("/from/flag") == "/from/flag");
  CHECK(Config::choose_dir("") == "/from/env");
  ::unsetenv("POSTERN_CONFIG_DIR");
  CHECK(Config::choose_dir("") == "/etc/postern");
}

TEST_CASE("load reads DIR/main.cf; a missing file means defaults", "[config]") {
  TempDir dir;
  CHECK(Config::load(dir.path).str("mail_name") == "Postern");
  dir.write("main.cf", "mail_name = Other\n");
  CHECK(Config::load(dir.path).str("mail_name") == "Other");
  CHECK(Config::load(dir.path).str("config_directory") == dir.path);
}

namespace {
const char* kMasterCf =
    "# comment\n"
    "smtp       inet  n       -       n       -       -       smtpd\n"
    "127.0.0.1:2525 inet n    -       y       -       10      smtpd -v\n"
    "submission inet  n       -       n       -       -       smtpd\n"
    "  -o syslog_name=postern/submission\n"
    "  -o { smtpd_relay_restrictions = permit_sasl_authenticated, reject }\n"
    "pickup     unix  n       -       n       60      1       pickup\n"
    "qmgr       unix  n       -       n       300?    1       qmgr\n"
    "local      unix  -       n       n       -       -       local\n";
}

TEST_CASE("master.cf services and their columns", "[master_cf]") {
  Config config = parse("");
  auto s = parse_master_cf("/etc/test/master.cf", kMasterCf, config);
  REQUIRE(s.size() == 6);
  CHECK(s[0].id() == "smtp/inet");
  CHECK_FALSE(s[0].private_service);
  CHECK(s[0].unprivileged);
  CHECK_FALSE(s[0].chroot);
  CHECK_FALSE(s[0].max_processes.has_value());
  CHECK(s[1].name == "127.0.0.1:2525");
  CHECK(s[1].chroot);
  CHECK(s[1].max_processes == 10);
  CHECK(s[1].args == std::vector<std::string>{"-v"});
  REQUIRE(s[2].overrides.size() == 2);
  CHECK(s[2].overrides[0].name == "syslog_name");
  CHECK(s[2].overrides[1].value == "permit_sasl_authenticated, reject");
  CHECK(s[2].line == 4);
  CHECK(s[3].wakeup_seconds == 60);
  CHECK_FALSE(s[3].wakeup_only_if_used);
  CHECK(s[4].wakeup_only_if_used);
  CHECK(s[5].private_service);
  CHECK_FALSE(s[5].unprivileged);
  Config submission = service_config(config, s[2]);
  CHECK(submission.str("smtpd_relay_restrictions") == "permit_sasl_authenticated, reject");
  CHECK(config.str("smtpd_relay_restrictions") != submission.str("smtpd_relay_restrictions"));
}

TEST_CASE("master.cf errors name file and line", "[master_cf]") {
  Config config = parse("my_restrictions = reject\n");
  auto err = [&](const std::string& text) {
    return error_of([&] { parse_master_cf("m.cf", text, config); });
  };
  CHECK(err("smtp inet n - n - -\n") ==
        "m.cf:1: expected 8 columns (service type private unpriv chroot wakeup maxproc command), found 7");
  CHECK(err("\nsmtp tcp n - n - - smtpd\n") ==
        "m.cf:2: unknown service type \"tcp\" (expected inet, unix, unix-dgram, fifo or pass)");
  CHECK(err("smtp inet n yes n - - smtpd\n") == "m.cf:1: column 'unpriv' must be y, n or -, not \"yes\"");
  CHECK(err("smtp inet y - n - - smtpd\n") == "m.cf:1: an inet service cannot be private");
  CHECK(err("99999 inet n - n - - smtpd\n") == "m.cf:1: bad port in inet service \"99999\"");
  CHECK(err("nosuchport inet n - n - - smtpd\n") == "m.cf:1: unknown port \"nosuchport\" in inet service \"nosuchport\"");
  CHECK(err("a unix - - n x - a\n") == "m.cf:1: column 'wakeup' must be a number of seconds or -, not \"x\"");
  CHECK(err("a unix - - n - -3 a\n") == "m.cf:1: column 'maxproc' must be a number or -, not \"-3\"");
  CHECK(err("a unix - - n - - a\na unix - - n - - b\n") == "m.cf:2: duplicate service a/unix");
  CHECK(err("a unix - - n - - a -o\n") == "m.cf:1: -o at the end of the line needs name=value");
  CHECK(err("a unix - - n - - a -o nonsense\n") == "m.cf:1: -o needs name=value, not \"nonsense\"");
  CHECK(err("a unix - - n - - a -o smtpd_tmeout=5\n") ==
        "m.cf:1: -o smtpd_tmeout: unknown parameter (not a Postern parameter, nor set in main.cf)");
  CHECK(err("a unix - - n - - /bin/sh\n") == "m.cf:1: command \"/bin/sh\" must be a program name in daemon_directory");
  CHECK(err("../x unix - - n - - a\n") == "m.cf:1: bad service name \"../x\": no '/' allowed");
  CHECK(err("  a unix - - n - - a\n") == "m.cf:1: continuation line with nothing to continue");
  // A parameter main.cf defines may be overridden; so may a known one.
  CHECK(err("a unix - - n - - a -o my_restrictions=permit -o max_use=1\n") == "(no error)");
}

TEST_CASE("main.cf edits keep comments and replace whole logical lines", "[config][edit]") {
  std::string text = "# top\nrelayhost = old\n  continued\nmynetworks = 1.2.3.4\n# end\n";
  CHECK(apply_main_cf_edits(text, {{"relayhost", "new"}}) == "# top\nrelayhost = new\nmynetworks = 1.2.3.4\n# end\n");
  CHECK(apply_main_cf_edits(text, {{"relayhost", std::nullopt}}) == "# top\nmynetworks = 1.2.3.4\n# end\n");
  CHECK(apply_main_cf_edits(text, {{"myhostname", "m.example"}}) ==
        "# top\nrelayhost = old\n  continued\nmynetworks = 1.2.3.4\n# end\nmyhostname = m.example\n");
  CHECK(apply_main_cf_edits("a = 1\na = 2\n", {{"a", "3"}}) == "a = 3\n");
}

TEST_CASE("an edit that breaks main.cf is refused and changes nothing", "[config][edit]") {
  TempDir dir;
  dir.write("main.cf", "# keep me\nmax_use = 5\n");
  ::chmod((dir.path + "/main.cf").c_str(), 0640);
  edit_main_cf(dir.path, {{"max_use", "7"}, {"relayhost", "[mx]:25"}});
  CHECK(read_file(dir.path + "/main.cf") == "# keep me\nmax_use = 7\nrelayhost = [mx]:25\n");
  struct stat st;
  REQUIRE(::stat((dir.path + "/main.cf").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK_THROWS_WITH(edit_main_cf(dir.path, {{"max_use", "lots"}}),
                    Catch::Contains("edit refused: invalid value for max_use: \"lots\""));
  CHECK_THROWS_WITH(edit_main_cf(dir.path, {{"relayhost", "$nowhere"}}), Catch::Contains("undefined parameter $nowhere"));
  CHECK_THROWS_AS(edit_main_cf(dir.path, {{"bad name", "1"}}), UsageError);
  CHECK(read_file(dir.path + "/main.cf") == "# keep me\nmax_use = 7\nrelayhost = [mx]:25\n");
  // An existing problem elsewhere does not block an unrelated edit.
  dir.write("main.cf", "max_use = broken\n");
  edit_main_cf(dir.path, {{"relayhost", "x"}});
  CHECK(read_file(dir.path + "/main.cf") == "max_use = broken\nrelayhost = x\n");
}

TEST_CASE("an error in a parameter's value names where it was set", "[config]") {
  Config config = parse("myhostname = x.example\nvirtual_alias_maps = nosuchtype:/x\n");
  CHECK(std::string(config.error_in("virtual_alias_maps", "bad").what()) ==
        "/etc/test/main.cf:2: virtual_alias_maps: bad");
  CHECK(std::string(config.error_in("relayhost", "bad").what()) == "/etc/test/main.cf: relayhost: bad");
  // tables_of: a table type that does not exist is an error at the parameter's line.
  try {
    tables_of(config, "virtual_alias_maps");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).starts_with("/etc/test/main.cf:2: virtual_alias_maps: "));
  }
  CHECK(tables_of(config, "relay_recipient_maps").empty());
}
