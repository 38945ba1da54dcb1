# rrraConfig.cmake: lets `find_package(rrra)` define the imported target `rrra::rrra`
# (the static library librrra.a, include/ with rrra.h and rrra.hpp, and -lpthread -ldl -lm).
#
# It works from two places, told apart by what sits next to it (docs/cpp.md has the details):
#   - a checkout of the rrra repository: point CMake at <checkout>/cmake (-Drrra_DIR=...).
#     The library is <RRRA_ROOT>/target/<RRRA_PROFILE>/librrra.a, built by
#     `cargo build --release`; RRRA_ROOT defaults to this file's parent directory (or the
#     RRRA_ROOT environment variable), RRRA_PROFILE to "release".
#   - an install made by cmake/install.cmake: <prefix>/lib/cmake/rrra/ beside <prefix>/lib
#     and <prefix>/include; found through CMAKE_PREFIX_PATH like any installed package.
# RRRA_LIBRARY, when set, names the library file directly and wins over both.

cmake_minimum_required(VERSION 3.12)

get_filename_component(_rrra_here "${CMAKE_CURRENT_LIST_DIR}" REALPATH)

if(EXISTS "${_rrra_here}/../Cargo.toml")
  # A checkout: cmake/ sits beside Cargo.toml, include/ and target/.
  if(NOT DEFINED RRRA_ROOT)
    if(DEFINED ENV{RRRA_ROOT})
      set(RRRA_ROOT "$ENV{RRRA_ROOT}")
    else()
      get_filename_component(RRRA_ROOT "${_rrra_here}/.." ABSOLUTE)
    endif()
  endif()
  if(NOT DEFINED RRRA_PROFILE)
    set(RRRA_PROFILE release)
  endif()
  set(_rrra_include "${RRRA_ROOT}/include")
  set(_rrra_default_library "${RRRA_ROOT}/target/${RRRA_PROFILE}/librrra.a")
  set(_rrra_build_hint "run `cargo build --release` in ${RRRA_ROOT}")
else()
  # An install: <prefix>/<libdir>/cmake/rrra/.
  get_filename_component(_rrra_libdir "${_rrra_here}/../.." ABSOLUTE)
  get_filename_component(_rrra_include "${_rrra_libdir}/../include" ABSOLUTE)
  set(_rrra_default_library "${_rrra_libdir}/librrra.a")
  set(_rrra_build_hint "reinstall rrra with cmake/install.cmake")
endif()

if(NOT RRRA_LIBRARY)
  set(RRRA_LIBRARY "${_rrra_default_library}")
endif()

# A missing file makes the package "not found" with a reason, instead of a link error later.
if(NOT EXISTS "${RRRA_LIBRARY}")
  set(rrra_FOUND FALSE)
  set(rrra_NOT_FOUND_MESSAGE "the rrra library ${RRRA_LIBRARY} does not exist: ${_rrra_build_hint}, or set RRRA_LIBRARY")
  return()
endif()
if(NOT EXISTS "${_rrra_include}/rrra.h")
  set(rrra_FOUND FALSE)
  set(rrra_NOT_FOUND_MESSAGE "rrra.h is not in ${_rrra_include}")
  return()
endif()

include(CMakeFindDependencyMacro)
find_dependency(Threads)

if(NOT TARGET rrra::rrra)
  add_library(rrra::rrra STATIC IMPORTED)
  set_target_properties(rrra::rrra PROPERTIES
    IMPORTED_LOCATION "${RRRA_LIBRARY}"
    # The archive is Rust code with a C ABI: linking it needs no C++ runtime of its own.
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "${_rrra_include}"
    # What Rust's standard library needs from the system (threads, dlopen for backtraces, libm).
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()

set(rrra_INCLUDE_DIR "${_rrra_include}")
set(rrra_LIBRARY "${RRRA_LIBRARY}")
unset(_rrra_here)
unset(_rrra_libdir)
unset(_rrra_include)
unset(_rrra_default_library)
unset(_rrra_build_hint)
