#include "tools/volctl/pool_access.h"

#include <atomic>
#include <filesystem>

#include "core/pool/pool_dir.h"

namespace blockhaus::tools {
namespace {
// Set once at daemon start before any command runs, cleared at exit.
std::atomic<LivePools*> g_live{nullptr};
std::atomic<LiveEvents*> g_events{nullptr};
}  // namespace

PoolRef::~PoolRef() {
  owned_vm.reset();
  if (owned_pool) owned_pool->Close().IgnoreError();  // the command reported its errors
}

void InstallLivePools(LivePools* pools, LiveEvents* events) {
  g_events.store(events, std::memory_order_release);
  g_live.store(pools, std::memory_order_release);
}

LiveEvents* CurrentLiveEvents() { return g_events.load(std::memory_order_acquire); }

bool RunningInDaemon() { return g_live.load(std::memory_order_acquire) != nullptr; }

Result<std::unique_ptr<PoolRef>> AcquirePool(const std::string& name, Access access) {
  BH_RETURN_IF_ERROR(core::ValidatePoolName(name));
  if (LivePools* live = g_live.load(std::memory_order_acquire)) return live->Borrow(name);
  std::string dir = core::PoolDir(core::DefaultHome(), name);
  if (!std::filesystem::exists(dir + "/label")) {
    return BH_ERROR(kNotFound, "pool '{}' does not exist", name);
  }
  auto ref = std::make_unique<PoolRef>();
  ref->name = name;
  core::PoolOptions options;
  options.read_only = access == Access::kReadOnly;
  Result<std::unique_ptr<core::Pool>> pool = core::Pool::Open(dir, options);
  if (!pool.ok()) return pool.status().Annotate(fmt::format("cannot open pool '{}'", name));
  ref->owned_pool = std::move(pool).value();
  volume::VolumeManagerOptions vo;
  vo.start_coalescer = false;
  BH_ASSIGN_OR_RETURN(ref->owned_vm, volume::VolumeManager::Open(ref->owned_pool.get(), vo));
  ref->pool = ref->owned_pool.get();
  ref->vm = ref->owned_vm.get();
  return ref;
}

}  // namespace blockhaus::tools
