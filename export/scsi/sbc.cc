// Theory of operation: SBC-3 block commands, the one place where SCSI is
// translated to volume::BlockDevice calls.
//
// Overview
//   READ/WRITE (6/10/12/16), WRITE AND VERIFY and VERIFY (10/12/16), READ
//   CAPACITY (10/16), SYNCHRONIZE CACHE (10/16), PRE-FETCH (10/16), UNMAP,
//   WRITE SAME (10/16), GET LBA STATUS, COMPARE AND WRITE, ORWRITE(16) and
//   READ DEFECT DATA (10/12, always an empty list). An LBA is
//   LunOptions::logical_block_size bytes (512 or 4096) at byte offset
//   lba * size of the device; the device's own block (volblocksize) is
//   reported as the optimal granularity (VPD B0h), and logical blocks per
//   physical block exponent stays 0 so initiators never see a physical
//   block larger than an LBA (libiscsi's GET LBA STATUS tests assume so).
//
// Data structures & on-disk format
//   None of its own. Data goes straight between the device and the
//   Response's data_in vector (reads) or the Command's data_out span
//   (writes); COMPARE AND WRITE, VERIFY with BYTCHK, WRITE SAME and GET LBA
//   STATUS use one scratch buffer per command.
//
// Invariants
//   * every LBA and length from a CDB or parameter list is range-checked
//     with overflow-safe arithmetic (lba + n < lba or lba + n > capacity:
//     05h/21h/00h) before any I/O; UNMAP checks every descriptor before
//     unmapping any.
//   * the write cache is volatile (WCE=1): a write is acknowledged from the
//     open txg. SYNCHRONIZE CACHE, FUA/FUA_NV writes, WRITE AND VERIFY and
//     COMPARE AND WRITE with FUA return only after BlockDevice::Flush() has
//     made everything acknowledged so far durable.
//   * holes read as zeros (LBPRZ=1), and the device stores an all-zero
//     block as a hole, so a logical block is "mapped" exactly when its
//     volume block reads non-zero: GET LBA STATUS answers from content.
//   * data_out shorter than the CDB's transfer length (EDTL < TL): only
//     the whole logical blocks received are written and the command
//     succeeds; the transport reports the residual overflow (libiscsi
//     iSCSIResiduals). Longer data_out is ignored past the transfer length.
//
// Concurrency & lock order
//   Commands run with Unit::io_mu_ shared; COMPARE AND WRITE and ORWRITE
//   run with it exclusive, so their read-modify-write is atomic against
//   every other write to the unit (and everything else: they are rare,
//   VMware ATS). The
//   device does its own locking for partial blocks (volume_device.cc).
//
// Crash consistency
//   As the device: acknowledged writes survive a crash once a later
//   SYNCHRONIZE CACHE or FUA write has completed; an unsynchronized write
//   is either old or new after a crash, never torn within a volume block.
//
// Thin provisioning (SBC-3 §4.7.3.7, docs/DECISIONS.md D20)
//   A writable unit whose device reports BlockDevice::Provisioning() has
//   one soft threshold on its available LBA mapping resources (the pool
//   space its writes may still take), armed decreasing at
//   (100 - LunOptions::soft_threshold_percent)% of the pool's capacity,
//   counted in threshold sets of 2^exponent LBAs (VPD B2h, mode page
//   1Ch/02h). Every command that writes the medium checks it after it ran,
//   failed ones included: the crossing queues UNIT ATTENTION 38h/07h for
//   every I_T nexus once; the threshold re-arms when 1% of the capacity
//   (at least one set) is available again.
//
// Failure handling
//   Device Status values become sense through StatusToSense() only:
//   out-of-space is 07h/27h/07h, a read-only device 07h/27h/00h, a
//   checksum error 03h/11h/00h. Protection information (RD/WR/VRPROTECT)
//   is not supported: 05h/24h/00h. A miscompare is 0Eh/1Dh/00h with the
//   INFORMATION field set to the offset of the first differing byte.
//
// Tunables (internal/limits.h, advertised in VPD B0h)
//   kMaxTransferBytes 8 MiB; kMaxUnmapBlocks 1 Mi LBAs; kMaxUnmapDescriptors
//   256; MaxWriteSameBlocks() 64 Ki LBAs but never more than one maximum
//   transfer (initiators verify a WRITE SAME with one READ);
//   kMaxCompareAndWriteBlocks 128;
//   kScratchBytes (1 MiB) per chunk of VERIFY/WRITE SAME; kLbaStatusScanBytes
//   (8 MiB) examined per GET LBA STATUS; LunOptions::soft_threshold_percent
//   (80; `volctl export --soft-threshold`), threshold sets of at least 1 MiB.

