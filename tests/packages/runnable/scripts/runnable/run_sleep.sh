#!/bin/bash
echo "sleeping ${1:-30} s"
sleep "${1:-30}"
echo "performance: 1 sleeps"
