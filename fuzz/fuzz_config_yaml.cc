// Fuzzes the YAML config file of `lipsync serve --config` and the other commands:
// cli::load_config_file (yaml-cpp, then every key through its layer's config table), then the
// validate() of every section and the listen addresses, as `lipsync serve` does before start.
#include <cstddef>
#include <cstdint>
#include <span>

#include "cli/config_file.h"
#include "fuzz_util.h"
#include "server/server_options.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const fuzz::TempFile file(std::span(data, size), "config.yaml");
  cli::ConfigFile c;
  if (!fuzz::accepts([&] { c = cli::load_config_file(file.path()); })) return 0;
  fuzz::accepts([&] { c.cpu.validate(); });
  fuzz::accepts([&] { c.audio.validate(); });
  fuzz::accepts([&] { c.infer.validate(); });
  fuzz::accepts([&] { c.avatar.validate(); });
  fuzz::accepts([&] { c.render.validate(); });
  fuzz::accepts([&] { c.output.validate(); });
  fuzz::accepts([&] { c.pipeline.validate(); });
  fuzz::accepts([&] { c.live.validate(); });
  fuzz::accepts([&] { c.webrtc.validate(); });
  fuzz::accepts([&] { c.scheduler.validate(); });
  fuzz::accepts([&] { c.registry.validate(); });
  fuzz::accepts([&] {
    c.server.validate();
    (void)c.server.resolved_workers();
    (void)server::parse_listen_address(c.server.grpc_address, "server.grpc");
    if (!c.server.http_address.empty()) {
      (void)server::parse_listen_address(c.server.http_address, "server.http");
    }
  });
  (void)c.server_config();
  return 0;
}
