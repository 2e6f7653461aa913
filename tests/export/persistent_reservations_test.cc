// Persistent reservations: the SPC-4 state machine, the access matrix for
// every type, unit attentions, APTPL persistence and reload.

#include <doctest/doctest.h>

#include "export/scsi/scsi_spec.h"
#include "tests/export/scsi_rig.h"

namespace blockhaus::testing {
namespace {

using scsi::kStatusGood;
using scsi::kStatusReservationConflict;

scsi::Response PrOut(ScsiRig& rig, const scsi::Nexus& n, uint8_t action, uint8_t type,
                     uint64_t key, uint64_t sa_key, uint8_t flags = 0, uint32_t plen = 24) {
  std::vector<uint8_t> cdb(10, 0);
  cdb[0] = 0x5f;
  cdb[1] = action;
  cdb[2] = type;
  EncodeBE32(&cdb[5], plen);
  std::vector<uint8_t> d(24, 0);
  EncodeBE64(&d[0], key);
  EncodeBE64(&d[8], sa_key);
  d[20] = flags;
  return rig.Run(n, cdb, d);
}

std::vector<uint8_t> PrIn(ScsiRig& rig, const scsi::Nexus& n, uint8_t action,
                          uint16_t alloc = 1024) {
  scsi::Response r = rig.Run(n, {0x5e, action, 0, 0, 0, 0, 0, static_cast<uint8_t>(alloc >> 8),
                                 static_cast<uint8_t>(alloc), 0});
  REQUIRE(r.status == kStatusGood);
  return Bytes(r.data_in);
}

std::vector<uint64_t> Keys(ScsiRig& rig, const scsi::Nexus& n) {
  std::vector<uint8_t> d = PrIn(rig, n, 0);
  std::vector<uint64_t> keys;
  for (size_t off = 8; off + 8 <= d.size(); off += 8) keys.push_back(DecodeBE64(&d[off]));
  return keys;
}

struct TwoHosts {
  ScsiRig rig;
  scsi::Nexus a = MakeNexus(1);
  scsi::Nexus b = MakeNexus(2, "iqn.2026-01.test:host2");
  explicit TwoHosts(MemPersistentStore* store = nullptr)
      : rig(ScsiRig::kDefaultSize, 512, false, 16384, store) {
    rig.ClearUnitAttention(b);
  }
  uint8_t Read(const scsi::Nexus& n) { return rig.Run(n, Cdb10(0x28, 0, 1)).status; }
  uint8_t Write(const scsi::Nexus& n) {
    return rig.Run(n, Cdb10(0x2a, 0, 1), std::vector<uint8_t>(512, 1)).status;
  }
};

TEST_CASE("pr: register, read keys, generation, wrong keys conflict") {
  TwoHosts h;
  CHECK(PrOut(h.rig, h.a, 0, 0, 0, 0xaa).status == kStatusGood);
  CHECK(PrOut(h.rig, h.b, 6, 0, 0x1234, 0xbb).status == kStatusGood);   // IGNORE EXISTING KEY
  CHECK(Keys(h.rig, h.a) == std::vector<uint64_t>{0xaa, 0xbb});
  std::vector<uint8_t> d = PrIn(h.rig, h.a, 0);
  CHECK(DecodeBE32(&d[0]) == 2);
  CHECK(DecodeBE32(&d[4]) == 16);
  // REGISTER with the wrong current key: conflict; with the right one: new key.
  CHECK(PrOut(h.rig, h.a, 0, 0, 0xbad, 0xcc).status == kStatusReservationConflict);
  CHECK(PrOut(h.rig, h.a, 0, 0, 0xaa, 0xcc).status == kStatusGood);
  // Unregistered nexus with a non-zero key: conflict.
  scsi::Nexus c = MakeNexus(3, "iqn.2026-01.test:host3");
  h.rig.ClearUnitAttention(c);
  CHECK(PrOut(h.rig, c, 0, 0, 0x1, 0xdd).status == kStatusReservationConflict);
  // Unregister with key 0.
  CHECK(PrOut(h.rig, h.b, 0, 0, 0xbb, 0).status == kStatusGood);
  CHECK(Keys(h.rig, h.a) == std::vector<uint64_t>{0xcc});
  CHECK(DecodeBE32(&PrIn(h.rig, h.a, 0)[0]) == 4);
  // Truncated READ KEYS still reports the full length.
  std::vector<uint8_t> t = PrIn(h.rig, h.a, 0, 8);
  CHECK(t.size() == 8);
  CHECK(DecodeBE32(&t[4]) == 8);
}

TEST_CASE("pr: parameter list checks") {
  TwoHosts h;
  CHECK(SenseOf(PrOut(h.rig, h.a, 0, 0, 0, 0xaa, 0, 20)) == kParameterLength);
  CHECK(SenseOf(PrOut(h.rig, h.a, 0, 0, 0, 0xaa, 0x08)) == kInvalidParameter);   // SPEC_I_PT
  CHECK(SenseOf(PrOut(h.rig, h.a, 0, 0, 0, 0xaa, 0x01)) == kInvalidParameter);   // APTPL, no store
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xaa).status == kStatusGood);
  CHECK(SenseOf(PrOut(h.rig, h.a, 1, 0x02, 0xaa, 0)) == kInvalidField);   // type 2
  CHECK(SenseOf(PrOut(h.rig, h.a, 1, 0x11, 0xaa, 0)) == kInvalidField);   // scope 1
  CHECK(SenseOf(PrOut(h.rig, h.a, 9, 0, 0xaa, 0)) == kInvalidField);      // no such action
}

