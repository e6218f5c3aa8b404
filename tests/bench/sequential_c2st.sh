#!/bin/bash
# Accuracy benchmark of the sequential methods (not a test): C2ST against
# sbibm's reference posteriors for SNPE, TSNPE, SNLE, SNRE and SMC-ABC in 10
# rounds, next to the sbibm paper's sequential figures. The same driver as
# neural_c2st.sh (see there for TASKS, BUDGETS, OBS, RESULTS and the table);
# only the defaults differ:
#
#   bash tests/bench/sequential_c2st.sh > table.md
#   METHODS="snpe snle" BUDGETS=10000 OBS=1 SETS="rounds=10 warm_start=true" bash tests/bench/sequential_c2st.sh
here=$(cd "$(dirname "$0")" && pwd)
export METHODS=${METHODS:-snpe tsnpe snle snre smc_abc}
export SETS=${SETS:-rounds=10}
export RESULTS=${RESULTS:-$here/sequential_c2st.results}
exec bash "$here/neural_c2st.sh" "$@"
