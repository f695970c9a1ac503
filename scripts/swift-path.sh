# Sourced by the scripts that build: puts Swift 6 on PATH when it is not there (the machines we
# build on have it at /opt/swift), or stops with a readable message.
if ! command -v swift >/dev/null 2>&1; then
    for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$candidate/swift" ] && export PATH="$candidate:$PATH" && break
    done
fi
command -v swift >/dev/null 2>&1 || { echo "swift not found: install Swift 6 (https://swift.org/install)"; exit 1; }
