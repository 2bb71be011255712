// Unit tests for the IPC codec: round trips, the golden wire format, tolerance
// of unknown attributes, and rejection of every kind of malformed input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "util/codec.h"

using namespace postern;
using codec_detail::put_attribute;

namespace {

struct Recipient {
  std::string address;
  std::string orig;
  int32_t notify = 0;
  int64_t offset = 0;
  bool operator==(const Recipient&) const = default;

  static constexpr auto kFields =
      std::make_tuple(field("address", &Recipient::address), field("orig", &Recipient::orig),
                      field("notify", &Recipient::notify), field("offset", &Recipient::offset));
};

struct DeliveryRequest {
  std::string queue_id;
  int64_t offset = 0;
  int32_t small = 0;
  uint32_t flags = 0;
  int count = 0;
  bool flush = false;
  std::vector<std::string> hops;
  Recipient sender;
  std::vector<Recipient> recipients;
  bool operator==(const DeliveryRequest&) const = default;

  static constexpr std::string_view kType = "delivery-request";
  static constexpr auto kFields = std::make_tuple(
      field("queue_id", &DeliveryRequest::queue_id), field("offset", &DeliveryRequest::offset),
      field("small", &DeliveryRequest::small), field("flags", &DeliveryRequest::flags),
      field("count", &DeliveryRequest::count), field("flush", &DeliveryRequest::flush),
      field("hops", &DeliveryRequest::hops), field("sender", &DeliveryRequest::sender),
      field("recipients", &DeliveryRequest::recipients));
};

struct Inner {
  int64_t v = 0;
  static constexpr auto kFields = std::make_tuple(field("v", &Inner::v));
};

// One field of every tag, for the golden bytes.
struct Golden {
  std::string name;
  int64_t n = 0;
  bool ok = false;
  std::vector<std::string> tags;
  Inner inner;
  std::vector<Inner> list;

  static constexpr std::string_view kType = "golden";
  static constexpr auto kFields =
      std::make_tuple(field("name", &Golden::name), field("n", &Golden::n), field("ok", &Golden::ok),
                      field("tags", &Golden::tags), field("inner", &Golden::inner), field("list", &Golden::list));
};

// Two versions of one message, as an old and a new peer would declare it.
struct StatusV1 {
  std::string queue_id;
  int32_t status = 0;
  static constexpr std::string_view kType = "status";
  static constexpr auto kFields = std::make_tuple(field("queue_id", &StatusV1::queue_id), field("status", &StatusV1::status));
};
struct StatusV2 {
  std::string queue_id;
  int32_t status = 0;
  std::string reason = "none";
  std::vector<Recipient> extra;
  static constexpr std::string_view kType = "status";
  static constexpr auto kFields =
      std::make_tuple(field("queue_id", &StatusV2::queue_id), field("reason", &StatusV2::reason),
                      field("status", &StatusV2::status), field("extra", &StatusV2::extra));
};

struct Other {
  std::string queue_id;
  static constexpr std::string_view kType = "other";
  static constexpr auto kFields = std::make_tuple(field("queue_id", &Other::queue_id));
};

struct DuplicateNames {
  int a = 0, b = 0;
  static constexpr auto kFields = std::make_tuple(field("a", &DuplicateNames::a), field("a", &DuplicateNames::b));
};
struct BadName {
  int a = 0;
  static constexpr auto kFields = std::make_tuple(field("a b", &BadName::a));
};
struct TypeField {
  std::string type;
  static constexpr std::string_view kType = "t";
  static constexpr auto kFields = std::make_tuple(field("type", &TypeField::type));
};

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

std::string unhex(std::string_view text) {
  std::string out;
  int high = -1;
  for (char c : text) {
    if (c == ' ') continue;
    int v = (c >= '0' && c <= '9') ? c - '0' : c - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out += static_cast<char>(high * 16 + v);
      high = -1;
    }
  }
  return out;
}

std::string be32(uint32_t n) {
  std::string out;
  codec_detail::put_length(out, n);
  return out;
}

