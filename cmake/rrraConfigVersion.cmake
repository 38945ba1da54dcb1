# rrraConfigVersion.cmake: the package version for `find_package(rrra 0.1)`, read from
# RRRA_VERSION_STRING in rrra.h so that it can never disagree with the header (which cbindgen
# generates from Cargo.toml). While the major version is 0, a minor release may break the API,
# so 0.x accepts only requests for the same 0.x; from 1.0 on, the same major version.

get_filename_component(_rrra_v_here "${CMAKE_CURRENT_LIST_DIR}" REALPATH)
if(EXISTS "${_rrra_v_here}/../Cargo.toml")
  set(_rrra_v_header "${_rrra_v_here}/../include/rrra.h")
else()
  set(_rrra_v_header "${_rrra_v_here}/../../../include/rrra.h")
endif()

set(PACKAGE_VERSION "0.0.0")
if(EXISTS "${_rrra_v_header}")
  file(STRINGS "${_rrra_v_header}" _rrra_v_line REGEX "^#define RRRA_VERSION_STRING \"[0-9.]+\"")
  string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" PACKAGE_VERSION "${_rrra_v_line}")
endif()

set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)
if(PACKAGE_FIND_VERSION)
  string(REPLACE "." ";" _rrra_v_parts "${PACKAGE_VERSION}")
  list(GET _rrra_v_parts 0 _rrra_v_major)
  list(GET _rrra_v_parts 1 _rrra_v_minor)
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
  if(NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION
     AND PACKAGE_FIND_VERSION_MAJOR EQUAL _rrra_v_major
     AND (_rrra_v_major GREATER 0 OR PACKAGE_FIND_VERSION_MINOR EQUAL _rrra_v_minor))
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()

unset(_rrra_v_here)
unset(_rrra_v_header)
unset(_rrra_v_line)
unset(_rrra_v_parts)
unset(_rrra_v_major)
unset(_rrra_v_minor)
