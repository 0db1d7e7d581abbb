// The settings schema (config_schema.h): the checks and TOML text of each
// kind of value, the builders of a Field for each kind, the table of every
// setting, and ConfigToToml, which is only a walk over the table's `format`
// (kept here so each row's reading and writing stay side by side).
// Stateless functions over values; thread-safe.
#include "cli/config_schema.h"

#include <algorithm>
#include <climits>
#include <limits>
#include <type_traits>
#include <utility>

#include "kv/layout.h"

namespace distopt {
namespace config_internal {
namespace {

// Upper bounds that keep later arithmetic (ms -> ns, s -> ms) far from
// overflow; both are about 11.5 days.
constexpr int64_t kMaxMs = 1'000'000'000;
constexpr int64_t kMaxS = 1'000'000;
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMaxNodes = kMaxMembers - 2;
// Rows per worker batch: index arrays of this size are allocated per step.
constexpr int64_t kMaxBatch = int64_t{1} << 24;

}  // namespace

std::string Quoted(std::string_view key) { return "'" + std::string(key) + "'"; }

namespace {

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

}  // namespace

Status TypeError(std::string_view key, const char* want, const toml::node& n) {
  return InvalidArgumentError(Quoted(key) + " must be " + want + ", found " + Found(n));
}

namespace {

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

}  // namespace

#define DISTOPT_MEMBER(path) ([](auto& c) -> auto& { return c.path; })

// The optimizer's fields are only type-checked here: Optimizer::Create owns
// their rules and ValidateConfig runs it. Likewise model.kind and
// model.activation are checked by CreateModel.
// long: the table of every setting, one row each; split up it would no longer
// read as the one list of what a config file may say.
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
      IntField("cluster.partitions", DISTOPT_MEMBER(cluster.partitions), 0, Layout::kMaxPartitions),
      IntField("cluster.capacity", DISTOPT_MEMBER(cluster.capacity), 0, 1 << 20),
      IntField("cluster.tcp_receive_buffer", DISTOPT_MEMBER(cluster.tcp_receive_buffer), 0,
               1 << 30),
      StringField("cluster.placement", DISTOPT_MEMBER(cluster.placement),
                  OneOf({"separate", "process"})),
      StringField("cluster.host_aggregation", DISTOPT_MEMBER(cluster.host_aggregation),
                  OneOf({"auto", "on", "off"})),

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
      IntField("data.shares", DISTOPT_MEMBER(data.shares), 0, 1 << 16),
      StringField("data.split", DISTOPT_MEMBER(data.split), OneOf({"bytes", "whole"})),

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

}  // namespace config_internal

std::string ConfigToToml(const JobConfig& config) {
  using config_internal::Field;
  using config_internal::Fields;
  using config_internal::LastPart;
  using config_internal::TableOf;
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
