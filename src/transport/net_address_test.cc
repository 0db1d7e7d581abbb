#include "transport/net_address.h"

#include <gtest/gtest.h>

namespace distopt {
namespace {

TEST(ParseHostPort, AcceptsNamesIpv4AndBracketedIpv6) {
  auto a = ParseHostPort("10.0.0.5:7070");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, 7070);
  auto b = ParseHostPort("[fd00::1]:7071");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->host, "fd00::1");
  EXPECT_EQ(b->port, 7071);
  auto c = ParseHostPort("tcp://node07:1", 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "node07");
  EXPECT_EQ(c->port, 1);
  auto d = ParseHostPort("node07", 7070);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 7070);
}

TEST(ParseHostPort, RejectsWhatIsNotAnAddressAndSaysWhy) {
  EXPECT_NE(ParseHostPort("node07").status().message().find("port is missing"), std::string::npos);
  EXPECT_NE(ParseHostPort("fd00::1:7070").status().message().find("brackets"), std::string::npos);
  EXPECT_NE(ParseHostPort("h:70000").status().message().find("70000"), std::string::npos);
  EXPECT_NE(ParseHostPort("h:x").status().message().find("'x'"), std::string::npos);
  EXPECT_FALSE(ParseHostPort("[fd00::1:7070").ok());
  EXPECT_FALSE(ParseHostPort(":7070").ok());
  EXPECT_FALSE(ParseHostPort("").ok());
}

TEST(TcpEndpoint, BracketsIpv6Only) {
  EXPECT_EQ(TcpEndpoint("10.0.0.1", 5), "tcp://10.0.0.1:5");
  EXPECT_EQ(TcpEndpoint("fd00::1", 5), "tcp://[fd00::1]:5");
  EXPECT_EQ(TcpEndpoint("node", 0), "tcp://node:0");
}

TEST(IsLoopbackHost, KnowsTheLoopbackRanges) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.2.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("::ffff:127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("10.231.0.3"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("fd00::1"));
}

TEST(LocalAddressToward, TheRouteToLoopbackStartsOnLoopback) {
  auto a = LocalAddressToward("127.0.0.1");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, "127.0.0.1");
  auto b = LocalAddressToward("127.0.0.7");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(IsLoopbackHost(*b)) << *b;
}

TEST(LocalAddressToward, AnUnresolvableNameIsAnError) {
  auto a = LocalAddressToward("no-such-host.invalid");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(InterfaceAddress, FindsLoopbackAndListsInterfacesWhenMissing) {
  auto lo = InterfaceAddress("lo");
  ASSERT_TRUE(lo.ok()) << lo.status().ToString();
  EXPECT_EQ(*lo, "127.0.0.1");
  auto none = InterfaceAddress("nosuchif0");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("nosuchif0"), std::string::npos);
  EXPECT_NE(none.status().message().find("lo"), std::string::npos);
}

}  // namespace
}  // namespace distopt
