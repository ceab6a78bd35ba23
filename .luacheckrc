-- luacheck configuration (`make lint` runs luacheck on lua/ test_lua/ bench/ examples/).
-- The Lua code must run on 5.1-5.4 and LuaJIT: "max" is the union of their standard globals,
-- so version-dependent code (`table.unpack or unpack`, `math.type`, ...) is not flagged.
std = "max"
max_line_length = 140
codes = true
exclude_files = { "target/**", "build/**", "fuzz/**", ".git/**" }

-- busted specs and their helpers: describe/it/assert/spy/stub/mock/pending/... are globals.
files["test_lua"] = { std = "max+busted" }
