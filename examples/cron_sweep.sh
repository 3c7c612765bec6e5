#!/usr/bin/env bash
# The scheduler's sweep run from cron instead of a long-running `caseflow scheduler run`:
# each run raises the warnings, overdue alerts and escalations that fell due since the last one
# (alerts are unique per timer and level, so overlapping or repeated runs never alert twice) and
# delivers the queued notifications. A crontab line (every 5 minutes, Beijing time on the host):
#
#   */5 * * * *  CASEFLOW_DB=/var/lib/caseflow/caseflow.db /opt/caseflow/examples/cron_sweep.sh >> /var/log/caseflow-sweep.log 2>&1
#
# and for the leaders' morning digests on working days:
#
#   30 8 * * *   CASEFLOW_DB=/var/lib/caseflow/caseflow.db caseflow scheduler run --once --digests
#
# CASEFLOW_DB names the database (a SQLite file or postgresql://…); CASEFLOW_CONFIG the channels.
set -euo pipefail
: "${CASEFLOW_DB:?set CASEFLOW_DB to the database (SQLite file or postgresql://…)}"
caseflow scheduler run --once --json "$@"
