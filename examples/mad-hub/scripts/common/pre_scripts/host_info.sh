#!/bin/bash
# A pre script from the context: runs in the model dir before the model.
echo "pre-script: running in $(pwd) as $(id -u) with args: $*"
