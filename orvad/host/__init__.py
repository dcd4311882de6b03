"""What touches the host: nsjail argv, the start-up host check, seccomp policy, egress namespaces and the
build proxy, child processes and their one kill path, the heap trim. Imports only orvad's leaves and itself."""
