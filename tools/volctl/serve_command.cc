// volctl serve: run the daemon in the foreground.
#include <malloc.h>
#include <signal.h>

#include <cstdio>

#include "core/base/logging.h"
#include "core/pool/pool_dir.h"
#include "tools/volctl/commands.h"
#include "tools/volctl/daemon.h"
#include "tools/volctl/output.h"

namespace blockhaus::tools {
namespace {

// The daemon's memory must stay bounded (issue 5: RSS < 512 MiB under
// the benchmark). glibc's defaults work against that: a heap per thread
// that ever called malloc (event loops, I/O threads, the sync thread and
// its helpers, RocksDB's), and a mmap threshold that rises to the largest
// block freed, after which 1 MiB command buffers of closed sessions stay
// in the heaps as free but resident memory. Fixed here: block buffers
// (<= 128K + a compressor's bound) come from the heaps and are recycled by
// the pool; anything larger is mapped and given back when freed.
void BoundMalloc() {
  mallopt(M_ARENA_MAX, 4);
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
}

int RunServe(const DaemonOptions& options) {
  BoundMalloc();
  // Block the signals before any thread starts, so every thread inherits
  // the mask and WaitForSignal is the one place they arrive.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto daemon = Daemon::Start(options);
  if (!daemon.ok()) return ReportError(daemon.status().Annotate("cannot start the daemon"));
  for (const std::string& portal : (*daemon)->Portals()) {
    BH_LOG(kInfo, "iSCSI portal {}", portal);
  }
  BH_LOG(kInfo, "ready; control socket {}", ControlSocketPath());
  (*daemon)->WaitForSignal();
  daemon->reset();
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, Action* action) {
  auto o = std::make_shared<DaemonOptions>();
  CLI::App* serve = app.add_subcommand("serve", "run the daemon: own the pools, serve iSCSI");
  serve->add_option("--listen", o->listen, "portal ADDR:PORT (repeatable; default 127.0.0.1:3260)");
  serve->add_option("--pool", o->pools, "pool to serve (repeatable; default: all)");
  serve->add_option("--login-timeout", o->login_timeout_s,
                    "seconds a connection may take from accept to full feature phase "
                    "(default 15)")
      ->check(CLI::Range(5, 30));
  serve->callback([=] { *action = [=] { return RunServe(*o); }; });
}

}  // namespace blockhaus::tools
