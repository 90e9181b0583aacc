#!/bin/bash
for arg in "$@"; do echo "PRE [$arg]"; done
echo "pre" > pre_ran.txt
