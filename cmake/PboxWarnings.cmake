# Warning flags for every pagebox target. PBOX_WERROR turns them into errors (CI does).
set(PBOX_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
  -Wformat=2 -Wvla -Wundef -Wcast-align -Wnull-dereference -Wimplicit-fallthrough)
if(PBOX_WERROR)
  list(APPEND PBOX_WARNING_FLAGS -Werror)
endif()

function(pbox_target_warnings target)
  target_compile_options(${target} PRIVATE ${PBOX_WARNING_FLAGS})
endfunction()
