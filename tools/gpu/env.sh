# Sourced on the GPU machine from the repository root: unpacks .dev/bundle.tar.xz (tools/gpu/bundle.sh) and
# sets where the carried binaries find their libraries, the fixtures, the CLI and the test data.
[ -x .dev/pensieve ] || tar xJf .dev/bundle.tar.xz -C .dev
export LD_LIBRARY_PATH="$PWD/.dev/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PENSIEVE_FIXTURES_DIR="$PWD/tests/fixtures" PENSIEVE_BINARY="$PWD/.dev/pensieve"
export PENSIEVE_TEST_DATA="$PWD/.dev/shared/data"
export PYTHONUNBUFFERED=1