DeliveryRequest full_request() {
  DeliveryRequest r;
  r.queue_id = std::string("4Bx9\0binary\xff", 12);
  r.offset = std::numeric_limits<int64_t>::min();
  r.small = std::numeric_limits<int32_t>::max();
  r.flags = std::numeric_limits<uint32_t>::max();
  r.count = -1;
  r.flush = true;
  r.hops = {"mx1.example.com", "", std::string(1000, 'h')};
  r.sender = {"sender@example.com", "orig@example.com", 1, 77};
  r.recipients = {{"a@example.com", "a-orig@example.com", 2, 100},
                  {"\"b c\"@example.com", "", 0, std::numeric_limits<int64_t>::max()},
                  {}};
  return r;
}

}  // namespace

TEST_CASE("codec round trip of every field type", "[codec]") {
  DeliveryRequest sent = full_request();
  auto payload = encode(sent);
  auto got = decode<DeliveryRequest>(payload);
  REQUIRE(got.ok());
  CHECK(*got == sent);
  CHECK(got->queue_id.size() == 12);
  CHECK(got->recipients.size() == 3);
  CHECK(got->recipients[1].offset == std::numeric_limits<int64_t>::max());

  // Defaults survive a round trip too, and an empty list stays empty.
  DeliveryRequest empty;
  auto back = decode<DeliveryRequest>(encode(empty));
  REQUIRE(back.ok());
  CHECK(*back == empty);

  // And through a whole frame.
  auto frame = encode_frame(sent);
  REQUIRE(frame.ok());
  auto from_frame = decode_frame<DeliveryRequest>(*frame);
  REQUIRE(from_frame.ok());
  CHECK(*from_frame == sent);
}

TEST_CASE("codec wire format matches the golden bytes", "[codec]") {
  Golden g;
  g.name = "ab";
  g.n = -2;
  g.ok = true;
  g.tags = {"x", ""};
  g.inner.v = 1;
  g.list = {Inner{2}};
  const std::string expected = unhex(
      "0000007e"
      "73 04 74797065 00000006 676f6c64656e"                                     // type = "golden"
      "73 04 6e616d65 00000002 6162"                                             // name = "ab"
      "69 01 6e 00000008 fffffffffffffffe"                                       // n = -2
      "62 02 6f6b 00000001 01"                                                   // ok = true
      "53 04 74616773 00000009 00000001 78 00000000"                             // tags = {"x", ""}
      "72 05 696e6e6572 0000000f 69 01 76 00000008 0000000000000001"             // inner = {v = 1}
      "52 04 6c697374 00000013 0000000f 69 01 76 00000008 0000000000000002");    // list = {{v = 2}}
  auto frame = encode_frame(g);
  REQUIRE(frame.ok());
  CHECK(hex(*frame) == hex(expected));

  auto back = decode_frame<Golden>(expected);
  REQUIRE(back.ok());
  CHECK(back->name == "ab");
  CHECK(back->n == -2);
  CHECK(back->ok);
  CHECK(back->tags == std::vector<std::string>{"x", ""});
  CHECK(back->inner.v == 1);
  REQUIRE(back->list.size() == 1);
  CHECK(back->list[0].v == 2);
}

TEST_CASE("codec: truncation at every byte of a frame is an error", "[codec]") {
  auto frame = encode_frame(full_request());
  REQUIRE(frame.ok());
  for (size_t cut = 0; cut < frame->size(); ++cut) {
    INFO("cut at " << cut);
    CHECK_FALSE(decode_frame<DeliveryRequest>(std::string_view(*frame).substr(0, cut)).ok());
  }
}

TEST_CASE("codec: a payload cut inside an attribute is an error, at a boundary keeps defaults", "[codec]") {
  std::string payload = encode(Golden{});
  // Attribute ends, from the golden layout with empty values: type, name, n, ok, tags, inner, list.
  const std::vector<size_t> boundaries = {16, 26, 41, 50, 60, 86, 96};
  REQUIRE(payload.size() == boundaries.back());
  for (size_t cut = 0; cut <= payload.size(); ++cut) {
    INFO("cut at " << cut);
    bool at_boundary = std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    auto r = decode<Golden>(std::string_view(payload).substr(0, cut));
    CHECK(r.ok() == at_boundary);
  }
}

TEST_CASE("codec: corrupting any byte never crashes", "[codec]") {
  std::string payload = encode(full_request());
  int failures = 0;
  for (size_t i = 0; i < payload.size(); ++i) {
    for (int value : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      std::string bad = payload;
      bad[i] = static_cast<char>(value);
      if (!decode<DeliveryRequest>(bad).ok()) ++failures;
    }
  }
  CHECK(failures > 0);
}

