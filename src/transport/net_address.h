// Network addresses of a multi-host job: parsing HOST:PORT (IPv4, names and
// bracketed IPv6 such as "[fd00::1]:7070"), writing ZeroMQ tcp endpoints, and
// asking the OS which local address a node should advertise: the source
// address of the route toward the coordinator (a UDP connect, no packet is
// sent), or the address of a named interface. Pure functions, thread-safe.
//
//   ASSIGN_OR_RETURN(HostPort hp, ParseHostPort("[fd00::1]:7070", 7070));
//   ASSIGN_OR_RETURN(std::string me, LocalAddressToward(hp.host));   // "fd00::2"
//   std::string ep = TcpEndpoint(me, 0);                            // "tcp://[fd00::2]:0"
#ifndef DISTOPT_TRANSPORT_NET_ADDRESS_H_
#define DISTOPT_TRANSPORT_NET_ADDRESS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "distopt/status.h"

namespace distopt {

struct HostPort {
  std::string host;  // without brackets: "10.0.0.5", "fd00::1", "node07"
  uint16_t port = 0;
};

// "host:port", "[v6]:port", "tcp://host:port", or a bare host (then
// `default_port`; 0 means a port is required). Errors name the text.
Result<HostPort> ParseHostPort(const std::string& text, uint16_t default_port = 0);

// "tcp://host:port", with brackets around an IPv6 literal.
std::string TcpEndpoint(const std::string& host, uint16_t port);

bool IsIpv6Literal(const std::string& host);
// 127.0.0.0/8, ::1, "localhost".
bool IsLoopbackHost(const std::string& host);

// The local address the OS would use as the source of traffic to `host`
// (resolved with getaddrinfo; a name may resolve to either family).
Result<std::string> LocalAddressToward(const std::string& host);

// The first address of interface `name` (IPv4 preferred unless `ipv6`).
// The error lists the interfaces that exist.
Result<std::string> InterfaceAddress(const std::string& name, bool ipv6 = false);

// A CURVE node's address carries its public key: "tcp://h:1?curve=KEY" ->
// {"tcp://h:1", "KEY"}; an address without one -> {address, ""}.
std::pair<std::string, std::string> SplitCurveAddress(const std::string& address);

// The host part of a ZeroMQ peer address as the OS reports it ("10.0.0.3",
// "::ffff:10.0.0.3" -> "10.0.0.3").
std::string NormalizeHost(const std::string& host);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_NET_ADDRESS_H_
