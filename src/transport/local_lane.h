// The local lane: how two CURVE nodes of one host talk without encrypting.
//
// Across hosts every byte runs CURVE. Between nodes of one host that only
// costs CPU (on 2 cores, a third of the seed job's speed across hosts):
// what crosses a Unix socket in a directory only this user can enter cannot
// be read or reached by another user, and this user can read the keys
// anyway. So a CURVE node also listens on ipc://DIR/NONCE.sock, DIR being a
// 0700 directory of this user's (refused if anyone else owns it or may enter
// it), and advertises the path after its key:
//
//   tcp://10.0.0.2:4711?curve=<Z85 public key>;local=/tmp/distopt-0/1f2e3d4c.sock
//
// A node dials that path instead of the TCP address when the peer advertises
// the same host as itself and the path is a socket of its own user in such a
// directory; otherwise it dials TCP with CURVE, as before. Who is on the
// other end is still proven by the key: the lane runs ZeroMQ's PLAIN with
// the dialer's public key as user name and its secret key as password, and
// the listener admits it only if the secret key derives that public key and
// the public key is on the allowlist (the same name, the same role rules).
#ifndef DISTOPT_TRANSPORT_LOCAL_LANE_H_
#define DISTOPT_TRANSPORT_LOCAL_LANE_H_

#include <string>

#include "distopt/status.h"

namespace distopt {

// "/tmp/distopt-<euid>" (or $XDG_RUNTIME_DIR/distopt where that is set).
std::string DefaultLocalLaneDir();

// Creates `dir` (0700) if missing; refuses one this user does not own or
// that group or others may enter, naming it and its mode.
Status PrepareLocalLaneDir(const std::string& dir);

// Removes the sockets in `dir` nobody listens on any more (their nodes were
// killed before they could remove them). Returns how many.
int SweepStaleLocalLanes(const std::string& dir);

// The lane's path an address advertises ("" when none).
std::string LocalLaneOf(const std::string& address);

// Is `path` a socket of this user's inside a directory only it may enter?
bool LocalLaneUsable(const std::string& path);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_LOCAL_LANE_H_
