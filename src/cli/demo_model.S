// The demo model's files (models/demo/), linked into the binary as read-only data; see demo_model.h.
// The assembler finds the files through -I (src/CMakeLists.txt passes -Wa,-I<repo>/models/demo).
#define DEMO_FILE(sym, file)            \
  .global pensieve_demo_##sym##_begin;  \
  .global pensieve_demo_##sym##_end;    \
  .balign 64;                           \
  pensieve_demo_##sym##_begin:          \
  .incbin file;                         \
  pensieve_demo_##sym##_end:

  .section .rodata.pensieve_demo, "a"
DEMO_FILE(weights, "model.safetensors")
DEMO_FILE(config, "config.json")
DEMO_FILE(generation_config, "generation_config.json")
DEMO_FILE(tokenizer, "tokenizer.json")
DEMO_FILE(tokenizer_config, "tokenizer_config.json")
  .section .note.GNU-stack, "", @progbits
