#!/bin/sh
# A scripts/<dir> without a registry: scanned and ignored.
echo helper
