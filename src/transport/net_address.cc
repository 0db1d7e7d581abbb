#include "transport/net_address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

namespace distopt {
namespace {

std::string SockaddrHost(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

}  // namespace

Result<HostPort> ParseHostPort(const std::string& text, uint16_t default_port) {
  std::string s = text;
  if (s.rfind("tcp://", 0) == 0) s = s.substr(6);
  if (s.empty()) return InvalidArgumentError("empty address (expected HOST:PORT)");
  HostPort out;
  std::string port_text;
  if (s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) {
      return InvalidArgumentError("'" + text + "': an IPv6 address needs a closing ']'");
    }
    out.host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') {
        return InvalidArgumentError("'" + text + "': expected ':PORT' after ']'");
      }
      port_text = s.substr(close + 2);
    }
  } else {
    size_t colon = s.rfind(':');
    if (colon != std::string::npos && s.find(':') != colon) {
      return InvalidArgumentError("'" + text + "': write an IPv6 address in brackets, [" + s +
                                  "]:PORT");
    }
    out.host = s.substr(0, colon);
    if (colon != std::string::npos) port_text = s.substr(colon + 1);
  }
  if (out.host.empty()) return InvalidArgumentError("'" + text + "': the host is missing");
  if (port_text.empty()) {
    if (default_port == 0) return InvalidArgumentError("'" + text + "': the port is missing");
    out.port = default_port;
    return out;
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) {
    return InvalidArgumentError("'" + text + "': the port '" + port_text +
                                "' is not a number in 0..65535");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

bool IsIpv6Literal(const std::string& host) { return host.find(':') != std::string::npos; }

std::string TcpEndpoint(const std::string& host, uint16_t port) {
  if (IsIpv6Literal(host)) return "tcp://[" + host + "]:" + std::to_string(port);
  return "tcp://" + host + ":" + std::to_string(port);
}

std::pair<std::string, std::string> SplitCurveAddress(const std::string& address) {
  // '?' never occurs in a tcp:// or ipc:// endpoint; Z85 may contain one.
  const std::string tag = "?curve=";
  size_t at = address.find(tag);
  if (at == std::string::npos) return {address, ""};
  // The key ends at ';' (not a Z85 character), where a local lane may follow.
  const size_t key = at + tag.size();
  return {address.substr(0, at), address.substr(key, address.find(';', key) - key)};
}

std::string NormalizeHost(const std::string& host) {
  if (host.rfind("::ffff:", 0) == 0 && host.find('.') != std::string::npos) return host.substr(7);
  return host;
}

bool IsLoopbackHost(const std::string& raw) {
  std::string host = NormalizeHost(raw);
  if (host == "localhost" || host == "::1") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

Result<std::string> LocalAddressToward(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), "9", &hints, &res); rc != 0) {
    return UnavailableError("cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> hold(res, freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    // connect() on a datagram socket only picks the route and the source
    // address; nothing goes on the wire.
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    int rc = getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    close(fd);
    if (rc == 0) return NormalizeHost(SockaddrHost(reinterpret_cast<sockaddr*>(&local)));
    last_error = std::strerror(errno);
  }
  return UnavailableError("no route to '" + host + "': " + last_error);
}

Result<std::string> InterfaceAddress(const std::string& name, bool ipv6) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return InternalError(std::string("getifaddrs: ") + std::strerror(errno));
  }
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> hold(list, freeifaddrs);
  std::string found_other, names;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    if (names.find(std::string(" ") + i->ifa_name + ",") == std::string::npos) {
      names += std::string(" ") + i->ifa_name + ",";
    }
    if (name != i->ifa_name) continue;
    if (family == AF_INET6) {
      // A link-local address needs a scope id nobody else can use.
      const auto* a6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
    }
    if ((family == AF_INET6) == ipv6) return SockaddrHost(i->ifa_addr);
    if (found_other.empty()) found_other = SockaddrHost(i->ifa_addr);
  }
  if (!found_other.empty()) return found_other;
  if (!names.empty()) names.pop_back();
  return NotFoundError("no interface '" + name + "' with an address (interfaces:" + names + ")");
}

}  // namespace distopt