#include <algorithm>
#include <cstring>

#include "export/scsi/internal/cdb.h"
#include "export/scsi/internal/limits.h"
#include "export/scsi/internal/unit.h"

namespace blockhaus::scsi::internal {
namespace {

constexpr size_t kScratchBytes = 1u << 20;
constexpr uint64_t kLbaStatusScanBytes = 8u << 20;

uint64_t Capacity(const Ctx& c) { return c.dev.size() / c.unit.lbs(); }

bool ReadOnly(const Ctx& c) { return c.unit.options().read_only || c.dev.read_only(); }

// False (with sense set) unless [lba, lba + blocks) lies within the unit.
bool InRange(Ctx& c, uint64_t lba, uint64_t blocks) {
  uint64_t end = 0;
  if (__builtin_add_overflow(lba, blocks, &end) || end > Capacity(c)) {
    CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kLbaOutOfRange);
    return false;
  }
  return true;
}

bool HasProtection(const Ctx& c, const BlockRange& r) {
  return (c.cdb()[0] >> 5) != 0 && (r.flags & kProtectMask) != 0;
}

bool WantsFua(const Ctx& c, const BlockRange& r) {
  return (c.cdb()[0] >> 5) != 0 && (r.flags & (kFlagFua | 0x02)) != 0;   // FUA or FUA_NV
}

void Flush(Ctx& c) {
  Status s = c.dev.Flush();
  if (!s.ok()) FailWith(c, s, true);
}

// Returns the offset of the first byte where a and b differ, or -1.
int64_t FirstDifference(const uint8_t* a, const uint8_t* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return -1;
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

void Miscompare(Ctx& c, uint64_t offset) {
  c.rsp->status = kStatusCheckCondition;
  c.rsp->sense = FixedSenseWithInfo(SenseKey::kMiscompare, asc::kMiscompareDuringVerify.asc,
                                    asc::kMiscompareDuringVerify.ascq,
                                    static_cast<uint32_t>(std::min<uint64_t>(offset, 0xffffffffu)));
}

// The common checks of READ/WRITE/VERIFY: protection, range, size. Returns
// the byte count, or nullopt when the command has been ended.
std::optional<uint64_t> CheckTransfer(Ctx& c, const BlockRange& r, bool limit_size) {
  if (HasProtection(c, r)) {
    InvalidField(c);
    return std::nullopt;
  }
  if (!InRange(c, r.lba, r.blocks)) return std::nullopt;
  uint64_t bytes = uint64_t{r.blocks} * c.unit.lbs();
  if (limit_size && bytes > kMaxTransferBytes) {
    InvalidField(c);
    return std::nullopt;
  }
  return bytes;
}

}  // namespace

// SBC-3 §5.15.
void ReadCapacity10(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  if (!(cdb[8] & 0x01) && DecodeBE32(cdb + 2) != 0) return InvalidField(c);
  std::vector<uint8_t> d(kReadCapacity10Length, 0);
  uint64_t last = Capacity(c) - 1;
  EncodeBE32(&d[0], static_cast<uint32_t>(std::min<uint64_t>(last, 0xffffffffu)));
  EncodeBE32(&d[4], c.unit.lbs());
  ReturnData(c, std::move(d), kReadCapacity10Length);
}

// SBC-3 §5.16: LBPME (thin provisioning) and LBPRZ (holes read zero).
void ReadCapacity16(Ctx& c) {
  std::vector<uint8_t> d(kReadCapacity16Length, 0);
  EncodeBE64(&d[0], Capacity(c) - 1);
  EncodeBE32(&d[8], c.unit.lbs());
  d[13] = 0x00;          // P_I_EXPONENT 0, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 0
  d[14] = 0x80 | 0x40;   // LBPME, LBPRZ; LOWEST ALIGNED LBA 0
  ReturnData(c, std::move(d), DecodeBE32(c.cdb() + 10));
}

void Read(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  std::optional<uint64_t> bytes = CheckTransfer(c, r, true);
  if (!bytes) return;
  c.rsp->transfer_length = static_cast<uint32_t>(*bytes);
  if (*bytes == 0) return;
  c.rsp->data_in.resize(*bytes);
  const uint64_t offset = r.lba * c.unit.lbs();
  Status s = c.nowait ? c.dev.TryRead(offset, c.rsp->data_in) : c.dev.Read(offset, c.rsp->data_in);
  if (c.nowait && s.code() == Code::kWouldBlock) {
    c.would_block = true;
    return;
  }
  if (!s.ok()) FailWith(c, s, false);
}

namespace {

// Writes the whole logical blocks of data_out that the CDB asks for.
bool WriteBlocks(Ctx& c, const BlockRange& r, uint64_t bytes) {
  uint64_t got = std::min<uint64_t>(c.cmd.data_out.size(), bytes);
  got -= got % c.unit.lbs();
  if (got == 0) return true;
  const uint64_t offset = r.lba * c.unit.lbs();
  Status s = c.nowait ? c.dev.TryWrite(offset, c.cmd.data_out.first(got), c.cmd.staged)
                      : c.dev.Write(offset, c.cmd.data_out.first(got));
  if (c.nowait && s.code() == Code::kWouldBlock) {
    c.would_block = true;
    return false;
  }
  if (!s.ok()) {
    FailWith(c, s, true);
    return false;
  }
  return true;
}

}  // namespace

void Write(Ctx& c) {
  // The fast path skips Unit::Admit, so write protection is checked here too.
  if (ReadOnly(c)) return CheckCondition(c.rsp, SenseKey::kDataProtect, asc::kWriteProtected);
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  std::optional<uint64_t> bytes = CheckTransfer(c, r, true);
  if (!bytes) return;
  c.rsp->transfer_length = static_cast<uint32_t>(*bytes);
  if (c.nowait && WantsFua(c, r)) {
    c.would_block = true;  // a flush waits for a commit
    return;
  }
  if (!WriteBlocks(c, r, *bytes)) return;
  if (WantsFua(c, r)) Flush(c);
}

void StageWriteData(Ctx& c) {
  if (ReadOnly(c)) return;
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  uint64_t end = 0;
  if (HasProtection(c, r) || WantsFua(c, r) || __builtin_add_overflow(r.lba, r.blocks, &end) ||
      end > Capacity(c)) {
    return;  // the command fails or goes to an I/O thread: nothing to stage
  }
  // What Write will take: the blocks asked for, as far as the data goes.
  uint64_t bytes = std::min<uint64_t>(uint64_t{r.blocks} * c.unit.lbs(), c.cmd.expected_length);
  bytes -= bytes % c.unit.lbs();
  const ConstByteSpan arrived = c.cmd.data_out.first(std::min<uint64_t>(c.cmd.data_out.size(), bytes));
  c.dev.StageWrite(r.lba * c.unit.lbs(), bytes, arrived, c.cmd.staged);
}

// SBC-3 §5.37: the data is written and made durable (our medium verifies
// every block by checksum on read, so there is nothing more to check).
void WriteAndVerify(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  if (r.flags & 0x04) return InvalidField(c);   // BYTCHK 1xb is reserved here
  std::optional<uint64_t> bytes = CheckTransfer(c, r, true);
  if (!bytes) return;
  c.rsp->transfer_length = static_cast<uint32_t>(*bytes);
  if (*bytes == 0) return;
  if (!WriteBlocks(c, r, *bytes)) return;
  Flush(c);
}

// SBC-3 §5.33: BYTCHK 00b reads the range (a medium check), 01b compares
// it with data_out, 11b compares every block with the one block sent.
void Verify(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  uint8_t bytchk = (r.flags >> 1) & 0x03;
  if (bytchk == 2) return InvalidField(c);
  std::optional<uint64_t> bytes = CheckTransfer(c, r, bytchk == 1);
  if (!bytes || *bytes == 0) return;
  uint32_t lbs = c.unit.lbs();
  uint64_t expect = bytchk == 0 ? 0 : bytchk == 1 ? *bytes : lbs;
  c.rsp->transfer_length = static_cast<uint32_t>(expect);
  if (c.cmd.data_out.size() < expect) return InvalidField(c);
  std::vector<uint8_t> buf(std::min<uint64_t>(*bytes, kScratchBytes));
  for (uint64_t done = 0; done < *bytes;) {
    uint64_t n = std::min<uint64_t>(buf.size(), *bytes - done);
    Status s = c.dev.Read(r.lba * lbs + done, ByteSpan(buf.data(), n));
    if (!s.ok()) return FailWith(c, s, false);
    for (uint64_t i = 0; bytchk != 0 && i < n; i += lbs) {
      const uint8_t* want = bytchk == 1 ? c.cmd.data_out.data() + done + i : c.cmd.data_out.data();
      int64_t diff = FirstDifference(buf.data() + i, want, lbs);
      if (diff >= 0) return Miscompare(c, done + i + static_cast<uint64_t>(diff));
    }
    done += n;
  }
}

// SBC-3 §5.22: returns when everything acknowledged so far is durable; the
// range only has to be valid (0 blocks: to the end of the unit).
void SynchronizeCache(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  if (!InRange(c, r.lba, r.blocks)) return;
  Flush(c);
}

// SBC-3 §5.9: nothing to stage (reads come from the pool's caches), so
// report that the blocks "fit in the cache".
void PreFetch(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  if (!InRange(c, r.lba, r.blocks)) return;
  c.rsp->status = kStatusConditionMet;
}

// SBC-3 §5.28. Every descriptor is checked before any is applied.
void Unmap(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  if (cdb[1] & 0x01) return InvalidField(c);   // ANCHOR: anchored LBAs are not supported
  uint32_t plen = DecodeBE16(cdb + 7);
  c.rsp->transfer_length = plen;
  if (plen == 0) return;
  if (plen < kUnmapHeaderLength || c.cmd.data_out.size() < plen) {
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kParameterListLengthError);
  }
  const uint8_t* d = c.cmd.data_out.data();
  size_t bdl = std::min<size_t>(DecodeBE16(d + 2), plen - kUnmapHeaderLength);
  size_t count = bdl / kUnmapDescriptorLength;   // a truncated last descriptor is ignored
  if (count > kMaxUnmapDescriptors) return InvalidParameter(c);
  uint64_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = d + kUnmapHeaderLength + i * kUnmapDescriptorLength;
    uint64_t lba = DecodeBE64(e);
    uint32_t n = DecodeBE32(e + 8);
    if (!InRange(c, lba, n)) return;
    total += n;
    if (total > kMaxUnmapBlocks) return InvalidParameter(c);
  }
  uint32_t lbs = c.unit.lbs();
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = d + kUnmapHeaderLength + i * kUnmapDescriptorLength;
    uint64_t n = DecodeBE32(e + 8);
    if (n == 0) continue;
    Status s = c.dev.Unmap(DecodeBE64(e) * lbs, n * lbs);
    if (!s.ok()) return FailWith(c, s, true);
  }
}

