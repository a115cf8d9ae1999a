# pbox_add_library(<name> SOURCES ... [DEPS pagebox-targets...] [PUBLIC_LIBS libs...]
#                  [PRIVATE_LIBS libs...])
#
# Creates the static library pbox_<name> with alias pagebox::<name>, public headers in
# <dir>/include (installed as include/pbox/...), private headers in <dir>/src, the project's
# warnings, feature definitions, and install/export rules. A library with no sources yet is an
# INTERFACE placeholder so dependents can already name it.
define_property(GLOBAL PROPERTY PBOX_LIBRARIES
  BRIEF_DOCS "pagebox libraries in dependency order" FULL_DOCS "see PboxLibrary.cmake")

function(pbox_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  set(t pbox_${name})
  add_library(${t} STATIC ${A_SOURCES})
  add_library(pagebox::${name} ALIAS ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${t}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
           $<BUILD_INTERFACE:${PBOX_GENERATED_INCLUDE}>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${t} PUBLIC ${A_DEPS} ${A_PUBLIC_LIBS} Threads::Threads
                             PRIVATE ${A_PRIVATE_LIBS})
  pbox_target_warnings(${t})
  install(TARGETS ${t} EXPORT pagebox-targets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  set_property(GLOBAL APPEND PROPERTY PBOX_LIBRARIES ${name})
endfunction()

# pbox_add_program(<name> SOURCES ... LIBS ...): an installed program (benchmarks, kvstore).
function(pbox_add_program name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_LIBS})
  pbox_target_warnings(${name})
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()

# pbox_add_check_test(<name> SOURCES ... LIBS ... [TIMEOUT seconds] [LABELS ...])
# A Check suite built as check_<name> and registered as one CTest test. Exit code 77 means
# skipped (no io_uring, no usable hwloc topology, ...).
function(pbox_add_check_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  add_executable(check_${name} ${A_SOURCES})
  target_link_libraries(check_${name} PRIVATE ${A_LIBS} pbox_testutil PkgConfig::PBOX_CHECK)
  pbox_target_warnings(check_${name})
  add_test(NAME ${name} COMMAND check_${name})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "PBOX_STRESS_SCALE=${PBOX_STRESS_SCALE};CK_DEFAULT_TIMEOUT=${A_TIMEOUT}"
    LABELS "${A_LABELS}")
endfunction()
