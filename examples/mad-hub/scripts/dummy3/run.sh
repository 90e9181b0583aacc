#!/bin/bash
echo "dynamic model ${MAD_MODEL_NAME} args: $*"
echo "performance: 7.25 iterations_per_second"