namespace {

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// Writes `block` to every LBA of [lba, lba + blocks) in chunks.
Status WriteRepeated(volume::BlockDevice& dev, uint64_t offset, uint64_t bytes, const uint8_t* block,
                     uint32_t lbs) {
  std::vector<uint8_t> chunk(std::min<uint64_t>(bytes, kScratchBytes));
  for (size_t i = 0; i < chunk.size(); i += lbs) std::memcpy(&chunk[i], block, lbs);
  for (uint64_t done = 0; done < bytes;) {
    uint64_t n = std::min<uint64_t>(chunk.size(), bytes - done);
    BH_RETURN_IF_ERROR(dev.Write(offset + done, ConstByteSpan(chunk.data(), n)));
    done += n;
  }
  return Status::Ok();
}

}  // namespace

// SBC-3 §5.41/§5.42. UNMAP=1 (or NDOB, or a block of zeros) unmaps the
// range whatever the data says: the LBAs then read as zeros (LBPRZ=1), as
// libiscsi's WriteSame*.Unmap* tests expect; a block of zeros without
// UNMAP unmaps too, since it reads the same and uses no space.
void WriteSame(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  bool sixteen = c.cdb()[0] == op::kWriteSame16;
  bool ndob = sixteen && (r.flags & 0x01);
  if ((r.flags & 0x10) || HasProtection(c, r)) return InvalidField(c);   // ANCHOR, WRPROTECT
  if (!InRange(c, r.lba, r.blocks)) return;
  uint32_t lbs = c.unit.lbs();
  if (r.blocks == 0 || r.blocks > MaxWriteSameBlocks(lbs)) return InvalidField(c);   // WSNZ=1
  c.rsp->transfer_length = ndob ? 0 : lbs;
  if (!ndob && c.cmd.data_out.size() < lbs) return InvalidField(c);
  uint64_t offset = r.lba * lbs, bytes = uint64_t{r.blocks} * lbs;
  bool unmap = r.flags & 0x08;
  Status s = ndob || unmap || AllZero(c.cmd.data_out.data(), lbs)
                 ? c.dev.Unmap(offset, bytes)
                 : WriteRepeated(c.dev, offset, bytes, c.cmd.data_out.data(), lbs);
  if (!s.ok()) FailWith(c, s, true);
}

