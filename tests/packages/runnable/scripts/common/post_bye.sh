#!/bin/bash
echo "POST ran after model"
