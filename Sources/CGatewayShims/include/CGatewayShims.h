#ifndef C_GATEWAY_SHIMS_H
#define C_GATEWAY_SHIMS_H

/// pipe2(2) with O_CLOEXEC in one step: Glibc's Swift overlay does not export pipe2, and pipe() followed by
/// fcntl() leaves a window in which a child spawned by another thread inherits the descriptors.
int gateway_pipe_cloexec(int fds[2]);

#endif
