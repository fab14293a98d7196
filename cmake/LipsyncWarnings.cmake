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

# lipsync_layer_include_dir(OUT layer) sets OUT to the folder a layer exports: <build>/include/
# <layer>/ holds a single link, <layer> -> src/<layer>. A target then finds `#include
# "<layer>/..."` only for the layers it links, so the compiler refuses an include the link map
# (and ARCHITECTURE's layer map, scripts/check-layers) does not allow.
function(lipsync_layer_include_dir out layer)
  set(dir ${PROJECT_BINARY_DIR}/include/${layer})
  if(NOT IS_SYMLINK ${dir}/${layer})
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${layer} ${dir}/${layer} SYMBOLIC)
  endif()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()

# lipsync_library(NAME layer SOURCES ... ) declares lipsync_<layer>, aliased lipsync::<layer>,
# exporting only its own headers' folder.
function(lipsync_library layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(lipsync_${layer} STATIC ${ARG_SOURCES})
  add_library(lipsync::${layer} ALIAS lipsync_${layer})
  lipsync_layer_include_dir(include_dir ${layer})
  target_include_directories(lipsync_${layer} PUBLIC ${include_dir})
  target_link_libraries(lipsync_${layer} PUBLIC ${ARG_PUBLIC} PRIVATE lipsync::warnings ${ARG_PRIVATE})
endfunction()
