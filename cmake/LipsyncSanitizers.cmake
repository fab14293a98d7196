# Applies LIPSYNC_SANITIZE to everything built after this point.
if(LIPSYNC_SANITIZE)
  string(REPLACE ";" "," _lipsync_san "${LIPSYNC_SANITIZE}")
  add_compile_options(-fsanitize=${_lipsync_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_lipsync_san})
  message(STATUS "lipsync: sanitizers ${_lipsync_san}")
endif()
