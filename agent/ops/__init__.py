"""What technicians, operators and systemd see: diagnostics, the control socket, metrics,
logs, sd_notify and progress lines."""
