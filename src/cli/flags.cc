#include "cli/flags.h"

#include <charconv>

namespace distopt {

Result<Flags> Flags::Parse(const std::vector<std::string>& args,
                           const std::set<std::string>& with_value,
                           const std::set<std::string>& switches) {
  Flags f;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      f.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (switches.count(name)) {
      if (inline_value && value != "true" && value != "false") {
        return InvalidArgumentError("--" + name + " takes no value (or =true/=false)");
      }
      f.values_[name].push_back(inline_value ? value : "true");
      continue;
    }
    if (!with_value.count(name)) {
      std::string known;
      for (const auto& k : with_value) known += " --" + k;
      for (const auto& k : switches) known += " --" + k;
      return InvalidArgumentError("unknown flag --" + name + " (this command takes:" + known + ")");
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return InvalidArgumentError("--" + name + " needs a value");
      value = args[++i];
    }
    f.values_[name].push_back(value);
  }
  return f;
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

Result<int64_t> Flags::GetInt(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  std::string v = Get(name);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgumentError("--" + name + " must be an integer, got '" + v + "'");
  }
  return out;
}

Result<double> Flags::GetDouble(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  std::string v = Get(name);
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgumentError("--" + name + " must be a number, got '" + v + "'");
  }
  return out;
}

Result<uint64_t> ParseBytes(const std::string& text) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) {
    return InvalidArgumentError("'" + text + "' is not a size (examples: 4096, 1MiB, 16MiB, 2GiB)");
  }
  std::string unit(p, text.data() + text.size());
  uint64_t mult = 1;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k")
    mult = 1ull << 10;
  else if (unit == "M" || unit == "MiB")
    mult = 1ull << 20;
  else if (unit == "G" || unit == "GiB")
    mult = 1ull << 30;
  else if (unit == "KB")
    mult = 1000;
  else if (unit == "MB")
    mult = 1000000;
  else if (unit == "GB")
    mult = 1000000000;
  else
    return InvalidArgumentError("unknown size unit '" + unit + "' in '" + text + "'");
  return n * mult;
}

Result<uint64_t> Flags::GetBytes(const std::string& name, uint64_t fallback) const {
  if (!Has(name)) return fallback;
  auto r = ParseBytes(Get(name));
  if (!r.ok()) return r.status().WithContext("--" + name);
  return r;
}

Result<std::vector<int64_t>> Flags::GetIntList(const std::string& name,
                                               std::vector<int64_t> fallback) const {
  if (!Has(name)) return fallback;
  std::vector<int64_t> out;
  std::string v = Get(name);
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    std::string item = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    int64_t x = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
    if (ec != std::errc() || p != item.data() + item.size() || item.empty()) {
      return InvalidArgumentError("--" + name +
                                  " must be a comma-separated list of integers, got '" + v + "'");
    }
    out.push_back(x);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace distopt
