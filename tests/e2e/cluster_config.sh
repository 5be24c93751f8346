#!/usr/bin/env bash
# Unit tests of scripts/cluster_config.py (settings/cluster.ini -> inventory, hostfile, variables).
exec /usr/bin/python3 tests/launch/test_cluster_config.py -q
