// Theory of operation: PDU framing (RFC 7143 §11.2)
//
// Overview
//   An iSCSI PDU on the wire is a 48-byte BHS, TotalAHSLength*4 bytes of
//   AHS, an optional 4-byte header digest over BHS+AHS, DataSegmentLength
//   bytes of data padded to a multiple of 4, and an optional 4-byte data
//   digest over data+padding. PduReader reassembles PDUs from whatever
//   slices the socket hands it; PduWriter sends queued PDUs with writev.
//
// Data structures & on-disk format
//   Nothing is persisted. The reader fills Pdu::bhs in place, then Pdu::ahs
//   and Pdu::data (sized to data+padding while reading, trimmed to the data
//   afterwards; the vectors keep their capacity, so a connection's reader
//   stops allocating once it has seen its largest PDU). The writer keeps a
//   ring of Out records: BHS, header digest, a data pointer (borrowed or
//   owned), and a trailer holding padding plus data digest, so one PDU is at
//   most four iovecs.
//
// Invariants
//   * No allocation is sized by a peer length before that length has been
//     checked: DataSegmentLength <= limits().max_data_segment (8192 while
//     logging in, 262144 after), AHS <= 255*4 bytes.
//   * The limits of a PDU are fixed when its BHS starts (SetLimits between
//     PDUs never changes a PDU half-read), matching RFC 7143 §13.12: a new
//     MaxRecvDataSegmentLength applies from the next PDU.
//   * A borrowed data pointer is only dereferenced until its cookie is
//     returned by Flush or Clear.
//
// Concurrency & lock order
//   None: confined to the connection's event loop thread.
//
// Crash consistency
//   Not applicable (no durable state).
//
// Failure handling
//   Over-long segments and header digest errors leave the stream out of
//   sync: the connection drops (ERL 0). A data digest error still yields the
//   complete PDU so the connection can Reject it (reason 0x02). Write errors
//   (EPIPE, ECONNRESET) report kError and the connection closes.
//
// Tunables
//   None here; the limits come from login negotiation.

#include "export/iscsi/pdu.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/base/check.h"
#include "core/checksum/checksum.h"

