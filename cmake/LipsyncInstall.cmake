# cmake --install (scripts/install): the lipsync binary, the ONNX Runtime library it was built
# with beside it in lib/lipsync (found through a run path relative to the binary, so the prefix
# can move), the demo assets and the proto files for clients.
#
#   PREFIX/bin/lipsync
#   PREFIX/lib/lipsync/libonnxruntime.so.1 (+ the GPU provider libraries when built with them)
#   PREFIX/share/lipsync/assets/   demo_speech.wav, demo_page.html
#   PREFIX/share/lipsync/proto/    lipsync/v1/*.proto, monolithic.proto, grpc/health/...
include(GNUInstallDirs)

set(LIPSYNC_INSTALL_LIBDIR "${CMAKE_INSTALL_LIBDIR}/lipsync")
file(RELATIVE_PATH _lipsync_bin_to_lib "/root/${CMAKE_INSTALL_BINDIR}"
  "/root/${LIPSYNC_INSTALL_LIBDIR}")
set_target_properties(lipsync PROPERTIES INSTALL_RPATH "$ORIGIN/${_lipsync_bin_to_lib}")
install(TARGETS lipsync RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The library under the name the binary asks for (its soname), whatever links lead to it.
get_filename_component(_lipsync_ort_real "${ONNXRUNTIME_LIBRARY}" REALPATH)
install(FILES "${_lipsync_ort_real}" DESTINATION ${LIPSYNC_INSTALL_LIBDIR}
  RENAME libonnxruntime.so.1)
# ONNX Runtime loads its provider libraries from beside libonnxruntime.so.
get_filename_component(_lipsync_ort_dir "${ONNXRUNTIME_LIBRARY}" DIRECTORY)
file(GLOB _lipsync_ort_providers "${_lipsync_ort_dir}/libonnxruntime_providers_*.so")
if(_lipsync_ort_providers)
  install(FILES ${_lipsync_ort_providers} DESTINATION ${LIPSYNC_INSTALL_LIBDIR})
endif()

install(FILES assets/demo_speech.wav assets/demo_page.html
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lipsync/assets)
install(DIRECTORY proto/ DESTINATION ${CMAKE_INSTALL_DATADIR}/lipsync/proto
  FILES_MATCHING PATTERN "*.proto")
