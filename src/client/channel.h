// open_channel: the gRPC channel of the reference clients, waiting for the server to answer, so
// that a client started right after `lipsync serve` (a script, the README's walkthrough pasted as
// one block) connects once the server listens instead of failing at once.
// Thread contract: any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace lipsync::client {

// A channel to `target` with `args` (256 MB messages are added), connected within `wait_s`
// seconds (retrying every 100 ms to 1 s meanwhile); 0 does not wait. Throws
// Error::Code::kUnavailable naming the target and the wait when it does not connect.
std::shared_ptr<grpc::Channel> open_channel(const std::string& target, int wait_s,
                                            grpc::ChannelArguments args = {});

}  // namespace lipsync::client
