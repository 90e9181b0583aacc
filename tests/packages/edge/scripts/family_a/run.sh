#!/bin/sh
echo "edge family_a model args: $*"
echo "performance: 1.0 samples_per_second"
