# Warning flags shared by every target of the project (not by third-party code).
add_library(lipsync_warnings INTERFACE)
target_compile_options(lipsync_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual
  -Wcast-align -Wimplicit-fallthrough -Wmissing-declarations
  # GCC 12 reports false -Wrestrict errors inside libstdc++'s std::string concatenation at -O3
  # (GCC bug 105329); the warning says nothing about this project's code.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>
  # Clang checks the locks (core/mutex.h): a LIPSYNC_GUARDED_BY member touched without its mutex,
  # a LIPSYNC_REQUIRES function called without it.
  $<$<CXX_COMPILER_ID:Clang>:-Wthread-safety>
  # Some sources turn off a GCC-only warning by name; clang need not know every such name.
  $<$<CXX_COMPILER_ID:Clang>:-Wno-unknown-warning-option>
  $<$<BOOL:${LIPSYNC_WERROR}>:-Werror>)
add_library(lipsync::warnings ALIAS lipsync_warnings)

# lipsync_library(NAME layer SOURCES ... ) declares lipsync_<layer>, aliased lipsync::<layer>.
function(lipsync_library layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(lipsync_${layer} STATIC ${ARG_SOURCES})
  add_library(lipsync::${layer} ALIAS lipsync_${layer})
  target_include_directories(lipsync_${layer} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(lipsync_${layer} PUBLIC ${ARG_PUBLIC} PRIVATE lipsync::warnings ${ARG_PRIVATE})
endfunction()
