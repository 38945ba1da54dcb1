# install.cmake: installs the built library, the headers, the CMake package and the pkg-config
# file under a prefix. A CMake script, so installing needs nothing but cmake:
#
#   cargo build --release
#   cmake -DPREFIX=/usr/local -P cmake/install.cmake
#
# Variables (-DNAME=value): PREFIX (required), LIBDIR (default "lib"), RRRA_LIBRARY (default
# target/release/librrra.a of this checkout), DESTDIR (staging root, as in `make install`).
# Result:
#   <prefix>/include/rrra.h, rrra.hpp
#   <prefix>/<libdir>/librrra.a
#   <prefix>/<libdir>/cmake/rrra/rrraConfig.cmake, rrraConfigVersion.cmake
#   <prefix>/<libdir>/pkgconfig/rrra.pc

cmake_minimum_required(VERSION 3.12)

if(NOT PREFIX)
  message(FATAL_ERROR "usage: cmake -DPREFIX=/install/prefix [-DLIBDIR=lib] [-DRRRA_LIBRARY=path/librrra.a] -P cmake/install.cmake")
endif()
if(NOT LIBDIR)
  set(LIBDIR lib)
endif()
get_filename_component(_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT RRRA_LIBRARY)
  set(RRRA_LIBRARY "${_root}/target/release/librrra.a")
endif()
if(NOT EXISTS "${RRRA_LIBRARY}")
  message(FATAL_ERROR "${RRRA_LIBRARY} does not exist: run `cargo build --release` first, or set RRRA_LIBRARY")
endif()
get_filename_component(PREFIX "${PREFIX}" ABSOLUTE)

file(STRINGS "${_root}/include/rrra.h" _line REGEX "^#define RRRA_VERSION_STRING \"[0-9.]+\"")
string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" VERSION "${_line}")

set(_dest "$ENV{DESTDIR}${DESTDIR}${PREFIX}")
file(INSTALL "${_root}/include/rrra.h" "${_root}/include/rrra.hpp" DESTINATION "${_dest}/include")
file(INSTALL "${RRRA_LIBRARY}" DESTINATION "${_dest}/${LIBDIR}" RENAME librrra.a)
file(INSTALL "${_root}/cmake/rrraConfig.cmake" "${_root}/cmake/rrraConfigVersion.cmake"
     DESTINATION "${_dest}/${LIBDIR}/cmake/rrra")
configure_file("${_root}/cmake/rrra.pc.in" "${_dest}/${LIBDIR}/pkgconfig/rrra.pc" @ONLY)
message(STATUS "rrra ${VERSION} installed under ${_dest}")
