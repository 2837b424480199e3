# Sourced by tools/test.sh and tools/demo.sh: installs the Debian 12 packages kpid's
# build, tests and demo need, only when some are missing.
KPI_PACKAGES="build-essential cmake pkg-config git ca-certificates tzdata
  librdkafka-dev libhiredis-dev libyajl-dev libcmocka-dev libcurl4-openssl-dev
  libmicrohttpd-dev libsystemd-dev python3-prometheus-client
  redis-server redis-sentinel redis-tools kcat cppcheck valgrind
  dpkg-dev groff-base systemd
  clang libclang-rt-dev llvm
  python3 python3-confluent-kafka python3-redis python3-pytest"

kpi_install_deps() {
    local missing=() pkg
    for pkg in $KPI_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
