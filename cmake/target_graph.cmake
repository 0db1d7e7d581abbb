# Writes the build's target graph to a JSON file at configure time, so that
# tests/include_graph.py checks #includes against the dependencies CMake
# really declares instead of a copy of them:
#   {"layers": [...],             src/ layers, lowest first (src/CMakeLists.txt)
#    "targets": {NAME: {"type": "STATIC_LIBRARY" | "EXECUTABLE" | ...,
#                       "sources": [paths relative to the source tree],
#                       "links": [direct link dependencies that are targets of this build],
#                       "interface_links": [the ones passed on to dependants (PUBLIC)]}}}
# Call it once at the end of the top-level CMakeLists.txt, after every target exists.

function(_distopt_targets_below dir out)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub ${subdirs})
    _distopt_targets_below("${sub}" below)
    list(APPEND targets ${below})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# ["a", "b"] of the items of a list (names and relative paths: no quotes or
# backslashes to escape, which is checked).
function(_distopt_json_array out)
  set(items "")
  foreach(item ${ARGN})
    if(item MATCHES "[\"\\\\]")
      message(FATAL_ERROR "target graph: cannot write '${item}' as JSON")
    endif()
    list(APPEND items "\"${item}\"")
  endforeach()
  list(JOIN items ", " joined)
  set(${out} "[${joined}]" PARENT_SCOPE)
endfunction()

# The items of a link list that are targets of this build ($<LINK_ONLY:x>,
# which a PRIVATE dependency of a static library leaves in its interface,
# counts as x).
function(_distopt_build_targets out all)
  set(found "")
  foreach(item ${ARGN})
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" item "${item}")
    if(item IN_LIST all)
      list(APPEND found "${item}")
    endif()
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

function(distopt_write_target_graph path)
  _distopt_targets_below("${PROJECT_SOURCE_DIR}" all)
  list(SORT all)
  get_property(layers GLOBAL PROPERTY DISTOPT_LAYERS)
  _distopt_json_array(layers_json ${layers})
  set(entries "")
  foreach(t ${all})
    get_target_property(type ${t} TYPE)
    get_target_property(dir ${t} SOURCE_DIR)
    get_target_property(srcs ${t} SOURCES)
    get_target_property(links ${t} LINK_LIBRARIES)
    get_target_property(ilinks ${t} INTERFACE_LINK_LIBRARIES)
    if(NOT srcs)
      set(srcs "")
    endif()
    set(rel "")
    foreach(s ${srcs})
      if(s MATCHES "^\\$<")
        continue()  # a generator expression: not a file of the tree
      endif()
      get_filename_component(abs "${s}" ABSOLUTE BASE_DIR "${dir}")
      file(RELATIVE_PATH r "${PROJECT_SOURCE_DIR}" "${abs}")
      if(NOT r MATCHES "^\\.\\./")
        list(APPEND rel "${r}")
      endif()
    endforeach()
    if(NOT links)
      set(links "")
    endif()
    if(NOT ilinks)
      set(ilinks "")
    endif()
    _distopt_build_targets(links "${all}" ${links})
    _distopt_build_targets(ilinks "${all}" ${ilinks})
    _distopt_json_array(srcs_json ${rel})
    _distopt_json_array(links_json ${links})
    _distopt_json_array(ilinks_json ${ilinks})
    list(APPEND entries "    \"${t}\": {\"type\": \"${type}\", \"sources\": ${srcs_json},\n      \"links\": ${links_json}, \"interface_links\": ${ilinks_json}}")
  endforeach()
  list(JOIN entries ",\n" body)
  file(CONFIGURE OUTPUT "${path}" CONTENT "{\"layers\": ${layers_json},\n  \"targets\": {\n${body}\n  }\n}\n" @ONLY)
endfunction()
