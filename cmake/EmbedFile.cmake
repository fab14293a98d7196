# lipsync_embed_file(INPUT OUTPUT SYMBOL NAMESPACE): writes a C++ source defining
# `const unsigned char SYMBOL[]` and `const std::size_t SYMBOL##Size` with INPUT's bytes.
function(lipsync_embed_file input output symbol namespace)
  file(READ "${input}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
  file(WRITE "${output}.tmp"
    "// Generated from ${input} by cmake/EmbedFile.cmake; do not edit.\n"
    "#include <cstddef>\nnamespace ${namespace} {\n"
    "extern const unsigned char ${symbol}[];\nextern const std::size_t ${symbol}Size;\n"
    "const unsigned char ${symbol}[] = {\n${bytes}};\n"
    "const std::size_t ${symbol}Size = ${size};\n}\n")
  file(COPY_FILE "${output}.tmp" "${output}" ONLY_IF_DIFFERENT)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${input}")
endfunction()