TEST_CASE("codec skips unknown attributes and keeps defaults for missing ones", "[codec]") {
  StatusV2 newer;
  newer.queue_id = "ABC";
  newer.status = 5;
  newer.reason = "mailbox full";
  newer.extra = {{"x@example.com", "", 0, 1}};
  auto old_view = decode<StatusV1>(encode(newer));
  REQUIRE(old_view.ok());
  CHECK(old_view->queue_id == "ABC");
  CHECK(old_view->status == 5);

  StatusV1 older{"DEF", 7};
  auto new_view = decode<StatusV2>(encode(older));
  REQUIRE(new_view.ok());
  CHECK(new_view->queue_id == "DEF");
  CHECK(new_view->status == 7);
  CHECK(new_view->reason == "none");
  CHECK(new_view->extra.empty());

  // An attribute with a tag no version knows is skipped as well.
  std::string payload = encode(older);
  put_attribute(payload, 'Z', "future", "anything");
  auto r = decode<StatusV1>(payload);
  REQUIRE(r.ok());
  CHECK(r->status == 7);
}

TEST_CASE("codec rejects a message of another type", "[codec]") {
  auto r = decode<Other>(encode(StatusV1{"Q", 1}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "expected a 'other' message, got 'status'");

  auto type = peek_type(encode(StatusV1{}));
  REQUIRE(type.ok());
  CHECK(*type == "status");

  std::string no_type;
  put_attribute(no_type, 's', "queue_id", "Q");
  CHECK_FALSE(peek_type(no_type).ok());
  CHECK_FALSE(decode<Other>(no_type).ok());
  CHECK_FALSE(decode<Other>("").ok());
}

TEST_CASE("codec rejects a known attribute with the wrong tag", "[codec]") {
  std::string payload;
  put_attribute(payload, 's', "type", "status");
  put_attribute(payload, 's', "status", "5");
  auto r = decode<StatusV1>(payload);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "status: attribute 'status' has type 's', expected 'i'");

  // The same inside a nested record of a list: the error says where.
  DeliveryRequest request;
  request.recipients = {{"a@x", "", 0, 0}};
  std::string inner;
  put_attribute(inner, 'i', "address", codec_detail::int_value(1));
  std::string items = be32(0) + be32(static_cast<uint32_t>(inner.size())) + inner;
  std::string bad;
  put_attribute(bad, 's', "type", "delivery-request");
  put_attribute(bad, 'R', "recipients", items);
  auto nested = decode<DeliveryRequest>(bad);
  REQUIRE_FALSE(nested.ok());
  CHECK(nested.error() ==
        "delivery-request: attribute 'recipients': item 1: attribute 'address' has type 'i', expected 's'");
}

TEST_CASE("codec rejects duplicated attributes", "[codec]") {
  std::string payload = encode(StatusV1{"Q", 1});
  put_attribute(payload, 'i', "status", codec_detail::int_value(2));
  auto r = decode<StatusV1>(payload);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "status: attribute 'status' appears twice");

  std::string twice_type = encode(StatusV1{});
  put_attribute(twice_type, 's', "type", "status");
  CHECK_FALSE(decode<StatusV1>(twice_type).ok());

  std::string list = encode(DeliveryRequest{});
  put_attribute(list, 'S', "hops", "");
  CHECK_FALSE(decode<DeliveryRequest>(list).ok());
}

TEST_CASE("codec checks integer and boolean values", "[codec]") {
  auto with = [](char tag, std::string_view name, std::string_view value) {
    std::string payload;
    put_attribute(payload, 's', "type", "delivery-request");
    put_attribute(payload, tag, name, value);
    return decode<DeliveryRequest>(payload);
  };
  CHECK(with('i', "small", codec_detail::int_value(int64_t{1} << 40)).error() ==
        "delivery-request: attribute 'small': value 1099511627776 out of range");
  CHECK_FALSE(with('i', "flags", codec_detail::int_value(-1)).ok());
  CHECK(with('i', "flags", codec_detail::int_value(4294967295)).ok());
  CHECK_FALSE(with('i', "offset", std::string(7, '\0')).ok());
  CHECK_FALSE(with('i', "offset", std::string(9, '\0')).ok());
  CHECK_FALSE(with('b', "flush", std::string_view("\2", 1)).ok());
  CHECK_FALSE(with('b', "flush", "").ok());
  CHECK(with('b', "flush", std::string_view("\1", 1))->flush);
  // A list whose item length runs past its value.
  CHECK_FALSE(with('S', "hops", be32(5) + "abc").ok());
  CHECK_FALSE(with('S', "hops", std::string("\0\0", 2)).ok());
}

