#include "tools/args.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace swarr {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
                                 const std::set<std::string>& bool_flags) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0) return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "'"));
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (bool_flags.count(name)) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
      args.values_[name] = "true";
    } else if (value_flags.count(name)) {
      if (!has_value) {
        if (i + 1 >= argv.size()) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
        value = argv[++i];
      }
      args.values_[name] = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  return args;
}

absl::StatusOr<std::string> Args::Required(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return absl::InvalidArgumentError(absl::StrCat("missing required flag --", name));
  return it->second;
}

std::optional<std::string> Args::Optional(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::optional<int64_t>> Args::Int(const std::string& name) const {
  auto v = Optional(name);
  if (!v) return std::optional<int64_t>();
  int64_t out;
  if (!absl::SimpleAtoi(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("flag --", name, ": '", *v, "' is not an integer"));
  }
  return std::optional<int64_t>(out);
}

absl::StatusOr<std::optional<double>> Args::Double(const std::string& name) const {
  auto v = Optional(name);
  if (!v) return std::optional<double>();
  double out;
  if (!absl::SimpleAtod(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("flag --", name, ": '", *v, "' is not a number"));
  }
  return std::optional<double>(out);
}

absl::StatusOr<std::vector<int64_t>> Args::IntList(const std::string& name) const {
  auto v = Required(name);
  if (!v.ok()) return v.status();
  std::vector<int64_t> out;
  for (absl::string_view piece : absl::StrSplit(*v, ',')) {
    int64_t x;
    if (!absl::SimpleAtoi(piece, &x)) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, ": '", piece, "' is not an integer"));
    }
    out.push_back(x);
  }
  return out;
}

int FailWithStatus(const absl::Status& status) {
  std::cerr << "swarr: " << status.message() << "\n";
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 2;
    default:
      return 1;
  }
}

}  // namespace swarr
