#!/bin/bash
# Prints the environment and the arguments, one per line, for the tests to read.
env | sort | sed 's/^/ENV /'
for arg in "$@"; do echo "ARG [$arg]"; done
echo "PWD $(pwd)"
echo "performance: 1 envs"
