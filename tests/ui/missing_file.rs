archc_runtime::include_arch!("tests/ui/no_such_file.arch");

fn main() {}
