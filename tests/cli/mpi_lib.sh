# Helpers of the MPI tests (t08xx), sourced after lib.sh. Skips the test
# (exit 77) when sbirun was built without MPI or mpirun is missing.
if ! ldd "$SBIRUN" | grep -q libmpi; then echo "skip: sbirun was built without MPI (meson option mpi)"; exit 77; fi
command -v mpirun >/dev/null || { echo "skip: mpirun is not installed"; exit 77; }
# OpenMPI refuses to start as root unless told twice; tests in containers run as root.
if [ "$(id -u)" -eq 0 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Every mpirun keeps its session files under /tmp/ompi.HOST.UID, which
# OpenMPI 4 creates and removes without a lock: two tests starting and
# ending mpirun at once failed with "mkdir ... File exists". Each test has
# its own.
export OMPI_MCA_orte_tmpdir_base="$T/ompi"
mkdir -p "$OMPI_MCA_orte_tmpdir_base"
# Under AddressSanitizer, libmpi's own allocations that it never frees
# (OpenMPI keeps them to exit) are reported as leaks: leak checking is off
# for these tests; ASan's other checks stay on.
if ldd "$SBIRUN" | grep -q libasan; then
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi

# mpi_run N ARGS...: sbirun ARGS on N ranks of this machine; sets RC, OUT, ERR like run.
mpi_run() {
	local n=$1
	shift
	OUT="$T/out.$CHECKS" ERR="$T/err.$CHECKS"
	CHECKS=$((CHECKS + 1))
	timeout 600 mpirun --oversubscribe --bind-to none -n "$n" "$SBIRUN" "$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# artifacts FILE: the artifact hashes of run.json FILE, one a line.
artifacts() { grep '"artifact"' "$1" | tr -d ' ,'; }

# mpi_sims FILE: the simulations every rank ran, summed, from run.json FILE.
mpi_sims() {
	awk '/"per_rank"/ { f = 1 } f && /"simulations"/ { gsub(/,/, "", $2); s += $2 } END { print s + 0 }' "$1"
}
