# CONTEXT {'gpu_vendor': 'NONE'}
# Debian's PyTorch (CPU, gloo), built by tests/infra/base-images.sh torch; torchrun is on its PATH.
FROM mad-test/torch:bookworm
