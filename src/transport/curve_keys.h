// CURVE key files of a job. Every node has its own long-term key pair (a
// file readable by its owner only) and every node holds the job's allowlist:
// the public key of each node, by name ("coordinator", "server/0",
// "worker/3"). A transport admits a peer only if its public key is listed
// and tags each message it receives with that name, so the layers above can
// check what the peer's role may send. Pure functions over files.
//
// Files (text, Z85 keys of 40 characters):
//   <name>.key   "public <Z85>\nsecret <Z85>\n", mode 0600 (refused if group
//                or others may read it: the error names the path and mode)
//   allowlist    one "<name> <public Z85>" per line, '#' comments; refused
//                if group or others may write it
// Key file names replace '/' with '-': worker/3 -> worker-3.key.
//
//   ASSIGN_OR_RETURN(CurveKeyPair me, ReadKeyFile(dir + "/worker-3.key"));
//   ASSIGN_OR_RETURN(auto allow, ReadAllowlist(dir + "/allowlist"));
#ifndef DISTOPT_TRANSPORT_CURVE_KEYS_H_
#define DISTOPT_TRANSPORT_CURVE_KEYS_H_

#include <map>
#include <string>

#include "distopt/status.h"

namespace distopt {

inline constexpr size_t kCurveKeyChars = 40;

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// Public key -> node name.
using CurveAllowlist = std::map<std::string, std::string>;

Result<CurveKeyPair> GenerateCurveKeyPair();

// "worker/3" -> "worker-3.key".
std::string KeyFileName(const std::string& node_name);

Status WriteKeyFile(const std::string& path, const CurveKeyPair& keys);
Result<CurveKeyPair> ReadKeyFile(const std::string& path);

Status WriteAllowlist(const std::string& path, const CurveAllowlist& allow);
Result<CurveAllowlist> ReadAllowlist(const std::string& path);

// The public key listed for `name`, or kNotFound.
Result<std::string> AllowlistKeyOf(const CurveAllowlist& allow, const std::string& name);

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_CURVE_KEYS_H_
