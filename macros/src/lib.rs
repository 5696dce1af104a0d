//! include_arch! (filled in by the code-generation stage).
