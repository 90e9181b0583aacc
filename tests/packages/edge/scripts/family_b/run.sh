#!/bin/sh
echo "edge family_b model ($MAD_MODEL_NAME) args: $*"
echo "performance: 1.0 samples_per_second"
