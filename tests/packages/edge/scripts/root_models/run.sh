#!/bin/sh
echo "edge root model args: $*"
echo "performance: 1.0 samples_per_second"
