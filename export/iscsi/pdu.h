// PDU framing: a streaming reader that turns socket bytes into whole PDUs,
// and a writer that sends queued PDUs with writev.
//
// PduReader validates each length field as soon as its BHS is complete and
// before anything is allocated (TESTING.md SR-P1): DataSegmentLength must
// not exceed the limit the target declared (8192 during login), and
// TotalAHSLength is at most 1020 bytes by construction. Header and data
// digests (CRC32C, RFC 7143 §12.1) are checked when negotiated. The reader
// never interprets opcodes; that is the connection's job.
//
// PduWriter keeps a ring of outgoing PDUs. A PDU either borrows its data
// (Data-In straight out of a task's read buffer, valid until the writer
// reports the PDU's cookie as sent) or owns it (control PDUs). Steady state
// allocates nothing: the ring and the iovec array are reused.
//
// Thread safety: thread-compatible; each connection's reader and writer are
// confined to the event loop thread that owns the connection.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/base/endian.h"
#include "export/iscsi/iscsi_spec.h"

namespace blockhaus::iscsi {

struct Pdu {
  Bhs bhs{};
  std::vector<uint8_t> ahs;   // TotalAHSLength * 4 bytes
  std::vector<uint8_t> data;  // the data segment, without padding
};

struct PduLimits {
  uint32_t max_data_segment = kLoginMaxRecvDataSegment;
  bool header_digest = false;
  bool data_digest = false;
};

enum class ReadEvent : uint8_t {
  kNeedMore,           // every byte given was consumed; no complete PDU yet
  kPdu,                // pdu() holds a complete, verified PDU
  kTooLong,            // DataSegmentLength above the limit; pdu().bhs is valid
  kHeaderDigestError,  // drop the connection (RFC 7143 §7.8)
  kDataDigestError,    // pdu() is complete but its data is suspect
};

class PduReader {
 public:
  // Applies to the next BHS that starts; call between PDUs.
  void SetLimits(const PduLimits& limits) { limits_ = limits; }
  const PduLimits& limits() const { return limits_; }

  // Consumes bytes from `in` up to the end of one PDU. *consumed says how
  // many; the caller feeds the rest after handling the event. After kTooLong
  // or kHeaderDigestError the stream is out of sync: the caller must close.
  ReadEvent Feed(ConstByteSpan in, size_t* consumed);

  const Pdu& pdu() const { return pdu_; }
  Pdu& mutable_pdu() { return pdu_; }
  // True when a PDU has started but is not complete (for the login timeout).
  bool mid_pdu() const { return state_ != State::kBhs || filled_ != 0; }

  // Steering of data segments, so bulk write data is not copied from PDU to
  // command buffer. Once a PDU's header is in (and its digest checked), if
  // its data segment is non-empty and needs no padding, `route` may name
  // where the data goes: a span of exactly DataSegmentLength bytes that the
  // caller keeps valid until the PDU's event, or DropRoute(). An empty span
  // leaves the data in pdu().data. Routed data is checked against the data
  // digest like any other; at the PDU's event data_routed() is true and
  // pdu().data is empty. The route is asked once per PDU, from inside
  // Feed or Filled.
  using DataRoute = std::function<ByteSpan(const Pdu& header)>;
  void SetDataRoute(DataRoute route) { route_ = std::move(route); }
  bool data_routed() const { return routed_; }
  // Stops writing into the routed span of the PDU being read (its owner is
  // going away): the rest of the data is read and dropped, and the data
  // digest is not checked (the PDU goes nowhere).
  void DropRoute();
  // The rest of a routed data segment, for the caller to read() into
  // straight from the socket (no copy at all); empty when the next bytes are
  // not routed data. After reading n bytes into it, call Filled(n), which
  // returns what Feed would.
  ByteSpan DirectTarget();
  ReadEvent Filled(size_t n);

 private:
  enum class State : uint8_t { kBhs, kAhs, kHeaderDigest, kData, kDataDigest };
  ReadEvent FinishBhs();
  ReadEvent FinishHeader();
  ReadEvent FinishPdu();
  ReadEvent Advance();
  uint8_t* Target();

  PduLimits limits_;
  PduLimits current_;        // limits of the PDU being read
  State state_ = State::kBhs;
  size_t filled_ = 0;        // bytes of the current part
  size_t need_ = kBhsSize;   // bytes of the current part
  uint32_t data_length_ = 0;
  uint8_t digest_[kDigestSize]{};
  Pdu pdu_;
  DataRoute route_;
  ByteSpan routed_span_;     // where this PDU's data goes, when routed_
  bool routed_ = false;      // this PDU's data was routed
  bool dropped_ = false;     // ... and its route dropped mid-PDU
};

// CRC32C of `data` followed by `pad` zero bytes, as data digests need.
uint32_t DigestWithPad(ConstByteSpan data, uint32_t pad);

// Serializes one PDU (BHS, data, padding, digests) onto `out`; sets the
// BHS DataSegmentLength from data.size(). For tests and control paths.
void AppendPdu(const Bhs& bhs, ConstByteSpan data, bool header_digest, bool data_digest,
               std::vector<uint8_t>* out);

enum class WriteResult : uint8_t { kDone, kBlocked, kError };

class PduWriter {
 public:
  PduWriter();
  void SetDigests(bool header, bool data) {
    header_digest_ = header;
    data_digest_ = data;
  }
  // Queues a PDU whose data must stay valid until `cookie` is released.
  void Queue(const Bhs& bhs, ConstByteSpan data, void* cookie = nullptr);
  // Queues a PDU that owns its data.
  void QueueOwned(const Bhs& bhs, std::vector<uint8_t> data, void* cookie = nullptr);

  // Writes as much as `fd` accepts. Appends the cookies of PDUs now fully
  // written to *released (non-null cookies only).
  WriteResult Flush(int fd, std::vector<void*>* released);
  // Drops every queued PDU (connection closing); returns their cookies.
  void Clear(std::vector<void*>* released);

  bool empty() const { return count_ == 0; }
  size_t queued_bytes() const { return queued_bytes_; }

 private:
  struct Out {
    Bhs bhs{};
    uint8_t header_digest[kDigestSize]{};
    uint8_t trailer[3 + kDigestSize]{};  // padding, then the data digest
    uint8_t trailer_length = 0;
    uint8_t header_digest_length = 0;  // fixed when queued: digests start mid-stream
    const uint8_t* data = nullptr;
    uint32_t data_length = 0;
    std::vector<uint8_t> owned;
    void* cookie = nullptr;
    size_t total = 0;       // bytes on the wire
    size_t written = 0;
  };
  Out& Push();
  void Prepare(Out* out);
  size_t BuildIov();

  bool header_digest_ = false;
  bool data_digest_ = false;
  std::vector<Out> ring_;
  size_t head_ = 0;
  size_t count_ = 0;
  size_t queued_bytes_ = 0;
  std::vector<iovec> iov_;
};

}  // namespace blockhaus::iscsi
