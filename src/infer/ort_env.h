// Private to the infer layer: the process's one ONNX Runtime environment, and adding a GPU
// execution provider to session options.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <string>

#include "infer/infer_options.h"

namespace lipsync::infer {

// One Ort::Env per process, created on first use. Warnings and errors go to stderr.
Ort::Env& ort_env();

// Appends `provider` ("cuda" or "tensorrt") on infer.device_id to `session_options`: registers its
// library once per process (plugin interface), or uses the provider compiled into ONNX Runtime
// when the build has one (an official GPU release). Throws Error::Code::kInvalidInput with
// explain_provider_failure's sentence when it cannot.
void append_gpu_provider(Ort::SessionOptions& session_options, const std::string& provider,
                         const InferOptions& options);

}  // namespace lipsync::infer