TEST_CASE("pr: REPORT CAPABILITIES") {
  TwoHosts h;
  CHECK(PrIn(h.rig, h.a, 2) == std::vector<uint8_t>{0, 8, 0x04, 0x80, 0xea, 0x01, 0, 0});
  MemPersistentStore store;
  TwoHosts p(&store);
  CHECK(PrIn(p.rig, p.a, 2)[2] == 0x05);   // PTPL_C with a store
}

struct AccessCase {
  uint8_t type;
  bool reg_read, reg_write, unreg_read, unreg_write;
};

TEST_CASE("pr: access matrix for every reservation type") {
  const AccessCase cases[] = {
      {1, true, false, true, false},   // WE
      {3, false, false, false, false}, // EA
      {5, true, true, true, false},    // WE-RO
      {6, true, true, false, false},   // EA-RO
      {7, true, true, true, false},    // WE-AR
      {8, true, true, false, false},   // EA-AR
  };
  for (const AccessCase& t : cases) {
    CAPTURE(t.type);
    TwoHosts h;
    REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
    REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb2).status == kStatusGood);
    REQUIRE(PrOut(h.rig, h.a, 1, t.type, 0xa1, 0).status == kStatusGood);
    // READ RESERVATION: key of the holder, 0 for the all-registrants types.
    std::vector<uint8_t> rr = PrIn(h.rig, h.a, 1);
    REQUIRE(rr.size() == 24);
    CHECK(DecodeBE64(&rr[8]) == (t.type >= 7 ? 0 : 0xa1));
    CHECK(rr[21] == t.type);
    CHECK(h.Read(h.a) == kStatusGood);
    CHECK(h.Write(h.a) == kStatusGood);
    CHECK((h.Read(h.b) == kStatusGood) == t.reg_read);
    CHECK((h.Write(h.b) == kStatusGood) == t.reg_write);
    REQUIRE(PrOut(h.rig, h.b, 0, 0, 0xb2, 0).status == kStatusGood);   // b unregisters
    CHECK((h.Read(h.b) == kStatusGood) == t.unreg_read);
    CHECK((h.Write(h.b) == kStatusGood) == t.unreg_write);
    // Commands of class "always" go through for anyone.
    CHECK(h.rig.Run(h.b, {0x12, 0, 0, 0, 36, 0}).status == kStatusGood);
    CHECK(h.rig.Run(h.b, Cdb10(0x25, 0, 0)).status == kStatusGood);
    // Reserving again with the same type is fine, another type conflicts.
    CHECK(PrOut(h.rig, h.a, 1, t.type, 0xa1, 0).status == kStatusGood);
    CHECK(PrOut(h.rig, h.a, 1, t.type == 1 ? 3 : 1, 0xa1, 0).status == kStatusReservationConflict);
    CHECK(PrOut(h.rig, h.a, 2, t.type, 0xa1, 0).status == kStatusGood);
    CHECK(PrIn(h.rig, h.a, 1).size() == 8);
    CHECK(h.Write(h.b) == kStatusGood);
  }
}

TEST_CASE("pr: RELEASE rules and unit attentions") {
  TwoHosts h;
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb2).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.a, 1, 5, 0xa1, 0).status == kStatusGood);   // WE-RO
  // A non-holder's RELEASE is a no-op; the wrong type is refused.
  CHECK(PrOut(h.rig, h.b, 2, 5, 0xb2, 0).status == kStatusGood);
  CHECK(PrIn(h.rig, h.a, 1).size() == 24);
  CHECK(SenseOf(PrOut(h.rig, h.a, 2, 1, 0xa1, 0)) == SenseTriple{0x05, 0x26, 0x04});
  CHECK(PrOut(h.rig, h.a, 2, 5, 0xa1, 0).status == kStatusGood);
  // Registrants-only: the other registrant hears RESERVATIONS RELEASED.
  CHECK(SenseOf(h.rig.Run(h.b, {0, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x04});
  // RESERVE(6) while a persistent reservation exists conflicts.
  REQUIRE(PrOut(h.rig, h.a, 1, 1, 0xa1, 0).status == kStatusGood);
  CHECK(h.rig.Run(h.a, {0x16, 0, 0, 0, 0, 0}).status == kStatusReservationConflict);
  // The holder unregistering releases the reservation.
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0xa1, 0).status == kStatusGood);
  CHECK(PrIn(h.rig, h.b, 1).size() == 8);
  CHECK(h.Write(h.b) == kStatusGood);
}