TEST_CASE("codec enforces its limits", "[codec]") {
  CodecLimits small;
  small.max_frame = 100;
  small.max_value = 10;
  small.max_name = 8;
  small.max_items = 3;

  // Frame length, on both sides.
  CHECK(frame_length(be32(100), small).ok());
  CHECK(frame_length(be32(101), small).error() == "frame of 101 bytes, limit 100");
  CHECK_FALSE(frame_length(be32(0xffffffff)).ok());  // default limit: 1 MiB
  CHECK(frame_length(be32(1 << 20)).ok());
  CHECK_FALSE(frame_length(be32((1 << 20) + 1)).ok());
  CHECK_FALSE(make_frame(std::string(101, 'x'), small).ok());
  CHECK_FALSE(decode_frame<StatusV1>(be32(0x7fffffff) + "x").ok());
  CHECK_FALSE(frame_payload(be32(3) + "abcd").ok());  // more than announced

  // Value and name lengths.
  StatusV1 long_value{"0123456789A", 1};
  CHECK_FALSE(decode<StatusV1>(encode(long_value), small).ok());
  CHECK(decode<StatusV1>(encode(StatusV1{"0123456789", 1}), small).ok());
  std::string payload = encode(StatusV1{});
  put_attribute(payload, 's', "ninechars", "");
  CHECK_FALSE(decode<StatusV1>(payload, small).ok());
  CHECK(decode<StatusV1>(payload).ok());

  // Names must be non-empty and made of the name characters.
  std::string empty_name = encode(StatusV1{});
  empty_name += std::string("s\0\0\0\0\0", 6);
  CHECK_FALSE(decode<StatusV1>(empty_name).ok());
  std::string bad_name = encode(StatusV1{});
  put_attribute(bad_name, 's', "a/b", "");
  CHECK_FALSE(decode<StatusV1>(bad_name).ok());

  // Items in a list.
  DeliveryRequest many;
  many.hops = {"a", "b", "c", "d"};
  CodecLimits items;
  items.max_items = 3;
  CHECK(decode<DeliveryRequest>(encode(many), items).error() ==
        "delivery-request: attribute 'hops': list has more than 3 items");
  many.hops.pop_back();
  CHECK(decode<DeliveryRequest>(encode(many), items).ok());
}

TEST_CASE("codec checks field lists at compile time", "[codec]") {
  STATIC_REQUIRE(codec_detail::valid_field_list<Recipient>());
  STATIC_REQUIRE_FALSE(codec_detail::valid_field_list<DuplicateNames>());
  STATIC_REQUIRE_FALSE(codec_detail::valid_field_list<BadName>());
  STATIC_REQUIRE(codec_detail::valid_message<DeliveryRequest>());
  STATIC_REQUIRE_FALSE(codec_detail::valid_message<TypeField>());
}

TEST_CASE("handshake accepts our version and rejects a different major version", "[codec]") {
  Hello hello = make_hello("qmgr");
  auto back = decode<Hello>(encode(hello));
  REQUIRE(back.ok());
  CHECK(back->protocol == kProtocolName);
  CHECK(back->service == "qmgr");
  CHECK(check_hello(*back, "qmgr").ok());
  CHECK(check_hello(*back, "").ok());

  Hello newer_minor = hello;
  newer_minor.minor_version = kProtocolMinorVersion + 3;
  CHECK(check_hello(newer_minor, "qmgr").ok());

  Hello newer = hello;
  newer.version = kProtocolVersion + 1;
  newer.minor_version = 2;
  auto r = check_hello(newer, "qmgr");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "peer speaks protocol version " + std::to_string(kProtocolVersion + 1) + ".2, we speak " +
                         std::to_string(kProtocolVersion) + "." + std::to_string(kProtocolMinorVersion));

  Hello stranger = hello;
  stranger.protocol = "smtp";
  CHECK(check_hello(stranger, "qmgr").error() == "peer speaks protocol 'smtp', not 'postern'");

  CHECK(check_hello(hello, "bounce").error() == "connected to service 'qmgr', expected 'bounce'");
}
