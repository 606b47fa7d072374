# Writes OUT, a C++ source defining `const char osprey::embedded::SYMBOL[]`
# holding the text of IN (cmake -DIN=... -DOUT=... -DSYMBOL=... -P embed.cmake).
file(READ "${IN}" content)
string(FIND "${content}" ")osprey_embed" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} holds \")osprey_embed\", which ends the raw string it is embedded in")
endif()
file(WRITE "${OUT}"
     "// Generated from ${IN} by cmake/embed.cmake: do not edit.\n"
     "namespace osprey::embedded {\n"
     "extern const char ${SYMBOL}[];\n"
     "const char ${SYMBOL}[] = R\"osprey_embed(${content})osprey_embed\";\n"
     "}  // namespace osprey::embedded\n")
