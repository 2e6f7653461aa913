// Theory of operation: persistent reservations (SPC-4 §5.13, §6.14, §6.15).
//
// Overview
//   PERSISTENT RESERVE IN (READ KEYS, READ RESERVATION, REPORT
//   CAPABILITIES, READ FULL STATUS) and OUT (REGISTER, REGISTER AND IGNORE
//   EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT,
//   REGISTER AND MOVE) for all six reservation types. Each OUT service
//   action is computed on a copy of the state (PrOutcome), saved when
//   APTPL asks for it, and only then made current, so a failed save leaves
//   the unit as it was. Every other command is checked against the state by
//   PrAllows() in Unit::Admit (logical_unit.cc) by its Access class:
//     type     holder  registered non-holder      not registered
//     WE       all     read                       read
//     EA       all     none                       none
//     WE-RO/AR all     all                        read
//     EA-RO/AR all     all                        none
//   For the all-registrants types every registrant is a holder.
//
// Data structures & on-disk format
//   PrState (internal/unit.h): generation, registrations keyed by the
//   I_T nexus identity (iSCSI initiator port "name,i,0x<ISID>" and relative
//   target port; ALL_TG_PT=1 matches every target port), the reservation
//   (type, holder) and APTPL. With APTPL=1 the state is stored through the
//   PersistentStore as one record (all big-endian):
//     "BHPR" | u32 format version (kScsiSpecFormatVersion) | u32 generation |
//     u8 aptpl | u8 reserved | u8 type | port holder | u32 count |
//     count x { u64 key | u8 all_tg_pt | port }
//     where port = u16 length | initiator port bytes | u16 target port.
//   With APTPL=0 an empty record is stored, so a restart starts clean.
//
// Invariants
//   * reserved implies a registration of the holder (or, for the
//     all-registrants types, at least one registration).
//   * the generation grows on every REGISTER, CLEAR, PREEMPT and REGISTER
//     AND MOVE that changes registrations (SPC-4 §6.14.2), never otherwise.
//   * registrations belong to port identities, not sessions: an I_T nexus
//     loss keeps them (SPC-4 §5.13.1); only CLEAR, PREEMPT or the
//     initiator's own REGISTER with key 0 remove one.
//
// Concurrency & lock order
//   Everything runs under Unit::mu_, PersistentStore::Save included (it is
//   rare and must be ordered with the state change). Unit attentions for
//   other nexuses are queued before mu_ is released.
//
// Crash consistency
//   A PERSISTENT RESERVE OUT with APTPL in effect returns GOOD only after
//   Save() returned Ok; a crash before that leaves the previous record.
//
// Failure handling
//   Wrong or missing registration: RESERVATION CONFLICT. Bad scope or type:
//   05h/24h/00h. Parameter list shorter than 24 bytes: 05h/1Ah/00h. SPEC_I_PT
//   (not supported, SIP_C=0), APTPL without a store, a zero service action
//   key where one is required, a bad TransportID: 05h/26h/00h. RELEASE with
//   the wrong type: 05h/26h/04h INVALID RELEASE OF PERSISTENT RESERVATION.
//   A failed Save: the StatusToSense() mapping of its Status.
//   PREEMPT AND ABORT preempts like PREEMPT; aborting the preempted
//   nexuses' tasks is the transport's (it owns the task set).
//
// Tunables
//   kMaxRegistrations (256): further REGISTERs get 05h/55h/04h
//   INSUFFICIENT REGISTRATION RESOURCES.

#include <algorithm>
#include <cstring>

#include "export/scsi/internal/unit.h"