// SBC-3 §5.8: runs of mapped and deallocated LBAs from the starting LBA,
// judged per volume block (non-zero content = mapped, see Invariants).
void GetLbaStatus(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  uint64_t lba = DecodeBE64(cdb + 2);
  uint32_t alloc = DecodeBE32(cdb + 10);
  if (lba >= Capacity(c)) {
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kLbaOutOfRange);
  }
  uint32_t lbs = c.unit.lbs();
  uint64_t bs = std::max<uint64_t>(c.dev.block_size(), lbs);
  uint64_t pos = lba * lbs;
  uint64_t end = std::min<uint64_t>(c.dev.size(), (pos / bs) * bs + kLbaStatusScanBytes);
  size_t max_descriptors = std::max<size_t>(1, (alloc > 8 ? alloc - 8 : 0) / kLbaStatusDescriptorLength);
  std::vector<uint8_t> d(8, 0), block(bs);
  uint64_t run_start = pos;
  int run_state = -1;
  auto emit = [&](uint64_t stop) {
    uint8_t e[kLbaStatusDescriptorLength] = {};
    EncodeBE64(e, run_start / lbs);
    EncodeBE32(e + 8, static_cast<uint32_t>(std::min<uint64_t>((stop - run_start) / lbs, 0xffffffffu)));
    e[12] = run_state == 1 ? 0x00 : 0x01;   // mapped, deallocated
    d.insert(d.end(), e, e + sizeof(e));
  };
  while (pos < end) {
    uint64_t blk_start = pos / bs * bs;
    uint64_t n = std::min<uint64_t>(bs, c.dev.size() - blk_start);
    Status s = c.dev.Read(blk_start, ByteSpan(block.data(), n));
    if (!s.ok()) return FailWith(c, s, false);
    int state = AllZero(block.data(), n) ? 0 : 1;
    if (run_state >= 0 && state != run_state) {
      emit(pos);
      if ((d.size() - 8) / kLbaStatusDescriptorLength >= max_descriptors) break;
      run_start = pos;
    }
    run_state = state;
    pos = blk_start + n;
  }
  if (pos >= end && run_state >= 0) emit(pos);
  EncodeBE32(&d[0], static_cast<uint32_t>(d.size() - 4));
  ReturnData(c, std::move(d), alloc);
}

