# swarr_add_test(name SOURCES a_test.cc ... DEPS lib ...): one GoogleTest binary registered with CTest.
find_package(GTest REQUIRED)
include(GoogleTest)

function(swarr_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    SWARR_SHARED_DIR="${SWARR_SHARED_DIR}"
    SWARR_BINARY_DIR="${CMAKE_BINARY_DIR}"
    SWARR_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 PROPERTIES TIMEOUT 900)
endfunction()
