// Reads a fuzz input as a script of records (docs/protocol.md,
// "Fuzzing"): each record is an op byte, a little-endian 16-bit length and that many bytes
// (cut short at the end of the input). Header-only; fuzz targets only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace treepo::fuzz {

struct Record {
  uint8_t op = 0;
  std::vector<uint8_t> bytes;
};

class RecordReader {
 public:
  RecordReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // False at the end of the input.
  bool Next(Record* r) {
    if (pos_ >= size_) return false;
    r->op = data_[pos_++];
    size_t len = 0;
    if (pos_ < size_) len = data_[pos_++];
    if (pos_ < size_) len |= static_cast<size_t>(data_[pos_++]) << 8;
    if (len > size_ - pos_) len = size_ - pos_;
    r->bytes.assign(data_ + pos_, data_ + pos_ + len);
    pos_ += len;
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Appends a record (for building seed inputs).
inline void AppendRecord(std::vector<uint8_t>* out, uint8_t op, std::span<const uint8_t> bytes) {
  out->push_back(op);
  out->push_back(static_cast<uint8_t>(bytes.size() & 0xff));
  out->push_back(static_cast<uint8_t>((bytes.size() >> 8) & 0xff));
  out->insert(out->end(), bytes.begin(), bytes.end());
}

}  // namespace treepo::fuzz
