// Unit tests for queue IDs: uniqueness, order, the decode for mailq, and the
// validity check postsuper applies to what users type.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mail/queue_id.h"

using namespace postern;

TEST_CASE("queue IDs are unique over inodes and times", "[queue_id]") {
  std::set<std::string> seen;
  size_t made = 0;
  for (int64_t seconds : {int64_t{0}, int64_t{1700000000}, int64_t{1700000001}}) {
    for (int32_t micros : {0, 1, 999999}) {
      for (uint64_t inode = 0; inode < 2000; ++inode) {
        std::string id = make_queue_id(seconds, micros, inode);
        CHECK(is_valid_queue_id(id));
        seen.insert(id);
        ++made;
      }
      for (uint64_t inode : {uint64_t{1} << 32, uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()}) {
        seen.insert(make_queue_id(seconds, micros, inode));
        ++made;
      }
    }
  }
  CHECK(seen.size() == made);
}

TEST_CASE("queue IDs sort by arrival time", "[queue_id]") {
  std::vector<std::string> ids;
  // Times in order, with inodes of every width so that the tail cannot decide the order.
  const std::vector<uint64_t> inodes = {std::numeric_limits<uint64_t>::max(), 7, 123456789, 0};
  int64_t seconds = 1000;
  for (int step = 0; step < 200; ++step) {
    seconds += 1 + step * 7919;
    for (int32_t micros : {0, 50, 999999}) ids.push_back(make_queue_id(seconds, micros, inodes[step % inodes.size()]));
  }
  CHECK(std::is_sorted(ids.begin(), ids.end()));
}

TEST_CASE("queue IDs decode to the time and inode they were made from", "[queue_id]") {
  for (QueueIdParts parts : {QueueIdParts{1700000000, 123456, 42}, QueueIdParts{0, 0, 0},
                             QueueIdParts{17596287800, 999999, std::numeric_limits<uint64_t>::max()}}) {
    std::string id = make_queue_id(parts.seconds, parts.microseconds, parts.inode);
    INFO(id);
    CHECK(id.size() <= kMaxQueueIdLength);
    CHECK(id.find_first_of("/.aeiouAEIOU") == std::string::npos);
    auto back = decode_queue_id(id);
    REQUIRE(back);
    CHECK(*back == parts);
  }
  CHECK(make_queue_id(0, 0, 0) == "0000000000z0");
  CHECK(make_queue_id(0, 0, std::numeric_limits<uint64_t>::max()).size() == kMaxQueueIdLength);
}

TEST_CASE("make_queue_id refuses times it cannot encode", "[queue_id]") {
  CHECK_THROWS_AS(make_queue_id(-1, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(make_queue_id(17596287801, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(make_queue_id(1, 1000000, 1), std::invalid_argument);
  CHECK_THROWS_AS(make_queue_id(1, -1, 1), std::invalid_argument);
}

TEST_CASE("is_valid_queue_id rejects path tricks and anything malformed", "[queue_id]") {
  std::string good = make_queue_id(1700000000, 5, 99);
  CHECK(is_valid_queue_id(good));
  for (std::string_view bad : {
           "", ".", "..", "/", "../../etc/passwd", "/etc/passwd", "deferred/ABC",
           "0000000000z0/..", "0000000000z.", "000000000.z0",
           "0000000000", "0000000000z",              // no inode
           "000000000z0",                            // time too short
           "0000000000y0",                           // no separator
           "0000000000z00",                          // leading zero in the inode
           "0000000000za",                           // vowel: not in the alphabet
           "0000000000z0 ", " 0000000000z0",         // spaces
           "yyyyyyyyyyz1",                           // microseconds past 999999
           "0000000000zyyyyyyyyyyyy",                // inode past 64 bits
           "0000000000z1000000000000",               // too long
       }) {
    INFO(bad);
    CHECK_FALSE(is_valid_queue_id(bad));
  }
  CHECK_FALSE(is_valid_queue_id(std::string_view("0000000000z\0", 12)));
  std::string with_slash = good;
  with_slash[3] = '/';
  CHECK_FALSE(is_valid_queue_id(with_slash));
}
