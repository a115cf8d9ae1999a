# PBOX_SANITIZE=address builds everything with AddressSanitizer + UndefinedBehaviorSanitizer
# (and LeakSanitizer, which ASan enables); PBOX_SANITIZE=thread with ThreadSanitizer.
# Flags are global so that tests, benchmarks and libraries agree on one runtime.
if(PBOX_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(PBOX_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT PBOX_SANITIZE STREQUAL "none")
  message(FATAL_ERROR "PBOX_SANITIZE must be none, address or thread (got '${PBOX_SANITIZE}')")
endif()
