#!/usr/bin/env bash
# Builds and runs the sample application (Tests/Examples/PrometheusExport): the library used as a dependency by
# path, logging through swift-log, metrics exported in Prometheus format. Fails when a metric is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
swift run --package-path Tests/Examples/PrometheusExport > /dev/null
