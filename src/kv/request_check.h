// Checks of a worker's request against the table and partition it
// addresses: whether its keys and values fit (counts, dense vs sparse, the
// partition every key hashes to). Pure functions; the server answers a
// failed check with kKvError carrying the message.
//
//   if (Status s = CheckPayload(t, layout, head, m, /*has_values=*/true); !s.ok()) return Reject(m,
//   s);
#ifndef DISTOPT_KV_REQUEST_CHECK_H_
#define DISTOPT_KV_REQUEST_CHECK_H_

#include "distopt/status.h"
#include "kv/kv_message.h"
#include "kv/layout.h"
#include "kv/partition.h"
#include "wire/message.h"

namespace distopt {

// `head` is m's decoded kv header. A push or replicated update carries
// values (`has_values`), a pull none.
Status CheckPayload(const TableReplica& t, const Layout& layout, const KvHeader& head,
                    const Message& m, bool has_values);

}  // namespace distopt

#endif  // DISTOPT_KV_REQUEST_CHECK_H_
