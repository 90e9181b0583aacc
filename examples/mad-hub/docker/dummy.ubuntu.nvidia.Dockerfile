# CONTEXT {'gpu_vendor': 'NVIDIA', 'guest_os': 'UBUNTU'}
# The example's base image is made locally by .ci/setup (no registry is needed);
# a real hub would say ARG BASE_DOCKER=rocm/pytorch or nvcr.io/nvidia/pytorch.
ARG BASE_DOCKER=mad-test/busybox:latest
FROM $BASE_DOCKER
ARG MAD_SYSTEM_GPU_ARCHITECTURE=""
ENV MAD_BUILT_FOR_ARCH=$MAD_SYSTEM_GPU_ARCHITECTURE
