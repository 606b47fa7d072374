# Writes OUT, a C++ source defining `const char osprey::embedded::SYMBOL[]`
# holding the text of IN (cmake -DIN=... -DOUT=... -DSYMBOL=... -P embed.cmake).
file(READ "${IN}" content)
file(WRITE "${OUT}"
     "// Generated from ${IN} by cmake/embed.cmake: do not edit.\n"
     "namespace osprey::embedded {\n"
     "extern const char ${SYMBOL}[];\n"
     "const char ${SYMBOL}[] = R\"osprey_embed(${content})osprey_embed\";\n"
     "}  // namespace osprey::embedded\n")
