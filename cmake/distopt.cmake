# Helpers shared by every layer: one library target per layer listing its
# sources and the layers it depends on, tests beside their sources.

set(DISTOPT_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter -Wno-missing-field-initializers
    -Wnon-virtual-dtor)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND DISTOPT_WARNINGS -Wshadow=local)
endif()
# clang checks the GUARDED_BY / REQUIRES annotations (base/thread_annotations.h);
# the `tsa` preset builds with it and -Werror.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND DISTOPT_WARNINGS -Wthread-safety)
endif()
if(DISTOPT_WERROR)
  list(APPEND DISTOPT_WARNINGS -Werror)
endif()

set(DISTOPT_COMPILE_OPTIONS ${DISTOPT_WARNINGS})
if(DISTOPT_NATIVE)
  list(APPEND DISTOPT_COMPILE_OPTIONS -march=native)
elseif(DISTOPT_ARCH)
  list(APPEND DISTOPT_COMPILE_OPTIONS -march=${DISTOPT_ARCH})
endif()
if(DISTOPT_SANITIZE)
  string(REPLACE ";" "," _san "${DISTOPT_SANITIZE}")
  list(APPEND DISTOPT_COMPILE_OPTIONS -fsanitize=${_san} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${_san})
endif()

# distopt_library(NAME SOURCES a.cc b.cc DEPS base wire LIBS PkgConfig::ZMQ)
function(distopt_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  add_library(distopt_${name} STATIC ${ARG_SOURCES})
  target_include_directories(distopt_${name} PUBLIC
    ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(distopt_${name} PRIVATE ${DISTOPT_COMPILE_OPTIONS})
  set(_deps "")
  foreach(d ${ARG_DEPS})
    list(APPEND _deps distopt_${d})
  endforeach()
  target_link_libraries(distopt_${name} PUBLIC ${_deps} ${ARG_LIBS})
endfunction()

# distopt_test(NAME SOURCES x_test.cc DEPS kv LABELS unit TIMEOUT 120)
function(distopt_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${DISTOPT_COMPILE_OPTIONS})
  set(_deps "")
  foreach(d ${ARG_DEPS})
    list(APPEND _deps distopt_${d})
  endforeach()
  target_link_libraries(${name} PRIVATE ${_deps} ${ARG_LIBS} GTest::gtest GTest::gtest_main
    GTest::gmock)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(DISTOPT_SANITIZE)
    # Instrumented builds run several times slower (the test presets also set
    # DISTOPT_TEST_TIME_SCALE, which base/test_time_scale.h reads).
    math(EXPR ARG_TIMEOUT "${ARG_TIMEOUT} * 10")
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    EXTRA_ARGS --gtest_color=no)
endfunction()
