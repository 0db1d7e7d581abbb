// JobConfig from TOML. One schema (Fields() below, a row per setting) drives
// parsing, type and range checks, "did you mean" suggestions, --set overrides
// and ConfigToToml, so a setting cannot be readable without also being
// written back. Stateless functions over values; thread-safe.
#include "cli/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

// Debian's toml++ is a compiled library built with exceptions, so the parser
// reports syntax errors by throwing toml::parse_error; it is caught right at
// the two parse calls below and never leaves this file.
#include <toml++/toml.h>

namespace distopt {
namespace {

// Upper bounds that keep later arithmetic (ms -> ns, s -> ms) far from
// overflow; both are about 11.5 days.
constexpr int64_t kMaxMs = 1'000'000'000;
constexpr int64_t kMaxS = 1'000'000;
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
// A job's membership holds at most 2^16 nodes (cluster/membership.cc),
// the coordinator included.
constexpr int64_t kMaxMembers = int64_t{1} << 16;
constexpr int64_t kMaxNodes = kMaxMembers - 2;
// Rows per worker batch: index arrays of this size are allocated per step.
constexpr int64_t kMaxBatch = int64_t{1} << 24;
// A config file is a page of text; anything this large is a wrong path.
constexpr size_t kMaxFileBytes = size_t{16} << 20;

std::string Quoted(std::string_view key) { return "'" + std::string(key) + "'"; }

// Shortest text that reads back as exactly `v` (for messages and files).
template <typename F>
std::string ShortestNumber(F v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// As a TOML float: "1" would read back as an integer, so it becomes "1.0".
template <typename F>
std::string TomlFloat(F v) {
  std::string s = ShortestNumber(v);
  if (std::isfinite(v) && s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string TomlString(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
          static constexpr char kHex[] = "0123456789ABCDEF";
          out += "\\u00";
          out += kHex[(ch >> 4) & 0xf];
          out += kHex[ch & 0xf];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

const char* Found(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

Status TypeError(std::string_view key, const char* want, const toml::node& n) {
  return InvalidArgumentError(Quoted(key) + " must be " + want + ", found " + Found(n));
}

template <typename V>
Status CheckRange(std::string_view key, V v, int64_t lo, int64_t hi) {
  if (!std::cmp_less(v, lo) && !std::cmp_greater(v, hi)) return Status::Ok();
  std::string range;
  if (hi == kNoMax && std::cmp_less(v, lo)) {
    range = ">= " + std::to_string(lo);
  } else if (hi == lo + 1) {
    range = std::to_string(lo) + " or " + std::to_string(hi);
  } else {
    range = "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  }
  return InvalidArgumentError(Quoted(key) + " must be " + range + ", got " + std::to_string(v));
}

// What a real-valued setting may hold (beyond being a number).
enum class Real { kAny, kFinite, kPositive, kNonNegative };

Status CheckReal(std::string_view key, double v, Real rule) {
  const char* want = nullptr;
  switch (rule) {
    case Real::kAny:
      return Status::Ok();
    case Real::kFinite:
      if (std::isfinite(v)) return Status::Ok();
      want = "a finite number";
      break;
    case Real::kPositive:
      if (std::isfinite(v) && v > 0) return Status::Ok();
      want = "finite and > 0";
      break;
    case Real::kNonNegative:
      if (std::isfinite(v) && v >= 0) return Status::Ok();
      want = "finite and >= 0";
      break;
  }
  return InvalidArgumentError(Quoted(key) + " must be " + want + ", got " + ShortestNumber(v));
}

using StringRule = std::function<Status(std::string_view key, const std::string& v)>;

StringRule AnyString() {
  return [](std::string_view, const std::string&) { return Status::Ok(); };
}

StringRule OneOf(std::vector<std::string> allowed) {
  return [allowed = std::move(allowed)](std::string_view key, const std::string& v) {
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return Status::Ok();
    std::string list;
    for (const std::string& a : allowed) {
      if (!list.empty()) list += ", ";
      list += a.empty() ? "\"\"" : a;
    }
    return InvalidArgumentError(Quoted(key) + " must be one of " + list + ", got '" + v + "'");
  };
}

StringRule NonEmpty() {
  return [](std::string_view key, const std::string& v) {
    if (!v.empty()) return Status::Ok();
    return InvalidArgumentError(Quoted(key) + " must not be empty");
  };
}

// The job name ends up in log lines and file names.
StringRule JobName() {
  return [](std::string_view key, const std::string& v) {
    const bool bad = std::any_of(v.begin(), v.end(), [](char ch) {
      return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f || ch == '/' || ch == '\\';
    });
    if (!v.empty() && !bad) return Status::Ok();
    return InvalidArgumentError(Quoted(key) +
                                " must be non-empty, without control characters, '/' or '\\', "
                                "got " +
                                TomlString(v));
  };
}

// The csv reader splits on one byte; a quote or line break cannot be one.
StringRule Delimiter() {
  return [](std::string_view key, const std::string& v) {
    if (v.size() == 1 && v[0] != '"' && v[0] != '\n' && v[0] != '\r') return Status::Ok();
    return InvalidArgumentError(Quoted(key) +
                                " must be a single character other than a quote or line break, "
                                "got " +
                                TomlString(v));
  };
}

// One setting. Messages from set/check start with the quoted key and carry
// no location: the caller knows it (file:line, --set ..., or the source).
struct Field {
  std::string key;  // dotted: "optimizer.schedule.kind"
  // Type-checks and range-checks `n`, then stores it in the config.
  std::function<Status(const toml::node& n, JobConfig* c)> set;
  // Range-checks the stored value (configs built in code, ValidateConfig).
  std::function<Status(const JobConfig& c)> check;
  // The stored value as TOML text.
  std::function<std::string(const JobConfig& c)> format;
};

// `ref` is a generic lambda returning the member of a (const) JobConfig.
template <typename Ref>
using MemberType = std::remove_cvref_t<decltype(std::declval<Ref>()(std::declval<JobConfig&>()))>;

template <typename Ref>
Field IntField(const std::string& key, Ref ref, int64_t lo, int64_t hi) {
  using T = MemberType<Ref>;
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  // TOML integers are int64; the member's own type may narrow the range.
  if (std::cmp_greater(std::numeric_limits<T>::min(), lo)) lo = std::numeric_limits<T>::min();
  if (std::cmp_less(std::numeric_limits<T>::max(), hi)) {
    hi = static_cast<int64_t>(std::numeric_limits<T>::max());
  }
  Field f;
  f.key = key;
  f.set = [key, ref, lo, hi](const toml::node& n, JobConfig* c) {
    const toml::value<int64_t>* v = n.as_integer();
    if (v == nullptr) return TypeError(key, "an integer", n);
    RETURN_IF_ERROR(CheckRange(key, v->get(), lo, hi));
    ref(*c) = static_cast<T>(v->get());
    return Status::Ok();
  };
  f.check = [key, ref, lo, hi](const JobConfig& c) { return CheckRange(key, ref(c), lo, hi); };
  f.format = [ref](const JobConfig& c) { return std::to_string(ref(c)); };
  return f;
}

// The smallest magnitude a double rounds up to infinity when narrowed to T:
// halfway between T's largest finite value and the next power of two. Text
// like 3.4028235e38 (FLT_MAX printed shortest) lies a little above FLT_MAX
// and must still read back as FLT_MAX.
template <typename T>
double RoundsToInfinity() {
  using L = std::numeric_limits<T>;
  if constexpr (sizeof(T) >= sizeof(double)) {
    return std::numeric_limits<double>::infinity();
  } else {
    return std::ldexp(1.0, L::max_exponent) - std::ldexp(1.0, L::max_exponent - L::digits - 1);
  }
}

// Integers are accepted where a number is expected (lr = 1 means 1.0).
template <typename Ref>
Field RealField(const std::string& key, Ref ref, Real rule) {
  using T = MemberType<Ref>;
  static_assert(std::is_floating_point_v<T>);
  Field f;
  f.key = key;
  f.set = [key, ref, rule](const toml::node& n, JobConfig* c) {
    double d = 0;
    if (const toml::value<double>* v = n.as_floating_point()) {
      d = v->get();
    } else if (const toml::value<int64_t>* i = n.as_integer()) {
      d = static_cast<double>(i->get());
    } else {
      return TypeError(key, "a number", n);
    }
    if (std::isfinite(d) && std::fabs(d) >= RoundsToInfinity<T>()) {
      return InvalidArgumentError(Quoted(key) + " is out of range for a " +
                                  std::to_string(sizeof(T) * 8) + "-bit float, got " +
                                  ShortestNumber(d));
    }
    RETURN_IF_ERROR(CheckReal(key, d, rule));
    ref(*c) = static_cast<T>(d);
    return Status::Ok();
  };
  f.check = [key, ref, rule](const JobConfig& c) { return CheckReal(key, ref(c), rule); };
  f.format = [ref](const JobConfig& c) { return TomlFloat(ref(c)); };
  return f;
}

template <typename Ref>
Field BoolField(const std::string& key, Ref ref) {
  Field f;
  f.key = key;
  f.set = [key, ref](const toml::node& n, JobConfig* c) {
    const toml::value<bool>* v = n.as_boolean();
    if (v == nullptr) return TypeError(key, "a boolean (true or false)", n);
    ref(*c) = v->get();
    return Status::Ok();
  };
  f.check = [](const JobConfig&) { return Status::Ok(); };
  f.format = [ref](const JobConfig& c) { return std::string(ref(c) ? "true" : "false"); };
  return f;
}

template <typename Ref>
Field StringField(const std::string& key, Ref ref, const StringRule& rule) {
  Field f;
  f.key = key;
  f.set = [key, ref, rule](const toml::node& n, JobConfig* c) {
    const toml::value<std::string>* v = n.as_string();
    if (v == nullptr) return TypeError(key, "a string", n);
    RETURN_IF_ERROR(rule(key, v->get()));
    ref(*c) = v->get();
    return Status::Ok();
  };
  f.check = [key, ref, rule](const JobConfig& c) { return rule(key, ref(c)); };
  f.format = [ref](const JobConfig& c) { return TomlString(ref(c)); };
  return f;
}

// An array of ints, each in [lo, INT_MAX] (model.hidden).
template <typename Ref>
Field IntListField(const std::string& key, Ref ref, int64_t lo) {
  static_assert(std::is_same_v<MemberType<Ref>, std::vector<int>>);
  auto check = [key, lo](const std::vector<int>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      RETURN_IF_ERROR(CheckRange(key + "[" + std::to_string(i) + "]", v[i], lo, INT_MAX));
    }
    return Status::Ok();
  };
  Field f;
  f.key = key;
  f.set = [key, ref, lo](const toml::node& n, JobConfig* c) {
    const toml::array* a = n.as_array();
    if (a == nullptr) return TypeError(key, "an array of integers", n);
    std::vector<int> out;
    out.reserve(a->size());
    for (size_t i = 0; i < a->size(); ++i) {
      const std::string item = key + "[" + std::to_string(i) + "]";
      const toml::value<int64_t>* v = (*a)[i].as_integer();
      if (v == nullptr) return TypeError(item, "an integer", (*a)[i]);
      RETURN_IF_ERROR(CheckRange(item, v->get(), lo, INT_MAX));
      out.push_back(static_cast<int>(v->get()));
    }
    ref(*c) = std::move(out);
    return Status::Ok();
  };
  f.check = [ref, check](const JobConfig& c) { return check(ref(c)); };
  f.format = [ref](const JobConfig& c) {
    std::string s = "[";
    for (const int w : ref(c)) s += (s.size() > 1 ? ", " : "") + std::to_string(w);
    return s + "]";
  };
  return f;
}

template <typename Ref>
Field ConsistencyField(const std::string& key, Ref ref) {
  Field f;
  f.key = key;
  f.set = [key, ref](const toml::node& n, JobConfig* c) {
    const toml::value<std::string>* v = n.as_string();
    if (v == nullptr) return TypeError(key, "a string", n);
    Result<Consistency> mode = ParseConsistency(v->get());
    if (!mode.ok()) {
      return InvalidArgumentError(Quoted(key) + " must be one of bsp, ssp, asp, got '" + v->get() +
                                  "'");
    }
    ref(*c) = *mode;
    return Status::Ok();
  };
  f.check = [key, ref](const JobConfig& c) {
    if (ParseConsistency(ConsistencyName(ref(c))).ok()) return Status::Ok();
    return InvalidArgumentError(Quoted(key) + " holds no known consistency model");
  };
  f.format = [ref](const JobConfig& c) { return TomlString(ConsistencyName(ref(c))); };
  return f;
}

#define DISTOPT_MEMBER(path) ([](auto& c) -> auto& { return c.path; })

// Every setting, in the order ConfigToToml writes them (grouped by table).
// The optimizer's fields are only type-checked here: Optimizer::Create owns
// their rules and ValidateConfig runs it. Likewise model.kind and
// model.activation are checked by CreateModel.
const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      StringField("name", DISTOPT_MEMBER(name), JobName()),

      IntField("cluster.workers", DISTOPT_MEMBER(cluster.workers), 1, kMaxNodes),
      IntField("cluster.servers", DISTOPT_MEMBER(cluster.servers), 1, kMaxNodes),
      ConsistencyField("cluster.consistency", DISTOPT_MEMBER(cluster.consistency)),
      IntField("cluster.staleness", DISTOPT_MEMBER(cluster.staleness), 0, kNoMax),
      StringField("cluster.host", DISTOPT_MEMBER(cluster.host), NonEmpty()),
      StringField("cluster.security", DISTOPT_MEMBER(cluster.security),
                  OneOf({"auto", "curve", "none"})),
      IntField("cluster.heartbeat_interval_ms", DISTOPT_MEMBER(cluster.heartbeat_interval_ms), 1,
               kMaxMs),
      IntField("cluster.heartbeat_timeout_ms", DISTOPT_MEMBER(cluster.heartbeat_timeout_ms), 1,
               kMaxMs),
      IntField("cluster.startup_timeout_s", DISTOPT_MEMBER(cluster.startup_timeout_s), 1, kMaxS),
      IntField("cluster.request_timeout_s", DISTOPT_MEMBER(cluster.request_timeout_s), 1, kMaxS),
      IntField("cluster.retry_interval_ms", DISTOPT_MEMBER(cluster.retry_interval_ms), 0, kMaxMs),
      IntField("cluster.max_restarts", DISTOPT_MEMBER(cluster.max_restarts), 0, kNoMax),
      IntField("cluster.replication", DISTOPT_MEMBER(cluster.replication), 1, 2),

      StringField("data.format", DISTOPT_MEMBER(data.format), OneOf({"idx", "libsvm", "csv"})),
      StringField("data.train", DISTOPT_MEMBER(data.train), AnyString()),
      StringField("data.train_labels", DISTOPT_MEMBER(data.train_labels), AnyString()),
      StringField("data.test", DISTOPT_MEMBER(data.test), AnyString()),
      StringField("data.test_labels", DISTOPT_MEMBER(data.test_labels), AnyString()),
      IntField("data.num_features", DISTOPT_MEMBER(data.num_features), 0, kNoMax),
      BoolField("data.zero_based", DISTOPT_MEMBER(data.zero_based)),
      IntField("data.label_column", DISTOPT_MEMBER(data.label_column), INT_MIN, INT_MAX),
      BoolField("data.header", DISTOPT_MEMBER(data.header)),
      StringField("data.delimiter", DISTOPT_MEMBER(data.delimiter), Delimiter()),
      BoolField("data.skip_bad_lines", DISTOPT_MEMBER(data.skip_bad_lines)),
      RealField("data.scale", DISTOPT_MEMBER(data.scale), Real::kPositive),
      IntField("data.max_train_rows", DISTOPT_MEMBER(data.max_train_rows), 0, kNoMax),
      IntField("data.max_test_rows", DISTOPT_MEMBER(data.max_test_rows), 0, kNoMax),

      StringField("model.kind", DISTOPT_MEMBER(model.kind), NonEmpty()),
      IntListField("model.hidden", DISTOPT_MEMBER(model.hidden), 1),
      StringField("model.activation", DISTOPT_MEMBER(model.activation), NonEmpty()),
      IntField("model.num_classes", DISTOPT_MEMBER(model.num_classes), 2, INT_MAX),
      IntField("model.fm_factors", DISTOPT_MEMBER(model.fm_factors), 1, INT_MAX),
      RealField("model.init_scale", DISTOPT_MEMBER(model.init_scale), Real::kNonNegative),
      IntField("model.seed", DISTOPT_MEMBER(model.seed), 0, kNoMax),
      BoolField("model.dense_weights", DISTOPT_MEMBER(model.dense_weights)),

      StringField("optimizer.kind", DISTOPT_MEMBER(optimizer.kind), NonEmpty()),
      RealField("optimizer.lr", DISTOPT_MEMBER(optimizer.lr), Real::kAny),
      RealField("optimizer.momentum", DISTOPT_MEMBER(optimizer.momentum), Real::kAny),
      BoolField("optimizer.nesterov", DISTOPT_MEMBER(optimizer.nesterov)),
      RealField("optimizer.weight_decay", DISTOPT_MEMBER(optimizer.weight_decay), Real::kAny),
      RealField("optimizer.beta1", DISTOPT_MEMBER(optimizer.beta1), Real::kAny),
      RealField("optimizer.beta2", DISTOPT_MEMBER(optimizer.beta2), Real::kAny),
      RealField("optimizer.eps", DISTOPT_MEMBER(optimizer.eps), Real::kAny),
      RealField("optimizer.initial_accumulator", DISTOPT_MEMBER(optimizer.initial_accumulator),
                Real::kAny),
      RealField("optimizer.ftrl_beta", DISTOPT_MEMBER(optimizer.ftrl_beta), Real::kAny),
      RealField("optimizer.l1", DISTOPT_MEMBER(optimizer.l1), Real::kAny),
      RealField("optimizer.l2", DISTOPT_MEMBER(optimizer.l2), Real::kAny),

      StringField("optimizer.schedule.kind", DISTOPT_MEMBER(optimizer.schedule.kind), NonEmpty()),
      IntField("optimizer.schedule.warmup_steps", DISTOPT_MEMBER(optimizer.schedule.warmup_steps),
               INT64_MIN, kNoMax),
      IntField("optimizer.schedule.step_size", DISTOPT_MEMBER(optimizer.schedule.step_size),
               INT64_MIN, kNoMax),
      RealField("optimizer.schedule.gamma", DISTOPT_MEMBER(optimizer.schedule.gamma), Real::kAny),
      IntField("optimizer.schedule.total_steps", DISTOPT_MEMBER(optimizer.schedule.total_steps),
               INT64_MIN, kNoMax),
      RealField("optimizer.schedule.min_lr", DISTOPT_MEMBER(optimizer.schedule.min_lr), Real::kAny),

      IntField("train.epochs", DISTOPT_MEMBER(train.epochs), 1, kNoMax),
      IntField("train.batch_size", DISTOPT_MEMBER(train.batch_size), 1, kMaxBatch),
      IntField("train.seed", DISTOPT_MEMBER(train.seed), 0, kNoMax),
      StringField("train.target_metric", DISTOPT_MEMBER(train.target_metric),
                  OneOf({"", "test_accuracy", "test_auc", "test_loss", "test_rmse"})),
      RealField("train.target", DISTOPT_MEMBER(train.target), Real::kFinite),
      IntField("train.eval_every_epochs", DISTOPT_MEMBER(train.eval_every_epochs), 1, kNoMax),
      IntField("train.log_every_steps", DISTOPT_MEMBER(train.log_every_steps), 1, kNoMax),
      IntField("train.checkpoint_every_steps", DISTOPT_MEMBER(train.checkpoint_every_steps), 0,
               kNoMax),
      IntField("train.checkpoint_every_s", DISTOPT_MEMBER(train.checkpoint_every_s), 0, kMaxS),
      IntField("train.keep_checkpoints", DISTOPT_MEMBER(train.keep_checkpoints), 1, kNoMax),
      BoolField("train.global_order", DISTOPT_MEMBER(train.global_order)),

      RealField("faults.drop", DISTOPT_MEMBER(faults.drop), Real::kNonNegative),
      RealField("faults.duplicate", DISTOPT_MEMBER(faults.duplicate), Real::kNonNegative),
      IntField("faults.delay_ms", DISTOPT_MEMBER(faults.delay_ms), 0, kMaxMs),
      StringField("faults.role", DISTOPT_MEMBER(faults.role), OneOf({"", "server", "worker"})),
      IntField("faults.rank", DISTOPT_MEMBER(faults.rank), -1, kMaxNodes),
      IntField("faults.kill_after_messages", DISTOPT_MEMBER(faults.kill_after_messages), -1,
               kNoMax),
      IntField("faults.seed", DISTOPT_MEMBER(faults.seed), 0, kNoMax),
  };
  return fields;
}

#undef DISTOPT_MEMBER

const Field* FindField(std::string_view key) {
  for (const Field& f : Fields()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

// "cluster", "optimizer" and "optimizer.schedule": every proper prefix of a key.
bool IsTable(std::string_view path) {
  return std::any_of(Fields().begin(), Fields().end(), [path](const Field& f) {
    return f.key.size() > path.size() && f.key.starts_with(path) && f.key[path.size()] == '.';
  });
}

std::string_view LastPart(std::string_view key) {
  const size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

std::string_view TableOf(std::string_view key) {
  const size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : key.substr(0, dot);
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The known key (or table) the user most likely meant, or "" when none is
// close. A setting under the wrong table ("train.lr") is found by its last
// part; a misspelling by edit distance, allowing about one edit per three
// letters of the misspelt part.
std::string Suggest(std::string_view key) {
  std::vector<std::string> known;
  for (const Field& f : Fields()) {
    known.push_back(f.key);
    for (std::string_view t = TableOf(f.key); !t.empty(); t = TableOf(t)) {
      if (std::find(known.begin(), known.end(), t) == known.end()) known.emplace_back(t);
    }
  }
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const std::string& k : known) {
    if (LastPart(k) != LastPart(key)) continue;
    const size_t d = EditDistance(key, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  if (!best.empty()) return best;
  const size_t limit = std::clamp<size_t>(LastPart(key).size() / 3, 1, 3);
  for (const std::string& k : known) {
    const size_t d = EditDistance(key, k);
    if (d <= limit && d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  return best;
}

Status UnknownKey(std::string_view key) {
  std::string msg = "unknown key " + Quoted(key);
  const std::string guess = Suggest(key);
  if (!guess.empty()) msg += " (did you mean " + Quoted(guess) + "?)";
  return InvalidArgumentError(msg);
}

Status NotASetting(std::string_view key, const toml::node& n) {
  if (IsTable(key)) return TypeError(key, "a table", n);
  return UnknownKey(key);
}

// A key of the document with where it was written.
struct Entry {
  std::string key;
  const toml::node* node = nullptr;
  toml::source_position pos;
};

// Every setting of the document, descending into known tables; anything
// else (unknown keys, a known table given as a value) is an entry too, so
// its error can be reported in file order.
void Collect(const toml::table& table, const std::string& prefix, std::vector<Entry>* out) {
  for (auto&& [k, v] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (FindField(key) == nullptr && IsTable(key) && v.is_table()) {
      Collect(*v.as_table(), key, out);
      continue;
    }
    // The key's position; a key toml++ made up has none, its value does.
    toml::source_position pos = k.source().begin;
    if (pos.line == 0) pos = v.source().begin;
    out->push_back({std::move(key), &v, pos});
  }
}

Status ApplyDocument(const toml::table& doc, const std::string& name, JobConfig* c) {
  std::vector<Entry> entries;
  Collect(doc, "", &entries);
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
  });
  for (const Entry& e : entries) {
    const Field* f = FindField(e.key);
    Status s = f != nullptr ? f->set(*e.node, c) : NotASetting(e.key, *e.node);
    if (!s.ok()) return s.WithContext(name + ":" + std::to_string(e.pos.line));
  }
  return Status::Ok();
}

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

Status ApplyOverride(const std::string& text, JobConfig* c) {
  const std::string where = "--set " + text;
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return InvalidArgumentError(where + ": expected section.key=value");
  }
  const std::string_view all = text;
  const std::string key(Trim(all.substr(0, eq)));
  const std::string value(Trim(all.substr(eq + 1)));
  const Field* f = FindField(key);
  if (f == nullptr) {
    if (IsTable(key)) {
      return InvalidArgumentError(where + ": " + Quoted(key) +
                                  " is a table; set one of its keys (section.key=value)");
    }
    return UnknownKey(key).WithContext(where);
  }
  // The value as TOML (3, 0.1, true, "x", [128, 64]); text that is no TOML
  // value is a bare string (ssp, /data/train.csv). Wrapping it in a document
  // of one key also rejects text that would smuggle in a second key.
  toml::table doc;
  bool is_toml = true;
  try {
    doc = toml::parse("v = " + value + "\n", std::string_view{"--set"});
  } catch (const toml::parse_error&) {
    is_toml = false;
  }
  Status s;
  if (!is_toml) {
    s = f->set(toml::value<std::string>(value), c);
  } else if (doc.size() != 1 || doc.get("v") == nullptr) {
    s = InvalidArgumentError("the value must be a single TOML value");
  } else {
    s = f->set(*doc.get("v"), c);
  }
  return s.WithContext(where);
}

Result<std::string> ReadConfigFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string why = std::generic_category().message(err);
    if (err == ENOENT || err == ENOTDIR) {
      return NotFoundError("config file '" + path + "' not found: " + why);
    }
    return FailedPreconditionError("cannot open config file '" + path + "': " + why);
  }
  struct stat st {};
  std::string text;
  Status status;
  if (::fstat(fd, &st) != 0) {
    status = FailedPreconditionError("cannot stat config file '" + path +
                                     "': " + std::generic_category().message(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = InvalidArgumentError("config file '" + path + "' is not a regular file");
  } else if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    status = InvalidArgumentError("config file '" + path + "' is " + std::to_string(st.st_size) +
                                  " bytes, over the " + std::to_string(kMaxFileBytes >> 20) +
                                  " MiB a config file may have");
  } else {
    text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = FailedPreconditionError("cannot read config file '" + path +
                                         "': " + std::generic_category().message(errno));
        break;
      }
      if (n == 0) break;  // shrank since fstat: parse what is there
      got += static_cast<size_t>(n);
    }
    text.resize(got);
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

const char* DescribeTask(Task task) {
  switch (task) {
    case Task::kRegression:
      return "test_loss, test_rmse";
    case Task::kBinary:
      return "test_loss, test_accuracy, test_auc";
    case Task::kMulticlass:
      return "test_loss, test_accuracy";
  }
  return "test_loss";
}

bool ReportsMetric(Task task, const std::string& metric) {
  if (metric == "test_loss") return true;
  if (metric == "test_accuracy") return task != Task::kRegression;
  if (metric == "test_auc") return task == Task::kBinary;
  if (metric == "test_rmse") return task == Task::kRegression;
  return false;
}

// Settings each data format reads; a non-default value under another format
// is a mistake (like optimizer fields the chosen kind never reads).
Status CheckDataFormat(const DataConfig& d) {
  const DataConfig defaults;
  struct Only {
    const char* key;
    const char* format;
    bool set;
  };
  const Only only[] = {
      {"data.train_labels", "idx", !d.train_labels.empty()},
      {"data.test_labels", "idx", !d.test_labels.empty()},
      {"data.scale", "idx", d.scale != defaults.scale},
      {"data.num_features", "libsvm", d.num_features != defaults.num_features},
      {"data.zero_based", "libsvm", d.zero_based != defaults.zero_based},
      {"data.label_column", "csv", d.label_column != defaults.label_column},
      {"data.header", "csv", d.header != defaults.header},
      {"data.delimiter", "csv", d.delimiter != defaults.delimiter},
  };
  for (const Only& o : only) {
    if (o.set && d.format != o.format) {
      return InvalidArgumentError(Quoted(o.key) + " only applies to data.format '" + o.format +
                                  "' (format is '" + d.format + "')");
    }
  }
  if (d.train.empty()) {
    return InvalidArgumentError("'data.train' is required (the training data file)");
  }
  if (d.format == "idx" && d.train_labels.empty()) {
    return InvalidArgumentError("'data.train_labels' is required when data.format is 'idx'");
  }
  if (d.format == "idx" && !d.test.empty() && d.test_labels.empty()) {
    return InvalidArgumentError(
        "'data.test_labels' is required when data.test is set and data.format is 'idx'");
  }
  if (d.test.empty() && !d.test_labels.empty()) {
    return InvalidArgumentError("'data.test_labels' is set but data.test is not");
  }
  return Status::Ok();
}

Status CheckCluster(const ClusterConfig& k) {
  if (k.consistency != Consistency::kSsp && k.staleness != 0) {
    return InvalidArgumentError(
        "'cluster.staleness' only applies to cluster.consistency 'ssp' (consistency is '" +
        std::string(ConsistencyName(k.consistency)) + "'), got " + std::to_string(k.staleness));
  }
  if (int64_t{k.workers} + k.servers + 1 > kMaxMembers) {
    return InvalidArgumentError(
        "'cluster.workers' + cluster.servers + 1 (the coordinator) must be "
        "<= " +
        std::to_string(kMaxMembers) + ", got " +
        std::to_string(int64_t{k.workers} + k.servers + 1));
  }
  if (k.replication == 2 && k.servers < 2) {
    return InvalidArgumentError(
        "'cluster.replication' = 2 needs cluster.servers >= 2 (a backup lives on another "
        "server), got " +
        std::to_string(k.servers) + " server");
  }
  if (k.heartbeat_timeout_ms <= k.heartbeat_interval_ms) {
    return InvalidArgumentError(
        "'cluster.heartbeat_timeout_ms' must be greater than "
        "cluster.heartbeat_interval_ms (" +
        std::to_string(k.heartbeat_interval_ms) + "), got " +
        std::to_string(k.heartbeat_timeout_ms));
  }
  if (k.retry_interval_ms >= k.request_timeout_s * 1000) {
    return InvalidArgumentError(
        "'cluster.retry_interval_ms' must be 0 (off) or below "
        "cluster.request_timeout_s (" +
        std::to_string(k.request_timeout_s * 1000) + " ms), got " +
        std::to_string(k.retry_interval_ms));
  }
  return Status::Ok();
}

Status CheckTarget(const JobConfig& c, Task task) {
  const TrainConfig& t = c.train;
  if (t.target_metric.empty()) {
    if (t.target == 0.0) return Status::Ok();
    return InvalidArgumentError("'train.target' is set but train.target_metric is empty");
  }
  if (c.data.test.empty()) {
    return InvalidArgumentError("'train.target_metric' is '" + t.target_metric +
                                "', which needs test data (data.test)");
  }
  if (!ReportsMetric(task, t.target_metric)) {
    return InvalidArgumentError("'train.target_metric' is '" + t.target_metric +
                                "', which model.kind '" + c.model.kind +
                                "' does not report (it reports " + DescribeTask(task) + ")");
  }
  const bool fraction = t.target_metric == "test_accuracy" || t.target_metric == "test_auc";
  if (fraction ? !(t.target >= 0.0 && t.target <= 1.0) : !(t.target >= 0.0)) {
    return InvalidArgumentError("'train.target' must be " +
                                std::string(fraction ? "in [0, 1]" : ">= 0") + " for " +
                                t.target_metric + ", got " + ShortestNumber(t.target));
  }
  return Status::Ok();
}

}  // namespace

Status ValidateConfig(const JobConfig& c) {
  const std::string where = c.source.empty() ? "config" : c.source;
  for (const Field& f : Fields()) RETURN_IF_ERROR(f.check(c).WithContext(where));
  RETURN_IF_ERROR(CheckCluster(c.cluster).WithContext(where));
  RETURN_IF_ERROR(CheckDataFormat(c.data).WithContext(where));
  // The model and the optimizer own their rules: building them is the check.
  // The input width is unknown until the data is read; libsvm may state it.
  const uint64_t features = c.data.num_features > 0 ? c.data.num_features : 1;
  Result<std::unique_ptr<Model>> model = CreateModel(c.model, features);
  RETURN_IF_ERROR(model.status().WithContext(where));
  RETURN_IF_ERROR(Optimizer::Create(c.optimizer).status().WithContext(where));
  return CheckTarget(c, (*model)->task()).WithContext(where);
}

Result<JobConfig> ParseConfig(const std::string& text, const std::string& name,
                              const std::vector<std::string>& overrides) {
  JobConfig config;
  config.source = name;
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view{name});
  } catch (const toml::parse_error& e) {
    const toml::source_position& p = e.source().begin;
    return InvalidArgumentError(name + ":" + std::to_string(p.line) + ":" +
                                std::to_string(p.column) + ": " + std::string(e.description()));
  }
  RETURN_IF_ERROR(ApplyDocument(doc, name, &config));
  for (const std::string& o : overrides) RETURN_IF_ERROR(ApplyOverride(o, &config));
  RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

Result<JobConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
  return ParseConfig(text, path, overrides);
}

std::string ConfigToToml(const JobConfig& config) {
  std::string out =
      "# distopt job configuration as it ran: every setting, defaults included.\n"
      "# Load it again with `distopt train <this file>`.\n";
  std::string_view table;
  for (const Field& f : Fields()) {
    const std::string_view t = TableOf(f.key);
    if (t != table) {
      out += "\n[" + std::string(t) + "]\n";
      table = t;
    }
    out += std::string(LastPart(f.key)) + " = " + f.format(config) + "\n";
  }
  return out;
}

}  // namespace distopt