namespace blockhaus::scsi::internal {
namespace {

constexpr size_t kMaxRegistrations = 256;
constexpr size_t kMaxPortLength = 512;   // iSCSI names are <= 223 bytes; ",i,0x" + ISID
constexpr uint8_t kMagic[4] = {'B', 'H', 'P', 'R'};

bool AllRegistrants(PrType t) {
  return t == PrType::kWriteExclusiveAllRegistrants || t == PrType::kExclusiveAccessAllRegistrants;
}
bool RegistrantsOnlyOrAll(PrType t) {
  return t == PrType::kWriteExclusiveRegistrantsOnly ||
         t == PrType::kExclusiveAccessRegistrantsOnly || AllRegistrants(t);
}
bool ValidType(uint8_t t) { return t == 1 || t == 3 || (t >= 5 && t <= 8); }

bool SamePort(const Registration& r, const PortId& p) {
  return r.port.initiator_port == p.initiator_port &&
         (r.all_target_ports || r.port.target_port == p.target_port);
}

}  // namespace

const Registration* PrState::Find(const PortId& port) const {
  for (const auto& r : registrations) {
    if (SamePort(r, port)) return &r;
  }
  return nullptr;
}
Registration* PrState::Find(const PortId& port) {
  for (auto& r : registrations) {
    if (SamePort(r, port)) return &r;
  }
  return nullptr;
}

bool PrState::IsHolder(const PortId& port) const {
  if (!reserved) return false;
  if (AllRegistrants(type)) return Find(port) != nullptr;
  const Registration* r = Find(port);
  return r != nullptr && r->port.initiator_port == holder.initiator_port &&
         (r->all_target_ports || holder.target_port == port.target_port);
}

bool PrAllows(const PrState& pr, const PortId& port, Access access) {
  if (!pr.reserved || access == Access::kAlways || pr.IsHolder(port)) return true;
  bool registered = pr.Find(port) != nullptr;
  switch (pr.type) {
    case PrType::kNone:
      return true;
    case PrType::kWriteExclusive:
      return access == Access::kRead;
    case PrType::kExclusiveAccess:
      return false;
    case PrType::kWriteExclusiveRegistrantsOnly:
    case PrType::kWriteExclusiveAllRegistrants:
      return registered || access == Access::kRead;
    case PrType::kExclusiveAccessRegistrantsOnly:
    case PrType::kExclusiveAccessAllRegistrants:
      return registered;
  }
  return false;
}

// ---- The APTPL record ----------------------------------------------------

namespace {

void PutU16(std::vector<uint8_t>* d, uint16_t v) {
  d->push_back(static_cast<uint8_t>(v >> 8));
  d->push_back(static_cast<uint8_t>(v));
}
void PutU32(std::vector<uint8_t>* d, uint32_t v) {
  uint8_t b[4];
  EncodeBE32(b, v);
  d->insert(d->end(), b, b + 4);
}
void PutPort(std::vector<uint8_t>* d, const PortId& p) {
  PutU16(d, static_cast<uint16_t>(p.initiator_port.size()));
  d->insert(d->end(), p.initiator_port.begin(), p.initiator_port.end());
  PutU16(d, p.target_port);
}

// Bounds-checked reader over the record.
struct Reader {
  ConstByteSpan b;
  size_t off = 0;
  bool ok = true;
  const uint8_t* Take(size_t n) {
    if (!ok || b.size() - off < n) {
      ok = false;
      return nullptr;
    }
    const uint8_t* p = b.data() + off;
    off += n;
    return p;
  }
  uint8_t U8() { const uint8_t* p = Take(1); return p ? *p : 0; }
  uint16_t U16() { const uint8_t* p = Take(2); return p ? DecodeBE16(p) : 0; }
  uint32_t U32() { const uint8_t* p = Take(4); return p ? DecodeBE32(p) : 0; }
  uint64_t U64() { const uint8_t* p = Take(8); return p ? DecodeBE64(p) : 0; }
  PortId Port() {
    PortId port;
    uint16_t n = U16();
    if (n > kMaxPortLength) ok = false;
    const uint8_t* p = Take(n);
    if (p != nullptr) port.initiator_port.assign(reinterpret_cast<const char*>(p), n);
    port.target_port = U16();
    return port;
  }
};

}  // namespace

std::vector<uint8_t> PrState::Encode() const {
  std::vector<uint8_t> d(kMagic, kMagic + 4);
  PutU32(&d, kScsiSpecFormatVersion);
  PutU32(&d, generation);
  d.push_back(aptpl ? 1 : 0);
  d.push_back(reserved ? 1 : 0);
  d.push_back(static_cast<uint8_t>(type));
  PutPort(&d, holder);
  PutU32(&d, static_cast<uint32_t>(registrations.size()));
  for (const auto& r : registrations) {
    uint8_t k[8];
    EncodeBE64(k, r.key);
    d.insert(d.end(), k, k + 8);
    d.push_back(r.all_target_ports ? 1 : 0);
    PutPort(&d, r.port);
  }
  return d;
}

Result<PrState> PrState::Decode(ConstByteSpan bytes) {
  Reader in{bytes};
  const uint8_t* magic = in.Take(4);
  if (magic == nullptr || std::memcmp(magic, kMagic, 4) != 0) {
    return BH_ERROR(kCorruption, "persistent reservation record has no magic");
  }
  if (uint32_t v = in.U32(); v != kScsiSpecFormatVersion) {
    return BH_ERROR(kCorruption, "persistent reservation record version {} is unknown", v);
  }
  PrState s;
  s.generation = in.U32();
  s.aptpl = in.U8() != 0;
  s.reserved = in.U8() != 0;
  uint8_t type = in.U8();
  s.type = static_cast<PrType>(type);
  s.holder = in.Port();
  uint32_t count = in.U32();
  if (count > kMaxRegistrations) in.ok = false;
  for (uint32_t i = 0; i < count && in.ok; ++i) {
    Registration r;
    r.key = in.U64();
    r.all_target_ports = in.U8() != 0;
    r.port = in.Port();
    s.registrations.push_back(std::move(r));
  }
  if (!in.ok || in.off != bytes.size() || (s.reserved && !ValidType(type))) {
    return BH_ERROR(kCorruption, "persistent reservation record is malformed");
  }
  if (!s.aptpl) return PrState{};
  if (!s.reserved) s.type = PrType::kNone;
  return s;
}

// ---- PERSISTENT RESERVE IN ----------------------------------------------

namespace {

std::vector<uint8_t> ReadKeys(const PrState& pr) {
  std::vector<uint8_t> d(8, 0);
  EncodeBE32(&d[0], pr.generation);
  for (const auto& r : pr.registrations) {
    uint8_t k[8];
    EncodeBE64(k, r.key);
    d.insert(d.end(), k, k + 8);
  }
  EncodeBE32(&d[4], static_cast<uint32_t>(d.size() - 8));
  return d;
}

std::vector<uint8_t> ReadReservation(const PrState& pr) {
  std::vector<uint8_t> d(8, 0);
  EncodeBE32(&d[0], pr.generation);
  if (!pr.reserved) return d;
  d.resize(24, 0);
  EncodeBE32(&d[4], 16);
  if (!AllRegistrants(pr.type)) {
    const Registration* h = pr.Find(pr.holder);
    if (h != nullptr) EncodeBE64(&d[8], h->key);
  }
  d[21] = static_cast<uint8_t>(pr.type);   // SCOPE 0 (logical unit)
  return d;
}

std::vector<uint8_t> ReportCapabilities(bool can_persist) {
  std::vector<uint8_t> d(8, 0);
  EncodeBE16(&d[0], 8);
  d[2] = static_cast<uint8_t>(0x04 | (can_persist ? 0x01 : 0));   // ATP_C, PTPL_C
  d[3] = 0x80;                                                     // TMV; ALLOW COMMANDS 0
  d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;   // WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX
  d[5] = 0x01;                               // EX_AC_AR
  return d;
}

// SPC-4 §7.6.4.6: iSCSI TransportID, format 01b (name + ",i,0x" + ISID).
std::vector<uint8_t> TransportId(const std::string& port) {
  size_t len = (port.size() + 1 + 3) / 4 * 4;
  std::vector<uint8_t> t(4 + len, 0);
  t[0] = 0x40 | 0x05;
  EncodeBE16(&t[2], static_cast<uint16_t>(len));
  std::memcpy(&t[4], port.data(), port.size());
  return t;
}

std::vector<uint8_t> ReadFullStatus(const PrState& pr) {
  std::vector<uint8_t> d(8, 0);
  EncodeBE32(&d[0], pr.generation);
  for (const auto& r : pr.registrations) {
    uint8_t e[24] = {};
    EncodeBE64(e, r.key);
    bool holder = pr.IsHolder(r.port);
    e[12] = static_cast<uint8_t>((r.all_target_ports ? 0x02 : 0) | (holder ? 0x01 : 0));
    if (holder) e[13] = static_cast<uint8_t>(pr.type);
    EncodeBE16(e + 18, r.port.target_port);
    std::vector<uint8_t> tid = TransportId(r.port.initiator_port);
    EncodeBE32(e + 20, static_cast<uint32_t>(tid.size()));
    d.insert(d.end(), e, e + sizeof(e));
    d.insert(d.end(), tid.begin(), tid.end());
  }
  EncodeBE32(&d[4], static_cast<uint32_t>(d.size() - 8));
  return d;
}

}  // namespace

void PersistentReserveIn(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  uint32_t alloc = DecodeBE16(cdb + 7);
  std::vector<uint8_t> d;
  {
    Unit& u = c.unit;
    MutexLock lock(&u.mu_);
    switch (cdb[1] & 0x1f) {
      case prin::kReadKeys: d = ReadKeys(u.pr_); break;
      case prin::kReadReservation: d = ReadReservation(u.pr_); break;
      case prin::kReportCapabilities: d = ReportCapabilities(u.store_ != nullptr); break;
      case prin::kReadFullStatus: d = ReadFullStatus(u.pr_); break;
      default: return InvalidField(c);
    }
  }
  ReturnData(c, std::move(d), alloc);
}

// ---- PERSISTENT RESERVE OUT ---------------------------------------------

namespace {

struct PrOutParams {
  uint8_t action = 0;
  uint8_t scope = 0;
  uint8_t type = 0;
  uint64_t key = 0;        // RESERVATION KEY
  uint64_t sa_key = 0;     // SERVICE ACTION RESERVATION KEY
  bool all_tg_pt = false;
  bool aptpl = false;
  bool unreg = false;      // REGISTER AND MOVE
  PortId move_to;          // REGISTER AND MOVE
};

// The result of one service action on a copy of the state.
struct PrOutcome {
  enum class Kind : uint8_t { kGood, kConflict, kSense } kind = Kind::kGood;
  Asc sense{};
  std::vector<std::pair<PortId, Asc>> attentions;
  static PrOutcome Conflict() { return PrOutcome{Kind::kConflict, {}, {}}; }
  static PrOutcome Bad(Asc a) { return PrOutcome{Kind::kSense, a, {}}; }
};

void Unregister(PrState* s, const PortId& port, PrOutcome* out) {
  bool was_holder = s->IsHolder(port) && !AllRegistrants(s->type);
  std::erase_if(s->registrations, [&](const Registration& r) { return SamePort(r, port); });
  bool released = was_holder || (s->reserved && AllRegistrants(s->type) && s->registrations.empty());
  if (!released) return;
  // SPC-4 §5.13.11.2.3: registrants-only types tell the others.
  if (RegistrantsOnlyOrAll(s->type) && !AllRegistrants(s->type)) {
    for (const auto& r : s->registrations) out->attentions.push_back({r.port, asc::kReservationsReleased});
  }
  s->reserved = false;
  s->type = PrType::kNone;
  s->holder = PortId{};
}

PrOutcome Register(PrState* s, const PortId& port, const PrOutParams& p, bool ignore) {
  Registration* reg = s->Find(port);
  if (!ignore && (reg == nullptr ? p.key != 0 : p.key != reg->key)) return PrOutcome::Conflict();
  PrOutcome out;
  if (reg == nullptr && p.sa_key == 0) return out;   // nothing to do
  if (reg == nullptr) {
    if (s->registrations.size() >= kMaxRegistrations) {
      return PrOutcome::Bad(asc::kInsufficientRegistrationResources);
    }
    s->registrations.push_back(Registration{port, p.sa_key, p.all_tg_pt});
  } else if (p.sa_key == 0) {
    Unregister(s, port, &out);
  } else {
    reg->key = p.sa_key;
  }
  s->aptpl = p.aptpl;
  ++s->generation;
  return out;
}

PrOutcome Reserve(PrState* s, const PortId& port, const PrOutParams& p) {
  const Registration* reg = s->Find(port);
  if (reg == nullptr || reg->key != p.key) return PrOutcome::Conflict();
  if (s->reserved) {
    if (s->IsHolder(port) && static_cast<uint8_t>(s->type) == p.type) return PrOutcome{};
    return PrOutcome::Conflict();
  }
  s->reserved = true;
  s->type = static_cast<PrType>(p.type);
  s->holder = port;
  return PrOutcome{};
}

PrOutcome Release(PrState* s, const PortId& port, const PrOutParams& p) {
  const Registration* reg = s->Find(port);
  if (reg == nullptr || reg->key != p.key) return PrOutcome::Conflict();
  if (!s->reserved || !s->IsHolder(port)) return PrOutcome{};
  if (static_cast<uint8_t>(s->type) != p.type) return PrOutcome::Bad(Asc{0x26, 0x04});
  PrOutcome out;
  if (s->type != PrType::kWriteExclusive && s->type != PrType::kExclusiveAccess) {
    for (const auto& r : s->registrations) {
      if (!SamePort(r, port)) out.attentions.push_back({r.port, asc::kReservationsReleased});
    }
  }
  s->reserved = false;
  s->type = PrType::kNone;
  s->holder = PortId{};
  return out;
}

PrOutcome Clear(PrState* s, const PortId& port, const PrOutParams& p) {
  const Registration* reg = s->Find(port);
  if (reg == nullptr || reg->key != p.key) return PrOutcome::Conflict();
  PrOutcome out;
  for (const auto& r : s->registrations) {
    if (!SamePort(r, port)) out.attentions.push_back({r.port, asc::kReservationsPreempted});
  }
  s->registrations.clear();
  s->reserved = false;
  s->type = PrType::kNone;
  s->holder = PortId{};
  ++s->generation;
  return out;
}

// Removes every registration with `key` but the issuer's; returns how many.
size_t RemoveKey(PrState* s, const PortId& issuer, uint64_t key, PrOutcome* out) {
  size_t removed = 0;
  std::erase_if(s->registrations, [&](const Registration& r) {
    if (r.key != key || SamePort(r, issuer)) return false;
    out->attentions.push_back({r.port, asc::kRegistrationsPreempted});
    ++removed;
    return true;
  });
  return removed;
}

PrOutcome Preempt(PrState* s, const PortId& port, const PrOutParams& p) {
  const Registration* reg = s->Find(port);
  if (reg == nullptr || reg->key != p.key) return PrOutcome::Conflict();
  PrOutcome out;
  if (s->reserved && AllRegistrants(s->type) && p.sa_key == 0) {
    // SPC-4 §5.13.11.4.4: preempt every other registrant, take a new type.
    std::erase_if(s->registrations, [&](const Registration& r) {
      if (SamePort(r, port)) return false;
      out.attentions.push_back({r.port, asc::kRegistrationsPreempted});
      return true;
    });
    s->type = static_cast<PrType>(p.type);
    s->holder = port;
  } else if (s->reserved && !AllRegistrants(s->type) && s->Find(s->holder) != nullptr &&
             s->Find(s->holder)->key == p.sa_key) {
    RemoveKey(s, port, p.sa_key, &out);
    s->type = static_cast<PrType>(p.type);
    s->holder = port;
  } else {
    if (p.sa_key == 0) return PrOutcome::Bad(asc::kInvalidFieldInParameterList);
    if (RemoveKey(s, port, p.sa_key, &out) == 0) return PrOutcome::Conflict();
  }
  ++s->generation;
  return out;
}

PrOutcome RegisterAndMove(PrState* s, const PortId& port, const PrOutParams& p) {
  const Registration* reg = s->Find(port);
  if (reg == nullptr || reg->key != p.key) return PrOutcome::Conflict();
  if (p.sa_key == 0) return PrOutcome::Bad(asc::kInvalidFieldInParameterList);
  if (!s->reserved || AllRegistrants(s->type) || !s->IsHolder(port)) return PrOutcome::Conflict();
  if (p.move_to == port) return PrOutcome::Bad(asc::kInvalidFieldInParameterList);
  Registration* dest = s->Find(p.move_to);
  if (dest == nullptr) {
    if (s->registrations.size() >= kMaxRegistrations) {
      return PrOutcome::Bad(asc::kInsufficientRegistrationResources);
    }
    s->registrations.push_back(Registration{p.move_to, p.sa_key, false});
  } else {
    dest->key = p.sa_key;
  }
  s->holder = p.move_to;
  if (p.unreg) {
    std::erase_if(s->registrations, [&](const Registration& r) { return SamePort(r, port); });
  }
  s->aptpl = p.aptpl;
  ++s->generation;
  return PrOutcome{};
}

// SPC-4 §7.6.4.6: an iSCSI TransportID (format 00b name, or 01b name +
// ",i,0x" + ISID), bounded by `len`.
bool ParseTransportId(const uint8_t* t, size_t len, PortId* out) {
  if (len < 4 || (t[0] & 0x0f) != 0x05 || (t[0] & 0xc0) > 0x40) return false;
  size_t n = DecodeBE16(t + 2);
  if (n > len - 4 || n == 0 || n > kMaxPortLength) return false;
  const char* s = reinterpret_cast<const char*>(t + 4);
  size_t end = 0;
  while (end < n && s[end] != '\0') ++end;
  if (end == 0 || end == n) return false;   // must be NUL-terminated
  out->initiator_port.assign(s, end);
  return true;
}

// Decodes the CDB and parameter list; false (with sense set) when bad.
bool ParsePrOut(Ctx& c, PrOutParams* p) {
  const uint8_t* cdb = c.cdb();
  p->action = cdb[1] & 0x1f;
  p->scope = cdb[2] >> 4;
  p->type = cdb[2] & 0x0f;
  uint32_t plen = DecodeBE32(cdb + 5);
  c.rsp->transfer_length = plen;
  bool move = p->action == prout::kRegisterAndMove;
  if ((move ? plen < prout::kBasicParameterListLength : plen != prout::kBasicParameterListLength) ||
      c.cmd.data_out.size() < plen) {
    CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kParameterListLengthError);
    return false;
  }
  const uint8_t* d = c.cmd.data_out.data();
  p->key = DecodeBE64(d);
  p->sa_key = DecodeBE64(d + 8);
  if (move) {
    p->unreg = d[17] & 0x02;
    p->aptpl = d[17] & 0x01;
    p->move_to.target_port = DecodeBE16(d + 18);
    uint32_t tlen = DecodeBE32(d + 20);
    if (tlen > plen - 24 || !ParseTransportId(d + 24, tlen, &p->move_to)) {
      InvalidParameter(c);
      return false;
    }
  } else {
    if (d[20] & 0x08) {   // SPEC_I_PT: not supported (SIP_C=0)
      InvalidParameter(c);
      return false;
    }
    p->all_tg_pt = d[20] & 0x04;
    p->aptpl = d[20] & 0x01;
  }
  if (p->aptpl && c.unit.store_ == nullptr) {
    InvalidParameter(c);
    return false;
  }
  bool typed = p->action == prout::kReserve || p->action == prout::kRelease ||
               p->action == prout::kPreempt || p->action == prout::kPreemptAndAbort ||
               p->action == prout::kRegisterAndMove;
  if (typed && (p->scope != 0 || !ValidType(p->type))) {
    InvalidField(c);
    return false;
  }
  return true;
}

PrOutcome Apply(PrState* s, const PortId& port, const PrOutParams& p) {
  switch (p.action) {
    case prout::kRegister: return Register(s, port, p, false);
    case prout::kRegisterAndIgnore: return Register(s, port, p, true);
    case prout::kReserve: return Reserve(s, port, p);
    case prout::kRelease: return Release(s, port, p);
    case prout::kClear: return Clear(s, port, p);
    case prout::kPreempt:
    case prout::kPreemptAndAbort: return Preempt(s, port, p);
    case prout::kRegisterAndMove: return RegisterAndMove(s, port, p);
    default: return PrOutcome::Bad(asc::kInvalidFieldInCdb);
  }
}

}  // namespace

void PersistentReserveOut(Ctx& c) {
  PrOutParams p;
  if (!ParsePrOut(c, &p)) return;
  PortId port{c.nexus.initiator_port, c.nexus.relative_target_port};
  Unit& u = c.unit;
  MutexLock lock(&u.mu_);
  // SPC-2 reservations and persistent ones exclude each other (SPC-4 §5.13.3).
  if (u.reserve6_holder_ && *u.reserve6_holder_ != c.nexus.id) return ReservationConflict(c.rsp);
  PrState next = u.pr_;
  PrOutcome out = Apply(&next, port, p);
  if (out.kind == PrOutcome::Kind::kConflict) return ReservationConflict(c.rsp);
  if (out.kind == PrOutcome::Kind::kSense) {
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, out.sense);
  }
  if (u.store_ != nullptr && (next.aptpl || u.pr_.aptpl)) {
    Status s = u.store_->Save(next.aptpl ? next.Encode() : std::vector<uint8_t>{});
    if (!s.ok()) return FailWith(c, s, true);
  }
  u.pr_ = std::move(next);
  for (const auto& [target, code] : out.attentions) u.QueueAttention(code, &target, c.nexus.id);
  u.UpdateSlowPath();
}

}  // namespace blockhaus::scsi::internal