namespace blockhaus::iscsi {
namespace {

constexpr size_t kMaxIov = 64;

// Continues a finished CRC32C over `n` more zero bytes (padding, at most 3).
uint32_t Crc32cZeros(uint32_t crc, uint32_t n) {
  uint32_t state = ~crc;
  for (uint32_t i = 0; i < n; ++i) {
    for (int bit = 0; bit < 8; ++bit) state = (state >> 1) ^ (0x82F63B78u & (0u - (state & 1u)));
  }
  return ~state;
}

// Digests go on the wire in the CRC's natural little-endian order (RFC 7143
// §12.1: the CRC32C "as a 32-bit value" is sent least significant byte
// first, which is what Linux, libiscsi and SPDK do).
void PutDigest(uint8_t* p, uint32_t crc) { EncodeLE32(p, crc); }
uint32_t GetDigest(const uint8_t* p) { return DecodeLE32(p); }

}  // namespace

uint32_t DigestWithPad(ConstByteSpan data, uint32_t pad) {
  return Crc32cZeros(core::Crc32c(data), pad);
}

// --- reader ---

uint8_t* PduReader::Target() {
  switch (state_) {
    case State::kBhs: return pdu_.bhs.data() + filled_;
    case State::kAhs: return pdu_.ahs.data() + filled_;
    case State::kHeaderDigest:
    case State::kDataDigest: return digest_ + filled_;
    case State::kData:
      return (routed_ && !dropped_ ? routed_span_.data() : pdu_.data.data()) + filled_;
  }
  return nullptr;
}

void PduReader::DropRoute() {
  if (!routed_ || dropped_) return;
  dropped_ = true;
  if (state_ == State::kData) pdu_.data.resize(need_);  // scratch for the rest
}

ByteSpan PduReader::DirectTarget() {
  if (state_ != State::kData || !routed_ || dropped_) return {};
  return routed_span_.subspan(filled_, need_ - filled_);
}

ReadEvent PduReader::Filled(size_t n) {
  BH_CHECK(state_ == State::kData && routed_ && !dropped_ && filled_ + n <= need_);
  filled_ += n;
  if (filled_ < need_) return ReadEvent::kNeedMore;
  return Advance();
}

ReadEvent PduReader::Feed(ConstByteSpan in, size_t* consumed) {
  *consumed = 0;
  while (*consumed < in.size()) {
    if (state_ == State::kBhs && filled_ == 0) current_ = limits_;
    const size_t n = std::min(need_ - filled_, in.size() - *consumed);
    std::memcpy(Target(), in.data() + *consumed, n);
    filled_ += n;
    *consumed += n;
    if (filled_ < need_) break;
    const ReadEvent ev = Advance();
    if (ev != ReadEvent::kNeedMore) return ev;
  }
  // A PDU with nothing after its BHS can complete exactly at the end of input.
  return ReadEvent::kNeedMore;
}

// The current part is full: move to the next one.
ReadEvent PduReader::Advance() {
  filled_ = 0;
  switch (state_) {
    case State::kBhs: return FinishBhs();
    case State::kAhs:
      if (current_.header_digest) {
        state_ = State::kHeaderDigest;
        need_ = kDigestSize;
        return ReadEvent::kNeedMore;
      }
      return FinishHeader();
    case State::kHeaderDigest: {
      uint32_t crc = core::Crc32c(pdu_.bhs);
      if (!pdu_.ahs.empty()) {
        // Header digest covers BHS and AHS as one stream.
        std::vector<uint8_t> whole(pdu_.bhs.begin(), pdu_.bhs.end());
        whole.insert(whole.end(), pdu_.ahs.begin(), pdu_.ahs.end());
        crc = core::Crc32c(whole);
      }
      if (crc != GetDigest(digest_)) {
        state_ = State::kBhs;
        need_ = kBhsSize;
        return ReadEvent::kHeaderDigestError;
      }
      return FinishHeader();
    }
    case State::kData:
      if (current_.data_digest) {
        state_ = State::kDataDigest;
        need_ = kDigestSize;
        return ReadEvent::kNeedMore;
      }
      return FinishPdu();
    case State::kDataDigest: return FinishPdu();
  }
  return ReadEvent::kNeedMore;
}

ReadEvent PduReader::FinishBhs() {
  data_length_ = BhsDataSegmentLength(pdu_.bhs);
  if (data_length_ > current_.max_data_segment) {
    need_ = kBhsSize;
    return ReadEvent::kTooLong;
  }
  const size_t ahs = size_t{BhsTotalAhsLength(pdu_.bhs)} * 4;  // <= 1020
  pdu_.ahs.resize(ahs);
  if (ahs > 0) {
    state_ = State::kAhs;
    need_ = ahs;
    return ReadEvent::kNeedMore;
  }
  if (current_.header_digest) {
    state_ = State::kHeaderDigest;
    need_ = kDigestSize;
    return ReadEvent::kNeedMore;
  }
  return FinishHeader();
}

ReadEvent PduReader::FinishHeader() {
  routed_ = dropped_ = false;
  if (route_ && data_length_ > 0 && PadLength(data_length_) == 0) {
    routed_span_ = route_(pdu_);
    if (!routed_span_.empty()) {
      BH_CHECK(routed_span_.size() == data_length_);
      routed_ = true;
      pdu_.data.clear();
      state_ = State::kData;
      need_ = data_length_;
      return ReadEvent::kNeedMore;
    }
  }
  const size_t total = size_t{data_length_} + PadLength(data_length_);
  pdu_.data.resize(total);  // bounded by max_data_segment + 3 (checked above)
  if (total > 0) {
    state_ = State::kData;
    need_ = total;
    return ReadEvent::kNeedMore;
  }
  return FinishPdu();
}

ReadEvent PduReader::FinishPdu() {
  ReadEvent ev = ReadEvent::kPdu;
  if (current_.data_digest && data_length_ > 0 && !dropped_) {
    const uint32_t crc = routed_ ? core::Crc32c(routed_span_) : core::Crc32c(pdu_.data);
    if (crc != GetDigest(digest_)) ev = ReadEvent::kDataDigestError;
  }
  pdu_.data.resize(routed_ ? 0 : data_length_);
  state_ = State::kBhs;
  need_ = kBhsSize;
  filled_ = 0;
  return ev;
}

void AppendPdu(const Bhs& bhs_in, ConstByteSpan data, bool header_digest, bool data_digest,
               std::vector<uint8_t>* out) {
  Bhs bhs = bhs_in;
  SetBhsDataSegmentLength(&bhs, static_cast<uint32_t>(data.size()));
  out->insert(out->end(), bhs.begin(), bhs.end());
  uint8_t d[kDigestSize];
  if (header_digest) {
    PutDigest(d, core::Crc32c(bhs));
    out->insert(out->end(), d, d + kDigestSize);
  }
  if (data.empty()) return;
  out->insert(out->end(), data.begin(), data.end());
  const uint32_t pad = PadLength(static_cast<uint32_t>(data.size()));
  out->insert(out->end(), pad, 0);
  if (data_digest) {
    PutDigest(d, DigestWithPad(data, pad));
    out->insert(out->end(), d, d + kDigestSize);
  }
}

// --- writer ---

PduWriter::PduWriter() : ring_(16) { iov_.reserve(kMaxIov); }

PduWriter::Out& PduWriter::Push() {
  if (count_ == ring_.size()) {
    std::vector<Out> bigger(ring_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = std::move(ring_[(head_ + i) % ring_.size()]);
    ring_ = std::move(bigger);
    head_ = 0;
  }
  Out& out = ring_[(head_ + count_) % ring_.size()];
  ++count_;
  return out;
}

void PduWriter::Prepare(Out* out) {
  SetBhsDataSegmentLength(&out->bhs, out->data_length);
  out->total = kBhsSize;
  out->header_digest_length = 0;
  if (header_digest_) {
    PutDigest(out->header_digest, core::Crc32c(out->bhs));
    out->header_digest_length = kDigestSize;
    out->total += kDigestSize;
  }
  out->trailer_length = 0;
  if (out->data_length > 0) {
    const uint32_t pad = PadLength(out->data_length);
    std::memset(out->trailer, 0, pad);
    out->trailer_length = static_cast<uint8_t>(pad);
    if (data_digest_) {
      PutDigest(out->trailer + pad, DigestWithPad({out->data, out->data_length}, pad));
      out->trailer_length = static_cast<uint8_t>(pad + kDigestSize);
    }
    out->total += out->data_length + out->trailer_length;
  }
  out->written = 0;
  queued_bytes_ += out->total;
}

void PduWriter::Queue(const Bhs& bhs, ConstByteSpan data, void* cookie) {
  Out& out = Push();
  out.bhs = bhs;
  out.owned.clear();
  out.data = data.data();
  out.data_length = static_cast<uint32_t>(data.size());
  out.cookie = cookie;
  Prepare(&out);
}

void PduWriter::QueueOwned(const Bhs& bhs, std::vector<uint8_t> data, void* cookie) {
  Out& out = Push();
  out.bhs = bhs;
  out.owned = std::move(data);
  out.data = out.owned.data();
  out.data_length = static_cast<uint32_t>(out.owned.size());
  out.cookie = cookie;
  Prepare(&out);
}

// Fills iov_ from the queue head, skipping what was already written.
size_t PduWriter::BuildIov() {
  iov_.clear();
  for (size_t i = 0; i < count_ && iov_.size() + 4 <= kMaxIov; ++i) {
    Out& out = ring_[(head_ + i) % ring_.size()];
    struct Part {
      const uint8_t* p;
      size_t n;
    };
    const Part parts[4] = {{out.bhs.data(), kBhsSize},
                           {out.header_digest, out.header_digest_length},
                           {out.data, out.data_length},
                           {out.trailer, out.trailer_length}};
    size_t skip = out.written;
    for (const Part& part : parts) {
      if (part.n == 0) continue;
      if (skip >= part.n) {
        skip -= part.n;
        continue;
      }
      iov_.push_back({const_cast<uint8_t*>(part.p + skip), part.n - skip});
      skip = 0;
    }
  }
  return iov_.size();
}

WriteResult PduWriter::Flush(int fd, std::vector<void*>* released) {
  while (count_ > 0) {
    const size_t n_iov = BuildIov();
    const ssize_t n = ::writev(fd, iov_.data(), static_cast<int>(n_iov));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return WriteResult::kBlocked;
      return WriteResult::kError;
    }
    size_t left = static_cast<size_t>(n);
    queued_bytes_ -= left;
    while (left > 0 && count_ > 0) {
      Out& out = ring_[head_];
      const size_t take = std::min(left, out.total - out.written);
      out.written += take;
      left -= take;
      if (out.written < out.total) break;
      if (out.cookie != nullptr) released->push_back(out.cookie);
      out.owned.clear();
      out.cookie = nullptr;
      head_ = (head_ + 1) % ring_.size();
      --count_;
    }
  }
  return WriteResult::kDone;
}

void PduWriter::Clear(std::vector<void*>* released) {
  while (count_ > 0) {
    Out& out = ring_[head_];
    if (out.cookie != nullptr) released->push_back(out.cookie);
    out.owned.clear();
    out.cookie = nullptr;
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
  queued_bytes_ = 0;
}

}  // namespace blockhaus::iscsi