// SBC-3 §5.2: compares N blocks and, if equal, writes the next N. The
// caller holds Unit::io_mu_ exclusively (logical_unit.cc).
void CompareAndWrite(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  if (HasProtection(c, r)) return InvalidField(c);
  if (r.blocks > kMaxCompareAndWriteBlocks) return InvalidField(c);
  if (!InRange(c, r.lba, r.blocks)) return;
  uint32_t lbs = c.unit.lbs();
  uint64_t half = uint64_t{r.blocks} * lbs;
  c.rsp->transfer_length = static_cast<uint32_t>(2 * half);
  // 0 blocks is a no-op (SBC-3 §5.2), unless data came with it: that is a
  // 256-block request whose count did not fit the byte (libiscsi sends
  // one), beyond MAXIMUM COMPARE AND WRITE LENGTH.
  if (r.blocks == 0) {
    if (c.cmd.expected_length != 0 || !c.cmd.data_out.empty()) InvalidField(c);
    return;
  }
  if (c.cmd.data_out.size() != 2 * half) return InvalidField(c);
  std::vector<uint8_t> current(half);
  Status s = c.dev.Read(r.lba * lbs, current);
  if (!s.ok()) return FailWith(c, s, false);
  int64_t diff = FirstDifference(current.data(), c.cmd.data_out.data(), half);
  if (diff >= 0) return Miscompare(c, static_cast<uint64_t>(diff));
  s = c.dev.Write(r.lba * lbs, c.cmd.data_out.subspan(half, half));
  if (!s.ok()) return FailWith(c, s, true);
  if (WantsFua(c, r)) Flush(c);
}

