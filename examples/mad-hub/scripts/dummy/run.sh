#!/bin/bash
# A stand-in benchmark: prints what madengine gives the model, then one performance line.
echo "model=${MAD_MODEL_NAME} vendor=${MAD_GPU_VENDOR} gpus=${MAD_RUNTIME_NGPUS}"
echo "args: $*"
echo "performance: 42.5 samples_per_second"
