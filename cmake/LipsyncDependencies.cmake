# Every third-party package comes from Debian (scripts/bootstrap installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
# FFmpeg's libraries (video import, MP4 output), TurboJPEG (JPEG frames) and libjpeg's own API
# (restart markers, for spliced JPEG frames).
pkg_check_modules(AV REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
pkg_check_modules(TURBOJPEG REQUIRED IMPORTED_TARGET libturbojpeg)
pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
# Model import: PyTorch .pth checkpoints are zip archives; sha256 of the imported files.
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
pkg_check_modules(CRYPTO REQUIRED IMPORTED_TARGET libcrypto)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
if(LIPSYNC_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(LIPSYNC_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()

# ONNX's protobuf schema (Debian's libonnx-dev), used by the model tool to write .onnx files.
find_package(Protobuf REQUIRED)
find_package(ONNX CONFIG REQUIRED)

# The server: gRPC (with reflection) and Boost.Beast for HTTP, both from Debian.
find_package(gRPC CONFIG REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(spdlog CONFIG REQUIRED)

# WebRTC (GStreamer's webrtcbin with libnice) and text to speech (libespeak-ng), from Debian.
pkg_check_modules(GST REQUIRED IMPORTED_TARGET gstreamer-1.0 gstreamer-app-1.0 gstreamer-sdp-1.0
  gstreamer-webrtc-1.0 nice)
pkg_check_modules(ESPEAK REQUIRED IMPORTED_TARGET espeak-ng)

# ONNX Runtime: not a Debian package. scripts/bootstrap unpacks the pinned 1.29 CPU build into
# third_party/onnxruntime; ONNXRUNTIME_ROOT (environment or cache) selects any official release
# instead (for example a GPU build), with include/ and lib/ as in the release archives.
if(DEFINED ENV{ONNXRUNTIME_ROOT} AND NOT "$ENV{ONNXRUNTIME_ROOT}" STREQUAL "")
  set(_lipsync_ort_default "$ENV{ONNXRUNTIME_ROOT}")
else()
  set(_lipsync_ort_default "${PROJECT_SOURCE_DIR}/third_party/onnxruntime")
endif()
set(ONNXRUNTIME_ROOT "${_lipsync_ort_default}" CACHE PATH "ONNX Runtime release folder")
find_path(ONNXRUNTIME_INCLUDE_DIR onnxruntime_cxx_api.h
  PATHS "${ONNXRUNTIME_ROOT}/include" "${ONNXRUNTIME_ROOT}/include/onnxruntime"
        "${ONNXRUNTIME_ROOT}/include/onnxruntime/core/session"
  NO_DEFAULT_PATH)
find_library(ONNXRUNTIME_LIBRARY NAMES onnxruntime libonnxruntime.so.1
  PATHS "${ONNXRUNTIME_ROOT}/lib" "${ONNXRUNTIME_ROOT}/lib64" NO_DEFAULT_PATH)
if(NOT ONNXRUNTIME_INCLUDE_DIR OR NOT ONNXRUNTIME_LIBRARY)
  message(FATAL_ERROR "ONNX Runtime not found in ${ONNXRUNTIME_ROOT}: run scripts/bootstrap, or "
                      "set ONNXRUNTIME_ROOT to an official release folder (include/, lib/)")
endif()
add_library(onnxruntime::onnxruntime SHARED IMPORTED)
set_target_properties(onnxruntime::onnxruntime PROPERTIES
  IMPORTED_LOCATION "${ONNXRUNTIME_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ONNXRUNTIME_INCLUDE_DIR}")
message(STATUS "ONNX Runtime: ${ONNXRUNTIME_LIBRARY}")
