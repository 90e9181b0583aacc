#!/bin/bash
echo "running $MAD_MODEL_NAME with args: $*"
echo "performance: 123.4 samples_per_second"