// SBC-3 §5.12: ORs the data into the blocks. The caller holds
// Unit::io_mu_ exclusively (logical_unit.cc).
void OrWrite(Ctx& c) {
  BlockRange r = DecodeBlockRange(c.cmd.cdb);
  std::optional<uint64_t> bytes = CheckTransfer(c, r, true);   // ORPROTECT, range, size
  if (!bytes) return;
  c.rsp->transfer_length = static_cast<uint32_t>(*bytes);
  uint64_t got = std::min<uint64_t>(c.cmd.data_out.size(), *bytes);
  got -= got % c.unit.lbs();
  if (got == 0) return;
  std::vector<uint8_t> blocks(got);
  uint64_t offset = r.lba * c.unit.lbs();
  Status s = c.dev.Read(offset, blocks);
  if (!s.ok()) return FailWith(c, s, false);
  for (uint64_t i = 0; i < got; ++i) blocks[i] |= c.cmd.data_out[i];
  s = c.dev.Write(offset, blocks);
  if (!s.ok()) return FailWith(c, s, true);
  if (WantsFua(c, r)) Flush(c);
}

// SBC-3 §5.17/§5.18: a volume has no grown or primary defects; the list is
// empty in whatever format was asked for.
void ReadDefectData(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool twelve = cdb[0] == op::kReadDefectData12;
  uint8_t request = twelve ? cdb[1] : cdb[2];
  uint32_t alloc = twelve ? DecodeBE32(cdb + 6) : DecodeBE16(cdb + 7);
  std::vector<uint8_t> d(twelve ? 8 : 4, 0);
  d[1] = request & 0x1f;   // PLISTV, GLISTV as requested; DEFECT LIST FORMAT echoed
  ReturnData(c, std::move(d), alloc);
}

namespace {

// The smallest exponent giving threshold sets of at least 1 MiB (FreeBSD
// CTL uses 2^11 512-byte LBAs) that still counts the unit's capacity in 32
// bits (SBC-3 §6.5.4: capacity / 2^exponent < 2^32).
uint8_t ThresholdExponent(uint64_t capacity_lbas, uint32_t lbs) {
  uint8_t e = 0;
  while ((uint64_t{lbs} << e) < (1u << 20)) ++e;
  while (e < 63 && (capacity_lbas >> e) >= (uint64_t{1} << 32)) ++e;
  return e;
}

}  // namespace

std::optional<SoftThreshold> SoftThresholdOf(const Unit& u, const volume::BlockDevice& dev) {
  const uint64_t pct = u.options().soft_threshold_percent;
  if (pct == 0 || pct >= 100 || u.options().read_only || dev.read_only()) return std::nullopt;
  std::optional<volume::ProvisioningStatus> st = dev.Provisioning();
  if (!st) return std::nullopt;
  SoftThreshold t;
  t.now = *st;
  t.exponent = ThresholdExponent(dev.size() / u.lbs(), u.lbs());
  t.set_bytes = uint64_t{u.lbs()} << t.exponent;
  // Reached when less than (100 - pct)% of the capacity is available.
  const uint64_t cap = st->capacity_bytes;
  const uint64_t keep = cap / 100 * (100 - pct) + cap % 100 * (100 - pct) / 100;
  t.count = static_cast<uint32_t>(std::min<uint64_t>(keep / t.set_bytes, 0xffffffffu));
  // Hysteresis: one percent of the capacity (at least one set) must come
  // back before it can be reached again, so overwrites whose frees are
  // still deferred do not raise it over and over.
  t.rearm_sets = std::max<uint64_t>(1, cap / 100 / t.set_bytes);
  return t;
}

void CheckSoftThreshold(Unit& u, const volume::BlockDevice& dev) {
  std::optional<SoftThreshold> t = SoftThresholdOf(u, dev);
  if (!t) return;
  const uint64_t sets = t->now.available_bytes / t->set_bytes;
  if (sets < t->count) {
    // acq_rel: of two commands crossing at once, exactly one queues it.
    if (!u.soft_threshold_reached_.exchange(true, std::memory_order_acq_rel)) {
      MutexLock lock(&u.mu_);
      u.QueueAttention(asc::kSoftThresholdReached, nullptr, 0);
    }
  } else if (sets >= t->count + t->rearm_sets) {
    u.soft_threshold_reached_.store(false, std::memory_order_release);
  }
}

}  // namespace blockhaus::scsi::internal
