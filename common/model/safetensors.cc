#include "common/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using json = nlohmann::json;

struct DTypeInfo {
  StDType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {StDType::kF64, "F64", 8},  {StDType::kF32, "F32", 4}, {StDType::kF16, "F16", 2},
    {StDType::kBF16, "BF16", 2}, {StDType::kI64, "I64", 8}, {StDType::kI32, "I32", 4},
    {StDType::kI16, "I16", 2},  {StDType::kI8, "I8", 1},   {StDType::kU8, "U8", 1},
    {StDType::kBool, "BOOL", 1},
};

// Upper bound on the JSON header (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors ", path, ": ", what));
}

}  // namespace

absl::StatusOr<StDType> ParseStDType(const std::string& name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported safetensors dtype '", name, "'"));
}

const char* StDTypeName(StDType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

size_t StDTypeSize(StDType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat("cannot open safetensors file ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Bad(path, "cannot stat");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Bad(path, absl::StrCat("file of ", size, " bytes is too short for the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Bad(path, absl::StrCat("mmap failed: ", std::strerror(errno)));
  file->map_ = map;
  file->map_size_ = size;
  const auto* base = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > kMaxHeaderBytes) {
    return Bad(path, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                  kMaxHeaderBytes, " bytes"));
  }
  if (header_len > size - 8) {
    return Bad(path, absl::StrCat("header length ", header_len, " runs past the end of the file (",
                                  size, " bytes): truncated file?"));
  }
  std::string_view header_text(reinterpret_cast<const char*>(base + 8), header_len);
  json header = json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Bad(path, "header is not valid JSON");
  if (!header.is_object()) return Bad(path, "header is not a JSON object");

  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Bad(path, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return Bad(path, absl::StrCat("__metadata__.", m.key(), " is not a string"));
        }
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", name, "'");
    if (!entry.is_object()) return Bad(path, absl::StrCat(where, ": entry is not an object"));
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) return Bad(path, absl::StrCat(where, ": missing dtype"));
    if (sh == entry.end() || !sh->is_array()) return Bad(path, absl::StrCat(where, ": missing shape"));
    if (off == entry.end() || !off->is_array() || off->size() != 2) {
      return Bad(path, absl::StrCat(where, ": data_offsets must be [begin, end]"));
    }
    auto dtype = ParseStDType(dt->get<std::string>());
    if (!dtype.ok()) return Bad(path, absl::StrCat(where, ": ", dtype.status().message()));
    TensorView view;
    view.dtype = *dtype;
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned()) {
        return Bad(path, absl::StrCat(where, ": shape ", sh->dump(), " has a non-integer or negative dimension"));
      }
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim) {
        return Bad(path, absl::StrCat(where, ": shape ", sh->dump(), " overflows"));
      }
      numel *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const json& o : *off) {
      if (!o.is_number_unsigned()) return Bad(path, absl::StrCat(where, ": data_offsets must be non-negative integers"));
    }
    uint64_t begin = (*off)[0].get<uint64_t>();
    uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end) {
      return Bad(path, absl::StrCat(where, ": data_offsets [", begin, ", ", end, "] are reversed"));
    }
    if (end > data_size) {
      return Bad(path, absl::StrCat(where, ": data_offsets [", begin, ", ", end,
                                    "] lie outside the data section of ", data_size, " bytes"));
    }
    const uint64_t expected = numel * StDTypeSize(view.dtype);
    if (end - begin != expected) {
      return Bad(path, absl::StrCat(where, ": shape ", sh->dump(), " x ", dt->get<std::string>(),
                                    " needs ", expected, " bytes but data_offsets span ", end - begin));
    }
    view.data = data + begin;
    view.nbytes = end - begin;
    spans.push_back({begin, end, name});
    file->names_.push_back(name);
    file->tensors_.emplace(name, std::move(view));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  const Span* last = nullptr;  // the non-empty span reaching furthest so far
  for (const Span& cur : spans) {
    if (cur.end == cur.begin) continue;
    if (last != nullptr && cur.begin < last->end) {
      return Bad(path, absl::StrCat("tensors '", last->name, "' [", last->begin, ", ", last->end, ") and '",
                                    cur.name, "' [", cur.begin, ", ", cur.end, ") overlap"));
    }
    if (last == nullptr || cur.end > last->end) last = &cur;
  }
  return file;
}

absl::StatusOr<TensorView> SafetensorsFile::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor '", name, "' not found in ", path_));
  }
  return it->second;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  // nlohmann's ordered_json keeps our layout order in the header (readable, deterministic).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (!seen.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", t.name, "' writing ", path));
    }
    if (t.name == "__metadata__") {
      return absl::InvalidArgumentError("a tensor may not be named __metadata__");
    }
    for (int64_t d : t.view.shape) {
      if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' has a negative dimension"));
    }
    const uint64_t expected = static_cast<uint64_t>(t.view.numel()) * StDTypeSize(t.view.dtype);
    if (expected != t.view.nbytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': shape needs ", expected,
                                                     " bytes but ", t.view.nbytes, " were given"));
    }
    header[t.name] = {{"dtype", StDTypeName(t.view.dtype)},
                      {"shape", t.view.shape},
                      {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::vector<std::string_view> pieces = {std::string_view(len, 8), text};
  for (const NamedTensor& t : tensors) {
    pieces.emplace_back(reinterpret_cast<const char*>(t.view.data), t.view.nbytes);
  }
  return WriteFileAtomically(path, pieces);
}

absl::StatusOr<std::unique_ptr<CheckpointFiles>> CheckpointFiles::Open(const std::string& dir) {
  auto files = std::unique_ptr<CheckpointFiles>(new CheckpointFiles());
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  struct stat st;
  if (::stat(index_path.c_str(), &st) == 0) {
    SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(index_path));
    json index = json::parse(text, nullptr, false);
    if (index.is_discarded() || !index.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
    }
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing object 'weight_map'"));
    }
    std::map<std::string, const SafetensorsFile*> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": weight_map['", it.key(), "'] is not a file name"));
      }
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": shard '", shard, "' must be a file name in the same directory"));
      }
      auto found = shards.find(shard);
      if (found == shards.end()) {
        auto f = SafetensorsFile::Open(dir + "/" + shard);
        if (!f.ok()) {
          return absl::Status(f.status().code(), absl::StrCat("shard '", shard, "' listed in ", index_path,
                                                              ": ", f.status().message()));
        }
        files->files_.push_back(std::move(*f));
        found = shards.emplace(shard, files->files_.back().get()).first;
      }
      if (!found->second->Contains(it.key())) {
        return absl::InvalidArgumentError(absl::StrCat(index_path, " places tensor '", it.key(), "' in ",
                                                       shard, ", which does not contain it"));
      }
      files->where_[it.key()] = found->second;
    }
    return files;
  }
  if (::stat(single.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("no model.safetensors or model.safetensors.index.json in ", dir));
  }
  SWARR_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(single));
  for (const std::string& name : f->names()) files->where_[name] = f.get();
  files->files_.push_back(std::move(f));
  return files;
}

std::vector<std::string> CheckpointFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

absl::StatusOr<TensorView> CheckpointFiles::Get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("tensor '", name, "' not in checkpoint"));
  return it->second->Get(name);
}

std::string CheckpointFiles::FileOf(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? std::string() : it->second->path();
}

}  // namespace swarr
