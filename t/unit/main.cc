// The Catch2 runner for every unit test in t/unit.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