TEST_CASE("pr: CLEAR and PREEMPT") {
  TwoHosts h;
  scsi::Nexus c = MakeNexus(3, "iqn.2026-01.test:host3");
  h.rig.ClearUnitAttention(c);
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb2).status == kStatusGood);
  REQUIRE(PrOut(h.rig, c, 0, 0, 0, 0xc3).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.a, 1, 3, 0xa1, 0).status == kStatusGood);   // EA by a
  // b preempts a's reservation: a's registration goes, b holds a new one.
  CHECK(PrOut(h.rig, h.b, 4, 1, 0xb2, 0xa1).status == kStatusGood);
  CHECK(Keys(h.rig, h.b) == std::vector<uint64_t>{0xb2, 0xc3});
  std::vector<uint8_t> rr = PrIn(h.rig, h.b, 1);
  CHECK(DecodeBE64(&rr[8]) == 0xb2);
  CHECK(rr[21] == 1);
  CHECK(SenseOf(h.rig.Run(h.a, {0, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x05});
  // Preempting a key nobody has conflicts; a zero key is an invalid parameter.
  CHECK(PrOut(h.rig, h.b, 4, 1, 0xb2, 0x999).status == kStatusReservationConflict);
  CHECK(PrOut(h.rig, c, 4, 1, 0xc3, 0xb2).status == kStatusGood);   // take it again
  // PREEMPT of a plain registration (not the holder's key) removes only it.
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa9).status == kStatusGood);
  CHECK(PrOut(h.rig, c, 5, 1, 0xc3, 0xa9).status == kStatusGood);   // PREEMPT AND ABORT
  CHECK(Keys(h.rig, c) == std::vector<uint64_t>{0xc3});
  // CLEAR removes everything and tells the others.
  CHECK(SenseOf(h.rig.Run(h.b, {0, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x05});
  REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb5).status == kStatusGood);
  h.rig.ClearUnitAttention(h.b);
  CHECK(PrOut(h.rig, h.b, 3, 0, 0xbad, 0).status == kStatusReservationConflict);
  CHECK(PrOut(h.rig, c, 3, 0, 0xc3, 0).status == kStatusGood);
  CHECK(Keys(h.rig, c).empty());
  CHECK(PrIn(h.rig, c, 1).size() == 8);
  CHECK(SenseOf(h.rig.Run(h.b, {0, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x03});
}

TEST_CASE("pr: all-registrants PREEMPT with key 0 takes over") {
  TwoHosts h;
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb2).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.a, 1, 8, 0xa1, 0).status == kStatusGood);   // EA-AR
  CHECK(PrOut(h.rig, h.b, 4, 3, 0xb2, 0).status == kStatusGood);
  CHECK(Keys(h.rig, h.b) == std::vector<uint64_t>{0xb2});
  CHECK(PrIn(h.rig, h.b, 1)[21] == 3);
  CHECK(SenseOf(h.rig.Run(h.a, {0, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x05});
  CHECK(h.Read(h.a) == kStatusReservationConflict);
}

TEST_CASE("pr: READ FULL STATUS carries iSCSI TransportIDs") {
  TwoHosts h;
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1, 0x04).status == kStatusGood);   // ALL_TG_PT
  REQUIRE(PrOut(h.rig, h.a, 1, 1, 0xa1, 0).status == kStatusGood);
  std::vector<uint8_t> d = PrIn(h.rig, h.a, 3);
  REQUIRE(d.size() > 8 + 24);
  CHECK(DecodeBE32(&d[4]) == d.size() - 8);
  CHECK(DecodeBE64(&d[8]) == 0xa1);
  CHECK(d[8 + 12] == 0x03);   // ALL_TG_PT, R_HOLDER
  CHECK(d[8 + 13] == 0x01);
  uint32_t tid_len = DecodeBE32(&d[8 + 20]);
  CHECK(tid_len % 4 == 0);
  CHECK(d[8 + 24] == 0x45);
  std::string port(reinterpret_cast<const char*>(&d[8 + 28]));
  CHECK(port == h.a.initiator_port);
}

