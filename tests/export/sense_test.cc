#include "export/scsi/sense.h"

#include <doctest/doctest.h>

#include "export/iscsi/target_directory.h"

namespace blockhaus::scsi {

TEST_CASE("SAM-5 status values are the wire values") {
  CHECK(kStatusGood == 0x00);
  CHECK(kStatusCheckCondition == 0x02);
  CHECK(kStatusReservationConflict == 0x18);
  CHECK(kStatusTaskAborted == 0x40);
}

TEST_CASE("fixed sense golden bytes") {
  // LBA OUT OF RANGE: 05h/21h/00h.
  const std::vector<uint8_t> want = {0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0};
  CHECK(FixedSense(SenseKey::kIllegalRequest, 0x21, 0x00) == want);
  // MISCOMPARE at offset 0x01020304 sets VALID and INFORMATION.
  auto mis = FixedSenseWithInfo(SenseKey::kMiscompare, 0x1d, 0x00, 0x01020304);
  CHECK(mis[0] == 0xf0);
  CHECK(mis[2] == 0x0e);
  CHECK(mis[3] == 0x01);
  CHECK(mis[6] == 0x04);
  CHECK(mis[12] == 0x1d);
}

}  // namespace blockhaus::scsi
