# pensieve_layer(NAME DIR DEPS... [EXCLUDE REGEX]): a static library from every *.cpp in DIR (recursively) except
# paths matching REGEX, linking DEPS. A folder without sources yet becomes an INTERFACE library so the layering
# is declared from day one.
function(pensieve_layer name dir)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "EXCLUDE" "")
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS "${dir}/*.cpp")
  if(arg_EXCLUDE)
    list(FILTER srcs EXCLUDE REGEX "${arg_EXCLUDE}")
  endif()
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${name} PUBLIC ${arg_UNPARSED_ARGUMENTS})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${name} INTERFACE ${arg_UNPARSED_ARGUMENTS})
  endif()
endfunction()