TEST_CASE("pr: REGISTER AND MOVE hands the reservation over") {
  TwoHosts h;
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.a, 1, 3, 0xa1, 0).status == kStatusGood);
  std::string dest = h.b.initiator_port;
  size_t tlen = (dest.size() + 1 + 3) / 4 * 4 + 4;
  std::vector<uint8_t> d(24 + tlen, 0);
  EncodeBE64(&d[0], 0xa1);
  EncodeBE64(&d[8], 0xb7);
  d[17] = 0x02;   // UNREG
  scsi::EncodeBE16(&d[18], 1);
  EncodeBE32(&d[20], static_cast<uint32_t>(tlen));
  d[24] = 0x45;
  scsi::EncodeBE16(&d[26], static_cast<uint16_t>(tlen - 4));
  std::memcpy(&d[28], dest.data(), dest.size());
  std::vector<uint8_t> cdb(10, 0);
  cdb[0] = 0x5f;
  cdb[1] = 0x07;
  cdb[2] = 0x03;
  EncodeBE32(&cdb[5], static_cast<uint32_t>(d.size()));
  CHECK(h.rig.Run(h.a, cdb, d).status == kStatusGood);
  CHECK(Keys(h.rig, h.b) == std::vector<uint64_t>{0xb7});
  CHECK(h.Write(h.b) == kStatusGood);
  CHECK(h.Write(h.a) == kStatusReservationConflict);
  // A TransportID that is not NUL-terminated inside its length.
  std::vector<uint8_t> bad = d;
  std::memset(&bad[28], 'x', tlen - 4);
  CHECK(SenseOf(h.rig.Run(h.b, cdb, bad)) == kInvalidParameter);
}

TEST_CASE("pr: registrations survive the nexus; a new session of the port finds them") {
  TwoHosts h;
  REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1).status == kStatusGood);
  REQUIRE(PrOut(h.rig, h.a, 1, 1, 0xa1, 0).status == kStatusGood);
  h.rig.map.NexusLost(h.a.id);
  scsi::Nexus again = MakeNexus(11);   // same initiator port, new session
  h.rig.ClearUnitAttention(again);
  CHECK(h.Write(again) == kStatusGood);
  CHECK(h.Write(h.b) == kStatusReservationConflict);
  CHECK(Keys(h.rig, again) == std::vector<uint64_t>{0xa1});
}

TEST_CASE("pr: APTPL state is saved and reloaded; a failed save changes nothing") {
  MemPersistentStore store;
  {
    TwoHosts h(&store);
    REQUIRE(PrOut(h.rig, h.a, 0, 0, 0, 0xa1, 0x01).status == kStatusGood);
    REQUIRE(PrOut(h.rig, h.b, 0, 0, 0, 0xb2, 0x01).status == kStatusGood);
    REQUIRE(PrOut(h.rig, h.a, 1, 6, 0xa1, 0).status == kStatusGood);
    CHECK(store.saves == 3);
    store.fail = BH_ERROR(kIOError, "pool gone");
    CHECK(SenseOf(PrOut(h.rig, h.b, 0, 0, 0xb2, 0)) == SenseTriple{0x03, 0x0c, 0x00});
    CHECK(Keys(h.rig, h.a) == std::vector<uint64_t>{0xa1, 0xb2});
    store.fail = Status::Ok();
  }
  TwoHosts reloaded(&store);
  CHECK(Keys(reloaded.rig, reloaded.a) == std::vector<uint64_t>{0xa1, 0xb2});
  std::vector<uint8_t> rr = PrIn(reloaded.rig, reloaded.a, 1);
  REQUIRE(rr.size() == 24);
  CHECK(rr[21] == 6);
  scsi::Nexus c = MakeNexus(3, "iqn.2026-01.test:host3");
  reloaded.rig.ClearUnitAttention(c);
  CHECK(reloaded.Read(c) == kStatusReservationConflict);
  // Turning APTPL off stores an empty record: the next start is clean.
  REQUIRE(PrOut(reloaded.rig, reloaded.a, 0, 0, 0xa1, 0xa1, 0x00).status == kStatusGood);
  CHECK(store.saved.empty());
}

TEST_CASE("pr: a corrupt stored record fails LogicalUnit::Create") {
  MemPersistentStore store;
  store.saved = {'B', 'H', 'P', 'R', 0, 0, 0, 1, 0xff};
  auto u = scsi::LogicalUnit::Create(std::make_unique<MemBlockDevice>(1 << 20, 4096),
                                     scsi::LunOptions{}, &store);
  CHECK(u.status().code() == Code::kCorruption);
  store.saved = {1, 2, 3};
  u = scsi::LogicalUnit::Create(std::make_unique<MemBlockDevice>(1 << 20, 4096),
                                scsi::LunOptions{}, &store);
  CHECK(u.status().code() == Code::kCorruption);
}

}  // namespace
}  // namespace blockhaus::testing
