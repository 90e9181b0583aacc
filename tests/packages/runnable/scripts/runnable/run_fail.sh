#!/bin/bash
echo "about to fail"
echo "RuntimeError: the model crashed" >&2
exit 1
