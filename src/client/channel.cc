#include "client/channel.h"

#include <chrono>

#include "core/error.h"

namespace lipsync::client {

std::shared_ptr<grpc::Channel> open_channel(const std::string& target, int wait_s,
                                            grpc::ChannelArguments args) {
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  // gRPC's own reconnect backoff starts at 1 s and grows to 2 minutes: a server that comes up
  // while we wait is found within a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (wait_s > 0 &&
      !channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(wait_s))) {
    throw Error::unavailable("server " + target + ": nothing answered there within " +
                             std::to_string(wait_s) +
                             " s (--wait-s); is `lipsync serve` running, on that address?");
  }
  return channel;
}

}  // namespace lipsync::client
