#!/bin/sh
# System environment capture (madengine's rocEnvTool step): sys_env.sh <dir> <lite|full>
# Saves what the vendor and system tools say into <dir> (pytest-madengine turns it into
# <model>_env.csv on the host) and prints the vendor tool's GPU table at the top of the run log.
# Never fails the run: a tool the image lacks is skipped. Variables named in MAD_ENV_HIDE and any
# whose name looks secret are never written.
dir=$1
mode=${2:-lite}
mkdir -p "$dir" 2>/dev/null || exit 0
have() { command -v "$1" >/dev/null 2>&1; }
save() { name=$1; shift; have "$1" || return 0; "$@" > "$dir/$name" 2>/dev/null || true; }
echo "==== pytest-madengine: system environment ($mode) ===="
cp /etc/os-release "$dir/os-release" 2>/dev/null
uname -srm > "$dir/uname" 2>/dev/null
cat "${ROCM_PATH:-/opt/rocm}/.info/version" > "$dir/rocm-version" 2>/dev/null
cat /sys/module/amdgpu/version > "$dir/amdgpu-version" 2>/dev/null
save hipconfig-version hipconfig --version
save amd-smi-list.json amd-smi list --json
save amd-smi-asic.json amd-smi static --asic --json
save rocm-smi.json rocm-smi --showproductname --showbus --json
save nvidia-smi.csv nvidia-smi --query-gpu=index,name,uuid,compute_cap,pci.bus_id --format=csv,noheader
save nvidia-smi-driver nvidia-smi --query-gpu=driver_version --format=csv,noheader
save nvcc-version nvcc --version
save python-version python3 --version
save torch-version python3 -c "import torch; print(torch.__version__)"
if [ "$mode" = full ]; then
  save amd-smi-firmware amd-smi firmware
  save pip-freeze python3 -m pip list --format=freeze
fi
env | while IFS= read -r line; do
  name=${line%%=*}
  case " $MAD_ENV_HIDE " in *" $name "*) continue ;; esac
  case "$name" in *PASS*|*pass*|*TOKEN*|*token*|*SECRET*|*secret*|*KEY*|*key*|*CRED*|*cred*|MAD_STEP_*) continue ;; esac
  if [ "$mode" = full ]; then echo "$line"; continue; fi
  case "$name" in MAD_*|HIP_*|ROCR_*|CUDA_*|HSA_*|NCCL_*|RCCL_*|MIOPEN_*|PYTORCH_*|OMP_*|ROCM_PATH) echo "$line" ;; esac
done > "$dir/env" 2>/dev/null
if have amd-smi; then
  amd-smi static --asic --bus --driver --vbios 2>&1 | head -n 200
elif have rocm-smi; then
  rocm-smi 2>&1 | head -n 200
elif have nvidia-smi; then
  nvidia-smi 2>&1 | head -n 200
else
  echo "no GPU tool (amd-smi, rocm-smi, nvidia-smi) in this image"
fi
echo "==== end of system environment ===="
exit 0
