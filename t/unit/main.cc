// The Catch2 runner for every unit test in t/unit. Started with
// POSTERN_UNIT_TEST_DAEMON set, the binary is instead the small daemon that
// daemon_test.cc starts the way master starts one (a fresh process, so nothing of
// the test runner's state is inherited).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

int echo_daemon_main(int argc, char** argv);  // daemon_test.cc

int main(int argc, char** argv) {
  if (std::getenv("POSTERN_UNIT_TEST_DAEMON")) return echo_daemon_main(argc, argv);
  return Catch::Session().run(argc, argv);
}
