#!/usr/bin/env bash
# Run the busted specs (test_lua/*_spec.lua) under one or more Lua interpreters and print
# one closing line "N passed, N failed" summed over all of them.
#
#   scripts/run_busted.sh [VERSION...]        VERSION: 5.4 (default) 5.3 5.2 5.1 jit
#
# Debian 12's lua-busted (and its dependencies lua-term, lua-system, lua-filesystem, penlight,
# luassert, say, cliargs, ...) install busted for every Lua it packages: the pure-Lua modules are
# linked into /usr/share/lua/5.{1,2,3,4} and the C modules are built into
# /usr/lib/x86_64-linux-gnu/lua/5.{1,2,3,4}. /usr/bin/busted starts with `#!/usr/bin/env lua`
# (whichever `lua` the alternatives system picks), so we never execute it directly: we hand it to
# the wanted interpreter, `lua5.3 /usr/bin/busted ...`, and busted then runs inside that
# interpreter. LuaJIT reads the 5.1 trees.
#
# Each version's specs see, in the environment:
#   RR_LUA        the version (5.4, 5.3, 5.2, 5.1 or jit)
#   RR_BUILD_DIR  absolute path of build/lua5.4 (build/luajit for jit), holding remote_runner.so
#                 and svc_run_lua.so; it is also put first on package.cpath
#   RR_FIXTURES   absolute path of the serpent fixture corpus (../shared/fixtures/serpent)
# and the repo's lua/ and test_lua/ come first on package.path (so `require "support.loader"`
# finds test_lua/support/loader.lua). Specs run with the repo root as the working directory.
#
# Extra busted arguments: BUSTED_ARGS="--filter=dump" scripts/run_busted.sh 5.3
# The specs must already be built (the Makefile's test targets do that first).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUSTED="${BUSTED:-/usr/bin/busted}"
SPEC_DIR="${SPEC_DIR:-test_lua}"
RR_FIXTURES="${RR_FIXTURES:-$(cd "$ROOT/.." && pwd)/shared/fixtures/serpent}"
export RR_FIXTURES

if [ $# -eq 0 ]; then set -- 5.4; fi
if [ ! -f "$BUSTED" ]; then
    echo "run_busted: $BUSTED not found (run 'make deps')" >&2
    exit 2
fi
if [ ! -d "$RR_FIXTURES" ]; then
    echo "run_busted: warning: fixture corpus $RR_FIXTURES does not exist" >&2
fi

log_dir="$ROOT/build/busted"
mkdir -p "$log_dir"

total_pass=0 total_fail=0 total_skip=0
summary=()
for v in "$@"; do
    case "$v" in
        5.1|5.2|5.3|5.4) name="lua$v" ;;
        jit) name="luajit" ;;
        *) echo "run_busted: unknown Lua version '$v' (want 5.4 5.3 5.2 5.1 jit)" >&2; exit 2 ;;
    esac
    interp="$(command -v "$name" || true)"
    build_dir="$ROOT/build/$name"
    log="$log_dir/$name.log"
    echo
    echo "=== busted on $name (RR_BUILD_DIR=$build_dir) ==="
    if [ -z "$interp" ]; then
        echo "run_busted: interpreter $name not found (run 'make deps')" >&2
        rc=127
        : >"$log"
    else
        # Run from the repo root so spec paths and relative paths in specs behave the same everywhere.
        # Unset user LUA_PATH/LUA_CPATH so nothing outside Debian's trees and ours leaks in.
        (
            cd "$ROOT" &&
            env -u LUA_INIT -u LUA_INIT_5_2 -u LUA_INIT_5_3 -u LUA_INIT_5_4 \
                -u LUA_PATH -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 \
                -u LUA_CPATH -u LUA_CPATH_5_2 -u LUA_CPATH_5_3 -u LUA_CPATH_5_4 \
                RR_LUA="$v" RR_BUILD_DIR="$build_dir" RR_FIXTURES="$RR_FIXTURES" \
                "$interp" "$BUSTED" \
                    --output="$ROOT/test_lua/support/counting_output.lua" \
                    --lpath="$ROOT/test_lua/?.lua" \
                    --cpath="$build_dir/?.so" \
                    ${BUSTED_ARGS:-} \
                    "$SPEC_DIR"
        ) 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
    fi
    # busted's closing line: "12 successes / 1 failure / 0 errors / 2 pending : 0.01 seconds"
    # (utfTerminal may colour the numbers: strip ANSI escapes first).
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
        grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)"
    if [ -n "$line" ]; then
        read -r s _ _ f _ _ e _ _ p _ <<<"$line"
    else
        # No summary: busted (or the interpreter) died before reporting.
        s=0 f=0 e=0 p=0
    fi
    failed=$((f + e))
    note=" (exit code $rc)"
    # Our handler's counts (support/counting_output.lua): tests that ended as failure or error,
    # and blocks that failed without an event ("silent"), which busted's summary leaves out.
    ended="$(grep -E '^tests ended: ' "$log" | tail -n 1)"
    if [ -n "$ended" ]; then
        read -r _ _ es _ ef _ ee _ _ _ ex _ <<<"${ended//,/}"
        counted=$((failed + ex))
        if [ $((ef + ee)) -gt "$counted" ]; then counted=$((ef + ee)); fi
        if [ "$counted" -gt "$failed" ]; then
            note="$note (busted's summary missed $((counted - failed)) failure(s): counted)"
            failed=$counted
        fi
        if [ "$es" -lt "$s" ]; then s=$es; fi
    elif [ -n "$line" ] && [[ " ${BUSTED_ARGS:-} " != *" --output"* && " ${BUSTED_ARGS:-} " != *" -o"* ]]; then
        failed=$((failed + 1))
        note="$note (no 'tests ended' count from support/counting_output.lua: counted as 1 failure)"
    fi
    if [ -z "$line" ]; then
        # busted died (crash, os.exit in a spec, missing interpreter) before its summary
        failed=$((failed + 1))
        note=" (exit code $rc, NO busted summary: counted as 1 failure)"
    elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        note=" (exit code $rc without a failure counted by busted: counted as 1 failure)"
    fi
    summary+=("busted $name = $s successes / $f failures / $e errors / $p pending$note")
    total_pass=$((total_pass + s))
    total_fail=$((total_fail + failed))
    total_skip=$((total_skip + p))
done

echo
echo "=== busted summary ==="
for l in "${summary[@]}"; do echo "$l"; done
if [ "$total_skip" -gt 0 ]; then
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
    echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
