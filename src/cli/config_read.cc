// Reading a JobConfig: the config file from disk, its TOML document into the
// schema's fields (in file order, so the first error reported is the first in
// the file), "did you mean" for unknown keys, then the --set overrides, then
// ValidateConfig. Stateless functions; thread-safe.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string_view>
#include <system_error>
#include <utility>

#include "cli/config.h"
#include "cli/config_schema.h"

// Debian's toml++ is a compiled library built with exceptions, so the parser
// reports syntax errors by throwing toml::parse_error; it is caught right at
// the two parse calls below and never leaves this file.
#include <toml++/toml.h>

namespace distopt {
namespace {

using config_internal::Field;
using config_internal::Fields;
using config_internal::FindField;
using config_internal::IsTable;
using config_internal::LastPart;
using config_internal::Quoted;
using config_internal::TableOf;
using config_internal::TypeError;

// A config file is a page of text; anything this large is a wrong path.
constexpr size_t kMaxFileBytes = size_t{16} << 20;

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

}  // namespace

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

}  // namespace distopt
