#!/bin/bash
echo "training ${MAD_MODEL_NAME} mode=${DUMMY_MODE} args: $*"
echo "performance: 1234 tokens_per_second"
