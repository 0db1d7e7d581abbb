#include "transport/local_lane.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace distopt {

namespace {

constexpr const char* kLaneTag = ";local=";

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

bool PrivateDir(const struct stat& st) {
  return S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 077) == 0;
}

}  // namespace

std::string DefaultLocalLaneDir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/distopt";
  return "/tmp/distopt-" + std::to_string(geteuid());
}

Status PrepareLocalLaneDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return UnavailableError("cannot create " + dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    return UnavailableError("cannot stat " + dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(dir + " is not a directory");
  if (st.st_uid != geteuid()) {
    return FailedPreconditionError(dir + " belongs to uid " + std::to_string(st.st_uid) +
                                   ", not to this user (uid " + std::to_string(geteuid()) + ")");
  }
  if ((st.st_mode & 077) != 0) {
    return FailedPreconditionError(dir + " has mode " + Octal(st.st_mode) +
                                   ": group or others may enter it (want 0700)");
  }
  return Status::Ok();
}

int SweepStaleLocalLanes(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  int removed = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    const std::string path = dir + "/" + name;
    if (name.size() < 6 || name.substr(name.size() - 5) != ".sock" ||
        path.size() >= sizeof(sockaddr_un::sun_path) || !LocalLaneUsable(path)) {
      continue;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    // Refused: the file outlived its listener. (A live one accepts, or is busy.)
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno == ECONNREFUSED &&
        unlink(path.c_str()) == 0) {
      ++removed;
    }
    close(fd);
  }
  closedir(d);
  return removed;
}

std::string LocalLaneOf(const std::string& address) {
  size_t at = address.rfind(kLaneTag);
  if (at == std::string::npos) return "";
  return address.substr(at + std::strlen(kLaneTag));
}

bool LocalLaneUsable(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
    return false;
  }
  const std::string dir = path.substr(0, path.rfind('/'));
  struct stat dst {};
  return !dir.empty() && lstat(dir.c_str(), &dst) == 0 && PrivateDir(dst);
}

}  // namespace distopt
