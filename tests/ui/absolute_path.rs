archc_runtime::include_arch!("/etc/googlenet.arch");

fn main() {}
