#!/usr/bin/env bash
# Serverless ran this before installing the dependencies.
echo "installing system packages for analytics"
