#include "transport/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace distopt {
namespace {

bool IsZ85Key(const std::string& k) {
  if (k.size() != kCurveKeyChars) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, k.c_str()) != nullptr;
}

std::string ModeText(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// Writes `text` to `path` with `mode`, replacing it (fsync, rename).
Status WritePrivate(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return UnavailableError(tmp + ": cannot create: " + std::strerror(errno));
  // open() applies the umask; the mode must be exact.
  bool ok = fchmod(fd, mode) == 0 &&
            write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return UnavailableError(path + ": cannot write: " + std::strerror(ok ? errno : err));
  }
  return Status::Ok();
}

Result<std::string> ReadChecked(const std::string& path, mode_t forbidden, const char* why) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return NotFoundError(path + ": " + std::strerror(errno));
  }
  if ((st.st_mode & forbidden) != 0) {
    return FailedPreconditionError(path + " has mode " + ModeText(st.st_mode) + ": " + why +
                                   " (chmod " + ModeText(st.st_mode & ~forbidden) + " " + path +
                                   ")");
  }
  std::ifstream in(path);
  if (!in) return UnavailableError(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Calls fn(line_no, words) for each line that is not empty or a '#' comment;
// stops at the first error fn returns.
template <typename Fn>
Status ForEachRecord(const std::string& text, const Fn& fn) {
  std::stringstream ss(text);
  int line_no = 0;
  for (std::string line; std::getline(ss, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ls(line);
    std::vector<std::string> words;
    for (std::string w; ls >> w;) words.push_back(w);
    RETURN_IF_ERROR(fn(line_no, words));
  }
  return Status::Ok();
}

}  // namespace

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return UnimplementedError(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()) +
                              " (is libzmq built with CURVE?)");
  }
  return CurveKeyPair{pub, sec};
}

std::string KeyFileName(const std::string& node_name) {
  std::string f = node_name;
  for (char& c : f) {
    if (c == '/') c = '-';
  }
  return f + ".key";
}

Status WriteKeyFile(const std::string& path, const CurveKeyPair& keys) {
  return WritePrivate(path, "public " + keys.public_key + "\nsecret " + keys.secret_key + "\n",
                      0600);
}

Result<CurveKeyPair> ReadKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text,
                   ReadChecked(path, 077, "a secret key file must be readable by its owner only"));
  CurveKeyPair k;
  RETURN_IF_ERROR(ForEachRecord(text, [&](int line_no, const std::vector<std::string>& w) {
    if (w.size() != 2 || (w[0] != "public" && w[0] != "secret") || !IsZ85Key(w[1])) {
      return DataLossError(path + ":" + std::to_string(line_no) +
                           ": expected 'public KEY' or 'secret KEY' (40 Z85 characters)");
    }
    (w[0] == "public" ? k.public_key : k.secret_key) = w[1];
    return Status::Ok();
  }));
  if (k.public_key.empty() || k.secret_key.empty()) {
    return DataLossError(path + ": needs both a 'public' and a 'secret' line");
  }
  // The public key must belong to the secret one (a hand-edited file).
  char derived[41];
  if (zmq_curve_public(derived, k.secret_key.c_str()) != 0 || k.public_key != derived) {
    return DataLossError(path + ": the public key does not match the secret key");
  }
  return k;
}

Status WriteAllowlist(const std::string& path, const CurveAllowlist& allow) {
  std::string text =
      "# distopt allowlist: the nodes that may join this job (name, CURVE public key).\n"
      "# Remove a line to revoke that node's key.\n";
  for (const auto& [key, name] : allow) text += name + " " + key + "\n";
  return WritePrivate(path, text, 0644);
}

Result<CurveAllowlist> ReadAllowlist(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text,
                   ReadChecked(path, 022, "an allowlist must not be writable by group or others"));
  CurveAllowlist allow;
  RETURN_IF_ERROR(ForEachRecord(text, [&](int line_no, const std::vector<std::string>& w) {
    if (w.size() != 2 || !IsZ85Key(w[1])) {
      return DataLossError(path + ":" + std::to_string(line_no) +
                           ": expected 'NAME KEY' (KEY: 40 Z85 characters)");
    }
    if (!allow.emplace(w[1], w[0]).second) {
      return DataLossError(path + ":" + std::to_string(line_no) + ": the key of " + w[0] +
                           " is listed twice");
    }
    return Status::Ok();
  }));
  return allow;
}

Result<std::string> AllowlistKeyOf(const CurveAllowlist& allow, const std::string& name) {
  for (const auto& [key, n] : allow) {
    if (n == name) return key;
  }
  return NotFoundError("no key for " + name + " in the allowlist");
}

}  // namespace distopt
